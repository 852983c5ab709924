#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/ops.h"
#include "offload/pin_profile.h"

namespace sy {

struct Model::Layer {
  std::vector<float> attn_norm, ffn_norm, q_norm, k_norm;
  std::vector<float> bq, bk, bv, bo;
  WeightRef wq, wk, wv, wo;
  FfnWeights dense;
  std::unique_ptr<MoELayer> moe;
  std::string default_router;
};

Model::~Model() = default;

namespace {

bool float_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

const float* opt(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

// A layer's router: the tensors it asks for by name (Router::param_names) are read from the gate's
// siblings when the checkpoint has them, e.g. "mlp.gate.e_score_correction_bias" next to
// "mlp.gate.weight" (DeepSeek-V3; trained by `switchyard train` with the sigmoid router).
std::unique_ptr<Router> layer_router(const std::string& spec, int n_experts, const Checkpoint& src,
                                     const std::string& gate_weight) {
  std::unique_ptr<Router> r = make_router(spec, n_experts);
  const std::string prefix = gate_weight.substr(0, gate_weight.rfind('.') + 1);
  for (const std::string& name : r->param_names())
    if (src.find(prefix + name)) r->set_param(name, src.to_f32(prefix + name));
  return r;
}

}  // namespace

WeightRef Model::matrix(const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& t = src_->get(name, {rows, cols});
  SY_CHECK(float_dtype(t.dtype), "[model] ", src_->file_of(name), ": tensor '", name, "' has dtype ",
           dtype_name(t.dtype), "; supported: f32, bf16, f16");
  SY_CHECK(require_dtype_.empty() || dtype_name(t.dtype) == require_dtype_, "[model] ", src_->file_of(name),
           ": tensor '", name, "' has dtype ", dtype_name(t.dtype), ", but ", require_dtype_, " was required");
  const uint8_t* data = t.data;
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(t.dtype) != 0) {
    // The kernels read elements through typed pointers; an unaligned tensor gets an aligned copy.
    realigned_.emplace_back(data, data + t.nbytes);
    data = realigned_.back().data();
  }
  summary_.params_total += t.numel();
  summary_.weight_bytes += int64_t(t.nbytes);
  summary_.params_by_dtype[std::string(dtype_name(t.dtype))] += t.numel();
  return {data, t.dtype, rows, cols};
}

std::vector<float> Model::vector(const std::string& name, int64_t n) {
  const TensorInfo& t = src_->get(name, {n});
  SY_CHECK(float_dtype(t.dtype), "[model] ", src_->file_of(name), ": tensor '", name, "' has dtype ",
           dtype_name(t.dtype), "; supported: f32, bf16, f16");
  std::vector<float> out(static_cast<size_t>(n));
  to_f32(t.dtype, t.data, out.data(), size_t(n));  // byte-wise copy inside: alignment-safe
  summary_.params_total += n;
  summary_.weight_bytes += int64_t(t.nbytes);
  summary_.params_by_dtype[std::string(dtype_name(t.dtype))] += n;
  return out;
}

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& opt) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  m->cfg_ = load_model_config(dir, &m->arch_);
  m->src_ = std::shared_ptr<Checkpoint>(Checkpoint::open(dir));
  m->require_dtype_ = opt.require_dtype;
  if (!m->require_dtype_.empty()) m->require_dtype_ = std::string(dtype_name(parse_dtype(m->require_dtype_)));
  m->load_weights(opt);
  return m;
}

void Model::load_weights(const LoadOptions& opt) {
  const ModelConfig& c = cfg_;
  const int64_t H = c.hidden;
  const ModelTensorNames& gn = arch_->names;
  embed_ = matrix(gn.embed, c.vocab, H);
  final_norm_ = vector(gn.final_norm, H);
  lm_head_ = c.tie_embeddings ? embed_ : matrix(gn.lm_head, c.vocab, H);
  // Where every routed expert lives in the files, for the offload cache and the trace header.
  std::vector<offload::CacheLayerSpec> specs(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < int(c.n_layers); ++l) {
    const LayerSpec& s = c.layers[size_t(l)];
    if (!s.moe) continue;
    const LayerTensorNames n = arch_->layer_names(c, l);
    offload::CacheLayerSpec& cs = specs[size_t(l)];
    auto loc = [&](const std::string& name) { return offload::tensor_location(src_->file_of(name), src_->get(name)); };
    for (int64_t e = 0; e < s.n_experts; ++e) {
      cs.experts.push_back({loc(n.expert(e, n.expert_gate)), loc(n.expert(e, n.expert_up)), loc(n.expert(e, n.expert_down))});
      routed_expert_bytes_ += cs.experts.back().nbytes();
    }
    // k of the router this layer will run (set_router's rule); a router without k (top-p, ReLU)
    // may use every expert, so the minimum budget is then the whole layer.
    std::string spec = opt.router.empty() ? s.router : opt.router;
    RouterSpec rs = RouterSpec::parse(spec);
    if (opt.experts_per_token > 0) rs.params["k"] = std::to_string(opt.experts_per_token);
    cs.active_per_token = int(std::clamp<int64_t>(rs.get_int("k", s.n_experts), 1, s.n_experts));
  }
  const bool offload = opt.expert_budget_bytes > 0 || opt.expert_budget_fraction > 0;
  if (offload || !opt.trace_path.empty() || !opt.pin_profile.empty()) setup_offload(opt, specs);

  for (int l = 0; l < int(c.n_layers); ++l) {
    const LayerSpec& s = c.layers[size_t(l)];
    const LayerTensorNames n = arch_->layer_names(c, l);
    auto L = std::make_unique<Layer>();
    L->attn_norm = vector(n.attn_norm, H);
    L->ffn_norm = vector(n.ffn_norm, H);
    L->wq = matrix(n.q, c.q_dim(), H);
    L->wk = matrix(n.k, c.kv_dim(), H);
    L->wv = matrix(n.v, c.kv_dim(), H);
    L->wo = matrix(n.o, H, c.q_dim());
    if (c.qkv_bias) {
      L->bq = vector(n.q.substr(0, n.q.size() - 6) + "bias", c.q_dim());
      L->bk = vector(n.k.substr(0, n.k.size() - 6) + "bias", c.kv_dim());
      L->bv = vector(n.v.substr(0, n.v.size() - 6) + "bias", c.kv_dim());
    }
    if (c.o_bias) L->bo = vector(n.o.substr(0, n.o.size() - 6) + "bias", H);
    if (c.qk_norm == QKNorm::PerHead) {
      L->q_norm = vector(n.q_norm, c.head_dim);
      L->k_norm = vector(n.k_norm, c.head_dim);
    } else if (c.qk_norm == QKNorm::Full) {
      L->q_norm = vector(n.q_norm, c.q_dim());
      L->k_norm = vector(n.k_norm, c.kv_dim());
    }
    if (!s.moe) {
      L->dense.gate = matrix(n.dense_gate, s.ffn, H);
      L->dense.up = matrix(n.dense_up, s.ffn, H);
      L->dense.down = matrix(n.dense_down, H, s.ffn);
      summary_.n_dense_layers++;
    } else {
      const int64_t E = s.n_experts, F = s.expert_ffn;
      MoEWeights w;
      std::unique_ptr<Router> router = layer_router(s.router, int(E), *src_, n.router);
      w.router = matrix(n.router, router->num_scores(int(E)), H);  // null experts: extra gate rows
      std::vector<FfnWeights> experts(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) {
        experts[size_t(e)].gate = matrix(n.expert(e, n.expert_gate), F, H);
        experts[size_t(e)].up = matrix(n.expert(e, n.expert_up), F, H);
        experts[size_t(e)].down = matrix(n.expert(e, n.expert_down), H, F);
      }
      if (cache_)
        w.experts = cache_->store(l);  // the views above stay unused: counted and dtype-checked only
      else
        w.experts = std::make_shared<InMemoryExperts>(std::move(experts), src_);
      if (s.shared_ffn > 0) {
        w.shared.gate = matrix(n.shared_gate, s.shared_ffn, H);
        w.shared.up = matrix(n.shared_up, s.shared_ffn, H);
        w.shared.down = matrix(n.shared_down, H, s.shared_ffn);
        if (s.shared_gate) w.shared_gate = matrix(n.shared_expert_gate, 1, H);
      }
      L->default_router = s.router;
      L->moe = std::make_unique<MoELayer>(MoEConfig{H, E, F, c.ffn}, std::move(w), std::move(router));
      summary_.n_moe_layers++;
    }
    layers_.push_back(std::move(L));
  }
  summary_.kv_bytes_per_token = 2 * c.n_layers * c.kv_dim() * int64_t(sizeof(float));
  if (!opt.router.empty() || opt.experts_per_token > 0) set_router(opt.router, opt.experts_per_token);
  rebuild_prefetcher();
}

void Model::setup_offload(const LoadOptions& opt, std::vector<offload::CacheLayerSpec> specs) {
  const ModelConfig& c = cfg_;
  lookahead_ = opt.prefetch_lookahead;
  SY_CHECK(lookahead_ >= 1, "[model] prefetch lookahead must be >= 1, got ", lookahead_);
  if (!opt.trace_path.empty()) {
    offload::TraceHeader h;
    h.n_layers = int(c.n_layers);
    h.expert_bytes.assign(size_t(c.n_layers), 0);
    for (size_t l = 0; l < specs.size(); ++l) {
      if (specs[l].experts.empty()) continue;
      h.n_experts = std::max(h.n_experts, int(specs[l].experts.size()));
      h.expert_bytes[l] = specs[l].experts[0].nbytes();
      h.top_k = std::max(h.top_k, specs[l].active_per_token);
    }
    h.model = c.architecture;
    trace_ = std::make_unique<offload::TraceWriter>(opt.trace_path, std::move(h));
  }
  SY_CHECK(opt.pin_profile.empty() || opt.expert_budget_bytes > 0 || opt.expert_budget_fraction > 0, "[model] ",
           "a pin profile (", opt.pin_profile, ") needs an expert budget: pinning applies to the offload cache");
  if (opt.expert_budget_bytes == 0 && opt.expert_budget_fraction <= 0) return;
  std::vector<uint64_t> layer_expert_bytes(specs.size(), 0);
  std::vector<int> layer_experts(specs.size(), 0);
  for (size_t l = 0; l < specs.size(); ++l) {
    if (specs[l].experts.empty()) continue;
    layer_expert_bytes[l] = specs[l].experts[0].nbytes();
    layer_experts[l] = int(specs[l].experts.size());
  }
  SY_CHECK(routed_expert_bytes_ > 0, "[model] ", dir_, ": an expert budget was given, but the model has no routed experts");
  size_t budget = opt.expert_budget_bytes;
  if (budget == 0) {
    SY_CHECK(opt.expert_budget_fraction <= 1.0, "[model] expert budget fraction must be in (0, 1], got ",
             opt.expert_budget_fraction);
    budget = size_t(double(routed_expert_bytes_) * opt.expert_budget_fraction);
  }
  SY_CHECK(opt.io_threads >= 1, "[model] expert cache I/O threads must be >= 1, got ", opt.io_threads);
  try {
    cache_ = offload::ExpertCache::create(std::move(specs), {budget, opt.cache_policy, opt.io_threads, opt.direct_io,
                                                                    opt.expert_budget_per_layer});
  } catch (const Error& e) {
    fail("[model] ", dir_, ": ", e.what(), " (all routed experts: ", routed_expert_bytes_, " bytes)");
  }
  if (!opt.pin_profile.empty()) {
    SY_CHECK(opt.pin_fraction > 0 && opt.pin_fraction < 1, "[model] pin fraction must be in (0, 1), got ",
             opt.pin_fraction);
    const uint64_t pin_bytes = uint64_t(double(budget) * opt.pin_fraction);
    SY_CHECK(pin_bytes + cache_->min_budget_bytes() <= budget, "[model] pin fraction ", opt.pin_fraction, " of the ",
             budget, "-byte expert budget leaves less than one token's active experts (", cache_->min_budget_bytes(),
             " bytes); at most ", double(budget - cache_->min_budget_bytes()) / double(budget));
    const offload::Trace profile = offload::read_trace(opt.pin_profile);
    const auto hot = offload::hot_experts(profile, layer_expert_bytes, layer_experts, pin_bytes);
    for (size_t l = 0; l < hot.size(); ++l)
      if (!hot[l].empty()) cache_->pin(int(l), hot[l]);
  }
}

// The prefetcher keeps pointers to the layers' routers, so it is rebuilt whenever they change.
void Model::rebuild_prefetcher() {
  prefetcher_.reset();
  const bool predictive = cache_ && cache_->policy() == offload::PolicyKind::Predictive;
  if (!predictive && !trace_) return;  // a trace without a cache still records predictions
  std::vector<offload::PredictivePrefetcher::Layer> pl(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!layers_[l]->moe) continue;
    MoELayer& m = *layers_[l]->moe;
    pl[l].gate = m.weights().router;
    pl[l].gate_bias = m.weights().router_bias;
    pl[l].router = &m.router();
    pl[l].n_experts = int(m.config().n_experts);
    pl[l].store = m.weights().experts;
  }
  prefetcher_ = std::make_unique<offload::PredictivePrefetcher>(std::move(pl), lookahead_, trace_.get());
}

std::optional<offload::CacheStats> Model::expert_cache_stats() const {
  if (!cache_) return std::nullopt;
  return cache_->stats();
}

void Model::close_trace() {
  if (!trace_) return;
  prefetcher_.reset();  // holds a pointer to the writer
  std::unique_ptr<offload::TraceWriter> t = std::move(trace_);
  t->close();
  rebuild_prefetcher();
}

void Model::set_router(const std::string& spec, int experts_per_token) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = *layers_[l];
    if (!L.moe) continue;
    std::string s = spec.empty() ? L.default_router : spec;
    if (experts_per_token > 0) {
      RouterSpec rs = RouterSpec::parse(s);
      rs.params["k"] = std::to_string(experts_per_token);
      s = rs.str();
    }
    try {
      L.moe->set_router(layer_router(s, int(L.moe->config().n_experts), *src_, arch_->layer_names(cfg_, int(l)).router));
    } catch (const Error& e) {
      fail("[model] layer ", l, ": router '", s, "': ", e.what());
    }
  }
  rebuild_prefetcher();
}

std::vector<std::string> Model::router_specs() const {
  std::vector<std::string> out;
  for (const auto& L : layers_) out.push_back(L->moe ? L->moe->router().spec() : "");
  return out;
}

ModelSummary Model::summary() const {
  ModelSummary s = summary_;
  s.params_active = s.params_total;
  for (const auto& L : layers_) {
    if (!L->moe) continue;
    const MoEConfig& mc = L->moe->config();
    RouterSpec rs = RouterSpec::parse(L->moe->router().spec());
    const int64_t k = std::min<int64_t>(rs.get_int("k", mc.n_experts), mc.n_experts);
    s.params_active -= (mc.n_experts - k) * 3 * mc.hidden * mc.expert_ffn;
  }
  return s;
}

KVCache Model::make_cache(int64_t max_tokens) const {
  SY_CHECK(max_tokens > 0, "[model] KV cache size must be positive, got ", max_tokens);
  KVCache kv;
  kv.capacity = max_tokens;
  kv.k.assign(size_t(cfg_.n_layers), std::vector<float>(size_t(max_tokens * cfg_.kv_dim())));
  kv.v.assign(size_t(cfg_.n_layers), std::vector<float>(size_t(max_tokens * cfg_.kv_dim())));
  return kv;
}

void Model::forward(std::span<const int32_t> tokens, KVCache& cache, float* logits, bool all_logits,
                    ForwardStats* stats) {
  SY_CHECK(!tokens.empty(), "[model] forward needs at least one token");
  const Segment seg{&cache, 0, int64_t(tokens.size()), 0};
  run(tokens, std::span<const Segment>(&seg, 1), logits, all_logits, stats);
}

void Model::forward_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* logits,
                          ForwardStats* stats) {
  SY_CHECK(!tokens.empty(), "[model] forward_batch needs at least one sequence");
  SY_CHECK(tokens.size() == caches.size(), "[model] forward_batch: ", tokens.size(), " tokens for ", caches.size(),
           " KV caches (one token per sequence)");
  std::vector<Segment> segs;
  for (size_t i = 0; i < caches.size(); ++i) {
    SY_CHECK(caches[i], "[model] forward_batch: KV cache ", i, " is null");
    for (size_t j = 0; j < i; ++j)
      SY_CHECK(caches[j] != caches[i], "[model] forward_batch: sequences ", j, " and ", i, " share one KV cache");
    segs.push_back({caches[i], int64_t(i), 1, int32_t(i)});
  }
  run(tokens, segs, logits, false, stats);
}

void Model::run(std::span<const int32_t> tokens, std::span<const Segment> segs, float* logits, bool all_logits,
                ForwardStats* stats) {
  const ModelConfig& c = cfg_;
  const int64_t T = int64_t(tokens.size()), H = c.hidden, qd = c.q_dim(), kvd = c.kv_dim();
  bool decode = false;
  std::vector<int64_t> positions(static_cast<size_t>(T));
  std::vector<std::vector<double>> inv_freq;
  for (const Segment& sg : segs) {
    KVCache& cache = *sg.cache;
    SY_CHECK(int64_t(cache.k.size()) == c.n_layers, "[model] KV cache was not made by this model");
    SY_CHECK(cache.len + sg.n <= cache.capacity, "[model] KV cache full: ", cache.len, " + ", sg.n,
             " tokens exceed its capacity of ", cache.capacity);
    decode |= cache.len > 0;
    for (int64_t i = 0; i < sg.n; ++i) positions[size_t(sg.begin + i)] = cache.len + i;
    inv_freq.push_back(rope_inv_freq(c.rope, c.head_dim, cache.len + sg.n, c.max_pos));
  }
  Backend& be = default_backend();
  std::vector<float> x(size_t(T * H)), h(size_t(T * H)), tmp(size_t(T * H));
  std::vector<float> q(size_t(T * qd)), k(size_t(T * kvd)), v(size_t(T * kvd)), att(size_t(T * qd));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[size_t(t)];
    SY_CHECK(id >= 0 && id < c.vocab, "[model] token id ", id, " at index ", t, " is outside the vocabulary (",
             c.vocab, ")");
    const size_t row = size_t(id) * size_t(H) * dtype_size(embed_.dtype);
    to_f32(embed_.dtype, static_cast<const uint8_t*>(embed_.data) + row, x.data() + t * H, size_t(H));
  }
  if (stats && stats->layers.size() != size_t(c.n_layers)) stats->layers.assign(size_t(c.n_layers), {});
  MoEForwardInfo info;
  MoEForwardInfo* want_info = (stats || trace_) ? &info : nullptr;
  if (trace_)
    for (const Segment& sg : segs)
      for (int64_t i = 0; i < sg.n; ++i) trace_->begin_token(positions[size_t(sg.begin + i)], sg.seq);

  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = *layers_[l];
    rms_norm(x.data(), L.attn_norm.data(), T, H, c.rms_eps, h.data());
    be.linear(h.data(), T, L.wq, opt(L.bq), q.data());
    be.linear(h.data(), T, L.wk, opt(L.bk), k.data());
    be.linear(h.data(), T, L.wv, opt(L.bv), v.data());
    if (c.qk_norm == QKNorm::PerHead) {
      rms_norm(q.data(), L.q_norm.data(), T * c.n_heads, c.head_dim, c.rms_eps, q.data());
      rms_norm(k.data(), L.k_norm.data(), T * c.n_kv_heads, c.head_dim, c.rms_eps, k.data());
    } else if (c.qk_norm == QKNorm::Full) {
      rms_norm(q.data(), L.q_norm.data(), T, qd, c.rms_eps, q.data());
      rms_norm(k.data(), L.k_norm.data(), T, kvd, c.rms_eps, k.data());
    }
    if (c.clip_qkv > 0) {
      const float lim = float(c.clip_qkv);
      for (auto* buf : {&q, &k, &v})
        for (float& e : *buf) e = std::clamp(e, -lim, lim);
    }
    // Rotary embedding, cache append and attention: per sequence.
    for (size_t s = 0; s < segs.size(); ++s) {
      const Segment& sg = segs[s];
      KVCache& cache = *sg.cache;
      const int64_t b = sg.begin, n = sg.n, pos0 = cache.len;
      const int64_t* pos = positions.data() + b;
      rope_apply(q.data() + b * qd, n, c.n_heads, c.head_dim, pos, inv_freq[s], c.rope);
      rope_apply(k.data() + b * kvd, n, c.n_kv_heads, c.head_dim, pos, inv_freq[s], c.rope);
      std::memcpy(cache.k[l].data() + pos0 * kvd, k.data() + b * kvd, size_t(n * kvd) * sizeof(float));
      std::memcpy(cache.v[l].data() + pos0 * kvd, v.data() + b * kvd, size_t(n * kvd) * sizeof(float));
      attention(q.data() + b * qd, cache.k[l].data(), cache.v[l].data(), n, pos0, c.n_heads, c.n_kv_heads, c.head_dim,
                c.sliding_window, att.data() + b * qd);
    }
    be.linear(att.data(), T, L.wo, opt(L.bo), tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];

    rms_norm(x.data(), L.ffn_norm.data(), T, H, c.rms_eps, h.data());
    if (L.moe) {
      RouteInput ctx;
      ctx.token_ids = tokens.data();
      ctx.positions = positions.data();
      ctx.layer = int(l);
      ctx.decode = decode;
      try {
        // Predicts and prefetches the next layers' experts from this layer's MoE input; the loads
        // overlap with this layer's experts. Same x and ctx as the layer itself (predictor.h).
        if (prefetcher_) prefetcher_->on_layer(int(l), h.data(), T, ctx, be);
        L.moe->forward(h.data(), T, tmp.data(), ctx, want_info, be);
      } catch (const Error& e) {
        fail("[model] layer ", l, ": ", e.what());
      }
      if (stats) stats->layers[l].merge(info.stats);
      if (trace_) trace_->record_batch(int(l), info.routing);
    } else {
      ffn_forward(h.data(), T, H, L.dense, c.ffn, tmp.data(), be);
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  }
  for (const Segment& sg : segs) sg.cache->len += sg.n;
  if (stats) stats->tokens += T;
  if (trace_) trace_->flush();  // complete tokens go to FILE.tmp; memory stays bounded

  if (all_logits && segs.size() == 1) {
    rms_norm(x.data(), final_norm_.data(), T, H, c.rms_eps, h.data());
    be.linear(h.data(), T, lm_head_, nullptr, logits);
    return;
  }
  // The last token of each segment; rows of x are normalized independently.
  for (size_t s = 0; s < segs.size(); ++s) {
    const int64_t last = segs[s].begin + segs[s].n - 1;
    rms_norm(x.data() + last * H, final_norm_.data(), 1, H, c.rms_eps, h.data() + int64_t(s) * H);
  }
  be.linear(h.data(), int64_t(segs.size()), lm_head_, nullptr, logits);
}

}  // namespace sy
