#!/usr/bin/python3
"""A random Qwen3-MoE checkpoint in the exact Hugging Face layout, for `switchyard bench model`.

Config: tests/reference/gen_models.qwen3_cfg (the tiny test models' field set) with the widths of
Qwen/Qwen3-30B-A3B's config.json (hidden 2048, 32 heads, 4 KV heads, head_dim 128, 128 experts of
moe_intermediate_size 768, top-8, norm_topk_prob true, vocab 151936, rope_theta 1e6, untied LM head)
and --layers layers (every one sparse), or a small `quick` shape for smoke tests.

Weights are drawn like gen_models.make_weights (embedding N(0, 1); linear N(0, 1/in), router gain
3, LM head gain 4; norms 1 + 0.2 N(0, 1)) from torch.Generator(seed), in f32, stored as --dtype.
A 30B-width checkpoint does not fit in memory as float64, so unlike gen_models.write_checkpoint this
streams: the safetensors header is computed first, then each tensor is generated in row chunks and
appended. The directory is written as DIR.tmp-PID and renamed to DIR at the end, so a reader never
sees a half-written checkpoint. Prints one JSON line {"dir", "bytes", "seconds"} on stdout.
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import gen_models  # noqa: E402

PRESETS = {
    # Qwen/Qwen3-30B-A3B config.json widths
    "qwen3-30b-a3b": dict(vocab_size=151936, hidden_size=2048, num_attention_heads=32, num_key_value_heads=4,
                          head_dim=128, intermediate_size=6144, moe_intermediate_size=768, num_experts=128,
                          num_experts_per_tok=8, max_position_embeddings=40960, bos_token_id=151643,
                          eos_token_id=151645),
    "quick": dict(vocab_size=1024, hidden_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  intermediate_size=256, moe_intermediate_size=64, num_experts=16, num_experts_per_tok=4,
                  max_position_embeddings=4096, bos_token_id=1, eos_token_id=2),
}

_ST = {torch.float32: "F32", torch.bfloat16: "BF16"}


def tensor_specs(cfg):
    """[(name, shape, kind, fan_in or gain)] in file order; kind: embed | lin | norm."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, nkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, F = cfg["num_experts"], cfg["moe_intermediate_size"]
    out = [("model.embed_tokens.weight", (V, H), "embed", 1.0)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (H,), "norm", 0), (p + "post_attention_layernorm.weight", (H,), "norm", 0),
                (p + "self_attn.q_proj.weight", (nh * d, H), "lin", 1.0),
                (p + "self_attn.k_proj.weight", (nkv * d, H), "lin", 1.0),
                (p + "self_attn.v_proj.weight", (nkv * d, H), "lin", 1.0),
                (p + "self_attn.o_proj.weight", (H, nh * d), "lin", 1.0),
                (p + "self_attn.q_norm.weight", (d,), "norm", 0), (p + "self_attn.k_norm.weight", (d,), "norm", 0),
                (p + "mlp.gate.weight", (E, H), "lin", 3.0)]
        for e in range(E):
            q = p + f"mlp.experts.{e}."
            out += [(q + "gate_proj.weight", (F, H), "lin", 1.0), (q + "up_proj.weight", (F, H), "lin", 1.0),
                    (q + "down_proj.weight", (H, F), "lin", 1.0)]
    out += [("model.norm.weight", (H,), "norm", 0), ("lm_head.weight", (V, H), "lin", 4.0)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="checkpoint directory to create")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-30b-a3b")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=0, help="vocab_size (0 = the preset's)")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.time()
    over = dict(PRESETS[a.preset], num_hidden_layers=a.layers, mlp_only_layers=[], decoder_sparse_step=1,
                max_window_layers=a.layers)
    if a.vocab > 0:
        over["vocab_size"] = a.vocab
        for key, fallback in (("bos_token_id", 1), ("eos_token_id", 2)):  # ids must stay in the vocabulary
            if over[key] >= a.vocab:
                over[key] = fallback
    cfg = gen_models.qwen3_cfg(**over)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    es = 2 if dtype == torch.bfloat16 else 4
    specs = tensor_specs(cfg)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _, _ in specs:
        n = math.prod(shape) * es
        header[name] = {"dtype": _ST[dtype], "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)  # tensors stay 8-byte aligned, as st.save does

    tmp = f"{a.out}.tmp-{os.getpid()}"
    os.makedirs(tmp)
    try:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(dict(cfg, torch_dtype={"bf16": "bfloat16", "f32": "float32"}[a.dtype]), f, indent=2)
        g = torch.Generator().manual_seed(a.seed)
        chunk = 1 << 22  # values per generated piece (16 MiB of f32)
        with open(os.path.join(tmp, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for i, (name, shape, kind, gain) in enumerate(specs):
                rows, cols = shape[0], (shape[1] if len(shape) > 1 else 1)
                step = max(1, chunk // cols)
                for r in range(0, rows, step):
                    m = min(step, rows - r)
                    x = torch.randn(m * cols, generator=g, dtype=torch.float32)
                    if kind == "lin":
                        x *= gain / math.sqrt(cols)
                    elif kind == "norm":
                        x = 1.0 + 0.2 * x
                    x = x.to(dtype)
                    f.write((x.view(torch.int16) if dtype == torch.bfloat16 else x).numpy().tobytes())
                if i % 200 == 0:
                    print(f"make_checkpoint: {i}/{len(specs)} tensors", file=sys.stderr, flush=True)
        if os.path.exists(a.out):
            shutil.rmtree(a.out)
        os.rename(tmp, a.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(json.dumps({"dir": a.out, "bytes": 8 + len(h) + off, "seconds": time.time() - t0}), flush=True)


if __name__ == "__main__":
    main()
