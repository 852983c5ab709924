// Naive reference kernels: plain loops in f32 (double accumulation), single-threaded.
// They are the oracle for the fast kernels; keep them obvious.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/backend.h"

namespace sy {

float WeightRef::at(int64_t r, int64_t c) const {
  size_t i = size_t(r) * size_t(cols) + size_t(c);
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    default: fail("[kernels] weights of dtype ", dtype_name(dtype), " are not supported");
  }
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::SwiGLU: return "swiglu";
    case Activation::GeluMlp: return "gelu";
    case Activation::ReluMlp: return "relu";
    case Activation::GptOssSwiGLU: return "gptoss";
  }
  return "?";
}

Activation parse_activation(const char* s) {
  std::string v(s);
  if (v == "swiglu" || v == "silu") return Activation::SwiGLU;
  if (v == "gelu") return Activation::GeluMlp;
  if (v == "relu") return Activation::ReluMlp;
  if (v == "gptoss") return Activation::GptOssSwiGLU;
  fail("[ffn] unknown activation '", v, "' (expected swiglu, gelu, relu or gptoss)");
}

namespace {

void naive_matvec(const float* x, const WeightRef& W, const float* bias, float* y) {
  for (int64_t r = 0; r < W.rows; ++r) {
    double acc = bias ? bias[r] : 0.0;
    for (int64_t c = 0; c < W.cols; ++c) acc += double(x[c]) * double(W.at(r, c));
    y[r] = float(acc);
  }
}

class NaiveBackend final : public Backend {
 public:
  const char* name() const override { return "naive"; }

  void linear(const float* x, int64_t M, const WeightRef& W, const float* bias, float* y) override {
    for (int64_t m = 0; m < M; ++m) naive_matvec(x + m * W.cols, W, bias, y + m * W.rows);
  }

  void grouped_ffn(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p,
                   float* y) override {
    for (const FfnGroup& g : groups) {
      const FfnWeights& w = g.weights;
      const int64_t F = w.up.rows;
      SY_CHECK(w.up.cols == H && w.down.rows == H && w.down.cols == F, "[ffn] expert weight shapes do not match hidden ",
               H, " / ffn ", F);
      std::vector<float> a(F), b(F), o(H);
      for (int64_t i = 0; i < g.n; ++i) {
        const float* xr = x + int64_t(g.rows[i]) * H;
        naive_matvec(xr, w.up, w.up_bias, b.data());
        if (is_gated(p.act)) {
          naive_matvec(xr, w.gate, w.gate_bias, a.data());
        }
        for (int64_t f = 0; f < F; ++f) {
          switch (p.act) {
            case Activation::SwiGLU: a[f] = a[f] / (1.0f + std::exp(-a[f])) * b[f]; break;
            case Activation::GeluMlp: a[f] = 0.5f * b[f] * (1.0f + std::erf(b[f] / std::sqrt(2.0f))); break;
            case Activation::ReluMlp: a[f] = b[f] > 0 ? b[f] : 0.0f; break;
            case Activation::GptOssSwiGLU: {
              float gg = std::min(a[f], p.swiglu_limit);
              float uu = std::clamp(b[f], -p.swiglu_limit, p.swiglu_limit);
              a[f] = (uu + 1.0f) * gg / (1.0f + std::exp(-p.swiglu_alpha * gg));
              break;
            }
          }
        }
        naive_matvec(a.data(), w.down, w.down_bias, o.data());
        float s = g.scale ? g.scale[i] : 1.0f;
        float* yr = y + int64_t(g.dst[i]) * H;
        for (int64_t h = 0; h < H; ++h) yr[h] = s * o[h];
      }
    }
  }
};

Backend* g_default = nullptr;

}  // namespace

Backend& naive_backend() {
  static NaiveBackend b;
  return b;
}

Backend& default_backend() { return g_default ? *g_default : cpu_backend(); }
void set_default_backend(Backend* b) { g_default = b; }

}  // namespace sy
