#include "moe/label_stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sy {

LabelRouting::LabelRouting(int n_layers, int n_experts, std::vector<std::string> label_names)
    : labels(std::move(label_names)) {
  SY_CHECK(n_layers >= 0 && n_experts > 0, "[label_stats] bad sizes: layers ", n_layers, ", experts ", n_experts);
  c.assign(size_t(n_layers), std::vector<std::vector<double>>(labels.size(), std::vector<double>(size_t(n_experts), 0.0)));
  tokens.assign(size_t(n_layers), 0);
}

void LabelRouting::add(int layer, int label, std::span<const int64_t> tokens_per_expert, int64_t n_tokens) {
  SY_CHECK(layer >= 0 && layer < n_layers(), "[label_stats] layer ", layer, " out of range (", n_layers(), ")");
  SY_CHECK(label >= 0 && size_t(label) < labels.size(), "[label_stats] label ", label, " out of range (",
           labels.size(), ")");
  auto& row = c[size_t(layer)][size_t(label)];
  SY_CHECK(tokens_per_expert.size() == row.size(), "[label_stats] ", tokens_per_expert.size(),
           " expert counts, expected ", row.size());
  for (size_t e = 0; e < row.size(); ++e) row[e] += double(tokens_per_expert[e]);
  tokens[size_t(layer)] += n_tokens;
}

namespace {
// Row sums, column sums and the total of a non-negative [G][E] table.
struct Margins {
  std::vector<double> g, e;
  double total = 0;
};
Margins margins(const std::vector<std::vector<double>>& c) {
  Margins m;
  m.g.assign(c.size(), 0.0);
  const size_t E = c.empty() ? 0 : c[0].size();
  m.e.assign(E, 0.0);
  for (size_t g = 0; g < c.size(); ++g) {
    SY_CHECK(c[g].size() == E, "[label_stats] row ", g, " has ", c[g].size(), " columns, expected ", E);
    for (size_t e = 0; e < E; ++e) {
      SY_CHECK(c[g][e] >= 0 && std::isfinite(c[g][e]), "[label_stats] count [", g, "][", e, "] = ", c[g][e],
               " (must be finite and >= 0)");
      m.g[g] += c[g][e];
      m.e[e] += c[g][e];
    }
  }
  for (double v : m.g) m.total += v;
  return m;
}
}  // namespace

double mutual_information_bits(const std::vector<std::vector<double>>& c) {
  const Margins m = margins(c);
  if (m.total <= 0) return 0;
  double mi = 0;
  for (size_t g = 0; g < c.size(); ++g)
    for (size_t e = 0; e < m.e.size(); ++e) {
      if (c[g][e] <= 0) continue;
      // P(g,e) / (P(g) P(e)) = c * total / (rowsum * colsum)
      mi += c[g][e] / m.total * std::log2(c[g][e] * m.total / (m.g[g] * m.e[e]));
    }
  return std::max(mi, 0.0);  // rounding can leave -1e-17 for independent tables
}

double label_entropy_bits(const std::vector<std::vector<double>>& c) {
  const Margins m = margins(c);
  double h = 0;
  for (double v : m.g)
    if (v > 0) h -= v / m.total * std::log2(v / m.total);
  return h;
}

LayerSpecialisation specialisation(const LabelRouting& r, int layer) {
  SY_CHECK(layer >= 0 && layer < r.n_layers(), "[label_stats] layer ", layer, " out of range");
  const auto& c = r.c[size_t(layer)];
  LayerSpecialisation s;
  s.mi_bits = mutual_information_bits(c);
  s.label_entropy_bits = label_entropy_bits(c);
  s.nmi = s.label_entropy_bits > 0 ? s.mi_bits / s.label_entropy_bits : 0;
  const Margins m = margins(c);
  s.load_fraction.assign(m.e.size(), 0.0);
  if (m.total > 0) {
    double mx = 0;
    for (size_t e = 0; e < m.e.size(); ++e) {
      s.load_fraction[e] = m.e[e] / m.total;
      mx = std::max(mx, m.e[e]);
    }
    s.load_max_over_mean = mx / (m.total / double(m.e.size()));
  }
  const int64_t t = r.tokens[size_t(layer)];
  s.experts_per_token = t > 0 ? m.total / double(t) : 0;
  return s;
}

}  // namespace sy
