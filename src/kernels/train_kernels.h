// Vectorised elementwise kernels for the training ops (src/train/ops.cpp, optim.cpp): the
// exponentials of the cross-entropy, the attention softmax and SwiGLU, and the AdamW update.
// Highway, compiled once per x86 target and chosen at run time (like fast_kernels.h).
//
// Each call works on one contiguous range and has a fixed reduction order for that range (lane l
// of a vector accumulator sums elements l, l+L, ... in increasing order, then the lanes are summed),
// so results never depend on the thread count; they may differ between ISA targets (L differs).
// exp is Highway's contrib Exp (about 1-2 ulp over the f32 range); arguments are capped at 88
// where they could overflow. The scalar versions these replace remain the oracles in
// tests/test_train_kernels.cpp (double-precision references).
#pragma once
#include <cstdint>

namespace sy::fast {

// max_i x[i] (n >= 1).
float max_of(const float* x, int64_t n);

// sum_i exp(x[i] - shift), accumulated in f32 lanes, lanes summed in double.
double exp_sum(const float* x, int64_t n, float shift);

// out[i] += scale * exp(x[i] - shift).
void exp_scale_add(float* out, const float* x, int64_t n, float shift, float scale);

// out[i] = exp(x[i] - shift); returns sum_i out[i] (f32 lanes, lanes summed in double). out may be x.
double exp_store_sum(float* out, const float* x, int64_t n, float shift);

// x[i] *= s.
void scale_inplace(float* x, int64_t n, float s);

// SwiGLU: h = g * sigmoid(g) * u;  backward: dg += dh * u * s * (1 + g (1 - s)), du += dh * g * s,
// with s = sigmoid(g) = 1 / (1 + exp(min(-g, 88))).
void swiglu_fwd(float* h, const float* g, const float* u, int64_t n);
void swiglu_bwd(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n);

// AdamW (decoupled weight decay, Loshchilov & Hutter; PyTorch's torch.optim.AdamW order):
//   p *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= step * m / (sqrt(v) / bc2_sqrt + eps)
// with decay = 1 - lr wd, step = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t).
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2, float step,
                  float bc2_sqrt, float eps);

// dst[i] = sy::f32_to_bf16(src[i]) (round to nearest even, NaN stays NaN), bit for bit.
void to_bf16(uint16_t* dst, const float* src, int64_t n);

}  // namespace sy::fast
