// The backend seam: every op the MoE layer and the model run goes through a Backend, so a CUDA
// backend can be added later without touching model or router code. Pointers here are host
// memory for the CPU backends; a device backend will take its own buffers through the same calls.
//
// Determinism contract: results must not depend on the number of threads. Reductions over the
// input dimension run in a fixed order per output element.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/weights.h"

namespace sy {

// One expert's share of a batch: rows[i] is a token row of x, dst[i] the row of y to write,
// scale[i] the combine weight. grouped_ffn writes y[dst[i]] = scale[i] * FFN(x[rows[i]]).
struct FfnGroup {
  FfnWeights weights;
  const int32_t* rows = nullptr;
  const int32_t* dst = nullptr;
  const float* scale = nullptr;  // nullptr means 1
  int64_t n = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y[M, W.rows] = x[M, W.cols] * W^T (+ bias[W.rows]); y is overwritten. Row-major, dense.
  virtual void linear(const float* x, int64_t M, const WeightRef& W, const float* bias, float* y) = 0;

  // Runs every group (see FfnGroup). x is [*, H] row-major, y is [*, H]; distinct dst rows only.
  virtual void grouped_ffn(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p,
                           float* y) = 0;
};

Backend& naive_backend();    // obvious loops: the oracle for every fast kernel
Backend& cpu_backend();      // fast CPU kernels (Highway runtime dispatch, thread pool)
// bf16 compute for the expert FFNs: in grouped_ffn, the input rows, the intermediate activations
// and the weights are rounded to bf16 (round to nearest even) and the products summed in f32
// (AVX512-BF16 vdpbf16ps where available; prefill-sized groups with bf16 weights through oneDNN's
// bf16 matmul, ffn_bf16_dnnl.h); activation functions stay f32. linear (router logits,
// attention, lm head) stays f32, so routing decisions keep f32 precision. Opt-in (`--compute
// bf16`): PyTorch's bf16-matmul precision class, not f32 compute. Thread-count independent too.
Backend& cpu_bf16_backend();
Backend& default_backend();  // what the engine uses; cpu_backend() unless set_default_backend()
void set_default_backend(Backend* b);

}  // namespace sy
