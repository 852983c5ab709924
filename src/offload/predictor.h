// Predictive expert prefetching without training (Fate, "Accurate Expert Predictions via
// Cross-Layer Gate"; ExpertFlow): the residual stream changes little from one layer to the next,
// so layer l+d's router gate applied to the hidden state at layer l predicts which experts layer
// l+d will choose. The prediction runs the real router (top-k, sigmoid, grouped, ...) on
//   logits = hidden [T, H] x W_g(l+d)^T (+ b_g)        [T, n_scores], f32
// and the predicted experts are prefetched into the cache while layer l computes.
//
// Wiring into a model (the runtime in src/model/ does this; nothing here edits it):
//   1. Build one PredictivePrefetcher for the model with, per layer, the gate WeightRef, bias,
//      Router and the layer's ExpertStore (offload::CachedExperts; any store works, prefetch is a
//      hint), and optionally the TraceWriter of `--trace` (predictions are then recorded).
//      Dense layers get an empty Layer (router == nullptr).
//   2. In the decoder loop, at every MoE layer l, call
//        prefetcher.on_layer(l, x, T, ctx);
//      with x = the [T, H] input of layer l's MoE block (after its norm: exactly what is passed to
//      MoELayer::forward) and the same RouteInput ctx (token ids, positions, decode), BEFORE
//      MoELayer::forward(l). It predicts layers l+1 .. l+lookahead (those with a router), calls
//      their store's prefetch() with the union of the per-token predictions (the loads overlap
//      with layer l's experts and layer l+1's attention), and records the per-token predictions.
//   3. The cache's policy should be PolicyKind::Predictive, which protects prefetched experts
//      from eviction until their layer runs.
// A non-causal router (expert choice) cannot predict during decode: those layers are skipped.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "moe/expert_store.h"
#include "moe/router.h"
#include "offload/trace.h"

namespace sy::offload {

struct ExpertPrediction {
  std::vector<std::vector<int32_t>> per_token;  // [T] experts each token is predicted to use, rank order
  std::vector<int32_t> experts;                 // union over the tokens, ascending
};

// hidden: [T, H] f32 row-major; gate: [router.num_scores(n_experts), H]; gate_bias: [n_scores] or
// null. ctx supplies token ids / positions / decode like MoELayer::forward (its logits and sizes
// are filled here).
ExpertPrediction predict_experts(const float* hidden, int64_t T, int64_t H, const WeightRef& gate,
                                 const float* gate_bias, const Router& router, int n_experts, RouteInput ctx = {},
                                 Backend& be = default_backend());

class PredictivePrefetcher {
 public:
  struct Layer {
    WeightRef gate;                       // [n_scores, H]
    const float* gate_bias = nullptr;     // [n_scores] optional
    const Router* router = nullptr;       // null: no routed experts at this layer
    int n_experts = 0;
    std::shared_ptr<ExpertStore> store;   // receives prefetch()
  };
  struct Stats {
    int64_t predictions = 0;        // (layer, target) predictions made
    int64_t experts_prefetched = 0; // experts passed to prefetch()
  };

  // lookahead: how many layers ahead to predict (1 or 2 in Fate). trace may be null; it must
  // outlive this object.
  PredictivePrefetcher(std::vector<Layer> layers, int lookahead = 1, TraceWriter* trace = nullptr);

  // See the wiring notes above. hidden: [T, H], the MoE input of `layer`.
  void on_layer(int layer, const float* hidden, int64_t T, RouteInput ctx = {}, Backend& be = default_backend());
  const Stats& stats() const { return stats_; }

 private:
  std::vector<Layer> layers_;
  int lookahead_;
  TraceWriter* trace_;
  Stats stats_;
};

}  // namespace sy::offload
