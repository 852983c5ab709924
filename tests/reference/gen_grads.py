"""Gradient references for the training ops (src/train/) from PyTorch autograd, written independently
from the published formulas with plain torch ops in float64 (inputs are drawn in f32 and stored as
f32; the C++ runs in f32 and must match within a relative error of 1e-4).

Each case is grads/<name>.safetensors with metadata "op" and the inputs, the upstream gradients
("dout"), the forward outputs ("out") and autograd's gradients ("grad.<input>").

Formulas (sources): RMSNorm x / sqrt(mean x^2 + eps) * w (Zhang & Sennrich 2019); RoPE rotate-half
(Su et al. 2021, HF Llama/Qwen layout); causal softmax attention with grouped-query heads (Ainslie
et al. 2023); SwiGLU down(silu(gate x) * up x) (Shazeer 2020); cross-entropy mean over non-ignored
tokens; Switch load-balancing loss E * sum f_i P_i (Fedus et al. 2021), null experts as one averaged
bucket (AdaMoE); z-loss mean logsumexp^2 (ST-MoE); top-p routing and its entropy loss (Huang et al.
2024); DeepSeek-V3 sigmoid gate with selection bias (weights from the unbiased scores); aux-free bias
update b += u * sign(mean load - load); AdamW and clip_grad_norm_ exactly as torch.optim.AdamW /
torch.nn.utils.clip_grad_norm_; warmup + cosine LR.

The last cases are full training steps of a tiny Qwen3-MoE-style LM (see src/train/moe_lm.h):
loss, every parameter's gradient, and every parameter after clip + one AdamW step. Inputs are
redrawn until no router selection in any layer sits within 1e-4 of a tie (top-k boundary, or the
top-p cumulative threshold), so f32 rounding cannot flip a selection. The lm_bf16_* cases are the
same step in bf16 mixed precision (src/train/ops.h MatmulPrecision::bf16): every linear layer except
the router and the shared-expert gate rounds both operands of each product to bf16 (round to
nearest even, from their f32 values) forward and backward (dx = bf(dy) bf(W), dW = bf(dy)^T bf(x)),
as torch.autocast(bfloat16) does for nn.Linear; everything else, sums included, stays float64.
"""
import argparse
import math
import os

import torch

import st

F64 = torch.float64


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        # drawn, rounded to f32 (what is stored), used as f64
        return (torch.randn(*shape, generator=self.g, dtype=F64) * scale).float().to(F64)

    def randint(self, lo, hi, *shape):
        return torch.randint(lo, hi, shape, generator=self.g)


def leaf(t):
    return t.clone().requires_grad_(True)


def f32(t):
    return t.detach().float().contiguous()


# ---------------------------------------------------------------- model pieces (float64)

def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, D, theta):
    # x [N, heads, D]; rotate-half pairs (i, i + D/2), angle pos * theta^(-2i/D)
    half = D // 2
    inv = theta ** (-2.0 * torch.arange(half, dtype=F64) / D)
    ang = pos.to(F64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def attention(q, k, v, B, T, Hq, Hkv, D):
    q = q.view(B, T, Hq, D).transpose(1, 2)
    k = k.view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
    v = v.view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~mask, float("-inf"))
    a = torch.softmax(s, -1)
    return (a @ v).transpose(1, 2).reshape(B * T, Hq * D)


def mm_t(x, w):
    """x @ w.T in float64."""
    return x @ w.T


def bf(t):
    """float64 -> f32 -> bf16 (torch rounds to nearest even) -> float64."""
    return t.float().bfloat16().to(F64)


class Bf16Linear(torch.autograd.Function):
    """x @ w.T with both operands rounded to bf16, in the backward too (mixed precision)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return bf(x) @ bf(w).T

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        d = bf(dy)
        return d @ bf(w), d.T @ bf(x)


def swiglu_ffn(x, wg, wu, wd, mm=mm_t):
    return mm(torch.nn.functional.silu(mm(x, wg)) * mm(x, wu), wd)


def topk_sel(rank, k):
    return [torch.topk(rank[t], k).indices.tolist() for t in range(rank.shape[0])]


def topp_sel(p, thr, max_k):
    out = []
    for t in range(p.shape[0]):
        order = torch.argsort(p[t], descending=True).tolist()
        chosen, cum = [], 0.0
        for e in order[:max_k]:
            chosen.append(e)
            cum += float(p[t, e])
            if cum > thr:
                break
        out.append(chosen)
    return out


def topk_margin(rank, k):
    if k >= rank.shape[1]:
        return float("inf")
    s = torch.sort(rank.detach(), -1, descending=True).values
    return float((s[:, k - 1] - s[:, k]).min())


def topp_margin(p, thr):
    s = torch.sort(p.detach(), -1, descending=True).values
    gaps = (s[:, :-1] - s[:, 1:]).min()
    cum = torch.cumsum(s, -1)
    return float(min(gaps, (cum - thr).abs().min()))


def gates(scores, sel, norm, eps=0.0, scale=1.0):
    w = []
    for t, cols in enumerate(sel):
        s = scores[t, cols]
        w.append(s / (s.sum() + eps) * scale if norm else s * scale)
    return w


def balance(probs, sel, E, f=None):
    N, S = probs.shape
    if f is None:
        cnt = torch.zeros(S, dtype=F64)
        for cols in sel:
            for c in cols:
                cnt[c] += 1
        f = cnt / N
    P = probs.mean(0)
    loss = (f[:E] * P[:E]).sum()
    if S > E:
        loss = loss + f[E:].mean() * P[E:].mean()
    return E * loss


def z_loss(logits):
    return (torch.logsumexp(logits, -1) ** 2).mean()


def entropy(p):
    return -(p * torch.log(p)).sum(-1).mean()


# ---------------------------------------------------------------- op cases

def op_cases(G):
    cases = []

    def case(name, op, tensors, meta=None):
        m = {"op": op}
        m.update(meta or {})
        cases.append((name, {k: (v if v.dtype in (torch.int32, torch.int64) else f32(v)) for k, v in tensors.items()}, m))

    # linear
    x, W, b = leaf(G.randn(7, 12)), leaf(G.randn(5, 12, scale=0.3)), leaf(G.randn(5))
    out = x @ W.T + b
    dout = G.randn(7, 5)
    out.backward(dout)
    case("linear", "linear", {"inp": x, "W": W, "b": b, "dout": dout, "out": out, "grad.inp": x.grad, "grad.W": W.grad,
                              "grad.b": b.grad})
    # embedding (repeated ids)
    tok = G.randint(0, 11, 9).to(torch.int32)
    table = leaf(G.randn(11, 6))
    out = table[tok.long()]
    dout = G.randn(9, 6)
    out.backward(dout)
    case("embedding", "embedding", {"tokens": tok, "table": table, "dout": dout, "out": out, "grad.table": table.grad})
    # rmsnorm
    x, w = leaf(G.randn(6, 10, scale=2.0)), leaf(1 + G.randn(10, scale=0.2))
    out = rmsnorm(x, w, 1e-6)
    dout = G.randn(6, 10)
    out.backward(dout)
    case("rmsnorm", "rmsnorm", {"inp": x, "w": w, "dout": dout, "out": out, "grad.inp": x.grad, "grad.w": w.grad},
         {"eps": "1e-6"})
    # rope
    N, nh, D = 7, 3, 8
    x = leaf(G.randn(N, nh * D))
    pos = torch.tensor([0, 1, 2, 5, 9, 30, 101], dtype=torch.int64)
    out = rope(x.view(N, nh, D), pos, D, 10000.0).reshape(N, nh * D)
    dout = G.randn(N, nh * D)
    out.backward(dout)
    case("rope", "rope", {"inp": x, "pos": pos, "dout": dout, "out": out, "grad.inp": x.grad},
         {"heads": nh, "head_dim": D, "theta": "10000"})
    # attention (GQA); the second case is longer than the C++ side's query block (64 rows): three
    # blocks, the last one partial
    for name, (B, T, Hq, Hkv, D) in (("attention", (2, 5, 4, 2, 6)), ("attention_long", (1, 150, 2, 1, 8))):
        q, k, v = leaf(G.randn(B * T, Hq * D)), leaf(G.randn(B * T, Hkv * D)), leaf(G.randn(B * T, Hkv * D))
        out = attention(q, k, v, B, T, Hq, Hkv, D)
        dout = G.randn(B * T, Hq * D)
        out.backward(dout)
        case(name, "attention", {"q": q, "k": k, "v": v, "dout": dout, "out": out, "grad.q": q.grad,
                                 "grad.k": k.grad, "grad.v": v.grad},
             {"B": B, "T": T, "Hq": Hq, "Hkv": Hkv, "D": D})
    # SwiGLU FFN
    x, wg, wu, wd = leaf(G.randn(5, 8)), leaf(G.randn(12, 8, scale=0.4)), leaf(G.randn(12, 8, scale=0.4)), \
        leaf(G.randn(8, 12, scale=0.3))
    out = swiglu_ffn(x, wg, wu, wd)
    dout = G.randn(5, 8)
    out.backward(dout)
    case("swiglu_ffn", "swiglu_ffn", {"x": x, "Wg": wg, "Wu": wu, "Wd": wd, "dout": dout, "out": out,
                                      "grad.x": x.grad, "grad.Wg": wg.grad, "grad.Wu": wu.grad, "grad.Wd": wd.grad})
    # cross-entropy with an ignored target
    logits = leaf(G.randn(6, 10, scale=2.0))
    tgt = torch.tensor([3, 0, 9, -100, 4, 4], dtype=torch.int32)
    loss = torch.nn.functional.cross_entropy(logits, tgt.long(), ignore_index=-100)
    (loss * 0.7).backward()
    case("cross_entropy", "cross_entropy", {"logits": logits, "targets": tgt, "loss": loss.reshape(1),
                                            "grad.logits": logits.grad}, {"dloss": "0.7"})

    # router gates (softmax top-k with/without renorm, sigmoid + bias, top-p), upstream dw
    def gate_case(name, kind, N, S, **kw):
        for _ in range(1000):
            logits = G.randn(N, S, scale=1.5)
            bias = G.randn(S, scale=0.1) if kind == "sigmoid" else torch.zeros(S, dtype=F64)
            if kind == "sigmoid":
                sc = torch.sigmoid(logits)
                rank, margin = sc + bias, topk_margin(sc + bias, kw["k"])
            else:
                sc = torch.softmax(logits, -1)
                rank = sc
                margin = topp_margin(sc, kw["p"]) if kind == "topp" else topk_margin(sc, kw["k"])
            if margin > 1e-4:
                break
        logits = leaf(logits)
        sc = torch.sigmoid(logits) if kind == "sigmoid" else torch.softmax(logits, -1)
        sel = topp_sel(sc.detach(), kw["p"], S) if kind == "topp" else topk_sel((sc + bias).detach(), kw["k"])
        w = gates(sc, sel, kw.get("norm", False), kw.get("eps", 0.0), kw.get("scale", 1.0))
        wcat = torch.cat(w)
        dw = G.randn(wcat.shape[0])
        wcat.backward(dw)
        offs = [0]
        for cols in sel:
            offs.append(offs[-1] + len(cols))
        meta = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in kw.items()}
        meta["kind"] = kind
        case(name, "gates", {"logits": logits, "bias": bias, "dw": dw, "w": wcat, "grad.logits": logits.grad,
                             "offsets": torch.tensor(offs, dtype=torch.int32),
                             "cols": torch.tensor(sum(sel, []), dtype=torch.int32)}, meta)

    gate_case("gates_topk_norm", "softmax", 9, 6, k=2, norm=True)
    gate_case("gates_topk_raw", "softmax", 9, 6, k=3, norm=False)
    gate_case("gates_sigmoid", "sigmoid", 9, 8, k=2, norm=True, eps=1e-20, scale=2.5)
    gate_case("gates_topp", "topp", 11, 6, p=0.5)

    # dispatch + experts + combine (an MoE block, softmax top-2 with renorm), grads of x and weights
    N, H, E, F, k = 10, 8, 4, 6, 2
    for _ in range(1000):
        x = G.randn(N, H)
        Wg = G.randn(E, H, scale=0.8)
        if topk_margin(torch.softmax(x @ Wg.T, -1), k) > 1e-4:
            break
    x, Wg = leaf(x), leaf(Wg)
    ew = [[leaf(G.randn(F, H, scale=0.4)), leaf(G.randn(F, H, scale=0.4)), leaf(G.randn(H, F, scale=0.4))]
          for _ in range(E)]
    p = torch.softmax(x @ Wg.T, -1)
    sel = topk_sel(p.detach(), k)
    w = gates(p, sel, True)
    y = torch.stack([sum(w[t][j] * swiglu_ffn(x[t:t + 1], *ew[e])[0] for j, e in enumerate(sel[t]))
                     for t in range(N)])
    dout = G.randn(N, H)
    y.backward(dout)
    t = {"x": x, "Wg": Wg, "dout": dout, "out": y, "grad.x": x.grad, "grad.Wg": Wg.grad}
    for e in range(E):
        for nm, v in zip(("gate", "up", "down"), ew[e]):
            t[f"experts.{e}.{nm}"] = v
            t[f"grad.experts.{e}.{nm}"] = v.grad
    case("moe_block", "moe_block", t, {"k": k, "E": E, "F": F})

    # balance loss: per micro-batch f, a given global-batch f, and null experts (one bucket)
    def bal_case(name, N, S, E, k, f=None):
        for _ in range(1000):
            logits = G.randn(N, S)
            if topk_margin(torch.softmax(logits, -1), k) > 1e-4:
                break
        logits = leaf(logits)
        p = torch.softmax(logits, -1)
        sel = topk_sel(p.detach(), k)
        loss = balance(p, sel, E, f)
        (loss * 0.3).backward()
        t = {"logits": logits, "loss": loss.reshape(1), "grad.logits": logits.grad}
        if f is not None:
            t["f"] = f
        case(name, "balance", t, {"E": E, "k": k, "coef": "0.3"})

    bal_case("balance_micro", 12, 6, 6, 2)
    bal_case("balance_global_f", 12, 6, 6, 2, f=torch.tensor([0.5, 0.1, 0.3, 0.4, 0.2, 0.5], dtype=F64))
    bal_case("balance_null", 12, 9, 5, 3)
    # z-loss and entropy loss
    logits = leaf(G.randn(7, 5, scale=3.0))
    zl = z_loss(logits)
    (zl * 0.2).backward()
    case("z_loss", "z_loss", {"logits": logits, "loss": zl.reshape(1), "grad.logits": logits.grad}, {"coef": "0.2"})
    logits = leaf(G.randn(7, 5, scale=2.0))
    en = entropy(torch.softmax(logits, -1))
    (en * 0.4).backward()
    case("entropy", "entropy", {"logits": logits, "loss": en.reshape(1), "grad.logits": logits.grad}, {"coef": "0.4"})
    # aux-loss-free bias update (no gradient)
    load = torch.tensor([5, 9, 7, 7, 2, 12], dtype=torch.int64)  # mean 7: one expert exactly at the mean
    b = G.randn(6, scale=0.1)
    case("bias_update", "bias_update", {"load": load, "bias": b,
                                        "out": b + 0.01 * torch.sign(load.to(F64).mean() - load.to(F64))},
         {"rate": "0.01"})
    # AdamW, 3 steps, with a decaying and a non-decaying tensor (torch.optim.AdamW)
    p0, p1 = G.randn(4, 5), G.randn(7)
    grads = [(G.randn(4, 5), G.randn(7)) for _ in range(3)]
    a, bb = p0.clone().requires_grad_(True), p1.clone().requires_grad_(True)
    opt = torch.optim.AdamW([{"params": [a], "weight_decay": 0.1}, {"params": [bb], "weight_decay": 0.0}],
                            lr=0.01, betas=(0.9, 0.95), eps=1e-8)
    t = {"p0": p0, "p1": p1}
    for s, (g0, g1) in enumerate(grads):
        a.grad, bb.grad = g0.clone(), g1.clone()
        opt.step()
        t[f"g0.{s}"], t[f"g1.{s}"] = g0, g1
        t[f"after0.{s}"], t[f"after1.{s}"] = a.detach().clone(), bb.detach().clone()
    case("adamw", "adamw", t, {"steps": 3, "lr": "0.01", "beta1": "0.9", "beta2": "0.95", "eps": "1e-8",
                               "wd": "0.1"})
    # clip_grad_norm_: one call that clips, one that does not
    for name, mx in (("clip_active", 1.0), ("clip_inactive", 100.0)):
        g0, g1 = G.randn(6, 3), G.randn(11)
        a, bb = torch.zeros(6, 3, dtype=F64, requires_grad=True), torch.zeros(11, dtype=F64, requires_grad=True)
        a.grad, bb.grad = g0.clone(), g1.clone()
        total = torch.nn.utils.clip_grad_norm_([a, bb], mx)
        case(name, "clip", {"g0": g0, "g1": g1, "out0": a.grad, "out1": bb.grad, "total": total.reshape(1)},
             {"max_norm": str(mx)})
    # warmup + cosine learning rate
    steps = torch.arange(0, 25, dtype=torch.int64)
    wu, tot, mx, mn = 5, 20, 3e-3, 3e-4
    lrs = [mx * (s + 1) / wu if s < wu else (mn if s >= tot else
           mn + 0.5 * (1 + math.cos(math.pi * (s - wu) / (tot - wu))) * (mx - mn)) for s in steps.tolist()]
    case("lr_schedule", "lr_schedule", {"steps": steps, "lr": torch.tensor(lrs, dtype=F64)},
         {"warmup": wu, "total": tot, "max_lr": repr(mx), "min_lr": repr(mn)})
    return cases


# ---------------------------------------------------------------- tiny MoE LM training step

LM_BASE = dict(vocab=64, hidden=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, n_experts=4, expert_ffn=16,
               shared_ffn=0, shared_gate=0, rope_theta=10000.0, rms_eps=1e-6, lb_coef=0.01, z_coef=0.001,
               entropy_coef=0.0, bias_update_rate=1e-3, B=2, T=8, lr=1e-3, wd=0.1, max_norm=1.0, beta1=0.9,
               beta2=0.95, eps=1e-8, precision="f32")


def parse_router(spec):
    name, _, rest = spec.partition(":")
    kv = dict(item.split("=") for item in rest.split(",") if item)
    return name, kv


def lm_param_shapes(c, S):
    H, D = c["hidden"], c["head_dim"]
    shapes = {"model.embed_tokens.weight": (c["vocab"], H)}
    for l in range(c["n_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (H,)
        shapes[p + "self_attn.q_proj.weight"] = (c["n_heads"] * D, H)
        shapes[p + "self_attn.k_proj.weight"] = (c["n_kv_heads"] * D, H)
        shapes[p + "self_attn.v_proj.weight"] = (c["n_kv_heads"] * D, H)
        shapes[p + "self_attn.o_proj.weight"] = (H, c["n_heads"] * D)
        shapes[p + "self_attn.q_norm.weight"] = (D,)
        shapes[p + "self_attn.k_norm.weight"] = (D,)
        shapes[p + "post_attention_layernorm.weight"] = (H,)
        shapes[p + "mlp.gate.weight"] = (S, H)
        for e in range(c["n_experts"]):
            q = f"{p}mlp.experts.{e}."
            shapes[q + "gate_proj.weight"] = (c["expert_ffn"], H)
            shapes[q + "up_proj.weight"] = (c["expert_ffn"], H)
            shapes[q + "down_proj.weight"] = (H, c["expert_ffn"])
        if c["shared_ffn"]:
            shapes[p + "mlp.shared_expert.gate_proj.weight"] = (c["shared_ffn"], H)
            shapes[p + "mlp.shared_expert.up_proj.weight"] = (c["shared_ffn"], H)
            shapes[p + "mlp.shared_expert.down_proj.weight"] = (H, c["shared_ffn"])
            if c["shared_gate"]:
                shapes[p + "mlp.shared_expert_gate.weight"] = (1, H)
    shapes["model.norm.weight"] = (H,)
    shapes["lm_head.weight"] = (c["vocab"], H)
    return shapes


def lm_forward(P, c, router, tokens, targets, bias):
    kind, kv = router
    mm = Bf16Linear.apply if c.get("precision") == "bf16" else mm_t  # the router always mm_t
    H, L, Hq, Hkv, D, E = c["hidden"], c["n_layers"], c["n_heads"], c["n_kv_heads"], c["head_dim"], c["n_experts"]
    B, T, eps = c["B"], c["T"], c["rms_eps"]
    N = B * T
    pos = torch.arange(T).repeat(B)
    x = P["model.embed_tokens.weight"][tokens.long()]
    bal = z = ent = 0.0
    loads, margin = [], float("inf")
    for l in range(L):
        p = f"model.layers.{l}."
        h = rmsnorm(x, P[p + "input_layernorm.weight"], eps)
        q = mm(h, P[p + "self_attn.q_proj.weight"]).view(N, Hq, D)
        k = mm(h, P[p + "self_attn.k_proj.weight"]).view(N, Hkv, D)
        v = mm(h, P[p + "self_attn.v_proj.weight"])
        q = rope(rmsnorm(q, P[p + "self_attn.q_norm.weight"], eps), pos, D, c["rope_theta"]).reshape(N, Hq * D)
        k = rope(rmsnorm(k, P[p + "self_attn.k_norm.weight"], eps), pos, D, c["rope_theta"]).reshape(N, Hkv * D)
        x = x + mm(attention(q, k, v, B, T, Hq, Hkv, D), P[p + "self_attn.o_proj.weight"])
        h = rmsnorm(x, P[p + "post_attention_layernorm.weight"], eps)
        logits = h @ P[p + "mlp.gate.weight"].T
        S = logits.shape[1]
        if kind == "sigmoid":
            s = torch.sigmoid(logits)
            rank = s + bias[l]
            k_ = int(kv.get("k", 2))
            sel = topk_sel(rank.detach(), k_)
            margin = min(margin, topk_margin(rank, k_))
            w = gates(s, sel, kv.get("norm", "true") == "true", 1e-20, float(kv.get("scale", 1.0)))
            balp = s / s.sum(-1, keepdim=True)
        else:
            s = torch.softmax(logits, -1)
            if kind == "topp":
                thr = float(kv.get("p", 0.4))
                sel = topp_sel(s.detach(), thr, int(kv.get("max_k", E)))
                margin = min(margin, topp_margin(s, thr))
                w = gates(s, sel, False)
            else:
                k_ = int(kv.get("k", 2))
                sel = topk_sel(s.detach(), k_)
                margin = min(margin, topk_margin(s, k_))
                w = gates(s, sel, kv.get("norm", "true") == "true")
            balp = s
            ent = ent + entropy(s) / L
        bal = bal + balance(balp, sel, E) / L
        z = z + z_loss(logits) / L
        rows = []
        for t in range(N):
            acc = torch.zeros(H, dtype=F64)
            for j, e in enumerate(sel[t]):
                if e < E:
                    q_ = f"{p}mlp.experts.{e}."
                    acc = acc + w[t][j] * swiglu_ffn(h[t:t + 1], P[q_ + "gate_proj.weight"], P[q_ + "up_proj.weight"],
                                                     P[q_ + "down_proj.weight"], mm)[0]
            rows.append(acc)
        y = torch.stack(rows)
        if c["shared_ffn"]:
            sy = swiglu_ffn(h, P[p + "mlp.shared_expert.gate_proj.weight"], P[p + "mlp.shared_expert.up_proj.weight"],
                            P[p + "mlp.shared_expert.down_proj.weight"], mm)
            if c["shared_gate"]:
                sy = torch.sigmoid(h @ P[p + "mlp.shared_expert_gate.weight"].T) * sy
            y = y + sy
        x = x + y
        cnt = torch.zeros(S, dtype=torch.int64)
        for cols in sel:
            for col in cols:
                cnt[col] += 1
        loads.append(cnt)
    x = rmsnorm(x, P["model.norm.weight"], eps)
    ce = torch.nn.functional.cross_entropy(mm(x, P["lm_head.weight"]), targets.long(), ignore_index=-100)
    if kind == "sigmoid":
        ent = torch.zeros((), dtype=F64)
    loss = ce + c["lb_coef"] * bal + c["z_coef"] * z + c["entropy_coef"] * ent
    return loss, dict(ce=ce, balance=bal, z=z, entropy=ent), loads, margin


def lm_case(G, name, spec, **over):
    c = dict(LM_BASE)
    c.update(over)
    router = parse_router(spec)
    E = c["n_experts"]
    S = E + (int(router[1].get("m", E)) if router[0] == "null" else 0)
    shapes = lm_param_shapes(c, S)
    N = c["B"] * c["T"]
    for _attempt in range(200):
        P = {}
        for nm, shp in shapes.items():
            if len(shp) == 1:
                P[nm] = 1 + G.randn(*shp, scale=0.1)
            elif nm.endswith("embed_tokens.weight"):
                P[nm] = G.randn(*shp)
            elif nm.endswith("mlp.gate.weight"):
                P[nm] = G.randn(*shp, scale=2.0 / math.sqrt(shp[1]))
            else:
                P[nm] = G.randn(*shp, scale=1.0 / math.sqrt(shp[1]))
        bias = [G.randn(E, scale=0.05) if router[0] == "sigmoid" else torch.zeros(E, dtype=F64)
                for _ in range(c["n_layers"])]
        tokens = G.randint(0, c["vocab"], N).to(torch.int32)
        targets = G.randint(0, c["vocab"], N).to(torch.int32)
        targets[5] = -100  # an ignored position
        with torch.no_grad():
            _, _, _, margin = lm_forward(P, c, router, tokens, targets, bias)
        if margin > 1e-4:
            break
    else:
        raise RuntimeError(f"{name}: could not draw a model without near-ties")
    leaves = {nm: leaf(v) for nm, v in P.items()}
    loss, parts, loads, _ = lm_forward(leaves, c, router, tokens, targets, bias)
    loss.backward()
    t = {"tokens": tokens, "targets": targets, "loss": loss.reshape(1)}
    for k_, v in parts.items():
        t[k_] = v.reshape(1)
    for nm in shapes:
        t[nm] = P[nm]
        t["grad." + nm] = leaves[nm].grad.clone()
    for l in range(c["n_layers"]):
        t[f"load.{l}"] = loads[l]
        if router[0] == "sigmoid":
            t[f"bias.{l}"] = bias[l]
            ld = loads[l][:E].to(F64)
            t[f"bias_after.{l}"] = bias[l] + c["bias_update_rate"] * torch.sign(ld.mean() - ld)
    params = list(leaves.values())
    total = torch.nn.utils.clip_grad_norm_(params, c["max_norm"])
    t["grad_norm"] = total.reshape(1)
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() > 1], "weight_decay": c["wd"]},
                             {"params": [p for p in params if p.dim() == 1], "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"])
    opt.step()
    for nm in shapes:
        t["after." + nm] = leaves[nm].detach()
    meta = {k_: repr(v) if isinstance(v, float) else str(v) for k_, v in c.items()}
    meta["op"] = "moe_lm"
    meta["router"] = spec
    return name, {k_: (v if v.dtype in (torch.int32, torch.int64) else f32(v)) for k_, v in t.items()}, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    G = Gen(4242)
    cases = op_cases(G)
    cases.append(lm_case(G, "lm_topk_norm_shared", "topk:k=2,norm=true", shared_ffn=24, shared_gate=1))
    cases.append(lm_case(G, "lm_topk_raw", "topk:k=2,norm=false"))
    cases.append(lm_case(G, "lm_sigmoid_bias", "sigmoid:k=2,norm=true,scale=2.5"))
    cases.append(lm_case(G, "lm_topp", "topp:p=0.5", entropy_coef=0.01))
    cases.append(lm_case(G, "lm_null", "null:k=3,m=2,norm=true"))
    cases.append(lm_case(G, "lm_bf16_topk_shared", "topk:k=2,norm=true", shared_ffn=24, shared_gate=1,
                         precision="bf16"))
    cases.append(lm_case(G, "lm_bf16_sigmoid_bias", "sigmoid:k=2,norm=true,scale=2.5", precision="bf16"))
    out = os.path.join(args.out, "grads")
    os.makedirs(out, exist_ok=True)
    for name, tensors, meta in cases:
        st.save(os.path.join(out, name + ".safetensors"), tensors, meta)
    print(f"wrote {len(cases)} gradient cases to {out}")


if __name__ == "__main__":
    main()
