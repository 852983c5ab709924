#include "moe/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace sy {

MoELayer::MoELayer(MoEConfig cfg, MoEWeights w, std::unique_ptr<Router> router)
    : cfg_(cfg), w_(std::move(w)), router_(std::move(router)) {
  SY_CHECK(cfg_.hidden > 0 && cfg_.n_experts > 0 && cfg_.expert_ffn > 0, "[moe] hidden (", cfg_.hidden,
           "), n_experts (", cfg_.n_experts, ") and expert_ffn (", cfg_.expert_ffn, ") must be positive");
  SY_CHECK(router_, "[moe] no router given");
  SY_CHECK(w_.experts && w_.experts->num_experts() == cfg_.n_experts, "[moe] expert store holds ",
           w_.experts ? w_.experts->num_experts() : 0, " experts, config says ", cfg_.n_experts);
  set_router(std::move(router_));
  if (!w_.shared.up.empty()) {
    SY_CHECK(w_.shared.up.cols == cfg_.hidden && w_.shared.down.rows == cfg_.hidden, "[moe] shared expert shapes ",
             "do not match hidden ", cfg_.hidden);
  }
  if (!w_.shared_gate.empty()) {
    SY_CHECK(w_.shared_gate.rows == 1 && w_.shared_gate.cols == cfg_.hidden, "[moe] shared_expert_gate has shape [",
             w_.shared_gate.rows, ", ", w_.shared_gate.cols, "], expected [1, ", cfg_.hidden, "]");
  }
}

void MoELayer::set_router(std::unique_ptr<Router> r) {
  SY_CHECK(r, "[moe] no router given");
  int need = r->num_scores(int(cfg_.n_experts));
  if (r->uses_logits()) {
    SY_CHECK(!w_.router.empty(), "[moe] router ", r->spec(), " needs a gate weight but the layer has none");
    SY_CHECK(w_.router.cols == cfg_.hidden, "[moe] router weight has ", w_.router.cols, " columns, hidden is ",
             cfg_.hidden);
    SY_CHECK(w_.router.rows == need, "[moe] router ", r->spec(), " needs ", need, " gate outputs but the gate weight has ",
             w_.router.rows, " rows");
  }
  router_ = std::move(r);
}

void MoELayer::forward(const float* x, int64_t T, float* out, RouteInput ctx, MoEForwardInfo* info, Backend& be) {
  const int64_t H = cfg_.hidden;
  const int E = int(cfg_.n_experts);
  const int S = router_->num_scores(E);
  SY_CHECK(T >= 0, "[moe] negative token count");
  if (T == 0) return;

  // 1. Router logits.
  logits_.assign(size_t(T) * S, 0.0f);
  if (router_->uses_logits()) be.linear(x, T, w_.router, w_.router_bias, logits_.data());
  ctx.logits = logits_.data();
  ctx.n_tokens = T;
  ctx.n_scores = S;

  // 2. Routing decision.
  Routing local;
  Routing& r = info ? info->routing : local;
  router_->route(ctx, E, r);
  SY_CHECK(r.n_tokens == T && int64_t(r.offsets.size()) == T + 1, "[moe] router ", router_->spec(),
           " returned a routing for ", r.n_tokens, " tokens, expected ", T);
  const int64_t nnz = r.nnz();

  // 3. Group the token slots by expert (counting sort): each expert's weights are read once.
  std::vector<int64_t> count(size_t(E) + 1, 0);
  for (int32_t e : r.expert) {
    SY_CHECK(e >= 0 && e < E, "[moe] router ", router_->spec(), " chose expert ", e, " of ", E);
    count[size_t(e) + 1]++;
  }
  std::partial_sum(count.begin(), count.end(), count.begin());
  rows_.resize(size_t(nnz) + size_t(T));
  dst_.resize(size_t(nnz) + size_t(T));
  scale_.resize(size_t(nnz) + size_t(T));
  {
    std::vector<int64_t> fill(count.begin(), count.end() - 1);
    for (int64_t t = 0; t < T; ++t) {
      for (int32_t j = r.offsets[size_t(t)]; j < r.offsets[size_t(t) + 1]; ++j) {
        int64_t pos = fill[size_t(r.expert[size_t(j)])]++;
        rows_[size_t(pos)] = int32_t(t);
        dst_[size_t(pos)] = j;
        scale_[size_t(pos)] = r.weight[size_t(j)];
      }
    }
  }
  std::vector<int32_t> used;
  for (int e = 0; e < E; ++e)
    if (count[size_t(e) + 1] > count[size_t(e)]) used.push_back(e);
  // Shared expert: one more group over all tokens, writing rows nnz..nnz+T-1 of y.
  const bool shared = !w_.shared.up.empty();
  if (shared) {
    std::vector<float> gate;
    if (!w_.shared_gate.empty()) {
      gate.resize(size_t(T));
      be.linear(x, T, w_.shared_gate, nullptr, gate.data());
    }
    for (int64_t t = 0; t < T; ++t) {
      rows_[size_t(nnz + t)] = int32_t(t);
      dst_[size_t(nnz + t)] = int32_t(nnz + t);
      scale_[size_t(nnz + t)] = gate.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-gate[size_t(t)]));
    }
  }
  y_.resize(size_t(nnz + (shared ? T : 0)) * size_t(H));
  // All experts in one chunk when the store can hold them; else chunks of half of what it can
  // hold, so that the next chunk's loads fit beside the current chunk's pins.
  const size_t cap = size_t(std::max<int64_t>(1, w_.experts->max_held()));
  const size_t n_used = used.size();
  const size_t chunk = n_used <= cap ? std::max<size_t>(1, n_used) : std::max<size_t>(1, cap / 2);
  auto chunk_span = [&](size_t b) {
    return std::span<const int32_t>(used.data() + b, std::min(chunk, n_used - b));
  };
  if (n_used > 0) w_.experts->prefetch(chunk_span(0));
  std::vector<ExpertHandle> handles;
  std::vector<FfnGroup> groups;
  for (size_t b = 0; b < n_used || (b == 0 && shared); b += chunk) {
    handles.clear();  // releases the previous chunk's experts
    groups.clear();
    for (int32_t e : (b < n_used ? chunk_span(b) : std::span<const int32_t>())) {
      handles.push_back(w_.experts->acquire(e));
      FfnGroup g;
      g.weights = handles.back().weights;
      g.rows = rows_.data() + count[size_t(e)];
      g.dst = dst_.data() + count[size_t(e)];
      g.scale = scale_.data() + count[size_t(e)];
      g.n = count[size_t(e) + 1] - count[size_t(e)];
      groups.push_back(g);
    }
    if (b + chunk < n_used) w_.experts->prefetch(chunk_span(b + chunk));
    if (b == 0 && shared) {
      FfnGroup g;
      g.weights = w_.shared;
      g.rows = rows_.data() + nnz;
      g.dst = dst_.data() + nnz;
      g.scale = scale_.data() + nnz;
      g.n = T;
      groups.push_back(g);
    }
    be.grouped_ffn(x, H, groups, cfg_.ffn, y_.data());
  }

  // 4. Combine in token order, slots in rank order: fixed summation order for any thread count.
  for (int64_t t = 0; t < T; ++t) {
    float* o = out + t * H;
    std::memset(o, 0, size_t(H) * sizeof(float));
    for (int32_t j = r.offsets[size_t(t)]; j < r.offsets[size_t(t) + 1]; ++j) {
      const float* yj = y_.data() + int64_t(j) * H;
      for (int64_t h = 0; h < H; ++h) o[h] += yj[h];
    }
    if (shared) {
      const float* ys = y_.data() + (nnz + t) * H;
      for (int64_t h = 0; h < H; ++h) o[h] += ys[h];
    }
  }
  if (info) {
    info->logits = logits_;
    info->stats = compute_routing_stats(r, router_->uses_logits() ? logits_.data() : nullptr);
  }
}

void ffn_forward(const float* x, int64_t T, int64_t H, const FfnWeights& w, const FfnParams& p, float* out,
                 Backend& be) {
  std::vector<int32_t> rows(static_cast<size_t>(T));
  std::iota(rows.begin(), rows.end(), 0);
  FfnGroup g;
  g.weights = w;
  g.rows = rows.data();
  g.dst = rows.data();
  g.n = T;
  be.grouped_ffn(x, H, std::span<const FfnGroup>(&g, 1), p, out);
}

}  // namespace sy
