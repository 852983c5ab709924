// Offline analysis of routing traces (offload/trace.h): cache replays and the local routing
// consistency metrics of moe-lrc.
//
// Access stream: tokens in trace order; within a token, layers in ascending order; at each
// recorded layer the token's experts are requested together (all of them must be resident at
// once, so they are pinned while the step is served). A request is a hit when the expert is
// resident, otherwise a load (bytes_read += expert_bytes[layer]). Caches start empty.
// Capacities are in experts: CacheScope::PerLayer gives every layer its own cache of that many
// experts (the budget split evenly per layer); CacheScope::Global one cache over all layers.
//
// Policies (offload/policy.h) replay exactly as the live cache runs them. The predictive policy
// also replays the trace's predictions: right after layer `from` is served, every predicted
// expert of layer `to` that is not resident is loaded (a prefetch: it costs bytes but is no
// demand access), evicting by the policy; a prefetch that finds nothing evictable is dropped.
// Belady's MIN: on a miss with a full cache, evict the resident expert (not requested in this
// step) whose next request is farthest in the future, or never comes (Belady 1966; optimal
// for demand loading). Belady ignores predictions.
//
// Local routing consistency (Liang et al. 2025, "Not All Models Suit Expert Offloading: On Local
// Routing Consistency of Mixture-of-Expert Models", arXiv 2505.16056). The seed text gives only
// the names; this is our reading of the definitions, checked against the authors' code
// (github.com/ljcleo/moe-lrc src/30_srp_calc.py, 31_srp_refine.py, 41_sch_calc.py):
//   SRP(m), segment routing best performance: every window of m consecutive tokens of one
//     sequence (all start positions) at one layer is served by one fixed expert set S: the
//     experts activated at least j times in the window. With c_e the activation count in the
//     window: matches = sum_{e in S} c_e, predicted = |S| * m, actual = sum_e c_e (= m * k).
//     These are summed over all windows (and, for the model-level value, all layers) and
//     SRP = max_j 2 * matches_j / (predicted_j + actual_j), the best F1 over the threshold j in
//     [0, m] (j = 0 selects every expert). High SRP: a few experts serve a whole segment.
//   SCH(L, C), segment cache best hit rate: a cache of C experts per layer that knows the next L
//     tokens. Before token i it holds the C best already-seen experts ranked by (activations in
//     tokens [i, i + L), then most recent use); a request is a hit when the expert is among them.
//     A never-seen expert is a hit while the cache still has a free slot (fewer than C distinct
//     experts seen so far, counting those earlier in the same token), as in the authors' code.
//     SCH = hits / requests over all sequences and layers. Unlike the replays above, SCH moves
//     experts in and out for free: it bounds what a cache with L tokens of foresight can reach.
// Sequences are the trace's `seq` ids; a token without a record at a layer is skipped there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "offload/policy.h"
#include "offload/trace.h"

namespace sy::offload {

enum class CacheScope : uint8_t { PerLayer, Global };
const char* scope_name(CacheScope s);  // "per-layer", "global"

struct ReplayResult {
  std::string policy;  // "lru", "lfu", "predictive", "belady"
  CacheScope scope = CacheScope::PerLayer;
  int capacity = 0;          // experts per layer (PerLayer) or in total (Global)
  int64_t requests = 0;      // demand requests
  int64_t hits = 0;
  int64_t loads = 0;         // demand loads (= requests - hits)
  int64_t prefetches = 0;    // prefetch loads (predictive only)
  int64_t prefetch_used = 0; // prefetched experts later requested before being evicted
  uint64_t bytes_read = 0;   // all loads, demand and prefetch
  double hit_rate() const { return requests ? double(hits) / double(requests) : 0.0; }
};

// Throws when the capacity cannot hold one step's experts, giving the minimum.
ReplayResult replay_policy(const Trace& tr, PolicyKind policy, int capacity, CacheScope scope);
ReplayResult replay_belady(const Trace& tr, int capacity, CacheScope scope);

struct PredictorAccuracy {
  int distance = 0;           // to - from
  int64_t predictions = 0;    // (token, from, to) predictions whose target layer was recorded
  int64_t predicted = 0;      // predicted experts
  int64_t actual = 0;         // experts the target layer then chose
  int64_t correct = 0;        // |predicted ∩ actual|
  double recall() const { return actual ? double(correct) / double(actual) : 0.0; }
  double precision() const { return predicted ? double(correct) / double(predicted) : 0.0; }
};
// One entry per prediction distance present in the trace, ascending.
std::vector<PredictorAccuracy> predictor_accuracy(const Trace& tr);

// layer = -1: pooled over all layers (the model-level value). Returns 0 when no sequence has m
// tokens at that layer.
double segment_routing_best_performance(const Trace& tr, int m, int layer = -1);
// Hit rates for C = 1..max_cache (index C-1). layer = -1: all layers, each with its own cache.
std::vector<double> segment_cache_best_hit_rate(const Trace& tr, int L, int max_cache, int layer = -1);

}  // namespace sy::offload
