// Training ops as forward/backward pairs (llm.c style), f32, row-major. Forward functions overwrite
// their outputs; backward functions ACCUMULATE (+=) into every gradient they are given, so a
// gradient buffer shared by several uses (residual streams, tied weights, micro-batches) sums
// correctly. Gradient pointers documented as optional may be nullptr. Work is split over
// sy::default_pool() by rows; every reduction runs in a fixed order, so results do not depend on
// the number of threads. Shapes: N rows (tokens), C / H features.
// Formulas are the textbook ones; the references they are checked against are independent PyTorch
// autograd programs (tests/reference/gen_grads.py).
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace sy::train {

// Precision of the linear layers' matrix products (linear_*, the stacked forms, the expert FFN),
// process-wide; f32 by default. bf16 is mixed precision as PyTorch's autocast(dtype=bfloat16)
// runs nn.Linear: both operands of every product (inp and W forward; dout and W for dinp, dout and
// inp for dW) rounded to bf16 (nearest even), products summed in f32 (oneDNN,
// kernels/gemm_bf16.h); unlike autocast the outputs stay f32. Weights, gradients and everything
// else (attention's products, norms, softmax, losses, the optimizer) stay f32. Set by the trainer.
enum class MatmulPrecision { f32, bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// Sets the precision for its lifetime, then restores the previous one.
class ScopedMatmulPrecision {
 public:
  explicit ScopedMatmulPrecision(MatmulPrecision p) : prev_(matmul_precision()) { set_matmul_precision(p); }
  ~ScopedMatmulPrecision() { set_matmul_precision(prev_); }
  ScopedMatmulPrecision(const ScopedMatmulPrecision&) = delete;
  ScopedMatmulPrecision& operator=(const ScopedMatmulPrecision&) = delete;

 private:
  MatmulPrecision prev_;
};
// "f32" or "bf16"; throws naming the accepted values.
MatmulPrecision parse_matmul_precision(const std::string& s);

// Linear (nn.Linear without or with bias): out[M, N] = inp[M, K] W[N, K]^T (+ b[N]).
// Backward: dinp[M, K] += dout W;  dW[N, K] += dout^T inp;  db[N] += sum_m dout.  Via cblas_sgemm
// (or oneDNN bf16 products, see MatmulPrecision).
// dinp, dW, db are optional.
void linear_forward(float* out, const float* inp, const float* W, const float* b, int64_t M, int64_t K, int64_t N);
void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp, const float* W, int64_t M,
                     int64_t K, int64_t N);

// Embedding: out[n, :] = table[tokens[n], :], table [V, H]. Throws when a token id is outside [0, V).
// Backward: dtable[tokens[n], :] += dout[n, :] (in token order).
void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t V, int64_t H);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t H);

// RMSNorm (Zhang & Sennrich 2019; HF Qwen3MoeRMSNorm): rstd = 1/sqrt(mean_c x^2 + eps),
// out = x * rstd * w.  inp/out [N, C], w [C], rstd [N] saved for backward.
// Backward: xhat = x rstd, g = dout * w:  dw += sum_n dout * xhat;
//           dinp += rstd * (g - xhat * mean_c(g * xhat)).  dw optional.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int64_t N, int64_t C, float eps);
void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int64_t N, int64_t C);

// Rotary position embedding, rotate-half layout (GPT-NeoX / HF Llama, Qwen): per head of size D
// (even), pair (i, i + D/2), angle a = pos * theta^(-2i/D) (computed in double):
//   out_i = x_i cos a - x_{i+D/2} sin a;   out_{i+D/2} = x_{i+D/2} cos a + x_i sin a.
// inp/out [N, n_heads * D]; pos [N]. Backward applies the transposed rotation (accumulates).
void rope_forward(float* out, const float* inp, const int64_t* pos, int64_t N, int64_t n_heads, int64_t D,
                  double theta);
void rope_backward(float* dinp, const float* dout, const int64_t* pos, int64_t N, int64_t n_heads, int64_t D,
                   double theta);

// Causal multi-head attention with grouped-query heads (GQA): B sequences of T tokens, rows
// n = b*T + t. q [B*T, Hq*D], k/v [B*T, Hkv*D], query head h reads kv head h / (Hq/Hkv).
//   s_ij = q_i . k_j / sqrt(D) for j <= i;  a_i = softmax_j(s_i);  out_i = sum_j a_ij v_j.
// att [B, Hq, T, T] keeps a (zeros above the diagonal) for backward. out [B*T, Hq*D].
// Backward (through the softmax): da_ij = dout_i . v_j;  ds_ij = a_ij (da_ij - sum_j a_ij da_ij);
//   dq_i += sum_j ds_ij k_j / sqrt(D);  dk_j += sum_i ds_ij q_i / sqrt(D);  dv_j += sum_i a_ij dout_i.
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t Hq, int64_t Hkv, int64_t D);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* att, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D);

// SwiGLU activation (Shazeer 2020): h = silu(g) * u, silu(g) = g * sigmoid(g); all [n].
// Backward: dg += du_h * u * sig(g) (1 + g (1 - sig(g)));  du += dh * silu(g).
void swiglu_forward(float* h, const float* g, const float* u, int64_t n);
void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n);

// Stacked projections: W holds the weights W_i [N_i, K] one after another ([sum N_i, K], as adjacent
// views of one parameter buffer, e.g. q/k/v_proj or an expert's gate/up_proj). Forward:
// outs[i][M, N_i] = inp W_i^T, computed as one product. Backward: dinp += sum_i douts[i] W_i and
// dW_i += douts[i]^T inp (dW must be laid out like W), as one product each.
void linear_forward_stacked(std::span<float* const> outs, std::span<const int64_t> widths, const float* inp,
                            const float* W, int64_t M, int64_t K);
void linear_backward_stacked(float* dinp, float* dW, std::span<const float* const> douts,
                             std::span<const int64_t> widths, const float* inp, const float* W, int64_t M, int64_t K);

// SwiGLU expert FFN on M rows: y[M, H] = down( silu(x Wg^T) * (x Wu^T) ), Wg/Wu [F, H], Wd [H, F].
// Saves g, u, h [M, F]. Backward accumulates dx (optional), dWg, dWu, dWd; scratch is reused.
struct FfnSaved {
  float* g;  // [M, F]
  float* u;  // [M, F]
  float* h;  // [M, F]
};
void swiglu_ffn_forward(float* y, FfnSaved s, const float* x, const float* Wg, const float* Wu, const float* Wd,
                        int64_t M, int64_t H, int64_t F);
void swiglu_ffn_backward(float* dx, float* dWg, float* dWu, float* dWd, const float* dy, const float* x,
                         const FfnSaved s, const float* Wg, const float* Wu, const float* Wd, int64_t M, int64_t H,
                         int64_t F);

// Row softmax over C columns: probs[N, C]. Backward: dlogits += p * (dp - sum_c p dp).
void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C);
void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C);
// Elementwise sigmoid s = 1 / (1 + e^-x) [n]. Backward: dx += ds * s (1 - s).
void sigmoid_forward(float* s, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* ds, const float* s, int64_t n);

// Cross-entropy fused with log-softmax, mean over the valid tokens (targets < 0 are ignored, as
// torch's ignore_index): loss = -1/n_valid sum_n log softmax(logits_n)[target_n], logits [N, V].
// Returns the loss. When dlogits is given: dlogits += dloss * (softmax(logits_n) - onehot) / n_valid.
double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                     float dloss = 1.0f);

}  // namespace sy::train
