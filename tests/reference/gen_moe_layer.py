"""Reference MoE layer in PyTorch (float64), written from the published formulas and the Hugging
Face modelling code's semantics, and the golden cases the C++ MoELayer is checked against.

Layer (HF Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock / GptOssMLP):
  logits = x W_g^T (+ b_g); routing by the router spec (softmax top-k, or gpt-oss top-k on logits)
  y = sum_{e in top-k} w_e * FFN_e(x)  (+ sigmoid(x w_sg^T) * SharedFFN(x) for Qwen2-MoE)
  FFN: swiglu  down(silu(gate x) * up x)         gelu: down(gelu(up x))   relu: down(relu(up x))
       gptoss  g = min(gate x + bg, 7); u = clamp(up x + bu, -7, 7); down((u + 1) * g * sigmoid(1.702 g)) + bd
Statistics (single layer): tokens_per_expert; Switch balance loss E * sum_i f_i P_i with f_i the
fraction of tokens whose top-k includes i (HF load_balancing_loss_func); z-loss mean(logsumexp^2);
entropy mean(-sum p log p).

Inputs are drawn so that no token has a near-tie at the top-k boundary (gap >= 1e-4 in the score
that is ranked), so f32 rounding cannot flip a selection.
"""
import argparse
import math
import os

import torch

import st

F64 = torch.float64


def ffn(x, w, act):
    if act == "swiglu":
        h = torch.nn.functional.silu(x @ w["gate"].T) * (x @ w["up"].T)
    elif act == "gelu":
        h = torch.nn.functional.gelu(x @ w["up"].T)  # exact erf form
    elif act == "relu":
        h = torch.relu(x @ w["up"].T)
    elif act == "gptoss":
        g = (x @ w["gate"].T + w["gate_bias"]).clamp(max=7.0)
        u = (x @ w["up"].T + w["up_bias"]).clamp(min=-7.0, max=7.0)
        h = (u + 1) * g * torch.sigmoid(1.702 * g)
    else:
        raise ValueError(act)
    y = h @ w["down"].T
    if "down_bias" in w:
        y = y + w["down_bias"]
    return y


def route(logits, kind, k, norm):
    """Returns (ranked score used for selection, top-k indices, combine weights, probs)."""
    p = torch.softmax(logits, dim=-1)
    if kind == "topk":
        val, idx = torch.topk(p, k, dim=-1)
        w = val / val.sum(-1, keepdim=True) if norm else val
        return p, idx, w, p
    if kind == "topk_logits":
        val, idx = torch.topk(logits, k, dim=-1)
        return logits, idx, torch.softmax(val, dim=-1), p
    raise ValueError(kind)


def near_ties(score, k):
    """Tokens whose k-th and (k+1)-th ranked scores are closer than 1e-4."""
    if k >= score.shape[1]:
        return torch.zeros(score.shape[0], dtype=torch.bool)
    s = torch.sort(score, dim=-1, descending=True).values
    return (s[:, k - 1] - s[:, k]) < 1e-4


def make_case(g, name, T, H, E, F, k, kind="topk", norm=True, act="swiglu", dtype=torch.float32,
              shared_F=0, shared_gate=False, router_bias=False, expert_bias=False):
    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=F64) * scale)

    def wq(t):  # quantise to the weight dtype, return (stored, exact f64 value)
        q = t.to(dtype)
        return q, q.to(F64)

    Wg_s, Wg = wq(rnd(E, H, scale=1.0 / math.sqrt(H) * 2))
    bg = rnd(E).float().to(F64) if router_bias else None
    x = rnd(T, H).float().to(F64)
    for _attempt in range(1000):  # redraw the tokens whose top-k boundary is a near-tie
        logits = x @ Wg.T + (bg if bg is not None else 0)
        score, idx, w, p = route(logits, kind, k, norm)
        bad = near_ties(score, k)
        if not bad.any():
            break
        x[bad] = rnd(int(bad.sum()), H).float().to(F64)
    else:
        raise RuntimeError("could not draw inputs without near-ties")
    tensors = {"x": x.float(), "router": Wg_s}
    if bg is not None:
        tensors["router_bias"] = bg.float()
    experts = []
    for e in range(E):
        ew, names = {}, ["up", "down"] if act in ("gelu", "relu") else ["gate", "up", "down"]
        for nm in names:
            shape = (H, F) if nm == "down" else (F, H)
            s, v = wq(rnd(*shape, scale=1.0 / math.sqrt(shape[1])))
            tensors[f"experts.{e}.{nm}"] = s
            ew[nm] = v
        if expert_bias:
            for nm, n in (("gate_bias", F), ("up_bias", F), ("down_bias", H)):
                b = rnd(n, scale=0.1).float()
                tensors[f"experts.{e}.{nm}"] = b
                ew[nm] = b.to(F64)
        experts.append(ew)
    y = torch.zeros(T, H, dtype=F64)
    for t in range(T):
        for j in range(k):
            e = int(idx[t, j])
            y[t] += w[t, j] * ffn(x[t:t + 1], experts[e], act)[0]
    if shared_F:
        sw = {}
        for nm in ("gate", "up", "down"):
            shape = (H, shared_F) if nm == "down" else (shared_F, H)
            s, v = wq(rnd(*shape, scale=1.0 / math.sqrt(shape[1])))
            tensors[f"shared.{nm}"] = s
            sw[nm] = v
        sy = ffn(x, sw, act)
        if shared_gate:
            s, v = wq(rnd(1, H, scale=1.0 / math.sqrt(H)))
            tensors["shared_gate"] = s
            sy = torch.sigmoid(x @ v.T) * sy
        y += sy
    tensors["expected_out"] = y.float()
    # statistics
    counts = torch.zeros(E, dtype=torch.int64)
    for e in idx.flatten().tolist():
        counts[e] += 1
    f = counts.to(F64) / T
    P = p.mean(0)
    tensors["expected_tokens_per_expert"] = counts
    lse = torch.logsumexp(logits, dim=-1)
    ent = -(p * torch.log(p)).sum(-1).mean()
    spec = f"{kind}:k={k}" + (f",norm={'true' if norm else 'false'}" if kind == "topk" else "")
    meta = {"spec": spec, "hidden": H, "n_experts": E, "ffn": F, "act": act, "dtype": str(dtype).split(".")[-1],
            "shared_ffn": shared_F, "lb_loss": repr(float(E * (f * P).sum())),
            "z_loss": repr(float((lse ** 2).mean())), "entropy": repr(float(ent))}
    return name, tensors, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(2024)
    cases = [
        make_case(g, "qwen3_f32_T37", 37, 64, 16, 32, 4),
        make_case(g, "qwen3_f32_T1", 1, 64, 16, 32, 4),
        make_case(g, "qwen3_f32_T300", 300, 48, 32, 24, 8),
        make_case(g, "olmoe_nonorm_f32", 29, 64, 16, 32, 4, norm=False),
        make_case(g, "qwen3_bf16", 41, 64, 16, 32, 4, dtype=torch.bfloat16),
        make_case(g, "qwen3_f16", 41, 64, 16, 32, 4, dtype=torch.float16),
        make_case(g, "mixtral_bf16", 23, 96, 8, 80, 2, dtype=torch.bfloat16),
        make_case(g, "qwen2_shared_gate", 33, 64, 8, 24, 2, shared_F=40, shared_gate=True),
        make_case(g, "deepseek_shared_nogate", 19, 64, 8, 24, 2, shared_F=48),
        make_case(g, "gptoss_bias", 27, 64, 8, 32, 2, kind="topk_logits", act="gptoss", router_bias=True,
                  expert_bias=True),
        make_case(g, "gelu_mlp", 21, 40, 6, 28, 2, act="gelu"),
        make_case(g, "relu_mlp", 21, 40, 6, 28, 2, act="relu"),
        make_case(g, "idle_experts", 3, 32, 64, 16, 2),
        make_case(g, "k_equals_E", 9, 32, 4, 16, 4),
        make_case(g, "odd_sizes_bf16", 17, 37, 5, 19, 3, dtype=torch.bfloat16),
    ]
    out = os.path.join(args.out, "moe_layer")
    os.makedirs(out, exist_ok=True)
    for name, tensors, meta in cases:
        st.save(os.path.join(out, name + ".safetensors"), tensors, meta)
    print(f"wrote {len(cases)} MoE layer cases to {out}")


if __name__ == "__main__":
    main()
