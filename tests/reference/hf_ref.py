"""Independent PyTorch reference forward of the Hugging Face MoE decoder architectures
Qwen3MoeForCausalLM, Qwen2MoeForCausalLM, OlmoeForCausalLM and MixtralForCausalLM, written from
the published semantics of the transformers modelling code (no transformers package here):

  * RMSNorm: x * rsqrt(mean(x^2) + eps) * w                           (LlamaRMSNorm)
  * RoPE, rotate_half convention: q*cos + rotate_half(q)*sin, rotate_half(x) = cat(-x2, x1),
    inv_freq = theta^(-2i/d); linear scaling divides positions by factor; yarn as in
    modeling_rope_utils._compute_yarn_parameters (cos/sin times attention_factor)
  * attention: softmax(q k^T / sqrt(head_dim) + causal mask) v, GQA by repeat_kv; Mixtral's
    sliding window masks keys with q_pos - k_pos >= sliding_window
  * Qwen3-MoE: q_norm / k_norm are RMSNorm(head_dim) on each head, before RoPE
  * OLMoE: q_norm / k_norm are RMSNorm over the whole q / k projection, before the head split;
    clip_qkv clamps q, k, v after the norms
  * Qwen2-MoE: biases on q/k/v; shared expert out += sigmoid(shared_expert_gate(x)) * shared(x)
  * routing: softmax over experts, top-k; Mixtral always renormalises the k weights, the others
    only with norm_topk_prob
  * experts / dense MLP: down(silu(gate x) * up x)
  * decoder_sparse_step / mlp_only_layers (Qwen): layer l sparse iff l not in mlp_only_layers and
    (l + 1) % decoder_sparse_step == 0

Everything is computed in float64 from the stored weights (bf16 weights are upcast), with the
full sequence recomputed for every greedy step (no KV cache), so it shares no code path with the
C++ engine. It also reports the smallest top-k routing margin and greedy margin it saw, so the
generator can avoid near-ties that no finite precision could decide reliably.
"""
import math

import torch


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_inv_freq(cfg, d):
    theta = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = cfg.get("rope_scaling")
    scale_pos, attn = 1.0, 1.0
    if rs:
        kind = rs.get("rope_type", rs.get("type", "default"))
        factor = float(rs.get("factor", 1.0))
        if kind == "linear":
            scale_pos = 1.0 / factor
        elif kind == "yarn":
            orig = rs.get("original_max_position_embeddings", cfg["max_position_embeddings"])
            beta_fast, beta_slow = rs.get("beta_fast", 32), rs.get("beta_slow", 1)

            def corr_dim(rot):
                return (d * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(theta))

            lo, hi = math.floor(corr_dim(beta_fast)), math.ceil(corr_dim(beta_slow))
            lo, hi = max(lo, 0), min(hi, d - 1)
            if lo == hi:
                hi += 0.001
            ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float64) - lo) / (hi - lo), 0, 1)
            extrap = 1 - ramp
            inv = (inv / factor) * (1 - extrap) + inv * extrap
            attn = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
        elif kind != "default":
            raise ValueError(f"reference: rope_type {kind} not implemented")
    return inv, scale_pos, attn


def apply_rope(x, pos, inv, scale_pos, attn):
    # x [heads, T, d]
    freqs = torch.outer(pos.double() * scale_pos, inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * attn, emb.sin() * attn
    return x * cos + rotate_half(x) * sin


def mlp(x, g, u, d):
    return torch.nn.functional.silu(x @ g.T) * (x @ u.T) @ d.T


class Reference:
    def __init__(self, cfg, W):
        self.cfg = cfg
        self.W = {k: v.double() for k, v in W.items()}
        self.arch = cfg["architectures"][0]
        self.min_route_margin = float("inf")

    def layer_is_sparse(self, l):
        c = self.cfg
        if self.arch in ("Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM"):
            step = c.get("decoder_sparse_step", 1)
            return l not in c.get("mlp_only_layers", []) and c["num_experts"] > 0 and (l + 1) % step == 0
        return True

    def moe(self, x, p):
        c, W = self.cfg, self.W
        if self.arch == "MixtralForCausalLM":
            gate, E, k, norm = W[p + "block_sparse_moe.gate.weight"], c["num_local_experts"], c["num_experts_per_tok"], True
            names = lambda e: [p + f"block_sparse_moe.experts.{e}.{n}.weight" for n in ("w1", "w3", "w2")]
        else:
            gate, E, k = W[p + "mlp.gate.weight"], c["num_experts"], c["num_experts_per_tok"]
            norm = c.get("norm_topk_prob", False)
            names = lambda e: [p + f"mlp.experts.{e}.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")]
        probs = torch.softmax(x @ gate.T, dim=-1)
        srt = torch.sort(probs, dim=-1, descending=True, stable=True)
        if k < E:
            self.min_route_margin = min(self.min_route_margin, float((srt.values[:, k - 1] - srt.values[:, k]).min()))
        idx, w = srt.indices[:, :k], srt.values[:, :k]
        if norm:
            w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(k):
                g, u, d = (W[n] for n in names(int(idx[t, j])))
                out[t] += w[t, j] * mlp(x[t:t + 1], g, u, d)[0]
        if self.arch == "Qwen2MoeForCausalLM" and c.get("shared_expert_intermediate_size", 0) > 0:
            s = mlp(x, W[p + "mlp.shared_expert.gate_proj.weight"], W[p + "mlp.shared_expert.up_proj.weight"],
                    W[p + "mlp.shared_expert.down_proj.weight"])
            out = out + torch.sigmoid(x @ W[p + "mlp.shared_expert_gate.weight"].T) * s
        return out

    def attention(self, x, p, pos):
        c, W = self.cfg, self.W
        T = x.shape[0]
        nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        d = c.get("head_dim") or c["hidden_size"] // nh
        eps = c.get("rms_norm_eps", 1e-6)

        def proj(name, bias):
            y = x @ W[p + f"self_attn.{name}.weight"].T
            if bias:
                y = y + W[p + f"self_attn.{name}.bias"]
            return y

        qkv_bias = self.arch == "Qwen2MoeForCausalLM" or c.get("attention_bias", False)
        q, k, v = proj("q_proj", qkv_bias), proj("k_proj", qkv_bias), proj("v_proj", qkv_bias)
        if self.arch == "OlmoeForCausalLM":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
            if c.get("clip_qkv") is not None:
                q, k, v = (t.clamp(-c["clip_qkv"], c["clip_qkv"]) for t in (q, k, v))
        q = q.view(T, nh, d).transpose(0, 1)
        k = k.view(T, nkv, d).transpose(0, 1)
        v = v.view(T, nkv, d).transpose(0, 1)
        if self.arch == "Qwen3MoeForCausalLM":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        inv, sp, af = rope_inv_freq(c, d)
        q, k = apply_rope(q, pos, inv, sp, af), apply_rope(k, pos, inv, sp, af)
        k = k.repeat_interleave(nh // nkv, dim=0)  # repeat_kv
        v = v.repeat_interleave(nh // nkv, dim=0)
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        qi, kj = pos.view(-1, 1), pos.view(1, -1)
        mask = kj > qi
        if self.arch == "MixtralForCausalLM" and c.get("sliding_window"):
            mask = mask | (qi - kj >= c["sliding_window"])
        scores = scores.masked_fill(mask, float("-inf"))
        a = torch.softmax(scores, dim=-1) @ v  # [nh, T, d]
        a = a.transpose(0, 1).reshape(T, nh * d)
        o = a @ W[p + "self_attn.o_proj.weight"].T
        if c.get("attention_bias", False) and self.arch != "Qwen2MoeForCausalLM":
            o = o + W[p + "self_attn.o_proj.bias"]
        return o

    def logits(self, ids):
        """Full forward over ids (list of int), returns [T, vocab] float64 logits."""
        c, W = self.cfg, self.W
        eps = c.get("rms_norm_eps", 1e-6)
        x = W["model.embed_tokens.weight"][torch.tensor(ids)]
        pos = torch.arange(len(ids))
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            x = x + self.attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), p, pos)
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            if self.layer_is_sparse(l):
                x = x + self.moe(h, p)
            else:
                x = x + mlp(h, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"], W[p + "mlp.down_proj.weight"])
        x = rms_norm(x, W["model.norm.weight"], eps)
        head = W["model.embed_tokens.weight"] if c.get("tie_word_embeddings", False) else W["lm_head.weight"]
        return x @ head.T

    def run(self, prompt, n_decode):
        """Per-token log-probs of the prompt (token t given tokens < t, t >= 1), n_decode greedy
        tokens, and the smallest top-1 vs top-2 logit gap among the greedy steps."""
        lp = torch.log_softmax(self.logits(prompt), dim=-1)
        prompt_lp = torch.tensor([lp[t - 1, prompt[t]] for t in range(1, len(prompt))])
        seq, greedy, margin = list(prompt), [], float("inf")
        for _ in range(n_decode):
            last = self.logits(seq)[-1]
            top2 = torch.topk(last, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            seq.append(nxt)
        return prompt_lp, greedy, margin
