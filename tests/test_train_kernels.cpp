// The vectorised training kernels (src/kernels/train_kernels.h) against double-precision scalar
// references of the same formulas (the oracles): every length from 0 to 3 vectors plus larger ones,
// so the partial last vector is covered on every target, and extreme inputs (exp underflow and the
// 88 cap, sigmoid saturation).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/train_kernels.h"

namespace sy::fast {
namespace {

std::vector<float> randv(int64_t n, uint64_t seed, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = scale * (float(int64_t(seed >> 40) % 20001 - 10000) / 10000.0f);
  }
  return v;
}

std::vector<int64_t> lengths() {
  std::vector<int64_t> n;
  for (int64_t i = 1; i <= 49; ++i) n.push_back(i);
  for (int64_t i : {63, 64, 65, 255, 256, 257, 1000, 8192}) n.push_back(i);
  return n;
}

double rel(double got, double want) { return std::fabs(got - want) / std::max(std::fabs(want), 1e-30); }

TEST(TrainKernels, MaxAndExpSums) {
  for (int64_t n : lengths()) {
    auto x = randv(n, uint64_t(n), 20.0f);
    double mx = -INFINITY;
    for (float v : x) mx = std::max(mx, double(v));
    ASSERT_EQ(max_of(x.data(), n), float(mx)) << n;
    double want = 0;
    for (float v : x) want += std::exp(double(v) - mx);
    EXPECT_LT(rel(exp_sum(x.data(), n, float(mx)), want), 4e-6) << n;
    std::vector<float> out(x.size());
    const double s = exp_store_sum(out.data(), x.data(), n, float(mx));
    EXPECT_LT(rel(s, want), 4e-6) << n;
    std::vector<float> acc(x.size(), 0.5f);
    exp_scale_add(acc.data(), x.data(), n, float(mx), 0.25f);
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(double(x[size_t(i)]) - mx);
      // f32 argument x - shift (|.| <= 40 here, so up to ~2e-6 absolute) plus exp's own ulps
      ASSERT_LT(rel(out[size_t(i)], e), 4e-6) << n << " " << i;
      ASSERT_LT(std::fabs(acc[size_t(i)] - (0.5 + 0.25 * e)), 4e-6) << n << " " << i;
    }
    std::vector<float> sc(x);
    scale_inplace(sc.data(), n, 0.5f);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sc[size_t(i)], 0.5f * x[size_t(i)]);
  }
  // exp_store_sum in place (out == x), as the attention softmax uses it
  auto x = randv(37, 5, 3.0f);
  std::vector<float> y(x);
  exp_store_sum(y.data(), y.data(), 37, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_LT(rel(y[i], std::exp(double(x[i]) - 1.0)), 2e-6);
}

TEST(TrainKernels, ExpUnderflowsToZeroAndNeverOverflows) {
  std::vector<float> x = {-200.0f, -1e30f, -87.0f, 0.0f, 87.0f, 200.0f, 1e30f};
  std::vector<float> out(x.size());
  exp_store_sum(out.data(), x.data(), int64_t(x.size()), 0.0f);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_LT(rel(out[2], std::exp(-87.0)), 1e-6);
  EXPECT_EQ(out[3], 1.0f);
  for (size_t i = 4; i < x.size(); ++i) EXPECT_TRUE(std::isfinite(out[i])) << i;  // capped at exp(88)
}

TEST(TrainKernels, SwiGLUForwardBackward) {
  for (int64_t n : lengths()) {
    auto g = randv(n, uint64_t(n) + 1, 8.0f), u = randv(n, uint64_t(n) + 2, 2.0f), d = randv(n, uint64_t(n) + 3, 1.0f);
    if (n > 4) {  // saturated sigmoid on both sides
      g[0] = -120.0f;
      g[1] = 120.0f;
      g[2] = -1e30f;
    }
    std::vector<float> h(g.size()), dg(g.size(), 0.125f), du(g.size(), -0.5f);
    swiglu_fwd(h.data(), g.data(), u.data(), n);
    swiglu_bwd(dg.data(), du.data(), d.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g[size_t(i)], ui = u[size_t(i)], di = d[size_t(i)];
      const double s = 1.0 / (1.0 + std::exp(std::min(-gi, 88.0)));
      const double hw = gi * s * ui, dgw = 0.125 + di * ui * s * (1.0 + gi * (1.0 - s)), duw = -0.5 + di * gi * s;
      ASSERT_LE(std::fabs(h[size_t(i)] - hw), 1e-6 * (1.0 + std::fabs(hw))) << n << " " << i << " g " << gi;
      ASSERT_LE(std::fabs(dg[size_t(i)] - dgw), 1e-6 * (1.0 + std::fabs(dgw))) << n << " " << i << " g " << gi;
      ASSERT_LE(std::fabs(du[size_t(i)] - duw), 1e-6 * (1.0 + std::fabs(duw))) << n << " " << i << " g " << gi;
    }
  }
}

TEST(TrainKernels, AdamWUpdate) {
  for (int64_t n : lengths()) {
    auto p = randv(n, uint64_t(n) + 4, 1.0f), g = randv(n, uint64_t(n) + 5, 0.1f), m = randv(n, uint64_t(n) + 6, 0.01f);
    auto v = randv(n, uint64_t(n) + 7, 1e-4f);
    for (float& e : v) e = std::fabs(e);
    const float lr = 1e-3f, wd = 0.1f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
    const int t = 3;
    const double bc1 = 1 - std::pow(double(b1), t), bc2 = 1 - std::pow(double(b2), t);
    auto p2 = p, m2 = m, v2 = v;
    adamw_update(p2.data(), g.data(), m2.data(), v2.data(), n, 1.0f - lr * wd, b1, b2, float(lr / bc1),
                 float(std::sqrt(bc2)), eps);
    for (int64_t i = 0; i < n; ++i) {
      const size_t k = size_t(i);
      const double mw = b1 * double(m[k]) + (1 - double(b1)) * g[k];
      const double vw = b2 * double(v[k]) + (1 - double(b2)) * double(g[k]) * g[k];
      const double pw = double(p[k]) * (1 - double(lr) * wd) - lr / bc1 * mw / (std::sqrt(vw) / std::sqrt(bc2) + eps);
      // bounds scaled by the terms' magnitudes (the sums may cancel)
      const double upd = lr / bc1 * std::fabs(mw) / (std::sqrt(vw) / std::sqrt(bc2) + eps);
      ASSERT_LE(std::fabs(m2[k] - mw), 1e-6 * (std::fabs(b1 * m[k]) + std::fabs((1 - b1) * g[k]))) << n << " " << i;
      ASSERT_LE(std::fabs(v2[k] - vw), 1e-6 * vw + 1e-20) << n << " " << i;
      ASSERT_LE(std::fabs(p2[k] - pw), 1e-6 * (std::fabs(p[k]) + upd)) << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace sy::fast
