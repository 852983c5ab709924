#!/usr/bin/python3
"""PyTorch reference runtime for `switchyard bench model` (run by the C++ command, one process).

A Qwen3-MoE forward with a KV cache, in eager PyTorch, as transformers' Qwen3MoeForCausalLM runs it
with torch_dtype = the checkpoint's dtype (tests/reference/hf_ref.py recomputes the whole sequence
in float64, which a 30B-width checkpoint cannot afford; this file reuses its RoPE, RMSNorm and
layer-selection code and adds the cache):
  * weights memory-mapped from model.safetensors (bench/moe_torch.py load_safetensors), zero-copy,
    in their stored dtype; compute in that dtype ("auto") or in f32 ("f32": each weight upcast
    per call, for correctness comparisons of bf16 checkpoints)
  * RMSNorm in f32 then cast (Qwen3MoeRMSNorm); q_norm / k_norm per head before RoPE
  * RoPE cos/sin computed in f32 for the positions, cast to the compute dtype
  * attention: keys/values appended to a per-layer cache (DynamicCache, torch.cat), repeat_kv,
    softmax(q k^T / sqrt(d) + causal mask) in f32 then cast (eager_attention_forward)
  * MoE: Qwen3MoeSparseMoeBlock: softmax of the router logits in f32, top-k, renormalise
    (norm_topk_prob), and a loop over the experts that got a token, index_add_ of
    down(silu(gate x) * up x) * weight
  * logits of the last position only (generate's logits_to_keep=1); greedy = argmax

Protocol (line-based):
  stdout line 1: {"hello": "model_torch", "torch": version, "threads": n, ...}
  stdin: one JSON request per line {"dir", "prompt": [ids], "decode": D, "compute": "auto"|"f32"}
  stdout: one JSON line per request {"load_s", "prompt_s", "decode_s", "tokens": [D+1 ids], "mem": {...}}
          or {"error": message}.
A request runs the prompt (P tokens, one forward) giving the first greedy token, then D decode
forwards of one token each giving D more: tokens has D + 1 ids. Times are time.perf_counter around
each phase (forward + argmax). mem holds VmRSS, VmHWM, RssAnon, RssFile, RssShmem (bytes) after the
run. The model stays loaded between requests for the same dir.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "reference"))
sys.path.insert(0, here)
import hf_ref  # noqa: E402
import moe_torch  # noqa: E402


def proc_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) * 1024
    return out


class TorchQwen3Moe:
    def __init__(self, path, compute):
        with open(os.path.join(path, "config.json")) as f:
            self.cfg = c = json.load(f)
        assert c["architectures"][0] == "Qwen3MoeForCausalLM", "model_torch: only Qwen3MoeForCausalLM"
        self.W, _ = moe_torch.load_safetensors(os.path.join(path, "model.safetensors"))
        self.wdt = self.W["model.embed_tokens.weight"].dtype
        self.dt = self.wdt if compute == "auto" else torch.float32
        self.upcast = self.dt != self.wdt
        self.sel = hf_ref.Reference(c, {})  # layer_is_sparse only (no weights: no float64 copy)
        self.nh, self.nkv, self.d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        inv, self.scale_pos, self.attn_factor = hf_ref.rope_inv_freq(c, self.d)
        self.inv = inv.float()

    def w(self, name):
        t = self.W[name]
        return t.float() if self.upcast else t

    def lin(self, x, name):
        return F.linear(x, self.w(name))

    def norm(self, x, name):
        return hf_ref.rms_norm(x.float(), self.W[name].float(), self.eps).to(self.dt)

    def rope(self, x, pos):
        freqs = torch.outer(pos.float() * self.scale_pos, self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = (emb.cos() * self.attn_factor).to(self.dt), (emb.sin() * self.attn_factor).to(self.dt)
        return x * cos + hf_ref.rotate_half(x) * sin

    def attention(self, h, p, pos, cache, l):
        T = h.shape[0]
        q = self.lin(h, p + "self_attn.q_proj.weight").view(T, self.nh, self.d).transpose(0, 1)
        k = self.lin(h, p + "self_attn.k_proj.weight").view(T, self.nkv, self.d).transpose(0, 1)
        v = self.lin(h, p + "self_attn.v_proj.weight").view(T, self.nkv, self.d).transpose(0, 1)
        q, k = self.norm(q, p + "self_attn.q_norm.weight"), self.norm(k, p + "self_attn.k_norm.weight")
        q, k = self.rope(q, pos), self.rope(k, pos)
        if l < len(cache):
            k, v = torch.cat((cache[l][0], k), dim=1), torch.cat((cache[l][1], v), dim=1)
            cache[l] = (k, v)
        else:
            cache.append((k, v))
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(self.d)
        kpos = torch.arange(k.shape[1])
        scores = scores.masked_fill(kpos.view(1, -1) > pos.view(-1, 1), float("-inf"))
        a = torch.matmul(F.softmax(scores, dim=-1, dtype=torch.float32).to(self.dt), v)
        return self.lin(a.transpose(0, 1).reshape(T, self.nh * self.d), p + "self_attn.o_proj.weight")

    def moe(self, x, p):
        c = self.cfg
        E, k = c["num_experts"], c["num_experts_per_tok"]
        probs = F.softmax(self.lin(x, p + "mlp.gate.weight"), dim=1, dtype=torch.float32)
        wts, sel = torch.topk(probs, k, dim=-1)
        if c.get("norm_topk_prob", False):
            wts = wts / wts.sum(dim=-1, keepdim=True)
        wts = wts.to(self.dt)
        out = torch.zeros_like(x)
        mask = F.one_hot(sel, num_classes=E).permute(2, 1, 0)  # [E, k, T]
        for e in torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero():
            e = int(e)
            idx, top_x = torch.where(mask[e])
            cur = x[top_x]
            q = p + f"mlp.experts.{e}."
            y = self.lin(F.silu(self.lin(cur, q + "gate_proj.weight")) * self.lin(cur, q + "up_proj.weight"),
                         q + "down_proj.weight")
            out.index_add_(0, top_x, y * wts[top_x, idx, None])
        return out

    def forward(self, ids, cache, pos0):
        """ids: list of T ints at positions pos0..; returns the last position's logits [V]."""
        pos = torch.arange(pos0, pos0 + len(ids))
        x = self.W["model.embed_tokens.weight"][torch.tensor(ids)].to(self.dt)
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            x = x + self.attention(self.norm(x, p + "input_layernorm.weight"), p, pos, cache, l)
            h = self.norm(x, p + "post_attention_layernorm.weight")
            if self.sel.layer_is_sparse(l):
                x = x + self.moe(h, p)
            else:
                x = x + self.lin(F.silu(self.lin(h, p + "mlp.gate_proj.weight")) * self.lin(h, p + "mlp.up_proj.weight"),
                                 p + "mlp.down_proj.weight")
        return self.lin(self.norm(x[-1:], "model.norm.weight"), "lm_head.weight")[0]

    def generate(self, prompt, n_decode):
        cache = []
        t0 = time.perf_counter()
        tokens = [int(torch.argmax(self.forward(prompt, cache, 0)))]
        t_prompt = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n_decode):
            tokens.append(int(torch.argmax(self.forward(tokens[-1:], cache, len(prompt) + i))))
        return tokens, t_prompt, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (ours)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    info = moe_torch.hello(a.threads)
    info["hello"] = "model_torch"
    info["mem_at_start"] = proc_status()
    print(json.dumps(info), flush=True)
    models = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            key = (req["dir"], req.get("compute", "auto"))
            res = {"load_s": 0.0}
            if key not in models:
                t0 = time.perf_counter()
                models.clear()
                models[key] = TorchQwen3Moe(*key)
                res["load_s"] = time.perf_counter() - t0
                res["mem_after_load"] = proc_status()
            m = models[key]
            with torch.inference_mode():
                tokens, tp, td = m.generate([int(t) for t in req["prompt"]], int(req["decode"]))
            res.update({"tokens": tokens, "prompt_s": tp, "decode_s": td, "mem": proc_status(),
                        "compute_dtype": str(m.dt).replace("torch.", "")})
        except Exception as e:  # reported to the C++ side
            res = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
