#include "train/routing_ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "moe/router.h"

namespace sy::train {

Selection select_topk(const float* rank, int64_t N, int S, int k) {
  SY_CHECK(k >= 1 && k <= S, "[train router] k=", k, " must be in [1, ", S, "]");
  Selection sel;
  sel.n_tokens = N;
  sel.n_scores = S;
  sel.offsets.assign(1, 0);
  sel.col.resize(size_t(N * k));
  for (int64_t t = 0; t < N; ++t) {
    routing::topk_indices(rank + t * S, S, k, sel.col.data() + t * k);
    sel.offsets.push_back(int32_t((t + 1) * k));
  }
  return sel;
}

Selection select_topp(const float* probs, int64_t N, int S, double threshold, int max_k) {
  SY_CHECK(threshold > 0 && threshold <= 1, "[train router topp] threshold ", threshold, " must be in (0, 1]");
  Selection sel;
  sel.n_tokens = N;
  sel.n_scores = S;
  sel.offsets.assign(1, 0);
  std::vector<int32_t> order(static_cast<size_t>(S));
  const int cap = std::clamp(max_k, 1, S);
  for (int64_t t = 0; t < N; ++t) {
    const float* p = probs + t * S;
    routing::topk_indices(p, S, S, order.data());
    double cum = 0;
    for (int j = 0; j < cap; ++j) {
      sel.col.push_back(order[size_t(j)]);
      cum += p[order[size_t(j)]];
      if (cum > threshold) break;
    }
    sel.offsets.push_back(int32_t(sel.col.size()));
  }
  return sel;
}

void gates_forward(float* w, const float* scores, const Selection& sel, bool norm, float eps, float scale) {
  const int S = sel.n_scores;
  for (int64_t t = 0; t < sel.n_tokens; ++t) {
    const float* s = scores + t * S;
    double z = 0;
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j) z += s[sel.col[size_t(j)]];
    const double denom = norm ? z + double(eps) : 1.0;
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j)
      w[j] = float(double(s[sel.col[size_t(j)]]) / denom * scale);
  }
}

void gates_backward(float* dscores, const float* dw, const float* scores, const Selection& sel, bool norm, float eps,
                    float scale) {
  const int S = sel.n_scores;
  for (int64_t t = 0; t < sel.n_tokens; ++t) {
    const float* s = scores + t * S;
    float* ds = dscores + t * S;
    const int32_t b = sel.offsets[size_t(t)], e = sel.offsets[size_t(t) + 1];
    if (!norm) {
      for (int32_t j = b; j < e; ++j) ds[sel.col[size_t(j)]] += scale * dw[j];
      continue;
    }
    double z = 0, dot = 0;
    for (int32_t j = b; j < e; ++j) {
      z += s[sel.col[size_t(j)]];
      dot += double(dw[j]) * s[sel.col[size_t(j)]];
    }
    z += double(eps);
    for (int32_t j = b; j < e; ++j) ds[sel.col[size_t(j)]] += float(scale * (double(dw[j]) / z - dot / (z * z)));
  }
}

void normalize_rows_forward(float* p, const float* s, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += s[n * C + c];
    for (int64_t c = 0; c < C; ++c) p[n * C + c] = float(double(s[n * C + c]) / z);
  }
}

void normalize_rows_backward(float* ds, const float* dp, const float* p, const float* s, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    double z = 0, dot = 0;
    for (int64_t c = 0; c < C; ++c) {
      z += s[n * C + c];
      dot += double(dp[n * C + c]) * p[n * C + c];
    }
    for (int64_t c = 0; c < C; ++c) ds[n * C + c] += float((double(dp[n * C + c]) - dot) / z);
  }
}

Dispatch make_dispatch(const Selection& sel, int n_experts) {
  Dispatch d;
  d.n_experts = n_experts;
  d.expert_offsets.assign(size_t(n_experts) + 1, 0);
  for (int32_t c : sel.col) {
    SY_CHECK(c >= 0 && c < sel.n_scores, "[train dispatch] selected column ", c, " outside [0, ", sel.n_scores, ")");
    if (c < n_experts) d.expert_offsets[size_t(c) + 1]++;
  }
  for (int e = 0; e < n_experts; ++e) d.expert_offsets[size_t(e) + 1] += d.expert_offsets[size_t(e)];
  const int32_t rows = d.expert_offsets.back();
  d.token.resize(size_t(rows));
  d.slot.resize(size_t(rows));
  d.row_of_slot.assign(sel.col.size(), -1);
  std::vector<int32_t> fill(d.expert_offsets.begin(), d.expert_offsets.end() - 1);
  for (int64_t t = 0; t < sel.n_tokens; ++t)
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j) {
      const int32_t c = sel.col[size_t(j)];
      if (c >= n_experts) continue;
      const int32_t r = fill[size_t(c)]++;
      d.token[size_t(r)] = int32_t(t);
      d.slot[size_t(r)] = j;
      d.row_of_slot[size_t(j)] = r;
    }
  return d;
}

void dispatch_forward(float* xe, const float* x, const Dispatch& d, int64_t H) {
  for (int64_t r = 0; r < d.rows(); ++r) std::copy(x + d.token[size_t(r)] * H, x + (d.token[size_t(r)] + 1) * H, xe + r * H);
}

void dispatch_backward(float* dx, const float* dxe, const Selection& sel, const Dispatch& d, int64_t H) {
  for (int64_t t = 0; t < sel.n_tokens; ++t)
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j) {
      const int32_t r = d.row_of_slot[size_t(j)];
      if (r < 0) continue;
      for (int64_t h = 0; h < H; ++h) dx[t * H + h] += dxe[r * H + h];
    }
}

void combine_forward(float* y, const float* ye, const float* w, const Selection& sel, const Dispatch& d, int64_t H) {
  for (int64_t t = 0; t < sel.n_tokens; ++t) {
    float* yt = y + t * H;
    std::fill(yt, yt + H, 0.0f);
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j) {
      const int32_t r = d.row_of_slot[size_t(j)];
      if (r < 0) continue;
      for (int64_t h = 0; h < H; ++h) yt[h] += w[j] * ye[r * H + h];
    }
  }
}

void combine_backward(float* dye, float* dw, const float* dy, const float* ye, const float* w, const Selection& sel,
                      const Dispatch& d, int64_t H) {
  for (int64_t t = 0; t < sel.n_tokens; ++t)
    for (int32_t j = sel.offsets[size_t(t)]; j < sel.offsets[size_t(t) + 1]; ++j) {
      const int32_t r = d.row_of_slot[size_t(j)];
      if (r < 0) continue;
      double dot = 0;
      for (int64_t h = 0; h < H; ++h) {
        dye[r * H + h] += w[j] * dy[t * H + h];
        dot += double(dy[t * H + h]) * ye[r * H + h];
      }
      if (dw) dw[j] += float(dot);
    }
}

std::vector<int64_t> selection_counts(const Selection& sel) {
  std::vector<int64_t> c(size_t(sel.n_scores), 0);
  for (int32_t col : sel.col) c[size_t(col)]++;
  return c;
}

std::vector<double> selection_fraction(const Selection& sel) {
  std::vector<double> f(size_t(sel.n_scores), 0.0);
  if (sel.n_tokens == 0) return f;
  auto c = selection_counts(sel);
  for (size_t i = 0; i < f.size(); ++i) f[i] = double(c[i]) / double(sel.n_tokens);
  return f;
}

double balance_loss(float* dprobs, const float* probs, int64_t N, int S, int E, const double* f, float coef) {
  SY_CHECK(E >= 1 && E <= S, "[train balance_loss] ", E, " experts but ", S, " score columns");
  if (N == 0) return 0.0;
  const int m = S - E;
  std::vector<double> P(size_t(S), 0.0);
  for (int64_t t = 0; t < N; ++t)
    for (int i = 0; i < S; ++i) P[size_t(i)] += probs[t * S + i];
  double loss = 0, f_null = 0, p_null = 0;
  for (int i = 0; i < E; ++i) loss += f[i] * P[size_t(i)] / double(N);
  for (int i = E; i < S; ++i) {
    f_null += f[i] / m;
    p_null += P[size_t(i)] / double(N) / m;
  }
  loss = double(E) * (loss + f_null * p_null);
  if (dprobs) {
    for (int i = 0; i < S; ++i) {
      const float g = float(double(coef) * E * (i < E ? f[i] : f_null / m) / double(N));
      for (int64_t t = 0; t < N; ++t) dprobs[t * S + i] += g;
    }
  }
  return loss;
}

double z_loss(float* dlogits, const float* logits, int64_t N, int S, float coef) {
  if (N == 0) return 0.0;
  double total = 0;
  for (int64_t t = 0; t < N; ++t) {
    const float* l = logits + t * S;
    const float mx = *std::max_element(l, l + S);
    double sum = 0;
    for (int i = 0; i < S; ++i) sum += std::exp(double(l[i]) - mx);
    const double lse = double(mx) + std::log(sum);
    total += lse * lse;
    if (dlogits)
      for (int i = 0; i < S; ++i)
        dlogits[t * S + i] += float(double(coef) * 2.0 * lse * std::exp(double(l[i]) - lse) / double(N));
  }
  return total / double(N);
}

double entropy_loss(float* dprobs, const float* probs, int64_t N, int S, float coef) {
  if (N == 0) return 0.0;
  double total = 0;
  for (int64_t t = 0; t < N; ++t)
    for (int i = 0; i < S; ++i) {
      const double p = probs[t * S + i];
      if (p <= 0) continue;  // lim p log p = 0; the gradient there is unbounded, leave it 0
      total -= p * std::log(p);
      if (dprobs) dprobs[t * S + i] += float(-double(coef) * (std::log(p) + 1.0) / double(N));
    }
  return total / double(N);
}

void aux_free_bias_update(float* bias, const int64_t* load, int E, float rate) {
  double mean = 0;
  for (int i = 0; i < E; ++i) mean += double(load[i]);
  mean /= E;
  for (int i = 0; i < E; ++i) {
    const double d = mean - double(load[i]);
    bias[i] += rate * float((d > 0) - (d < 0));
  }
}

}  // namespace sy::train
