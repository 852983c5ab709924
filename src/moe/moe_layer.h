// The MoE layer (forward, f32 compute; weights f32, bf16 or f16):
//   logits = W_g x (+ b_g)                              router linear, [T, n_scores]
//   routing = router(logits)                            per token: experts S_t and weights w_t,e
//   y_t = sum_{e in S_t} w_t,e * FFN_e(x_t)              tokens grouped by expert: each expert's
//                                                       weights are read (acquired) once per batch
//   y_t += g_t * SharedFFN(x_t)                          optional shared expert, g_t = sigmoid(w_sg x_t)
//                                                       (Qwen2-MoE) or 1 (DeepSeek)
// When the batch uses more experts than the store can hold at once (ExpertStore::max_held(): an
// offloading cache smaller than a long prompt's experts), the experts are computed in chunks of
// max_held() / 2, the next chunk prefetched while one computes. Every slot's FFN output goes to its
// own row of a scratch buffer and the combine below runs in one fixed order, so the result is
// bitwise the same for any chunking.
// Output is the FFN output only; the caller adds the residual. A token that got no expert
// (dropped by capacity, or only null experts) gets 0 from the routed part.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "moe/expert_store.h"
#include "moe/router.h"
#include "moe/stats.h"

namespace sy {

struct MoEConfig {
  int64_t hidden = 0;     // H
  int64_t n_experts = 0;  // E routed experts
  int64_t expert_ffn = 0; // F, each routed expert's intermediate width
  FfnParams ffn;          // activation of every expert (routed and shared)
};

struct MoEWeights {
  WeightRef router;                        // [n_scores, H] (n_scores = router->num_scores(E))
  const float* router_bias = nullptr;      // [n_scores] optional (gpt-oss)
  std::shared_ptr<ExpertStore> experts;    // E routed experts, each FfnWeights with F, H
  FfnWeights shared;                       // optional shared expert(s); empty up = none
  WeightRef shared_gate;                   // [1, H] optional sigmoid gate of the shared expert
};

// What a forward call reports besides the output.
struct MoEForwardInfo {
  Routing routing;
  std::vector<float> logits;  // [T, n_scores]
  RoutingStats stats;
};

class MoELayer {
 public:
  MoELayer(MoEConfig cfg, MoEWeights w, std::unique_ptr<Router> router);

  // x: [T, H] row-major; out: [T, H], overwritten. ctx supplies token ids / positions / decode;
  // its logits and sizes are filled here. info (optional) receives routing, logits and stats.
  void forward(const float* x, int64_t T, float* out, RouteInput ctx = {}, MoEForwardInfo* info = nullptr,
               Backend& be = default_backend());

  const MoEConfig& config() const { return cfg_; }
  Router& router() { return *router_; }
  const MoEWeights& weights() const { return w_; }
  // Swaps the routing function (a --router override). The router must need no more scores than
  // the gate provides; throws otherwise.
  void set_router(std::unique_ptr<Router> r);

 private:
  MoEConfig cfg_;
  MoEWeights w_;
  std::unique_ptr<Router> router_;
  // scratch reused across calls
  std::vector<float> logits_, y_;
  std::vector<int32_t> rows_, dst_;
  std::vector<float> scale_;
};

// A dense FFN (the layers that are not MoE, and shared experts): out = FFN(x), [T, H].
void ffn_forward(const float* x, int64_t T, int64_t H, const FfnWeights& w, const FfnParams& p, float* out,
                 Backend& be = default_backend());

}  // namespace sy
