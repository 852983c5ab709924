// Small helpers shared by the router families in this folder: parameter validation that names the
// parameter, group-limited masks, and the splitmix64 hash used by the hash and random routers.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "moe/router.h"

namespace sy::routing {

// k in [1, max_k]; "[router NAME] parameter k=9 exceeds the number of experts (8)".
inline int spec_k(const RouterSpec& s, const std::string& key, int64_t def, int max_k, const char* what = "experts") {
  int64_t k = s.get_int(key, def);
  SY_CHECK(k >= 1, "[router ", s.name, "] parameter ", key, "=", k, " must be at least 1");
  SY_CHECK(k <= max_k, "[router ", s.name, "] parameter ", key, "=", k, " exceeds the number of ", what, " (", max_k,
           ")");
  return int(k);
}

// A float parameter that must be > 0 (and, when max > 0, <= max).
inline double spec_positive(const RouterSpec& s, const std::string& key, double def, double max = 0) {
  double v = s.get_float(key, def);
  SY_CHECK(v > 0, "[router ", s.name, "] parameter ", key, "=", v, " must be greater than 0");
  SY_CHECK(max <= 0 || v <= max, "[router ", s.name, "] parameter ", key, "=", v, " must be at most ", max);
  return v;
}

// Group-limited routing parameters (DeepSeek-V2/V3): `groups` must divide E, topk_group in
// [1, groups] (default: all groups), and the kept groups must hold at least k experts.
struct GroupParams {
  int groups = 1;
  int topk_group = 1;
};
inline GroupParams spec_groups(const RouterSpec& s, int n_experts, int k) {
  GroupParams g;
  int64_t n = s.get_int("groups", 1);
  SY_CHECK(n >= 1, "[router ", s.name, "] parameter groups=", n, " must be at least 1");
  SY_CHECK(n <= n_experts && n_experts % n == 0, "[router ", s.name, "] parameter groups=", n,
           " does not divide the number of experts (", n_experts, ")");
  g.groups = int(n);
  int64_t tg = s.get_int("topk_group", n);
  SY_CHECK(tg >= 1, "[router ", s.name, "] parameter topk_group=", tg, " must be at least 1");
  SY_CHECK(tg <= n, "[router ", s.name, "] parameter topk_group=", tg, " exceeds groups=", n);
  g.topk_group = int(tg);
  const int64_t kept = tg * (n_experts / n);
  SY_CHECK(k <= kept, "[router ", s.name, "] parameter k=", k, " exceeds the ", kept,
           " experts of the topk_group=", tg, " kept groups");
  return g;
}

// Keeps the `topk_group` groups with the highest group_score (ties: lower group index) and sets
// every expert of the other groups to -inf in `x` ([E], groups contiguous: group g = experts
// [g*E/G, (g+1)*E/G)).
inline void mask_groups(float* x, int n_experts, const GroupParams& g, const float* group_score) {
  if (g.topk_group >= g.groups) return;
  std::vector<int32_t> keep(size_t(g.topk_group));
  topk_indices(group_score, g.groups, g.topk_group, keep.data());
  std::vector<char> kept(size_t(g.groups), 0);
  for (int32_t i : keep) kept[size_t(i)] = 1;
  const int per = n_experts / g.groups;
  for (int gi = 0; gi < g.groups; ++gi)
    if (!kept[size_t(gi)])
      for (int e = gi * per; e < (gi + 1) * per; ++e) x[e] = -INFINITY;
}

// A per-layer parameter tensor of n values, checked for size and finiteness.
inline std::vector<float> checked_param(const std::string& router, const std::string& name, std::span<const float> v,
                                        size_t n) {
  SY_CHECK(v.size() == n, "[router ", router, "] parameter tensor '", name, "' has ", v.size(), " values, expected ", n);
  for (size_t i = 0; i < n; ++i)
    SY_CHECK(std::isfinite(v[i]), "[router ", router, "] parameter tensor '", name, "' value ", i, " is not finite (",
             v[i], ")");
  return {v.begin(), v.end()};
}

// splitmix64 (Steele, Lea, Flood 2014; the finaliser of Java's SplittableRandom):
//   z = x + 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB;
//   return z ^ z>>31   (all mod 2^64)
inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace sy::routing
