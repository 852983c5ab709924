// Routers that ignore the gate (uses_logits() = false), deterministic under a seed:
//   random: stochastic experts (THOR, Zuo et al. 2022): each token gets k distinct random experts,
//           drawn from a counter-based hash of (seed, layer, position), so a token's experts do not
//           depend on how the batch is split or on the thread count.
//   hash:   hash layers (Roller et al. 2021): the experts are a fixed function of the token id
//           (and seed, layer); needs RouteInput::token_ids.
// Both draw with splitmix64 (routers/common.h; all arithmetic mod 2^64, ints cast to u64 two's
// complement, so position -1 is 2^64-1):
//   key  = position (random; RouteInput::positions, default t) or token id (hash)
//   h    = splitmix64(splitmix64(splitmix64(seed) ^ layer) ^ key)
//   perm = [0, 1, ..., E-1]; for j = 0..k-1: r = splitmix64(h ^ j); i = j + r mod (E - j);
//          swap(perm[j], perm[i])                     (partial Fisher-Yates)
//   experts = perm[0..k), listed in that order; w = 1/k each
// Routing::probs is empty (no router probabilities). Params: k (default 2 random, 1 hash), seed (0).
#include <numeric>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

void pick_distinct(uint64_t h, int k, int E, std::vector<int32_t>& perm) {
  perm.resize(size_t(E));
  std::iota(perm.begin(), perm.end(), 0);
  for (int j = 0; j < k; ++j) {
    uint64_t r = routing::splitmix64(h ^ uint64_t(j));
    size_t i = size_t(j) + size_t(r % uint64_t(E - j));
    std::swap(perm[size_t(j)], perm[i]);
  }
}

class HashRouter final : public Router {
 public:
  HashRouter(bool by_token, int k, uint64_t seed) : by_token_(by_token), k_(k), seed_(seed) {}

  std::string spec() const override { return str(name(), ":k=", k_, ",seed=", seed_); }
  bool uses_logits() const override { return false; }

  void route(const RouteInput& in, int E, Routing& out) const override {
    SY_CHECK(k_ <= E, "[router ", name(), "] k=", k_, " exceeds the number of experts (", E, ")");
    SY_CHECK(!by_token_ || in.token_ids || in.n_tokens == 0,
             "[router hash] needs the token ids (RouteInput::token_ids) of the ", in.n_tokens,
             " tokens; use a gate router such as topk when they are unknown");
    out.reset(in.n_tokens, E, E);
    const uint64_t h_layer = routing::splitmix64(routing::splitmix64(seed_) ^ uint64_t(int64_t(in.layer)));
    const float w = float(1.0 / k_);
    std::vector<int32_t> perm;
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      uint64_t key = by_token_ ? uint64_t(int64_t(in.token_ids[t])) : uint64_t(in.positions ? in.positions[t] : t);
      pick_distinct(routing::splitmix64(h_layer ^ key), k_, E, perm);
      for (int j = 0; j < k_; ++j) out.push(perm[size_t(j)], w);
      out.end_token();
    }
  }

 private:
  const char* name() const { return by_token_ ? "hash" : "random"; }
  bool by_token_;
  int k_;
  uint64_t seed_;
};

std::unique_ptr<Router> make_hash(const RouterSpec& s, int E, bool by_token) {
  int k = routing::spec_k(s, "k", by_token ? 1 : 2, E);
  int64_t seed = s.get_int("seed", 0);
  SY_CHECK(seed >= 0, "[router ", s.name, "] parameter seed=", seed, " must be non-negative");
  return std::make_unique<HashRouter>(by_token, k, uint64_t(seed));
}

}  // namespace

void register_hash_routers() {
  register_router({"random", "k distinct random experts per token from a hash of (seed, layer, position) (THOR)",
                   "k=2 experts per token; seed=0", "random:k=2,seed=0",
                   [](const RouterSpec& s, int E) { return make_hash(s, E, false); }});
  register_router({"hash", "experts fixed by a hash of the token id (hash layers); needs token ids",
                   "k=1 experts per token; seed=0", "hash:k=1,seed=0",
                   [](const RouterSpec& s, int E) { return make_hash(s, E, true); }});
}

}  // namespace sy
