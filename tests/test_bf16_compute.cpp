// bf16 compute (cpu_bf16_backend, fast::matmul_tile_bf16) against an oracle written here from the
// definition in kernels/backend.h: the naive dot product, in double, of the operands rounded to bf16.
//
// Tolerances (documented, rigorous):
//  - Tile: products of two bf16 values are exact in f32 (8 x 8 significand bits), so the only error
//    is the f32 summation (vdpbf16ps adds in f32 with rounding; the scalar fallback likewise):
//    |got - ref| <= gamma_{K+1} * sum_k |x^_k w^_k|, gamma_n = n u / (1 - n u), u = 2^-24 (Higham,
//    eq. 3.5), plus 1e-30 for vdpbf16ps' flushing of denormals.
//  - grouped_ffn: the intermediate activation h is rounded to bf16 before the down projection. Ours
//    and the oracle's h differ by the first layer's f32 summation and the fast exp (< eps_h =
//    1e-4 (1 + |h|)); where that interval straddles a bf16 rounding midpoint the two may round to
//    neighbouring bf16 values, so the check allows |w_down| * (that bf16 gap) for exactly those
//    elements, plus gamma_{F+1} * sum |w^ h^| for the down projection and the f32 scale/bias.
//    A wrong rounding mode (truncation) or an unrounded operand fails this bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "kernels/ffn_bf16_dnnl.h"
#include "kernels/fast_kernels.h"
#include "kernel_test_util.h"

namespace sy {
namespace {

constexpr double kU = 1.0 / (1 << 24);
double gamma(int64_t n) { return double(n) * kU / (1.0 - double(n) * kU); }
float rb(float v) { return bf16_to_f32(f32_to_bf16(v)); }

using test::Mat;
using test::rand_vec;

// make_mat, with vals then rounded to bf16: the weights bf16 compute uses.
Mat make_mat(std::mt19937& rng, DType dt, int64_t rows, int64_t cols, float scale) {
  Mat m = test::make_mat(rng, dt, rows, cols, scale);
  for (float& f : m.vals) f = rb(f);
  return m;
}

const DType kDTypes[] = {DType::F32, DType::BF16, DType::F16};

// Checks one tile path (native vdpbf16ps or the scalar fallback) against the oracle.
void check_tiles(bool native) {
  std::mt19937 rng(3);
  const int nms[] = {1, 2, 3, 4, 5, 32};
  const int nrs[] = {1, 7, 33, 64};
  const int64_t Ks[] = {1, 15, 31, 33, 300, 1100, 2100};  // > 1024: several K blocks
  std::vector<float> scratch(fast::tile_scratch_floats_bf16());
  for (DType dt : kDTypes)
    for (int nm : nms)
      for (int nr : nrs)
        for (int64_t K : Ks) {
          if (!native && nm * nr * K > 200000) continue;  // the fallback is slow; small shapes cover it
          SCOPED_TRACE(str(native ? "native " : "scalar ", dtype_name(dt), " nm=", nm, " nrows=", nr, " K=", K));
          Mat W = make_mat(rng, dt, nr, K, 1.0f);
          auto x = rand_vec(rng, size_t(nm) * size_t(K), 1.0f);
          std::vector<const float*> xs;
          std::vector<const void*> ws;
          for (int m = 0; m < nm; ++m) xs.push_back(x.data() + int64_t(m) * K);
          for (int r = 0; r < nr; ++r) ws.push_back(W.bytes.data() + size_t(r * K) * dtype_size(dt));
          std::vector<float> C(size_t(nm) * 64, NAN);
          fast::TileArgs a;
          a.xs = xs.data();
          a.nm = nm;
          a.ws = ws.data();
          a.nrows = nr;
          a.wtype = dt;
          a.K = K;
          a.C = C.data();
          a.ldc = 64;
          if (native)
            fast::matmul_tile_bf16(a, scratch.data());
          else
            fast::matmul_tile_bf16_scalar(a);
          for (int m = 0; m < nm; ++m)
            for (int r = 0; r < nr; ++r) {
              double ref = 0, abs = 0;
              for (int64_t k = 0; k < K; ++k) {
                const double p = double(rb(x[size_t(m * K + k)])) * double(W.vals[size_t(r * K + k)]);
                ref += p;
                abs += std::fabs(p);
              }
              ASSERT_NEAR(C[size_t(m) * 64 + size_t(r)], ref, gamma(K + 1) * abs + 1e-30)
                  << "token " << m << " row " << r;
            }
        }
}

TEST(Bf16Compute, NativeTileMatchesBf16Oracle) {
  if (!fast::bf16_dot_native()) GTEST_SKIP() << "CPU without AVX512-BF16: only the scalar fallback runs here";
  check_tiles(true);
}

TEST(Bf16Compute, ScalarFallbackTileMatchesBf16Oracle) { check_tiles(false); }

TEST(Bf16Compute, TileRejectsBadShapes) {
  std::vector<float> scratch(fast::tile_scratch_floats_bf16()), C(64);
  float x[4] = {};
  const float* xs[1] = {x};
  const void* ws[1] = {x};
  fast::TileArgs a;
  a.xs = xs;
  a.nm = 0;
  a.ws = ws;
  a.nrows = 1;
  a.K = 4;
  a.C = C.data();
  a.ldc = 1;
  EXPECT_THROW(fast::matmul_tile_bf16(a, scratch.data()), Error);
  a.nm = 1;
  a.wtype = DType::I32;
  EXPECT_THROW(fast::matmul_tile_bf16(a, scratch.data()), Error);
}

double act_ref(const FfnParams& p, double g, double u) {
  switch (p.act) {
    case Activation::SwiGLU: return g / (1.0 + std::exp(-g)) * u;
    case Activation::GeluMlp: return 0.5 * u * (1.0 + std::erf(u / std::sqrt(2.0)));
    case Activation::ReluMlp: return std::max(u, 0.0);
    case Activation::GptOssSwiGLU: {
      g = std::min(g, double(p.swiglu_limit));
      u = std::clamp(u, -double(p.swiglu_limit), double(p.swiglu_limit));
      return (u + 1.0) * g / (1.0 + std::exp(-double(p.swiglu_alpha) * g));
    }
  }
  return 0;
}

TEST(Bf16Compute, GroupedFfnMatchesBf16Oracle) {
  std::mt19937 rng(5);
  const int64_t H = 300, F = 200, T = 40;
  // Decode-sized and prefill-sized groups, an empty one, one above the 32-token block, one that
  // takes the oneDNN path with bf16 weights (>= kDnnlMinTokens, not a multiple of 32).
  const std::vector<int64_t> sizes = {1, 2, 0, 3, 4, 5, 33, fast::kDnnlMinTokens + 6};
  const Activation acts[] = {Activation::SwiGLU, Activation::GeluMlp, Activation::ReluMlp, Activation::GptOssSwiGLU};
  for (DType dt : kDTypes)
    for (Activation act : acts) {
      SCOPED_TRACE(str(dtype_name(dt), " ", activation_name(act)));
      const bool gated = act == Activation::SwiGLU || act == Activation::GptOssSwiGLU;
      FfnParams p;
      p.act = act;
      p.swiglu_limit = 1.5f;
      auto x = rand_vec(rng, size_t(T * H), 1.0f);
      std::vector<Mat> mats;
      std::vector<std::vector<float>> bias, scale;
      std::vector<std::vector<int32_t>> rows, dst;
      int64_t Y = 0;
      for (int64_t n : sizes) {
        mats.push_back(make_mat(rng, dt, F, H, 2.0f / std::sqrt(float(H))));
        mats.push_back(make_mat(rng, dt, F, H, 2.0f / std::sqrt(float(H))));
        mats.push_back(make_mat(rng, dt, H, F, 2.0f / std::sqrt(float(F))));
        bias.push_back(rand_vec(rng, size_t(F), 0.5f));
        bias.push_back(rand_vec(rng, size_t(F), 0.5f));
        bias.push_back(rand_vec(rng, size_t(H), 0.5f));
        scale.push_back(rand_vec(rng, size_t(n), 1.0f));
        std::vector<int32_t> r(static_cast<size_t>(n)), d(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) r[size_t(i)] = int32_t(rng() % uint32_t(T)), d[size_t(i)] = int32_t(Y++);
        rows.push_back(r);
        dst.push_back(d);
      }
      std::vector<FfnGroup> groups;
      for (size_t g = 0; g < sizes.size(); ++g) {
        FfnGroup gr;
        if (gated) gr.weights.gate = mats[3 * g].ref();
        gr.weights.up = mats[3 * g + 1].ref();
        gr.weights.down = mats[3 * g + 2].ref();
        gr.weights.gate_bias = bias[3 * g].data();
        gr.weights.up_bias = bias[3 * g + 1].data();
        gr.weights.down_bias = bias[3 * g + 2].data();
        gr.rows = rows[g].data();
        gr.dst = dst[g].data();
        gr.scale = scale[g].data();
        gr.n = sizes[g];
        groups.push_back(gr);
      }
      std::vector<float> got(size_t(Y * H), NAN);
      cpu_bf16_backend().grouped_ffn(x.data(), H, groups, p, got.data());
      for (size_t g = 0; g < sizes.size(); ++g) {
        const Mat &Wg = mats[3 * g], &Wu = mats[3 * g + 1], &Wd = mats[3 * g + 2];
        for (int64_t i = 0; i < sizes[g]; ++i) {
          const float* xr = x.data() + int64_t(rows[g][size_t(i)]) * H;
          std::vector<double> h(static_cast<size_t>(F));
          std::vector<double> hgap(static_cast<size_t>(F));  // bf16 gap where h's rounding is ambiguous
          for (int64_t f = 0; f < F; ++f) {
            double sg = bias[3 * g][size_t(f)], su = bias[3 * g + 1][size_t(f)];
            for (int64_t k = 0; k < H; ++k) {
              sg += double(rb(xr[k])) * Wg.vals[size_t(f * H + k)];
              su += double(rb(xr[k])) * Wu.vals[size_t(f * H + k)];
            }
            const double hv = act_ref(p, sg, su), eps = 1e-4 * (1.0 + std::fabs(hv));
            const float lo = rb(float(hv - eps)), hi = rb(float(hv + eps));
            h[size_t(f)] = rb(float(hv));
            hgap[size_t(f)] = std::fabs(double(hi) - double(lo));
          }
          const double sc = scale[g][size_t(i)];
          for (int64_t o = 0; o < H; ++o) {
            double s = 0, abs = 0, amb = 0;
            for (int64_t f = 0; f < F; ++f) {
              const double w = Wd.vals[size_t(o * F + f)];
              s += w * h[size_t(f)];
              abs += std::fabs(w * h[size_t(f)]);
              amb += std::fabs(w) * hgap[size_t(f)];
            }
            const double bd = bias[3 * g + 2][size_t(o)];
            const double ref = sc * (s + bd);
            const double tol = std::fabs(sc) * (gamma(F + 1) * abs + amb + 2 * kU * std::fabs(s + bd)) +
                               2 * kU * std::fabs(ref) + 1e-30;
            ASSERT_NEAR(got[size_t(dst[g][size_t(i)] * H + o)], ref, tol)
                << "group " << g << " token " << i << " output " << o;
          }
        }
      }
    }
}

TEST(Bf16Compute, ThreadCountIndependentAndLinearStaysF32) {
  std::mt19937 rng(9);
  const int64_t H = 256, F = 96, T = 40;
  auto x = rand_vec(rng, size_t(T * H), 1.0f);
  const std::vector<int64_t> sizes = {1, 7, 40, fast::kDnnlMinTokens + 9};  // the last: oneDNN
  std::vector<Mat> mats;
  for (size_t i = 0; i < sizes.size(); ++i) {
    mats.push_back(make_mat(rng, DType::BF16, F, H, 0.1f));
    mats.push_back(make_mat(rng, DType::BF16, F, H, 0.1f));
    mats.push_back(make_mat(rng, DType::BF16, H, F, 0.1f));
  }
  std::vector<std::vector<int32_t>> rows, dst;
  std::vector<FfnGroup> groups;
  int32_t Y = 0;
  for (size_t g = 0; g < sizes.size(); ++g) {
    std::vector<int32_t> r(static_cast<size_t>(sizes[g])), d(r.size());
    for (size_t i = 0; i < r.size(); ++i) r[i] = int32_t(i % size_t(T)), d[i] = Y++;
    rows.push_back(r);
    dst.push_back(d);
  }
  for (size_t g = 0; g < sizes.size(); ++g) {
    FfnGroup gr;
    gr.weights = {mats[3 * g].ref(), mats[3 * g + 1].ref(), mats[3 * g + 2].ref()};
    gr.rows = rows[g].data();
    gr.dst = dst[g].data();
    gr.n = sizes[g];
    groups.push_back(gr);
  }
  FfnParams p;
  std::vector<float> y1(size_t(Y * H)), y2(size_t(Y * H)), l1(size_t(T * F)), l2(size_t(T * F));
  set_default_threads(1);
  cpu_bf16_backend().grouped_ffn(x.data(), H, groups, p, y1.data());
  cpu_bf16_backend().linear(x.data(), T, mats[0].ref(), nullptr, l1.data());
  set_default_threads(0);
  cpu_bf16_backend().grouped_ffn(x.data(), H, groups, p, y2.data());
  cpu_backend().linear(x.data(), T, mats[0].ref(), nullptr, l2.data());
  EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(l1.data(), l2.data(), l1.size() * sizeof(float)));  // linear: f32, as cpu_backend
  EXPECT_STREQ(cpu_bf16_backend().name(), "cpu-bf16");
}

}  // namespace
}  // namespace sy
