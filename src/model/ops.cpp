#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/threadpool.h"

namespace sy {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t n, double eps, float* y) {
  auto row = [&](int64_t r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * double(xr[i]);
    const float inv = float(1.0 / std::sqrt(ss / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * inv * w[i];
  };
  if (rows * n < 16384) {
    for (int64_t r = 0; r < rows; ++r) row(r);
  } else {
    default_pool().parallel_for(rows, [&](int64_t r, int) { row(r); });
  }
}

std::vector<double> rope_inv_freq(const RopeConfig& r, int64_t d, int64_t seq_len, int64_t max_pos) {
  const int64_t half = d / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  double base = r.theta;
  if (r.scaling == RopeScaling::Dynamic && seq_len > max_pos) {
    // HF _compute_dynamic_ntk_parameters
    base = r.theta * std::pow(r.factor * double(seq_len) / double(max_pos) - (r.factor - 1.0),
                              double(d) / double(d - 2));
  }
  for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = 1.0 / std::pow(base, double(2 * i) / double(d));
  if (r.scaling == RopeScaling::Yarn) {
    // HF _compute_yarn_parameters: ramp between the dims that rotate beta_fast / beta_slow times
    // over the original context.
    auto corr_dim = [&](double rot) {
      return double(d) * std::log(double(r.original_max_pos) / (rot * 2 * std::numbers::pi)) / (2 * std::log(r.theta));
    };
    double lo = corr_dim(r.beta_fast), hi = corr_dim(r.beta_slow);
    if (r.truncate) lo = std::floor(lo), hi = std::ceil(hi);
    lo = std::max(lo, 0.0);
    hi = std::min(hi, double(d - 1));
    if (lo == hi) hi += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      double ramp = std::clamp((double(i) - lo) / (hi - lo), 0.0, 1.0);
      double extrap = 1.0 - ramp;  // weight of the unscaled frequency
      double f = inv[size_t(i)];
      inv[size_t(i)] = (f / r.factor) * (1.0 - extrap) + f * extrap;
    }
  }
  return inv;
}

void rope_apply(float* x, int64_t T, int64_t n_heads, int64_t d, const int64_t* positions,
                const std::vector<double>& inv_freq, const RopeConfig& r) {
  const int64_t half = d / 2;
  SY_CHECK(int64_t(inv_freq.size()) == half, "[rope] ", inv_freq.size(), " frequencies for head_dim ", d);
  const double af = r.scaling == RopeScaling::Yarn ? r.attention_factor : 1.0;
  const double pscale = r.scaling == RopeScaling::Linear ? 1.0 / r.factor : 1.0;
  std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int64_t t = 0; t < T; ++t) {
    const double p = double(positions[t]) * pscale;
    for (int64_t i = 0; i < half; ++i) {
      const double a = p * inv_freq[size_t(i)];
      c[size_t(i)] = float(std::cos(a) * af);
      s[size_t(i)] = float(std::sin(a) * af);
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[size_t(i)] - x2 * s[size_t(i)];
        v[i + half] = x2 * c[size_t(i)] + x1 * s[size_t(i)];
      }
    }
  }
}

void attention(const float* q, const float* k_cache, const float* v_cache, int64_t T, int64_t pos0,
               int64_t n_heads, int64_t n_kv, int64_t d, int64_t window, float* out) {
  const int64_t group = n_heads / n_kv;
  const int64_t kvw = n_kv * d;
  const float scale = float(1.0 / std::sqrt(double(d)));
  ThreadPool& pool = default_pool();
  std::vector<std::vector<float>> scratch(size_t(pool.size()));
  auto one = [&](int64_t task, int thread) {
    const int64_t t = task / n_heads, h = task % n_heads, kvh = h / group;
    const int64_t p = pos0 + t;
    const int64_t first = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    const int64_t n = p - first + 1;
    auto& sc = scratch[size_t(thread)];
    sc.resize(size_t(n));
    const float* qh = q + (t * n_heads + h) * d;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      const float* kj = k_cache + (first + j) * kvw + kvh * d;
      float acc = 0;
      for (int64_t i = 0; i < d; ++i) acc += qh[i] * kj[i];
      sc[size_t(j)] = acc * scale;
      mx = std::max(mx, sc[size_t(j)]);
    }
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      sc[size_t(j)] = std::exp(sc[size_t(j)] - mx);
      sum += sc[size_t(j)];
    }
    const float inv = float(1.0 / sum);
    float* o = out + (t * n_heads + h) * d;
    std::fill(o, o + d, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float* vj = v_cache + (first + j) * kvw + kvh * d;
      const float w = sc[size_t(j)] * inv;
      for (int64_t i = 0; i < d; ++i) o[i] += w * vj[i];
    }
  };
  // Waking the pool costs more than a small attention (decode on a short context) takes.
  if (T * n_heads * (pos0 + T) * d < (int64_t(1) << 16)) {
    for (int64_t task = 0; task < T * n_heads; ++task) one(task, 0);
  } else {
    pool.parallel_for(T * n_heads, one);
  }
}

}  // namespace sy
