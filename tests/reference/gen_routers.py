"""Reference routing functions in PyTorch, written from the published formulas (see
../shared/ROUTING.md), and the golden cases the C++ routers are checked against.

Each case file routers/<name>.safetensors holds:
  logits  [T, S] f32     router logits (S = experts + null experts)
  weights [T, E] f32     expected combine weight of each (token, expert); 0 = not chosen
  chosen  [T, E] u8      1 where the expert was chosen (distinguishes a chosen expert of weight 0)
  token_ids [T] i32      (optional) for hash routing
  positions [T] i64      (optional) token positions (random routing); absent = 0..T-1
  param.NAME [n] f32     (optional) per-layer router tensor NAME, given to Router::set_param
and metadata: spec, n_experts, dropped (expected dropped assignments), layer (RouteInput::layer).
Router scores are rounded to f32 before any selection (the routers select on f32 scores; the
rounding is done here from a double-precision evaluation), weights are computed in double.
Ties are broken toward the lower expert index (stable descending sort), as the C++ routers do.
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F

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


# --- routers of DeepSeek-V2/V3 and the research papers ----------------------------------------

def f32_softmax(logits):
    """softmax in double, rounded to f32 (the routers select on f32 probabilities)."""
    return torch.softmax(logits.double(), dim=-1).float()


def keep_groups_mask(group_scores, topk_group, per):
    """[T, G] group scores -> [T, G*per] bool, True for the experts of the topk_group best groups."""
    T, G = group_scores.shape
    keep = torch.zeros(T, G, dtype=torch.bool)
    keep.scatter_(1, stable_topk(group_scores, topk_group), True)
    return keep.repeat_interleave(per, dim=1)


def ref_sigmoid(logits, k, groups=1, topk_group=None, norm=True, scale=1.0, bias=None):
    """DeepSeek-V3 Gate: s = sigmoid; s' = s + b picks (groups by sum of top-2 s', others -inf);
    the weights come from s without b, normalised by (sum + 1e-20), times routed_scaling_factor."""
    T, E = logits.shape
    s = torch.sigmoid(logits.double()).float()
    b = torch.zeros(E) if bias is None else bias.float()
    sel = s + b  # f32, like the bias buffer added to f32 scores
    if groups > 1:
        per = E // groups
        top2 = sel.view(T, groups, per).topk(2, dim=-1).values
        gscore = top2[..., 0] + top2[..., 1]
        sel = sel.masked_fill(~keep_groups_mask(gscore, topk_group or groups, per), float("-inf"))
    idx = stable_topk(sel, k)
    w = s.double().gather(1, idx)
    if norm:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    return dense(idx, w * scale, E)


def hf_zero_mask_sigmoid_choice(logits, k, groups, topk_group, bias):
    """The HF transformers variant that masks dropped groups with 0.0 (used only to prove that a
    case distinguishes -inf masking from it)."""
    T, E = logits.shape
    sel = torch.sigmoid(logits.double()).float() + bias.float()
    per = E // groups
    top2 = sel.view(T, groups, per).topk(2, dim=-1).values
    keep = keep_groups_mask(top2[..., 0] + top2[..., 1], topk_group, per)
    return stable_topk(sel.masked_fill(~keep, 0.0), k)


def ref_grouped(logits, k, groups=1, topk_group=None, norm=False, scale=1.0):
    """DeepSeek-V2 MoEGate: softmax; group_limited_greedy keeps the topk_group groups with the
    largest max-probability; top-k inside them; renormalise if k > 1 and norm_topk_prob, else scale."""
    T, E = logits.shape
    p = f32_softmax(logits)
    sel = p
    if groups > 1:
        per = E // groups
        gmax = p.view(T, groups, per).amax(dim=-1)
        sel = p.masked_fill(~keep_groups_mask(gmax, topk_group or groups, per), float("-inf"))
    idx = stable_topk(sel, k)
    w = p.double().gather(1, idx)
    if k > 1 and norm:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    else:
        w = w * scale
    return dense(idx, w, E)


def ref_topp(logits, threshold, max_k=None):
    """Top-p (Harder Tasks Need More Experts): in descending order, an expert is kept while the sum
    of the experts before it does not exceed the threshold (so the crossing expert is included);
    weights are the raw probabilities."""
    T, E = logits.shape
    p = f32_softmax(logits)
    srt = torch.sort(p, dim=-1, descending=True, stable=True)
    before = torch.cumsum(srt.values.double(), dim=-1)
    before = torch.cat([torch.zeros(T, 1, dtype=torch.float64), before[:, :-1]], dim=1)
    keep = before <= threshold
    if max_k is not None:
        keep[:, max_k:] = False
    w = torch.zeros(T, E, dtype=torch.float64)
    chosen = torch.zeros(T, E, dtype=torch.uint8)
    w.scatter_(1, srt.indices, torch.where(keep, srt.values.double(), torch.zeros_like(before)))
    chosen.scatter_(1, srt.indices, keep.to(torch.uint8))
    return w.float(), chosen


def ref_null(logits, E, k, norm=True):
    """AdaMoE: softmax over E real + m null experts, top-k over all of them, weights renormalised
    over the whole top-k (null ones included); null experts contribute nothing, so only the real
    columns are kept."""
    p = f32_softmax(logits)
    idx = stable_topk(p, k)
    w = p.double().gather(1, idx)
    if norm:
        w = w / w.sum(dim=-1, keepdim=True)
    wd, cd = dense(idx, w, logits.shape[1])
    return wd[:, :E].contiguous(), cd[:, :E].contiguous()


def ref_expert_choice(logits, cf):
    """Expert choice (Zhou et al.): every expert takes the c = min(T, ceil(T*cf/E)) tokens with the
    highest probability for it; combine weight = that probability."""
    T, E = logits.shape
    p = f32_softmax(logits)
    c = min(T, math.ceil(T * cf / E))
    tok = torch.sort(p, dim=0, descending=True, stable=True).indices[:c]  # [c, E]
    chosen = torch.zeros(T, E, dtype=torch.uint8)
    chosen.scatter_(0, tok, torch.ones_like(tok, dtype=torch.uint8))
    return p * chosen.float(), chosen


def ref_capacity(logits, k, cf, norm=False):
    """Switch / GShard: top-k of the softmax; expert capacity C = ceil(T/E*cf); slots are queued
    rank-major (all first choices in token order, then second choices, ...); a slot whose position in
    its expert's queue is >= C is dropped. Returns (weights, chosen, dropped)."""
    T, E = logits.shape
    p = f32_softmax(logits)
    idx = stable_topk(p, k)  # [T, k]
    w = p.double().gather(1, idx)
    if norm:
        w = w / w.sum(dim=-1, keepdim=True)
    C = math.ceil(T / E * cf)
    queue = F.one_hot(idx.t().reshape(-1), E)  # [k*T, E], rank-major
    position = ((torch.cumsum(queue, dim=0) - 1) * queue).sum(dim=1)
    kept = (position < C).view(k, T).t()  # [T, k]
    wd = torch.zeros(T, E, dtype=torch.float64)
    cd = torch.zeros(T, E, dtype=torch.uint8)
    wd.scatter_(1, idx, torch.where(kept, w, torch.zeros_like(w)))
    cd.scatter_(1, idx, kept.to(torch.uint8))
    return wd.float(), cd, int((~kept).sum())


M64 = (1 << 64) - 1


def splitmix64(x):
    """Steele, Lea & Flood (2014) splitmix64 output function on a 64-bit state."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hashed_experts(seed, layer, key, k, E):
    """k distinct experts: partial Fisher-Yates shuffle of 0..E-1 driven by splitmix64 draws."""
    h = splitmix64(splitmix64(splitmix64(seed & M64) ^ (layer & M64)) ^ (key & M64))
    perm = list(range(E))
    for j in range(k):
        i = j + splitmix64(h ^ j) % (E - j)
        perm[j], perm[i] = perm[i], perm[j]
    return perm[:k]


def ref_random(T, E, k, seed, layer=0, positions=None):
    """THOR-style random experts keyed by (seed, layer, position); weight 1/k."""
    pos = list(range(T)) if positions is None else [int(v) for v in positions]
    idx = torch.tensor([hashed_experts(seed, layer, q, k, E) for q in pos], dtype=torch.int64).view(T, k)
    return dense(idx, torch.full((T, k), 1.0 / k, dtype=torch.float64), E)


def ref_hash(token_ids, E, k, seed, layer=0):
    """Hash layers: experts keyed by (seed, layer, token id); weight 1/k."""
    T = len(token_ids)
    idx = torch.tensor([hashed_experts(seed, layer, int(t), k, E) for t in token_ids], dtype=torch.int64).view(T, k)
    return dense(idx, torch.full((T, k), 1.0 / k, dtype=torch.float64), E)


def ref_relu(logits, eps=1e-6, norm_weight=None):
    """BlockFFN: gate = ReLU(RMSNorm(logits)); every expert with gate > 0, weight = gate."""
    x = logits.double()
    g = torch.ones(x.shape[1], dtype=torch.float64) if norm_weight is None else norm_weight.double()
    z = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * g
    gate = torch.relu(z).float()
    return gate, (gate > 0).to(torch.uint8)

CASES = []


def case(name, spec, logits, ref, E=None, token_ids=None, dropped=0, positions=None, params=None, layer=0):
    """ref: (weights, chosen) or (weights, chosen, dropped)."""
    if len(ref) == 3:
        ref, dropped = ref[:2], ref[2]
    CASES.append(dict(name=name, spec=spec, logits=logits, ref=ref, E=E, token_ids=token_ids, dropped=dropped,
                      positions=positions, params=params or {}, layer=layer))


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
    build_more_cases(g, rnd)


def build_more_cases(g, rnd):
    # DeepSeek-V3 sigmoid router
    for T, E, k, G, TG, sc in [(1, 8, 2, 4, 2, 1.0), (7, 8, 2, 4, 2, 2.5), (64, 16, 4, 4, 2, 2.5),
                               (513, 128, 8, 8, 4, 2.5), (5, 8, 8, 1, 1, 1.0)]:
        L = rnd(T, E)
        b = torch.randn(E, generator=g) * 0.1
        spec = f"sigmoid:k={k},groups={G},topk_group={TG},scale={sc}"
        case(f"sigmoid_T{T}_E{E}_k{k}_G{G}", spec, L, ref_sigmoid(L, k, G, TG, True, sc, b),
             params={"e_score_correction_bias": b})
    L = rnd(9, 16)
    case("sigmoid_nobias_nonorm", "sigmoid:k=3,norm=false", L, ref_sigmoid(L, 3, norm=False))
    # a negative bias that 0-masking would let pick an expert of a dropped group
    L = torch.zeros(4, 8)
    L[1:] = rnd(3, 8, 0.05)
    b = torch.tensor([0.4, -0.7, -0.2, -0.2, -0.2, -0.2, -0.2, -0.2])
    ref = ref_sigmoid(L, 2, 4, 1, True, 1.0, b)
    hf = dense(hf_zero_mask_sigmoid_choice(L, 2, 4, 1, b), torch.ones(4, 2), 8)[1]
    assert not torch.equal(hf, ref[1]), "the negative-bias case must distinguish -inf from 0 masking"
    case("sigmoid_negative_bias_masked_group", "sigmoid:k=2,groups=4,topk_group=1", L, ref,
         params={"e_score_correction_bias": b})
    L = torch.zeros(3, 8)  # ties everywhere: groups and experts go to the lower index
    L[2, 4:] = 1.0
    case("sigmoid_ties", "sigmoid:k=3,groups=4,topk_group=2", L, ref_sigmoid(L, 3, 4, 2))

    # DeepSeek-V2 softmax, greedy and group-limited greedy
    for T, E, k, G, TG, norm, sc in [(1, 8, 2, 4, 2, True, 1.0), (7, 8, 2, 4, 2, True, 1.0),
                                     (64, 16, 4, 4, 2, False, 16.0), (513, 128, 6, 8, 3, True, 1.0),
                                     (33, 16, 6, 1, 1, False, 1.0), (5, 8, 8, 2, 2, True, 1.0)]:
        L = rnd(T, E)
        case(f"grouped_T{T}_E{E}_k{k}_G{G}_norm{int(norm)}",
             f"grouped:k={k},groups={G},topk_group={TG},norm={str(norm).lower()},scale={sc}", L,
             ref_grouped(L, k, G, TG, norm, sc))
    L = rnd(6, 8)
    case("grouped_k1_norm_scales", "grouped:k=1,norm=true,scale=2", L, ref_grouped(L, 1, norm=True, scale=2.0))
    L = torch.zeros(3, 8)
    L[1] = torch.tensor([1.0, 2.0, 2.0, 0.5, 2.0, -1.0, 2.0, 1.0])
    case("grouped_ties", "grouped:k=3,groups=4,topk_group=2,norm=true", L, ref_grouped(L, 3, 4, 2, True))

    # top-p
    for T, E, p, sc in [(1, 8, 0.4, 2.0), (7, 8, 0.4, 2.0), (64, 16, 0.6, 1.0), (513, 128, 0.4, 3.0),
                        (20, 16, 1.0, 2.0), (20, 16, 1e-6, 1.0), (20, 16, 0.9, 0.1)]:
        L = rnd(T, E, sc)
        case(f"topp_T{T}_E{E}_p{p}", f"topp:p={p}", L, ref_topp(L, p))
    L = rnd(30, 16, 0.5)
    case("topp_max_k", "topp:p=0.9,max_k=3", L, ref_topp(L, 0.9, 3))
    L = torch.zeros(3, 8)
    L[1, :4] = 1.0
    L[2] = torch.tensor([0.0, 2.0, 0.0, 2.0, 1.0, 1.0, -3.0, 0.0])
    case("topp_ties", "topp:p=0.5", L, ref_topp(L, 0.5))

    # null experts (AdaMoE): logits have E + m columns
    for T, E, m, k, norm in [(1, 8, 4, 3, True), (7, 8, 4, 3, True), (64, 16, 16, 4, False),
                             (513, 128, 32, 8, True), (5, 4, 2, 6, True)]:
        L = rnd(T, E + m)
        case(f"null_T{T}_E{E}_m{m}_k{k}", f"null:k={k},m={m},norm={str(norm).lower()}", L,
             ref_null(L, E, k, norm), E=E)
    L = rnd(40, 12)
    L[:, 8:] += 1.5  # null experts favoured: many tokens get fewer (or no) real experts
    ref = ref_null(L, 8, 3)
    assert (ref[1].sum(dim=1) == 0).any() and (ref[1].sum(dim=1) == 3).any()
    case("null_favoured", "null:k=3,m=4", L, ref, E=8)
    L = torch.zeros(2, 12)
    case("null_ties", "null:k=5,m=4", L, ref_null(L, 8, 5), E=8)

    # expert choice
    for T, E, cf in [(1, 8, 1.0), (7, 8, 1.0), (64, 16, 2.0), (513, 128, 1.0), (10, 8, 0.5), (3, 4, 8.0)]:
        L = rnd(T, E)
        case(f"expert_choice_T{T}_E{E}_cf{cf}", f"expert_choice:cf={cf}", L, ref_expert_choice(L, cf))
    L = torch.zeros(6, 4)
    L[3] = 1.0
    case("expert_choice_ties", "expert_choice:cf=1", L, ref_expert_choice(L, 1.0))

    # capacity (Switch k=1, GShard-style k=2)
    for T, E, k, cf, norm in [(1, 8, 1, 1.25, False), (7, 8, 1, 1.25, False), (64, 16, 2, 1.0, True),
                              (513, 128, 2, 1.25, False), (9, 4, 4, 1.0, False)]:
        L = rnd(T, E)
        case(f"capacity_T{T}_E{E}_k{k}_cf{cf}", f"capacity:k={k},cf={cf},norm={str(norm).lower()}", L,
             ref_capacity(L, k, cf, norm))
    L = rnd(50, 8)
    L[:, 0] += 4.0  # heavy imbalance: expert 0 overflows
    for k, cf in [(1, 1.0), (2, 1.25)]:
        ref = ref_capacity(L, k, cf)
        assert ref[2] > 0
        case(f"capacity_imbalanced_k{k}", f"capacity:k={k},cf={cf}", L, ref)
    L = torch.zeros(5, 4)
    case("capacity_ties", "capacity:k=2,cf=1", L, ref_capacity(L, 2, 1.0))

    # random (keyed by position) and hash (keyed by token id); the gate logits are ignored
    for T, E, k, seed, layer in [(1, 8, 2, 0, 0), (7, 8, 2, 0, 0), (64, 16, 4, 42, 3), (513, 128, 8, 7, 11),
                                 (5, 8, 8, 1, 0)]:
        L = rnd(T, E)
        case(f"random_T{T}_E{E}_k{k}", f"random:k={k},seed={seed}", L, ref_random(T, E, k, seed, layer),
             layer=layer)
        ids = torch.randint(0, 50, (T,), generator=g)
        case(f"hash_T{T}_E{E}_k{k}", f"hash:k={k},seed={seed}", L, ref_hash(ids.tolist(), E, k, seed, layer),
             token_ids=ids, layer=layer)
    pos = torch.tensor([5, 0, 1 << 40, 2 ** 63 - 1, -1, 17], dtype=torch.int64)
    case("random_positions", "random:k=3,seed=123456789", torch.zeros(6, 16),
         ref_random(6, 16, 3, 123456789, 2, pos), positions=pos, layer=2)

    # ReLU router (BlockFFN)
    for T, E in [(1, 8), (7, 8), (64, 16), (513, 128)]:
        L = rnd(T, E)
        case(f"relu_T{T}_E{E}", "relu:eps=1e-6", L, ref_relu(L))
    L = rnd(20, 16)
    nw = torch.randn(16, generator=g)
    nw[3] = 0.0
    case("relu_norm_weight", "relu:eps=0.01", L, ref_relu(L, 0.01, nw), params={"norm_weight": nw})
    L = torch.zeros(4, 8)
    L[1] = -1.0  # no expert active
    L[2] = torch.tensor([1.0, 1.0, -2.0, 0.5, 1.0, 0.0, -1.0, 0.5])
    L[3] = 1.0
    case("relu_ties_and_empty", "relu", L, ref_relu(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    build_cases()
    out = os.path.join(args.out, "routers")
    os.makedirs(out, exist_ok=True)
    for c in CASES:
        w, chosen = c["ref"]
        tensors = {"logits": c["logits"].float(), "weights": w.float(), "chosen": chosen}
        if c["token_ids"] is not None:
            tensors["token_ids"] = c["token_ids"].to(torch.int32)
        if c["positions"] is not None:
            tensors["positions"] = c["positions"].to(torch.int64)
        for pname, v in c["params"].items():
            tensors["param." + pname] = v.float()
        E = c["E"] if c["E"] is not None else w.shape[1]
        st.save(os.path.join(out, c["name"] + ".safetensors"), tensors,
                {"spec": c["spec"], "n_experts": E, "dropped": int(c["dropped"]), "layer": c["layer"]})
    print(f"wrote {len(CASES)} router cases to {out}")


if __name__ == "__main__":
    main()
