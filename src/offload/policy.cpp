#include "offload/policy.h"

#include <limits>

#include "core/error.h"

namespace sy::offload {

const char* policy_name(PolicyKind p) {
  switch (p) {
    case PolicyKind::LRU: return "lru";
    case PolicyKind::LFU: return "lfu";
    case PolicyKind::Predictive: return "predictive";
  }
  return "?";
}

PolicyKind parse_policy(std::string_view s) {
  if (s == "lru") return PolicyKind::LRU;
  if (s == "lfu") return PolicyKind::LFU;
  if (s == "predictive") return PolicyKind::Predictive;
  fail("[offload] unknown cache policy '", s, "' (known: lru, lfu, predictive)");
}

namespace {

// Recency by a logical clock; victim() scans the candidates (a cache holds at most a few
// thousand experts, and a scan per eviction is cheap next to reading an expert).
class Lru : public EvictionPolicy {
 public:
  PolicyKind kind() const override { return PolicyKind::LRU; }
  void insert(ExpertKey k, bool) override { last_[k] = ++clock_; }
  void access(ExpertKey k) override { last_[k] = ++clock_; }
  void erase(ExpertKey k) override { last_.erase(k); }
  ExpertKey victim(std::span<const ExpertKey> c) const override {
    ExpertKey best = c[0];
    uint64_t best_t = std::numeric_limits<uint64_t>::max();
    for (ExpertKey k : c) {
      uint64_t t = recency(k);
      if (t < best_t) best_t = t, best = k;
    }
    return best;
  }

 protected:
  uint64_t recency(ExpertKey k) const {
    auto it = last_.find(k);
    return it == last_.end() ? 0 : it->second;
  }
  uint64_t clock_ = 0;
  std::unordered_map<ExpertKey, uint64_t> last_;
};

class Lfu final : public Lru {
 public:
  PolicyKind kind() const override { return PolicyKind::LFU; }
  void access(ExpertKey k) override {
    Lru::access(k);
    ++freq_[k];
  }
  ExpertKey victim(std::span<const ExpertKey> c) const override {
    ExpertKey best = c[0];
    uint64_t best_f = std::numeric_limits<uint64_t>::max(), best_t = best_f;
    for (ExpertKey k : c) {
      auto it = freq_.find(k);
      uint64_t f = it == freq_.end() ? 0 : it->second, t = recency(k);
      if (f < best_f || (f == best_f && t < best_t)) best_f = f, best_t = t, best = k;
    }
    return best;
  }

 private:
  std::unordered_map<ExpertKey, uint64_t> freq_;  // kept across evictions
};

class Predictive final : public Lru {
 public:
  PolicyKind kind() const override { return PolicyKind::Predictive; }
  void insert(ExpertKey k, bool prefetch) override {
    Lru::insert(k, prefetch);
    if (prefetch) pending_[k] = true;
  }
  void access(ExpertKey k) override {
    Lru::access(k);
    pending_.erase(k);
  }
  void hint(ExpertKey k) override {
    Lru::access(k);
    pending_[k] = true;
  }
  void erase(ExpertKey k) override {
    Lru::erase(k);
    pending_.erase(k);
  }
  ExpertKey victim(std::span<const ExpertKey> c) const override {
    ExpertKey best = c[0];
    bool best_p = true;
    uint64_t best_t = std::numeric_limits<uint64_t>::max();
    for (ExpertKey k : c) {
      bool p = pending_.count(k) != 0;
      uint64_t t = recency(k);
      if ((best_p && !p) || (p == best_p && t < best_t)) best_p = p, best_t = t, best = k;
    }
    return best;
  }

 private:
  std::unordered_map<ExpertKey, bool> pending_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::LRU: return std::make_unique<Lru>();
    case PolicyKind::LFU: return std::make_unique<Lfu>();
    case PolicyKind::Predictive: return std::make_unique<Predictive>();
  }
  fail("[offload] unknown policy kind ", int(kind));
}

}  // namespace sy::offload
