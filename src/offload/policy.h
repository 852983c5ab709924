// Eviction policies for expert caches. One implementation serves both the live cache
// (offload/expert_cache.h) and the trace replays of `switchyard trace analyze`
// (offload/trace_analysis.h), so a replayed hit rate measures the code that runs.
//
// A key names one expert of one layer: key = (layer << 32) | expert. The cache tells the policy
// what happens (insert, demand access, erase) and asks it for a victim among the experts it may
// evict (resident, unpinned). Policies:
//   lru         evict the least recently used (Belady's LRU; mixtral-offloading's per-layer LRU)
//   lfu         evict the least frequently used; frequency counts every demand access since the
//               start (not reset by eviction: a popular expert stays popular), ties -> LRU
//   predictive  LRU, but experts that were prefetched on a prediction and not yet used are
//               protected: they are evicted only when nothing else is evictable (Fate /
//               ExpertFlow style prefetching into an LRU cache)
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sy::offload {

using ExpertKey = uint64_t;
inline ExpertKey expert_key(int layer, int64_t expert) { return (uint64_t(uint32_t(layer)) << 32) | uint32_t(expert); }
inline int key_layer(ExpertKey k) { return int(k >> 32); }
inline int32_t key_expert(ExpertKey k) { return int32_t(k & 0xffffffffu); }

enum class PolicyKind : uint8_t { LRU, LFU, Predictive };
const char* policy_name(PolicyKind p);       // "lru", "lfu", "predictive"
PolicyKind parse_policy(std::string_view s);  // throws naming the accepted values

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual PolicyKind kind() const = 0;
  // The expert became resident; prefetch = loaded on a hint, not on a demand access.
  virtual void insert(ExpertKey k, bool prefetch) = 0;
  // A demand access (a hit, or the access that loaded it).
  virtual void access(ExpertKey k) = 0;
  // A resident expert was hinted again (predicted for a coming layer).
  virtual void hint(ExpertKey k) { (void)k; }
  virtual void erase(ExpertKey k) = 0;
  // One of `candidates` (non-empty, all resident and evictable) to evict.
  virtual ExpertKey victim(std::span<const ExpertKey> candidates) const = 0;
};

std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind);

}  // namespace sy::offload
