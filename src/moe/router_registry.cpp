#include <algorithm>
#include <cctype>
#include <cmath>
#include <mutex>
#include <numeric>

#include "core/error.h"
#include "moe/router.h"
#include "moe/routers/families.h"

namespace sy {

void Routing::reset(int64_t tokens, int experts, int scores) {
  n_tokens = tokens;
  n_experts = experts;
  n_scores = scores;
  offsets.assign(1, 0);
  offsets.reserve(size_t(tokens) + 1);
  expert.clear();
  weight.clear();
  probs.clear();
  selected.clear();
  dropped = 0;
}

RouterSpec RouterSpec::parse(std::string_view spec) {
  RouterSpec s;
  auto colon = spec.find(':');
  s.name = std::string(spec.substr(0, colon));
  SY_CHECK(!s.name.empty(), "[router] empty router spec (expected e.g. 'topk:k=2')");
  for (char c : s.name)
    SY_CHECK(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_',
             "[router] bad router name '", s.name, "' in spec '", spec, "'");
  if (colon == std::string_view::npos) return s;
  std::string_view rest = spec.substr(colon + 1);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view kv = rest.substr(0, comma);
    auto eq = kv.find('=');
    SY_CHECK(eq != std::string_view::npos && eq > 0 && eq + 1 < kv.size(), "[router ", s.name, "] parameter '", kv,
             "' is not key=value");
    std::string key(kv.substr(0, eq));
    SY_CHECK(!s.params.count(key), "[router ", s.name, "] parameter '", key, "' given twice");
    s.params[key] = std::string(kv.substr(eq + 1));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
    SY_CHECK(!rest.empty(), "[router ", s.name, "] trailing ',' in spec '", spec, "'");
  }
  return s;
}

int64_t RouterSpec::get_int(const std::string& key, int64_t def) const {
  used_.insert(key);
  auto it = params.find(key);
  if (it == params.end()) return def;
  try {
    size_t pos = 0;
    long long v = std::stoll(it->second, &pos);
    if (pos == it->second.size()) return v;
  } catch (...) {
  }
  fail("[router ", name, "] parameter ", key, "='", it->second, "' is not an integer");
}

double RouterSpec::get_float(const std::string& key, double def) const {
  used_.insert(key);
  auto it = params.find(key);
  if (it == params.end()) return def;
  try {
    size_t pos = 0;
    double v = std::stod(it->second, &pos);
    if (pos == it->second.size() && std::isfinite(v)) return v;
  } catch (...) {
  }
  fail("[router ", name, "] parameter ", key, "='", it->second, "' is not a finite number");
}

bool RouterSpec::get_bool(const std::string& key, bool def) const {
  used_.insert(key);
  auto it = params.find(key);
  if (it == params.end()) return def;
  const std::string& v = it->second;
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  fail("[router ", name, "] parameter ", key, "='", v, "' is not a boolean (true/false)");
}

std::string RouterSpec::get_str(const std::string& key, const std::string& def) const {
  used_.insert(key);
  auto it = params.find(key);
  return it == params.end() ? def : it->second;
}

void RouterSpec::finish() const {
  for (const auto& [k, v] : params) {
    if (used_.count(k)) continue;
    std::string known;
    for (const auto& u : used_) known += (known.empty() ? "" : ", ") + u;
    fail("[router ", name, "] unknown parameter '", k, "' (known: ", known.empty() ? "none" : known, ")");
  }
}

std::string RouterSpec::str() const {
  std::string s = name;
  char sep = ':';
  for (const auto& [k, v] : params) {
    s += sep + k + "=" + v;
    sep = ',';
  }
  return s;
}

void Router::set_param(const std::string& name, std::span<const float>) {
  fail("[router ", spec(), "] has no parameter tensor '", name, "'");
}

namespace {
std::vector<RouterInfo>& registry_storage() {
  static std::vector<RouterInfo> r;
  return r;
}
std::once_flag g_builtin_once;
void ensure_builtins() {
  std::call_once(g_builtin_once, [] { register_builtin_routers(); });
}
}  // namespace

const std::vector<RouterInfo>& router_registry() {
  ensure_builtins();
  return registry_storage();
}

void register_router(RouterInfo info) {
  auto& r = registry_storage();
  for (const auto& x : r) SY_CHECK(x.name != info.name, "[router] '", info.name, "' registered twice");
  r.push_back(std::move(info));
}

std::unique_ptr<Router> make_router(std::string_view spec_str, int n_experts) {
  SY_CHECK(n_experts > 0, "[router] number of experts must be positive, got ", n_experts);
  RouterSpec spec = RouterSpec::parse(spec_str);
  for (const auto& info : router_registry()) {
    if (info.name != spec.name) continue;
    auto r = info.make(spec, n_experts);
    spec.finish();
    return r;
  }
  std::string names;
  for (const auto& info : router_registry()) names += (names.empty() ? "" : ", ") + info.name;
  fail("[router] unknown router '", spec.name, "' (available: ", names, ")");
}

std::string router_help() {
  std::string s;
  for (const auto& info : router_registry()) {
    s += "  " + info.name + std::string(info.name.size() < 14 ? 14 - info.name.size() : 1, ' ') + info.summary + "\n";
    if (!info.params.empty()) s += "                  params: " + info.params + "\n";
  }
  return s;
}

namespace routing {

void check_finite(const RouteInput& in, const std::string& router_name) {
  const int64_t n = in.n_tokens * in.n_scores;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(in.logits[i]))
      fail("[router ", router_name, "] logits of token ", i / in.n_scores, ", column ", i % in.n_scores,
           " are not finite (", in.logits[i], ")");
  }
}

void softmax_row(const float* x, int n, float* out) {
  float m = *std::max_element(x, x + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(x[i]) - m);
  for (int i = 0; i < n; ++i) out[i] = float(std::exp(double(x[i]) - m) / sum);
}

void topk_indices(const float* x, int n, int k, int32_t* out) {
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  });
  std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace routing
}  // namespace sy
