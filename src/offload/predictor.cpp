#include "offload/predictor.h"

#include <algorithm>

#include "core/error.h"
#include "offload/expert_cache.h"

namespace sy::offload {

ExpertPrediction predict_experts(const float* hidden, int64_t T, int64_t H, const WeightRef& gate,
                                 const float* gate_bias, const Router& router, int n_experts, RouteInput ctx,
                                 Backend& be) {
  SY_CHECK(T >= 0 && H > 0, "[predictor] bad shape [", T, ", ", H, "]");
  const int S = router.num_scores(n_experts);
  ExpertPrediction out;
  if (T == 0) return out;
  std::vector<float> logits(size_t(T) * size_t(S), 0.0f);
  if (router.uses_logits()) {
    SY_CHECK(!gate.empty() && gate.rows == S && gate.cols == H, "[predictor] router ", router.spec(), " needs a gate [",
             S, ", ", H, "], got [", gate.rows, ", ", gate.cols, "]");
    be.linear(hidden, T, gate, gate_bias, logits.data());
  }
  ctx.logits = logits.data();
  ctx.n_tokens = T;
  ctx.n_scores = S;
  Routing r;
  router.route(ctx, n_experts, r);
  SY_CHECK(r.n_tokens == T && int64_t(r.offsets.size()) == T + 1, "[predictor] router ", router.spec(),
           " returned a routing for ", r.n_tokens, " tokens, expected ", T);
  out.per_token.resize(size_t(T));
  std::vector<bool> any(size_t(n_experts), false);
  for (int64_t t = 0; t < T; ++t) {
    for (int32_t j = r.offsets[size_t(t)]; j < r.offsets[size_t(t) + 1]; ++j) {
      int32_t e = r.expert[size_t(j)];
      SY_CHECK(e >= 0 && e < n_experts, "[predictor] router ", router.spec(), " chose expert ", e, " of ", n_experts);
      out.per_token[size_t(t)].push_back(e);
      any[size_t(e)] = true;
    }
  }
  for (int e = 0; e < n_experts; ++e)
    if (any[size_t(e)]) out.experts.push_back(e);
  return out;
}

PredictivePrefetcher::PredictivePrefetcher(std::vector<Layer> layers, int lookahead, TraceWriter* trace)
    : layers_(std::move(layers)), lookahead_(lookahead), trace_(trace) {
  SY_CHECK(lookahead_ >= 1, "[predictor] lookahead must be >= 1, got ", lookahead_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    if (!L.router) continue;
    SY_CHECK(L.n_experts > 0, "[predictor] layer ", l, ": n_experts must be positive");
    SY_CHECK(L.store, "[predictor] layer ", l, ": no expert store to prefetch into");
    SY_CHECK(L.store->num_experts() == L.n_experts, "[predictor] layer ", l, ": store holds ", L.store->num_experts(),
             " experts, the layer has ", L.n_experts);
  }
}

void PredictivePrefetcher::on_layer(int layer, const float* hidden, int64_t T, RouteInput ctx, Backend& be) {
  SY_CHECK(layer >= 0 && layer < int(layers_.size()), "[predictor] layer ", layer, " out of range [0, ",
           layers_.size(), ")");
  for (int d = 1; d <= lookahead_; ++d) {
    const int target = layer + d;
    if (target >= int(layers_.size())) break;
    const Layer& L = layers_[size_t(target)];
    if (!L.router || (ctx.decode && !L.router->causal())) continue;
    const int64_t H = L.gate.cols > 0 ? L.gate.cols : 0;
    if (L.router->uses_logits() && H == 0) continue;
    RouteInput c = ctx;
    c.layer = target;
    ExpertPrediction p = predict_experts(hidden, T, L.router->uses_logits() ? H : 1, L.gate, L.gate_bias, *L.router,
                                         L.n_experts, c, be);
    if (auto* cached = dynamic_cast<CachedExperts*>(L.store.get()))
      cached->prefetch_ahead(p.experts);  // counted as a hit when it arrives in time
    else
      L.store->prefetch(p.experts);
    ++stats_.predictions;
    stats_.experts_prefetched += int64_t(p.experts.size());
    if (trace_) trace_->predict_batch(layer, target, p.per_token);
  }
}

}  // namespace sy::offload
