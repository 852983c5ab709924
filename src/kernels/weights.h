// Views of weight matrices as the kernels see them. A weight is row-major [rows = out, cols = in],
// the layout of a Hugging Face nn.Linear weight, in f32, bf16 or f16. Views never own memory: the
// storage belongs to a mapped checkpoint, an expert cache or a test.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace sy {

struct WeightRef {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  bool empty() const { return data == nullptr; }
  size_t nbytes() const { return size_t(rows) * size_t(cols) * dtype_size(dtype); }
  float at(int64_t r, int64_t c) const;  // slow element access, for oracles and tests
};

// Expert FFN activation.
//   SwiGLU:        down( silu(gate x) * (up x) )                      (Mixtral, Qwen, OLMoE, DeepSeek)
//   GeluMlp:       down( gelu_erf(up x) )        ReluMlp: down( relu(up x) )   (gate unused)
//   GptOssSwiGLU:  g = min(gate x + bg, limit); u = clamp(up x + bu, -limit, limit);
//                  down( (u + 1) * g * sigmoid(alpha * g) ) + bd     (gpt-oss, alpha 1.702, limit 7)
enum class Activation : uint8_t { SwiGLU, GeluMlp, ReluMlp, GptOssSwiGLU };
const char* activation_name(Activation a);
Activation parse_activation(const char* s);  // "swiglu", "gelu", "relu", "gptoss"; throws otherwise
// Whether the activation reads a gate projection (SwiGLU forms).
inline bool is_gated(Activation a) { return a == Activation::SwiGLU || a == Activation::GptOssSwiGLU; }

struct FfnWeights {
  WeightRef gate;  // [F, H]; empty for GeluMlp / ReluMlp
  WeightRef up;    // [F, H]
  WeightRef down;  // [H, F]
  const float* gate_bias = nullptr;  // [F] optional
  const float* up_bias = nullptr;    // [F] optional
  const float* down_bias = nullptr;  // [H] optional
};

struct FfnParams {
  Activation act = Activation::SwiGLU;
  float swiglu_alpha = 1.702f;  // GptOssSwiGLU only
  float swiglu_limit = 7.0f;    // GptOssSwiGLU only
};

}  // namespace sy
