"""Reference logits processors in PyTorch, written from the Hugging Face transformers semantics
(RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
MinPLogitsWarper, applied in that order as GenerationMixin does with do_sample=True and
min_tokens_to_keep=1), and the cases src/model/sampling.cpp is checked against.

Each case file sampling/<name>.safetensors holds:
  logits  [V] f32    raw next-token logits
  history [H] i32    token ids seen so far (for the repetition penalty; H may be 0)
  probs   [V] f32    the distribution the next token is drawn from (0 where removed);
                     for greedy (temperature 0) a one-hot at the argmax after the penalty
and metadata: temperature, top_k, top_p, min_p, repetition_penalty.
Computed in float64. Ties in the top-p sort: stable ascending (lower id first).
"""
import argparse
import os

import torch

import st

NEG = float("-inf")


def repetition_penalty(x, history, penalty):
    if penalty == 1.0 or history.numel() == 0:
        return x
    x = x.clone()
    score = x.gather(0, history.long())
    score = torch.where(score < 0, score * penalty, score / penalty)
    x.scatter_(0, history.long(), score)
    return x


def top_k(x, k):
    if k <= 0 or k >= x.numel():
        return x
    kth = torch.topk(x, k).values[-1]
    return x.masked_fill(x < kth, NEG)


def top_p(x, p):
    if p >= 1.0:
        return x
    srt = torch.sort(x, descending=False, stable=True)
    cum = torch.softmax(srt.values, dim=-1).cumsum(dim=-1)
    remove = cum <= (1 - p)
    remove[-1] = False
    mask = torch.zeros_like(remove).scatter(0, srt.indices, remove)
    return x.masked_fill(mask, NEG)


def min_p(x, mp):
    if mp <= 0:
        return x
    prob = torch.softmax(x, dim=-1)
    remove = prob < mp * prob.max()
    remove[torch.argmax(x)] = False
    return x.masked_fill(remove, NEG)


def reference(logits, history, temperature=1.0, k=0, p=1.0, mp=0.0, penalty=1.0):
    x = repetition_penalty(logits.double(), history, penalty)
    if temperature <= 0:
        out = torch.zeros_like(x)
        out[torch.argmax(x)] = 1.0
        return out
    x = x / temperature
    x = top_k(x, k)
    x = top_p(x, p)
    x = min_p(x, mp)
    return torch.softmax(x, dim=-1)


CASES = []


def case(name, logits, history, **s):
    probs = reference(logits, history, **s)
    meta = {"temperature": s.get("temperature", 1.0), "top_k": s.get("k", 0), "top_p": s.get("p", 1.0),
            "min_p": s.get("mp", 0.0), "repetition_penalty": s.get("penalty", 1.0)}
    CASES.append((name, logits.float(), history.to(torch.int32), probs.float(), meta))


def build_cases():
    g = torch.Generator().manual_seed(77)
    for V in (10, 257, 5000):
        L = torch.randn(V, generator=g) * 3
        H = torch.randint(0, V, (min(V, 40),), generator=g)
        H0 = torch.zeros(0, dtype=torch.int64)
        case(f"plain_V{V}", L, H0)
        case(f"greedy_V{V}", L, H0, temperature=0.0)
        case(f"greedy_penalty_V{V}", L, H, temperature=0.0, penalty=1.8)
        case(f"temp_0.7_V{V}", L, H0, temperature=0.7)
        case(f"temp_1.6_V{V}", L, H0, temperature=1.6)
        case(f"topk_5_V{V}", L, H0, k=5)
        case(f"topk_1_V{V}", L, H0, k=1)
        case(f"topk_over_V_V{V}", L, H0, k=V + 3)
        case(f"topp_0.9_V{V}", L, H0, p=0.9)
        case(f"topp_0.3_V{V}", L, H0, p=0.3)
        case(f"topp_tiny_V{V}", L, H0, p=1e-4)
        case(f"minp_0.05_V{V}", L, H0, mp=0.05)
        case(f"minp_0.5_V{V}", L, H0, mp=0.5)
        case(f"penalty_1.3_V{V}", L, H, penalty=1.3)
        case(f"penalty_0.7_V{V}", L, H, penalty=0.7)
        case(f"all_V{V}", L, H, temperature=0.8, k=40, p=0.85, mp=0.02, penalty=1.2)
        case(f"qwen3_V{V}", L, H, temperature=0.6, k=20, p=0.95)
    # The penalty's sign rule: negative logits are multiplied, positive divided; repeated ids count once.
    L = torch.tensor([2.0, -2.0, 0.5, -0.5, 0.0, 1.0])
    case("penalty_signs", L, torch.tensor([0, 1, 1, 3, 4, 0]), penalty=2.0)
    # Ties at the k-th value are kept by top-k.
    L = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0, -1.0])
    case("topk_ties", L, torch.zeros(0, dtype=torch.int64), k=2)
    # Masked (-inf) logits stay at probability 0 through every step.
    L = torch.randn(64, generator=g)
    L[::3] = NEG
    case("masked_all", L, torch.tensor([1, 2, 4]), temperature=0.9, k=10, p=0.8, mp=0.1, penalty=1.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    build_cases()
    out = os.path.join(args.out, "sampling")
    os.makedirs(out, exist_ok=True)
    for name, logits, history, probs, meta in CASES:
        st.save(os.path.join(out, name + ".safetensors"), {"logits": logits, "history": history, "probs": probs}, meta)
    print(f"wrote {len(CASES)} sampling cases to {out}")


if __name__ == "__main__":
    main()
