"""Reference routing functions in PyTorch, written from the published formulas (see
../shared/ROUTING.md), and the golden cases the C++ routers are checked against.

Each case file routers/<name>.safetensors holds:
  logits  [T, S] f32     router logits (S = experts + null experts)
  weights [T, E] f32     expected combine weight of each (token, expert); 0 = not chosen
  chosen  [T, E] u8      1 where the expert was chosen (distinguishes a chosen expert of weight 0)
  token_ids [T] i32      (optional) for hash routing
and metadata: spec, n_experts, dropped (expected dropped assignments).
Ties are broken toward the lower expert index (stable descending sort), as the C++ routers do.
"""
import argparse
import os

import torch

import st


def stable_topk(x, k):
    """Indices of the k largest values per row; equal values: lower index first."""
    return torch.sort(x, dim=-1, descending=True, stable=True).indices[..., :k]


def dense(idx, w, E):
    T = idx.shape[0]
    out = torch.zeros(T, E, dtype=torch.float32)
    chosen = torch.zeros(T, E, dtype=torch.uint8)
    out.scatter_(1, idx, w.float())
    chosen.scatter_(1, idx, torch.ones_like(idx, dtype=torch.uint8))
    return out, chosen


# --- token-choice routers of released models -------------------------------------------------

def ref_topk(logits, k, norm):
    """Mixtral / Qwen2-MoE / Qwen3-MoE / OLMoE: softmax over experts, top-k, optional renorm."""
    p = torch.softmax(logits.double(), dim=-1)
    idx = stable_topk(p, k)
    w = p.gather(1, idx)
    if norm:
        w = w / w.sum(dim=-1, keepdim=True)
    return dense(idx, w, logits.shape[1])


def ref_topk_logits(logits, k):
    """gpt-oss: top-k on the logits, softmax over the k chosen."""
    idx = stable_topk(logits, k)
    w = torch.softmax(logits.gather(1, idx).double(), dim=-1)
    return dense(idx, w, logits.shape[1])


CASES = []


def case(name, spec, logits, ref, E=None, token_ids=None, dropped=0):
    CASES.append((name, spec, logits, ref, E, token_ids, dropped))


def build_cases():
    g = torch.Generator().manual_seed(1234)

    def rnd(T, E, scale=2.0):
        return torch.randn(T, E, generator=g) * scale

    for T, E, k in [(1, 8, 2), (7, 8, 2), (64, 16, 4), (513, 128, 8), (5, 4, 4)]:
        L = rnd(T, E)
        case(f"topk_norm_T{T}_E{E}_k{k}", f"topk:k={k},norm=true", L, ref_topk(L, k, True))
        case(f"topk_raw_T{T}_E{E}_k{k}", f"topk:k={k},norm=false", L, ref_topk(L, k, False))
        case(f"topk_logits_T{T}_E{E}_k{k}", f"topk_logits:k={k}", L, ref_topk_logits(L, k))
    # ties: equal logits (all equal, and pairs of equal values)
    L = torch.zeros(3, 8)
    L[1] = torch.tensor([1.0, 2.0, 2.0, 0.5, 2.0, -1.0, 0.0, 1.0])
    L[2, 5:] = 3.0
    case("topk_ties", "topk:k=2,norm=true", L, ref_topk(L, 2, True))
    case("topk_logits_ties", "topk_logits:k=3", L, ref_topk_logits(L, 3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    build_cases()
    out = os.path.join(args.out, "routers")
    os.makedirs(out, exist_ok=True)
    for name, spec, logits, (w, chosen), E, token_ids, dropped in CASES:
        tensors = {"logits": logits.float(), "weights": w.float(), "chosen": chosen}
        if token_ids is not None:
            tensors["token_ids"] = token_ids.to(torch.int32)
        st.save(os.path.join(out, name + ".safetensors"), tensors,
                {"spec": spec, "n_experts": E if E is not None else w.shape[1], "dropped": dropped})
    print(f"wrote {len(CASES)} router cases to {out}")


if __name__ == "__main__":
    main()
