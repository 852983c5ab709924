// Fast CPU kernels (cpu_backend) against the naive oracle (naive_backend), for every weight dtype
// and activation, odd shapes, empty groups, dst permutations and missing scales; plus the
// determinism contract (bitwise identical results for 1 and 2 threads and for any grouping).
//
// Tolerance. Both sides use the same (rounded) weights; the oracle sums in double, the fast kernel
// in f32 with a different order. For a dot product of length K any f32 summation order satisfies
// |fl(s) - s| <= gamma_K * sum_k |x_k w_k|, gamma_K = K*u/(1-K*u), u = 2^-24 (Higham, Accuracy and
// Stability of Numerical Algorithms, 2nd ed., eq. 3.5). linear() is checked against exactly that
// bound, computed per element with the oracle on |x| and |W| (plus |bias|).
// For the FFN the first layer's errors (gamma_H-relative) pass through an activation whose slope is
// at most ~1.13 (silu, gelu) times the other factor (SwiGLU's up), then the second layer adds
// gamma_F-relative error; inputs are scaled so that every hidden value is O(1). The check is
//   |fast - ref| <= 4 * (H + F) * u * (1 + max|ref|) + fast-exp slack (2 ulp of each activation),
// i.e. the two gamma bounds with a factor-4 allowance for activation slopes and O(1) magnitudes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <hwy/targets.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "kernel_test_util.h"

namespace sy {
namespace {

constexpr float kU = 1.0f / (1 << 24);

using test::make_mat;
using test::Mat;
using test::rand_vec;

const DType kDTypes[] = {DType::F32, DType::BF16, DType::F16};

TEST(Kernels, LinearMatchesNaiveWithinSummationBound) {
  std::mt19937 rng(1);
  const int64_t Ms[] = {1, 2, 3, 4, 5, 33, 70};
  const int64_t Ns[] = {1, 7, 33, 70};
  const int64_t Ks[] = {1, 15, 17, 300, 1100};  // 1100 > kKC: several K blocks
  for (DType dt : kDTypes)
    for (int64_t M : Ms)
      for (int64_t N : Ns)
        for (int64_t K : Ks) {
          SCOPED_TRACE(str(dtype_name(dt), " M=", M, " N=", N, " K=", K));
          Mat W = make_mat(rng, dt, N, K, 1.0f);
          auto x = rand_vec(rng, size_t(M * K), 1.0f);
          auto bias = rand_vec(rng, size_t(N), 1.0f);
          const float* b = (N % 2) ? bias.data() : nullptr;
          std::vector<float> ref(size_t(M * N)), got(size_t(M * N), NAN), bound(size_t(M * N));
          naive_backend().linear(x.data(), M, W.ref(), b, ref.data());
          cpu_backend().linear(x.data(), M, W.ref(), b, got.data());
          std::vector<float> ax(x.size()), ab(bias.size());
          for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
          for (size_t i = 0; i < bias.size(); ++i) ab[i] = std::fabs(bias[i]);
          Mat aW = W;
          aW.dt = DType::F32;
          aW.bytes.resize(W.vals.size() * 4 + 1);
          for (size_t i = 0; i < W.vals.size(); ++i) {
            float a = std::fabs(W.vals[i]);
            std::memcpy(aW.bytes.data() + 4 * i, &a, 4);
          }
          naive_backend().linear(ax.data(), M, aW.ref(), b ? ab.data() : nullptr, bound.data());
          const float gamma = float(K + 1) * kU / (1.0f - float(K + 1) * kU);
          for (size_t i = 0; i < ref.size(); ++i) {
            ASSERT_NEAR(got[i], ref[i], gamma * bound[i] * 1.0001f + 1e-30f) << "element " << i;
          }
        }
}

struct FfnCase {
  int64_t H, F;
  std::vector<int64_t> sizes;  // tokens per group
};

struct FfnSetup {
  std::vector<Mat> mats;  // 3 per group
  std::vector<std::vector<float>> biases;
  std::vector<std::vector<int32_t>> rows, dst;
  std::vector<std::vector<float>> scales;
  std::vector<FfnGroup> groups;
  std::vector<float> x;
  int64_t T = 0, Y = 0;
};

// Groups draw random token rows (repeats allowed) and write a random permutation of y's rows.
FfnSetup make_ffn(std::mt19937& rng, DType dt, const FfnCase& c, bool biases) {
  FfnSetup s;
  s.T = 41;
  s.x = rand_vec(rng, size_t(s.T * c.H), 1.0f);
  s.Y = std::accumulate(c.sizes.begin(), c.sizes.end(), int64_t(0));
  std::vector<int32_t> perm(size_t(s.Y));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  size_t next = 0;
  s.mats.reserve(3 * c.sizes.size());
  for (size_t g = 0; g < c.sizes.size(); ++g) {
    const int64_t n = c.sizes[g];
    s.mats.push_back(make_mat(rng, dt, c.F, c.H, 2.0f / std::sqrt(float(c.H))));
    s.mats.push_back(make_mat(rng, dt, c.F, c.H, 2.0f / std::sqrt(float(c.H))));
    s.mats.push_back(make_mat(rng, dt, c.H, c.F, 2.0f / std::sqrt(float(c.F))));
    s.biases.push_back(rand_vec(rng, size_t(c.F), 0.5f));
    s.biases.push_back(rand_vec(rng, size_t(c.F), 0.5f));
    s.biases.push_back(rand_vec(rng, size_t(c.H), 0.5f));
    std::vector<int32_t> r(static_cast<size_t>(n)), d(static_cast<size_t>(n));
    std::uniform_int_distribution<int32_t> tok(0, int32_t(s.T - 1));
    for (int64_t i = 0; i < n; ++i) {
      r[size_t(i)] = tok(rng);
      d[size_t(i)] = perm[next++];
    }
    s.rows.push_back(r);
    s.dst.push_back(d);
    s.scales.push_back(rand_vec(rng, size_t(n), 1.0f));
  }
  for (size_t g = 0; g < c.sizes.size(); ++g) {
    FfnGroup gr;
    gr.weights.gate = s.mats[3 * g].ref();
    gr.weights.up = s.mats[3 * g + 1].ref();
    gr.weights.down = s.mats[3 * g + 2].ref();
    if (biases) {
      gr.weights.gate_bias = s.biases[3 * g].data();
      gr.weights.up_bias = s.biases[3 * g + 1].data();
      gr.weights.down_bias = s.biases[3 * g + 2].data();
    }
    gr.rows = s.rows[g].data();
    gr.dst = s.dst[g].data();
    gr.scale = (g % 2) ? s.scales[g].data() : nullptr;
    gr.n = c.sizes[g];
    s.groups.push_back(gr);
  }
  return s;
}

const Activation kActs[] = {Activation::SwiGLU, Activation::GeluMlp, Activation::ReluMlp, Activation::GptOssSwiGLU};

// Runs one FFN case through both backends and checks the documented tolerance.
void expect_ffn_matches(std::mt19937& rng, DType dt, Activation act, const FfnCase& c, bool biases) {
  SCOPED_TRACE(str(dtype_name(dt), " ", activation_name(act), " H=", c.H, " F=", c.F, " biases=", biases));
  FfnSetup s = make_ffn(rng, dt, c, biases);
  if (act == Activation::GeluMlp || act == Activation::ReluMlp)
    for (auto& g : s.groups) g.weights.gate = {};  // unused: must not be needed
  FfnParams p;
  p.act = act;
  p.swiglu_limit = 1.5f;  // small enough that the clamps are exercised
  std::vector<float> ref(size_t(s.Y * c.H), NAN), got(size_t(s.Y * c.H), NAN);
  naive_backend().grouped_ffn(s.x.data(), c.H, s.groups, p, ref.data());
  cpu_backend().grouped_ffn(s.x.data(), c.H, s.groups, p, got.data());
  float mx = 0;
  for (float v : ref) mx = std::max(mx, std::fabs(v));
  const float tol = 4.0f * float(c.H + c.F) * kU * (1.0f + mx) + 2e-7f * (1.0f + mx);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], tol) << "element " << i;
}

TEST(Kernels, GroupedFfnMatchesNaive) {
  std::mt19937 rng(2);
  const FfnCase cases[] = {
      {5, 3, {1}},
      {17, 19, {0, 1, 2, 0, 3}},
      {64, 40, {4, 5, 1, 0}},
      {100, 70, {37, 2, 33}},
      {33, 129, {9, 1, 64}},
  };
  for (DType dt : kDTypes)
    for (Activation act : kActs) {
      for (const FfnCase& c : cases)
        for (bool biases : {false, true}) expect_ffn_matches(rng, dt, act, c, biases);
    }
  // K > kKC in both layers (several K blocks); once per dtype, it is the slow one for the oracle.
  for (DType dt : kDTypes) expect_ffn_matches(rng, dt, Activation::GptOssSwiGLU, FfnCase{1030, 1050, {5, 1}}, true);
}

// The binary carries one copy of the kernels per x86 target (runtime dispatch): check every copy
// this CPU can run, not only the best one (AVX2 and SSE4 machines take the others).
TEST(Kernels, EveryCompiledIsaTargetMatchesNaive) {
  std::mt19937 rng(6);
  const auto targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    SCOPED_TRACE(hwy::TargetName(t));
    hwy::SetSupportedTargetsForTest(t);
    ASSERT_EQ(hwy::SupportedTargets(), t);
    for (DType dt : kDTypes) {
      expect_ffn_matches(rng, dt, Activation::SwiGLU, FfnCase{37, 45, {1, 2, 3, 9, 0}}, true);
      expect_ffn_matches(rng, dt, Activation::GptOssSwiGLU, FfnCase{70, 19, {6, 1}}, true);
    }
    if (HasFatalFailure()) break;
  }
  hwy::SetSupportedTargetsForTest(0);  // back to what the CPU supports
}

TEST(Kernels, BitwiseIdenticalForOneAndTwoThreads) {
  std::mt19937 rng(3);
  for (DType dt : kDTypes) {
    // A prefill-like batch (packed path), a decode-like one (direct path) and a mix.
    for (const FfnCase& c : {FfnCase{96, 200, {40, 33, 70, 0, 5}}, FfnCase{130, 96, {1, 1, 2, 1, 3, 4}}}) {
      FfnSetup s = make_ffn(rng, dt, c, true);
      FfnParams p;
      std::vector<float> y1(size_t(s.Y * c.H)), y2(y1.size()), l1(size_t(s.T * c.F)), l2(l1.size());
      set_default_threads(1);
      ASSERT_EQ(default_pool().size(), 1);
      cpu_backend().grouped_ffn(s.x.data(), c.H, s.groups, p, y1.data());
      cpu_backend().linear(s.x.data(), s.T, s.mats[0].ref(), nullptr, l1.data());
      set_default_threads(2);
      cpu_backend().grouped_ffn(s.x.data(), c.H, s.groups, p, y2.data());
      cpu_backend().linear(s.x.data(), s.T, s.mats[0].ref(), nullptr, l2.data());
      EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0) << dtype_name(dt);
      EXPECT_EQ(std::memcmp(l1.data(), l2.data(), l1.size() * 4), 0) << dtype_name(dt);
    }
  }
  set_default_threads(0);
}

// A token's result must not depend on which other tokens share its expert (decode and prefill
// paths reduce in the same order, K blocks included): one token alone equals the same token inside
// a group of 37.
TEST(Kernels, TokenResultIndependentOfGroupSize) {
  std::mt19937 rng(4);
  for (DType dt : kDTypes) {
    FfnSetup s = make_ffn(rng, dt, FfnCase{1077, 1150, {37}}, true);
    FfnParams p;
    const int64_t H = 1077;
    std::vector<float> big(size_t(37 * H)), one(static_cast<size_t>(H));
    cpu_backend().grouped_ffn(s.x.data(), H, s.groups, p, big.data());
    for (int i : {0, 5, 36}) {
      FfnGroup g = s.groups[0];
      g.rows += i;
      g.scale = nullptr;
      int32_t d0 = 0;
      g.dst = &d0;
      g.n = 1;
      cpu_backend().grouped_ffn(s.x.data(), H, std::span<const FfnGroup>(&g, 1), p, one.data());
      EXPECT_EQ(std::memcmp(one.data(), big.data() + int64_t(s.dst[0][size_t(i)]) * H, size_t(H) * 4), 0)
          << dtype_name(dt) << " token " << i;
    }
  }
}

TEST(Kernels, RejectsBadShapesAndDtypes) {
  std::mt19937 rng(5);
  FfnSetup s = make_ffn(rng, DType::BF16, FfnCase{16, 8, {2}}, false);
  std::vector<float> y(2 * 16);
  FfnParams p;
  FfnGroup g = s.groups[0];
  g.weights.down.cols = 9;
  EXPECT_THROW(cpu_backend().grouped_ffn(s.x.data(), 16, std::span<const FfnGroup>(&g, 1), p, y.data()), Error);
  g = s.groups[0];
  g.weights.gate = {};
  EXPECT_THROW(cpu_backend().grouped_ffn(s.x.data(), 16, std::span<const FfnGroup>(&g, 1), p, y.data()), Error);
  g = s.groups[0];
  g.weights.up.dtype = DType::I32;
  try {
    cpu_backend().grouped_ffn(s.x.data(), 16, std::span<const FfnGroup>(&g, 1), p, y.data());
    ADD_FAILURE() << "i32 weights accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("i32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sy
