// Optimizer pieces for training: AdamW, global-norm gradient clipping, warmup + cosine learning
// rate, gradient accumulation. All f32 buffers, deterministic for any thread count.
#pragma once
#include <cstdint>
#include <span>

namespace sy::train {

// AdamW (Loshchilov & Hutter 2019), exactly torch.optim.AdamW (amsgrad=False) for step t >= 1:
//   p *= 1 - lr * wd                       (decoupled weight decay)
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// p, g, m, v [n]; m and v start at 0. Call once per tensor (norm weights usually get wd = 0).
struct AdamWParams {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, int64_t t, float lr, float wd,
                const AdamWParams& hp = {});

// Global L2 norm of a gradient buffer (double accumulation in fixed-size chunks, summed in order).
double grad_norm(const float* g, int64_t n);
// torch.nn.utils.clip_grad_norm_ over all gradients as one vector: total = ||g||_2;
// coef = max_norm / (total + 1e-6); if coef < 1 every gradient is multiplied by coef (f32).
// Returns total (the norm before clipping).
double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm);
double clip_grad_norm(float* g, int64_t n, double max_norm);

// Learning rate at step s (0-based) with linear warmup then cosine decay to min_lr:
//   s < warmup:           max_lr * (s + 1) / warmup
//   warmup <= s < total:  r = (s - warmup) / (total - warmup);
//                         min_lr + 0.5 * (1 + cos(pi r)) * (max_lr - min_lr)
//   s >= total:           min_lr
double lr_at(int64_t step, int64_t warmup, int64_t total, double max_lr, double min_lr);

// Gradient accumulation: run forward/backward on each of n micro-batches with loss scale
// 1 / n into the same gradient buffer (backward ops accumulate), then step once. For losses that
// are means over equally sized micro-batches this equals the gradient of the whole batch.
inline float accumulation_scale(int n_micro) { return 1.0f / float(n_micro); }

}  // namespace sy::train
