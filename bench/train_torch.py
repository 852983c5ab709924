#!/usr/bin/python3
"""PyTorch training baseline for `switchyard bench train` (run by the C++ command, one process).

The same model as src/train/moe_lm.h (tiny Qwen3-MoE LM, softmax top-k router with renormalised
gates, Switch balance loss averaged over the layers) written the way a PyTorch user writes it:
nn.Module classes named like transformers' Qwen3MoeForCausalLM (so the state dict carries the same
tensor names as MoELM::tensors()), eager f32 on the CPU, torch 1.13 (Debian's python3-torch):
  * RMSNorm (Qwen3MoeRMSNorm): x * rsqrt(mean x^2 + eps) * w; q_norm / k_norm per head before RoPE
  * RoPE rotate-half with cos/sin tables for positions 0..T-1 (built once)
  * attention: q k^T / sqrt(D) + causal mask, softmax, @ v, grouped-query heads by repeat_kv
    (torch 1.13 has no scaled_dot_product_attention)
  * MoE block: router logits, softmax, top-k, w / sum w (norm_topk_prob); batched dispatch: the
    (token, slot) pairs sorted by expert, rows gathered once with index_select, one SwiGLU per
    expert on its contiguous slice, index_add_ of the weighted outputs (every expert is called,
    also with 0 rows, so every parameter has a gradient, as in the C++ model)
  * loss = cross-entropy (mean) + lb_coef * mean over layers of E * sum_i f_i P_i (f_i = token
    slots of expert i / N, P_i = mean router probability; Fedus et al. 2021)
  * step: zero_grad(set_to_none), backward, clip_grad_norm_(max_norm), AdamW (foreach=True; the
    fused kernel is CUDA-only), weight decay on matrices only (tensors with dim > 1)
Threads: torch.set_num_threads(--threads) (intra-op OpenMP threads); --blas-threads N also calls
OpenBLAS's openblas_set_num_threads(N) (otherwise OpenBLAS keeps its own default, one thread per
core, for the matmuls torch hands it). The C++ side tries several splits and keeps the fastest.
--amp: forward under torch.autocast("cpu", dtype=torch.bfloat16) (bf16 matmuls through oneDNN,
f32 master weights and optimizer), the usual mixed-precision recipe; the expert outputs are cast
back to the residual's dtype before index_add_.

Input: --init FILE, a safetensors file written by the C++ side holding every parameter (our
initial weights, by name), "bench.tokens" I32 [steps, B, T + 1] (inputs are [:, :T], targets
[:, 1:]), and the configuration in __metadata__ (vocab, hidden, n_layers, n_heads, n_kv_heads,
head_dim, n_experts, expert_ffn, top_k, rope_theta, rms_eps, lb_coef, lr, wd, beta1, beta2, eps,
max_norm, check_steps).
Output (stdout, JSON lines): first {"hello": "train_torch", "torch", "threads", ...}, then
{"losses": [loss of every step, before its update], "step_s": [seconds of each timed step],
 "check_steps": n, "timed_steps": m, "mem": {"VmHWM", "VmRSS"}} or {"error": message}.
The first check_steps steps are untimed (their losses are what the C++ side compares; they also
warm up allocators and threads); the remaining steps are timed one by one with time.perf_counter
(zero_grad + forward + backward + clip + optimizer step).
"""
import argparse
import ctypes
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "reference"))
import moe_torch  # noqa: E402  (hello line and the zero-copy safetensors reader)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, self.nh, self.nkv, self.d = c["hidden"], c["n_heads"], c["n_kv_heads"], c["head_dim"]
        self.q_proj = nn.Linear(H, self.nh * self.d, bias=False)
        self.k_proj = nn.Linear(H, self.nkv * self.d, bias=False)
        self.v_proj = nn.Linear(H, self.nkv * self.d, bias=False)
        self.o_proj = nn.Linear(self.nh * self.d, H, bias=False)
        self.q_norm = RMSNorm(self.d, c["rms_eps"])
        self.k_norm = RMSNorm(self.d, c["rms_eps"])

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, self.nh, self.d)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, self.nkv, self.d)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = self.nh // self.nkv
        if g > 1:  # repeat_kv
            k = k[:, :, None].expand(B, self.nkv, g, T, self.d).reshape(B, self.nh, T, self.d)
            v = v[:, :, None].expand(B, self.nkv, g, T, self.d).reshape(B, self.nh, T, self.d)
        s = torch.matmul(q, k.transpose(-1, -2)) * (self.d ** -0.5) + mask
        a = torch.softmax(s, dim=-1)
        y = torch.matmul(a, v).transpose(1, 2).reshape(B, T, self.nh * self.d)
        return self.o_proj(y)


class Expert(nn.Module):
    def __init__(self, H, F_):
        super().__init__()
        self.gate_proj = nn.Linear(H, F_, bias=False)
        self.up_proj = nn.Linear(H, F_, bias=False)
        self.down_proj = nn.Linear(F_, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoeBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.E, self.k = c["n_experts"], c["top_k"]
        self.gate = nn.Linear(c["hidden"], self.E, bias=False)
        self.experts = nn.ModuleList([Expert(c["hidden"], c["expert_ffn"]) for _ in range(self.E)])

    def forward(self, h):
        N, H = h.shape
        logits = self.gate(h)
        p = torch.softmax(logits, dim=-1)
        w, sel = torch.topk(p, self.k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        flat = sel.reshape(-1)
        order = torch.argsort(flat)
        counts = torch.bincount(flat, minlength=self.E)
        rows = order // self.k  # the token of each sorted slot
        xs = h.index_select(0, rows)
        ys = torch.cat([self.experts[e](part) for e, part in enumerate(xs.split(counts.tolist()))])
        y = torch.zeros_like(h).index_add_(0, rows, (ys * w.reshape(-1)[order].unsqueeze(1)).to(h.dtype))
        balance = self.E * (counts.to(p.dtype) / N * p.mean(0)).sum()
        return y, balance


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden"], c["rms_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden"], c["rms_eps"])
        self.mlp = SparseMoeBlock(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        B, T, H = x.shape
        y, balance = self.mlp(self.post_attention_layernorm(x).reshape(B * T, H))
        return x + y.view(B, T, H), balance


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList([DecoderLayer(c) for _ in range(c["n_layers"])])
        self.norm = RMSNorm(c["hidden"], c["rms_eps"])


class MoeForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Model(c)
        self.lm_head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        self.cache_T = -1

    def tables(self, T):
        if T != self.cache_T:
            d = self.c["head_dim"]
            inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
            ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
            emb = torch.cat((ang, ang), dim=-1)
            self.cos, self.sin = emb.cos().float(), emb.sin().float()
            self.mask = torch.full((T, T), float("-inf")).triu(1)
            self.cache_T = T
        return self.cos, self.sin, self.mask

    def forward(self, tokens, targets):
        B, T = tokens.shape
        cos, sin, mask = self.tables(T)
        x = self.model.embed_tokens(tokens)
        balance = 0.0
        for layer in self.model.layers:
            x, b = layer(x, cos, sin, mask)
            balance = balance + b
        logits = self.lm_head(self.model.norm(x))
        ce = F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1))
        return ce + self.c["lb_coef"] * balance / len(self.model.layers)


def proc_mem():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def config_from(meta):
    ints = ("vocab", "hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim", "n_experts", "expert_ffn", "top_k",
            "check_steps")
    floats = ("rope_theta", "rms_eps", "lb_coef", "lr", "wd", "beta1", "beta2", "eps", "max_norm")
    c = {}
    for k in ints + floats:
        if k not in meta:
            raise ValueError("train_torch: the init file's metadata lacks '%s'" % k)
        c[k] = int(meta[k]) if k in ints else float(meta[k])
    return c


def run(init_path, amp):
    W, meta = moe_torch.load_safetensors(init_path)
    c = config_from(meta)
    model = MoeForCausalLM(c)
    state = {k: v for k, v in W.items() if not k.startswith("bench.")}
    # strict: every parameter of the torch model comes from the file, and nothing else is there
    model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    tokens = W["bench.tokens"].long().clone()
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"], foreach=True)
    params = list(model.parameters())
    losses, step_s = [], []
    for s in range(tokens.shape[0]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if amp:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(tokens[s, :, :-1], tokens[s, :, 1:])
        else:
            loss = model(tokens[s, :, :-1], tokens[s, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, c["max_norm"])
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= c["check_steps"]:
            step_s.append(dt)
    return {"losses": losses, "step_s": step_s, "check_steps": c["check_steps"], "timed_steps": len(step_s),
            "mem": proc_mem()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True, help="safetensors file: initial weights, tokens, config (metadata)")
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    ap.add_argument("--blas-threads", type=int, default=0, help="openblas_set_num_threads (0: OpenBLAS's default)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (mixed precision)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.blas_threads > 0:
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(a.blas_threads)
    info = moe_torch.hello(a.threads)
    info["hello"] = "train_torch"
    info["amp"] = a.amp
    print(json.dumps(info), flush=True)
    try:
        out = run(a.init, a.amp)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
