// libFuzzer target: the routing-trace reader (offload/trace.h) must turn any input into a Trace or
// a sy::Error, and the analyses must run on any trace it accepts. Build with -DSY_FUZZ=ON (clang).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "offload/trace.h"
#include "offload/trace_analysis.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sy::offload;
  Trace tr;
  try {
    tr = parse_trace(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const sy::Error&) {
    return 0;
  }
  int cap = tr.max_active() > 0 ? tr.max_active() : 1;
  replay_policy(tr, PolicyKind::LRU, cap, CacheScope::PerLayer);
  replay_policy(tr, PolicyKind::LFU, cap + 1, CacheScope::Global);
  replay_policy(tr, PolicyKind::Predictive, cap, CacheScope::PerLayer);
  replay_belady(tr, cap, CacheScope::Global);
  predictor_accuracy(tr);
  segment_routing_best_performance(tr, 2);
  segment_cache_best_hit_rate(tr, 2, cap);
  return 0;
}
