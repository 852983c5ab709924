"""Tiny random-weight checkpoints of the four supported MoE architectures, in their exact Hugging
Face layout (config.json field names, tensor names, model.safetensors or a sharded
model-0000N-of-0000M.safetensors + model.safetensors.index.json), and what the independent
reference forward (hf_ref.py) computes on them.

Writes, per case NAME:
  models/NAME/               the checkpoint (config.json, weights), plus for the CLI tests
                             prompt_ids.txt (whitespace-separated ids) and expected.json
                             ({"ppl": ..., "logprobs": [...]}); olmoe_f32 also gets a small
                             byte-level BPE tokenizer.json and sample.txt
  models/NAME.safetensors    prompt [T] i32, logprobs [T-1] f32 (log p(token t | tokens < t)),
                             greedy [20] i32 (greedy continuation of the prompt);
                             metadata: dir, dtype, tol (max |logprob error|), arch

Tolerances: f32 weights 1e-4 (the issue's bound). bf16 / f16 weights 1e-3: the reference runs in
float64 on the very same stored (rounded) weights, so the remaining difference is the engine's f32
activation arithmetic and accumulation order, as for f32; the looser bound leaves room for kernels
that accumulate bf16 products in a different order. (A kernel that rounds activations to bf16 would
exceed it, and should.)

Random weights can produce near-ties (two experts or two next tokens with almost equal scores) that
no finite precision decides reliably; a case whose smallest top-k routing gap or greedy logit gap
is below a threshold is regenerated with the next seed (deterministically).
"""
import argparse
import json
import math
import os

import torch

import hf_ref
import st

N_DECODE = 20
PROMPT_LEN = 12


def base_cfg(arch, model_type, **kw):
    c = {
        "architectures": [arch], "model_type": model_type, "vocab_size": 384, "hidden_size": 64,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rope_theta": 10000.0, "rope_scaling": None,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2, "attention_dropout": 0.0, "initializer_range": 0.02,
        "use_cache": True, "transformers_version": "4.51.0",
    }
    c.update(kw)
    return c


def qwen3_cfg(**kw):
    c = base_cfg("Qwen3MoeForCausalLM", "qwen3_moe", head_dim=32, intermediate_size=96, moe_intermediate_size=32,
                 num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
                 mlp_only_layers=[1], attention_bias=False, use_sliding_window=False, sliding_window=None,
                 max_window_layers=4, rope_theta=1000000.0, output_router_logits=False, router_aux_loss_coef=0.001)
    c.update(kw)
    return c


def qwen2_cfg(**kw):
    c = base_cfg("Qwen2MoeForCausalLM", "qwen2_moe", num_key_value_heads=4, intermediate_size=96,
                 moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
                 norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=[], use_sliding_window=False,
                 sliding_window=4096, max_window_layers=4, rope_theta=1000000.0, output_router_logits=False,
                 router_aux_loss_coef=0.001)
    c.update(kw)
    return c


def olmoe_cfg(**kw):
    c = base_cfg("OlmoeForCausalLM", "olmoe", num_hidden_layers=3, intermediate_size=32, num_experts=8,
                 num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=None, attention_bias=False,
                 rms_norm_eps=1e-5, pad_token_id=1, output_router_logits=False, router_aux_loss_coef=0.01)
    c.update(kw)
    return c


def mixtral_cfg(**kw):
    c = base_cfg("MixtralForCausalLM", "mixtral", num_hidden_layers=3, intermediate_size=48, num_local_experts=4,
                 num_experts_per_tok=2, rope_theta=1000000.0, sliding_window=None, rms_norm_eps=1e-5,
                 output_router_logits=False, router_aux_loss_coef=0.02, router_jitter_noise=0.0)
    c.update(kw)
    return c


# name, config, dtype, shards
CASES = [
    ("qwen3_moe_f32", qwen3_cfg(), torch.float32, 1),
    ("qwen3_moe_bf16", qwen3_cfg(), torch.bfloat16, 1),
    ("qwen3_moe_yarn_tied_f32", qwen3_cfg(tie_word_embeddings=True, max_position_embeddings=64, mlp_only_layers=[0, 3],
                                          rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                        "original_max_position_embeddings": 16}), torch.float32, 1),
    ("qwen2_moe_f32", qwen2_cfg(), torch.float32, 1),
    ("qwen2_moe_linear_rope_bf16", qwen2_cfg(rope_scaling={"type": "linear", "factor": 2.0}), torch.bfloat16, 1),
    ("olmoe_f32", olmoe_cfg(), torch.float32, 1),
    ("olmoe_clip_bf16", olmoe_cfg(num_key_value_heads=4, clip_qkv=1.0), torch.bfloat16, 1),
    ("mixtral_sharded_f32", mixtral_cfg(), torch.float32, 2),
    ("mixtral_window_f16", mixtral_cfg(sliding_window=6), torch.float16, 1),
]


def make_weights(cfg, g):
    arch = cfg["architectures"][0]
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or H // nh
    W = {}

    def lin(name, out, inp, gain=1.0):
        W[name] = torch.randn(out, inp, generator=g, dtype=torch.float64) * (gain / math.sqrt(inp))

    def norm(name, n):
        W[name] = 1.0 + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)

    def bias(name, n):
        W[name] = 0.2 * torch.randn(n, generator=g, dtype=torch.float64)

    def ffn(prefix, names, F):
        lin(prefix + names[0] + ".weight", F, H)
        lin(prefix + names[1] + ".weight", F, H)
        lin(prefix + names[2] + ".weight", H, F)

    W["model.embed_tokens.weight"] = torch.randn(V, H, generator=g, dtype=torch.float64)
    ref = hf_ref.Reference(cfg, {})
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        norm(p + "input_layernorm.weight", H)
        norm(p + "post_attention_layernorm.weight", H)
        lin(p + "self_attn.q_proj.weight", nh * d, H)
        lin(p + "self_attn.k_proj.weight", nkv * d, H)
        lin(p + "self_attn.v_proj.weight", nkv * d, H)
        lin(p + "self_attn.o_proj.weight", H, nh * d)
        if arch == "Qwen2MoeForCausalLM":
            for n, w in (("q_proj", nh * d), ("k_proj", nkv * d), ("v_proj", nkv * d)):
                bias(p + f"self_attn.{n}.bias", w)
        if arch == "Qwen3MoeForCausalLM":
            norm(p + "self_attn.q_norm.weight", d)
            norm(p + "self_attn.k_norm.weight", d)
        if arch == "OlmoeForCausalLM":
            norm(p + "self_attn.q_norm.weight", nh * d)
            norm(p + "self_attn.k_norm.weight", nkv * d)
        if not ref.layer_is_sparse(l):
            ffn(p + "mlp.", ("gate_proj", "up_proj", "down_proj"), cfg["intermediate_size"])
        elif arch == "MixtralForCausalLM":
            lin(p + "block_sparse_moe.gate.weight", cfg["num_local_experts"], H, gain=3.0)
            for e in range(cfg["num_local_experts"]):
                ffn(p + f"block_sparse_moe.experts.{e}.", ("w1", "w3", "w2"), cfg["intermediate_size"])
        else:
            F = cfg["moe_intermediate_size"] if "moe_intermediate_size" in cfg else cfg["intermediate_size"]
            lin(p + "mlp.gate.weight", cfg["num_experts"], H, gain=3.0)
            for e in range(cfg["num_experts"]):
                ffn(p + f"mlp.experts.{e}.", ("gate_proj", "up_proj", "down_proj"), F)
            if cfg.get("shared_expert_intermediate_size", 0) > 0:
                ffn(p + "mlp.shared_expert.", ("gate_proj", "up_proj", "down_proj"), cfg["shared_expert_intermediate_size"])
                lin(p + "mlp.shared_expert_gate.weight", 1, H)
    norm("model.norm.weight", H)
    if not cfg["tie_word_embeddings"]:
        lin("lm_head.weight", V, H, gain=4.0)
    return W


def write_checkpoint(path, cfg, W, dtype, shards):
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(path, f))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(dict(cfg, torch_dtype={torch.float32: "float32", torch.bfloat16: "bfloat16",
                                         torch.float16: "float16"}[dtype]), f, indent=2)
    stored = {k: v.to(dtype) for k, v in W.items()}
    if shards == 1:
        st.save(os.path.join(path, "model.safetensors"), stored, {"format": "pt"})
    else:
        names = list(stored)
        per = (len(names) + shards - 1) // shards
        weight_map = {}
        for i in range(shards):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: stored[n] for n in names[i * per:(i + 1) * per]}
            st.save(os.path.join(path, fname), part, {"format": "pt"})
            weight_map.update({n: fname for n in part})
        total = sum(t.numel() * t.element_size() for t in stored.values())
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return {k: v.double() for k, v in stored.items()}  # what the reference sees: the stored values


SAMPLE_TEXT = ("The experts of a mixture are small feed-forward networks; a router picks two of them for every "
               "token. The rail yard sorts the cars onto their tracks, and the engine pulls them out again.\n"
               "Numbers like 1024 and 3.14 appear, and so do   runs of spaces.\n")


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(path, vocab_size):
    """A byte-level BPE tokenizer.json for the tiny model: 256 byte tokens plus merges learned
    greedily (most frequent pair first) from SAMPLE_TEXT, up to vocab_size tokens. It exists so
    that `perplexity -f` can be tested end to end; its quality is irrelevant."""
    table = bytes_to_unicode()
    vocab = {table[b]: i for i, b in enumerate(range(256))}
    words = [[table[b] for b in (" " + w if i else w).encode()] for i, w in enumerate(SAMPLE_TEXT.split(" ")) if w]
    merges = []
    while len(vocab) < vocab_size:
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": False, "vocab": vocab, "merges": merges}}
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(path, "sample.txt"), "w") as f:
        f.write(SAMPLE_TEXT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = os.path.join(args.out, "models")
    os.makedirs(out, exist_ok=True)
    for ci, (name, cfg, dtype, shards) in enumerate(CASES):
        tol = 1e-4 if dtype == torch.float32 else 1e-3
        for attempt in range(50):
            g = torch.Generator().manual_seed(1000 * ci + attempt)
            W = make_weights(cfg, g)
            stored = {k: v.to(dtype).double() for k, v in W.items()}
            prompt = torch.randint(3, cfg["vocab_size"], (PROMPT_LEN,), generator=g).tolist()
            ref = hf_ref.Reference(cfg, stored)
            lp, greedy, margin = ref.run(prompt, N_DECODE)
            if margin > 1e-3 and ref.min_route_margin > 1e-4:
                break
        else:
            raise SystemExit(f"{name}: no seed without near-ties")
        path = os.path.join(out, name)
        write_checkpoint(path, cfg, W, dtype, shards)
        if name == "olmoe_f32":
            write_tokenizer(path, cfg["vocab_size"])
        with open(os.path.join(path, "prompt_ids.txt"), "w") as f:
            f.write(" ".join(map(str, prompt)) + "\n")
        with open(os.path.join(path, "expected.json"), "w") as f:
            json.dump({"ppl": math.exp(-float(lp.mean())), "logprobs": lp.tolist(), "greedy": greedy}, f)
        st.save(os.path.join(out, name + ".safetensors"),
                {"prompt": torch.tensor(prompt, dtype=torch.int32), "logprobs": lp.float(),
                 "greedy": torch.tensor(greedy, dtype=torch.int32)},
                {"dir": name, "dtype": str(dtype).replace("torch.", ""), "tol": tol, "arch": cfg["architectures"][0],
                 "attempt": attempt, "greedy_margin": margin, "route_margin": ref.min_route_margin})
        print(f"{name}: seed attempt {attempt}, greedy margin {margin:.4f}, route margin {ref.min_route_margin:.5f}")


if __name__ == "__main__":
    main()
