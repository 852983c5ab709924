// Non-matmul transformer ops in f32, spread over the default thread pool. Results do not depend
// on the thread count (each output element is computed by one task in a fixed order).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace sy {

// RMSNorm (Zhang & Sennrich 2019; HF LlamaRMSNorm): for each of `rows` rows of width n,
//   y = x / sqrt(mean(x^2) + eps) * w        (mean in double). x and y may alias.
void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, double eps, float* y);

// RoPE frequencies inv_freq[d/2] for head_dim d (HF modeling_rope_utils.py; see RopeScaling).
// seq_len is the sequence length after this forward call (used by Dynamic only).
std::vector<double> rope_inv_freq(const RopeConfig& r, int64_t head_dim, int64_t seq_len, int64_t max_pos);

// Rotates x [T, n_heads * head_dim] in place, HF rotate_half convention: with half = d/2,
// angle_i = pos_t * inv_freq_i (pos_t / factor for Linear), c = cos * af, s = sin * af,
//   x'[i] = x[i] c_i - x[i+half] s_i,   x'[i+half] = x[i+half] c_i + x[i] s_i.
// positions[t] are absolute positions; af = attention_factor (Yarn) or 1.
void rope_apply(float* x, int64_t T, int64_t n_heads, int64_t head_dim, const int64_t* positions,
                const std::vector<double>& inv_freq, const RopeConfig& r);

// Causal grouped-query attention for T new queries at positions pos0..pos0+T-1 over the first
// pos0+T cached keys/values:
//   q [T, n_heads*d], k_cache / v_cache [>= pos0+T, n_kv*d]; query head h reads kv head
//   h / (n_heads/n_kv) (HF repeat_kv). out[t, h] = softmax(q.k^T / sqrt(d)) v over keys j <= pos0+t,
//   and pos0+t - j < window when window > 0. out: [T, n_heads*d].
void attention(const float* q, const float* k_cache, const float* v_cache, int64_t T, int64_t pos0,
               int64_t n_heads, int64_t n_kv, int64_t d, int64_t window, float* out);

}  // namespace sy
