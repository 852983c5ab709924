#include "moe/stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sy {

RoutingStats compute_routing_stats(const Routing& r, const float* logits) {
  RoutingStats s;
  const int64_t T = r.n_tokens;
  const int E = r.n_experts;
  const int S = r.n_scores;
  s.n_tokens = T;
  s.n_experts = E;
  s.dropped = r.dropped;
  s.tokens_per_expert.assign(size_t(E), 0);
  for (int32_t e : r.expert) s.tokens_per_expert[size_t(e)]++;
  if (T > 0) {
    s.experts_per_token_min = 1 << 30;
    for (int64_t t = 0; t < T; ++t) {
      int n = r.offsets[size_t(t) + 1] - r.offsets[size_t(t)];
      s.experts_per_token_max = std::max(s.experts_per_token_max, n);
      s.experts_per_token_min = std::min(s.experts_per_token_min, n);
    }
    s.experts_per_token_mean = double(r.nnz()) / double(T);
  }
  double mean = 0, var = 0, mx = 0;
  for (auto c : s.tokens_per_expert) {
    mean += double(c);
    mx = std::max(mx, double(c));
  }
  mean /= std::max(E, 1);
  for (auto c : s.tokens_per_expert) var += (double(c) - mean) * (double(c) - mean);
  var /= std::max(E, 1);
  s.load_max_over_mean = mean > 0 ? mx / mean : 0;
  s.load_cv = mean > 0 ? std::sqrt(var) / mean : 0;

  if (!r.probs.empty() && T > 0) {
    // selection counts per score column (before dropping)
    std::vector<double> f(size_t(S), 0.0), P(size_t(S), 0.0);
    if (!r.selected.empty()) {
      for (int i = 0; i < S; ++i) f[size_t(i)] = double(r.selected[size_t(i)]);
    } else {
      for (int32_t e : r.expert) f[size_t(e)] += 1;
    }
    double ent = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* p = r.probs.data() + t * S;
      for (int i = 0; i < S; ++i) {
        P[size_t(i)] += p[i];
        if (p[i] > 0) ent -= double(p[i]) * std::log(double(p[i]));
      }
    }
    s.entropy = ent / double(T);
    double loss = 0;
    for (int i = 0; i < E; ++i) loss += (f[size_t(i)] / double(T)) * (P[size_t(i)] / double(T));
    int m = S - E;
    if (m > 0) {  // null experts: one bucket with mean f and mean P
      double fn = 0, pn = 0;
      for (int i = E; i < S; ++i) {
        fn += f[size_t(i)];
        pn += P[size_t(i)];
      }
      loss += (fn / m / double(T)) * (pn / m / double(T));
    }
    s.lb_loss = double(E) * loss;
  }
  if (logits && T > 0) {
    double z = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* l = logits + t * S;
      float m = *std::max_element(l, l + S);
      double sum = 0;
      for (int i = 0; i < S; ++i) sum += std::exp(double(l[i]) - m);
      double lse = m + std::log(sum);
      z += lse * lse;
    }
    s.z_loss = z / double(T);
  }
  return s;
}

void RoutingStats::merge(const RoutingStats& o) {
  if (o.n_tokens == 0) return;
  if (n_tokens == 0) {
    *this = o;
    return;
  }
  SY_CHECK(o.n_experts == n_experts, "[stats] cannot merge statistics of ", n_experts, " and ", o.n_experts, " experts");
  double a = double(n_tokens), b = double(o.n_tokens), n = a + b;
  auto wavg = [&](double x, double y) { return (x * a + y * b) / n; };
  experts_per_token_mean = wavg(experts_per_token_mean, o.experts_per_token_mean);
  entropy = wavg(entropy, o.entropy);
  lb_loss = wavg(lb_loss, o.lb_loss);
  z_loss = wavg(z_loss, o.z_loss);
  experts_per_token_max = std::max(experts_per_token_max, o.experts_per_token_max);
  experts_per_token_min = std::min(experts_per_token_min, o.experts_per_token_min);
  dropped += o.dropped;
  n_tokens += o.n_tokens;
  double mean = 0, mx = 0, var = 0;
  for (size_t i = 0; i < tokens_per_expert.size(); ++i) {
    tokens_per_expert[i] += o.tokens_per_expert[i];
    mean += double(tokens_per_expert[i]);
    mx = std::max(mx, double(tokens_per_expert[i]));
  }
  mean /= std::max<size_t>(tokens_per_expert.size(), 1);
  for (auto c : tokens_per_expert) var += (double(c) - mean) * (double(c) - mean);
  var /= std::max<size_t>(tokens_per_expert.size(), 1);
  load_max_over_mean = mean > 0 ? mx / mean : 0;
  load_cv = mean > 0 ? std::sqrt(var) / mean : 0;
}

std::string RoutingStats::summary() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "experts/token %.2f (min %d, max %d)  load max/mean %.2f  cv %.2f  dropped %lld  entropy %.3f  "
                "lb_loss %.4f  z_loss %.3f",
                experts_per_token_mean, experts_per_token_min, experts_per_token_max, load_max_over_mean, load_cv,
                (long long)dropped, entropy, lb_loss, z_loss);
  return buf;
}

}  // namespace sy
