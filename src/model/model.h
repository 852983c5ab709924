// A decoder-only MoE transformer loaded from a Hugging Face checkpoint directory (config.json +
// model.safetensors or sharded model-*.safetensors). Weights stay in the mmapped files (zero-copy
// views, f32 / bf16 / f16); only norm weights and biases are copied to f32.
//
// Tensors are found through io/checkpoint.h (single file or sharded index).
//
// Forward of T tokens at positions p..p+T-1 (p = cache.len), per layer l (HF LlamaDecoderLayer):
//   h = RMSNorm(x) * attn_norm
//   q = h Wq^T (+bq) [T, heads*d], k = h Wk^T (+bk), v = h Wv^T (+bv) [T, kv_heads*d]
//   q, k = QKNorm(q), QKNorm(k)  (config.qk_norm); clamp to +-clip_qkv if set; RoPE(q, k)
//   append k, v to the cache; a = causal GQA attention (ops.h); x += a Wo^T (+bo)
//   h = RMSNorm(x) * ffn_norm;  x += MoE(h) (moe/moe_layer.h) or dense SwiGLU FFN(h)
// then logits = RMSNorm(x) * final_norm · W_lm^T (W_lm = embed_tokens when tied).
// Every matmul goes through default_backend().linear / grouped_ffn.
//
// Expert offloading (LoadOptions::expert_budget_*; src/offload/): the routed experts of every MoE
// layer are served by one offload::ExpertCache with a global byte budget (or one split per layer in
// proportion to the layers' expert bytes: LoadOptions::expert_budget_per_layer), read with pread from the
// checkpoint files by the cache's own I/O threads (not the default thread pool). With the
// predictive policy, an offload::PredictivePrefetcher runs layer l+1..l+lookahead's routers on layer
// l's MoE input before layer l's experts run. The arithmetic is unchanged: the same weight bytes go
// through the same kernels, so outputs are bitwise identical to the mapped (no-budget) model.
// LoadOptions::trace_path records every token's routing (offload/trace.h) while forward runs.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/config.h"
#include "io/checkpoint.h"
#include "moe/moe_layer.h"
#include "moe/stats.h"
#include "offload/expert_cache.h"
#include "offload/predictor.h"
#include "offload/trace.h"

namespace sy {

struct LoadOptions {
  std::string router;          // router spec for every MoE layer ("" = the architecture's default)
  int experts_per_token = 0;   // > 0: replaces k in the router spec (default or override)
  std::string require_dtype;   // "" = any of f32/bf16/f16; else every matrix must be this dtype
  // Expert offloading. Both 0: every expert stays in the mapped checkpoint (no cache).
  size_t expert_budget_bytes = 0;      // > 0: cache budget in bytes
  double expert_budget_fraction = 0;   // in (0, 1], used when bytes == 0: fraction of all routed experts' bytes
  offload::PolicyKind cache_policy = offload::PolicyKind::Predictive;
  int io_threads = 2;                  // the cache's background readers
  int prefetch_lookahead = 1;          // predictive policy: layers predicted ahead (1 or 2)
  bool direct_io = false;              // read experts with O_DIRECT (offload/expert_cache.h)
  bool expert_budget_per_layer = false;  // split the budget per layer (ExpertCacheOptions::per_layer)
  // Non-empty: a trace (offload/trace.h) of this model; its most used experts are pinned in the
  // cache (offload/pin_profile.h), pin_fraction of the budget split evenly over the MoE layers.
  std::string pin_profile;
  double pin_fraction = 0.5;           // in (0, 1)
  // Non-empty: write a routing trace (offload/trace.h) of every token forward() runs; with the
  // predictive policy the predictions are recorded too. Finished by Model::close_trace().
  std::string trace_path;
};

// Keys and values of one sequence, f32, per layer [capacity, kv_heads * head_dim].
struct KVCache {
  int64_t capacity = 0;
  int64_t len = 0;  // tokens already in the cache = position of the next token
  std::vector<std::vector<float>> k, v;
  void clear() { len = 0; }
};

// Routing statistics per layer, merged over forward calls (non-MoE layers stay at n_tokens 0).
struct ForwardStats {
  std::vector<RoutingStats> layers;
  int64_t tokens = 0;
};

struct ModelSummary {
  int64_t params_total = 0;   // every tensor the model uses (a tied embedding once)
  int64_t params_active = 0;  // per token: total minus the (E - k) unused experts of each MoE layer
  int64_t weight_bytes = 0;   // bytes of those tensors as stored
  std::map<std::string, int64_t> params_by_dtype;  // "bf16" -> parameters
  int64_t kv_bytes_per_token = 0;                  // f32 keys + values, all layers
  int n_moe_layers = 0, n_dense_layers = 0;
};

class Model {
 public:
  // Throws sy::Error naming the file and the tensor or config field on any problem.
  static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& opt = {});
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const Architecture& architecture() const { return *arch_; }
  const std::string& dir() const { return dir_; }

  KVCache make_cache(int64_t max_tokens) const;
  // Runs tokens at positions cache.len.. and appends them to the cache. logits: [T, vocab] when
  // all_logits, else [1, vocab] for the last token. A call with cache.len > 0 continues a sequence:
  // its MoE layers see RouteInput::decode = true, so non-causal routers refuse it.
  void forward(std::span<const int32_t> tokens, KVCache& cache, float* logits, bool all_logits,
               ForwardStats* stats = nullptr);
  // Batched decode (ExpertFlow's token regrouping): one token for each of n sequences, token i
  // appended to *caches[i] at its own position. Attention runs per sequence; the projections,
  // norms and MoE layers run once over the n tokens, so every MoE layer groups the step's tokens
  // by expert and acquires (loads) each expert once per step. logits: [n, vocab]. The result for
  // each sequence is what forward() of its token alone would give (bitwise with the CPU kernels:
  // every output row is computed with the same reduction order whatever the row count). Trace
  // tokens get seq = i. The caches must be distinct.
  void forward_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* logits,
                     ForwardStats* stats = nullptr);

  // Replaces every MoE layer's router: spec "" = the architecture's default; k > 0 rewrites "k".
  void set_router(const std::string& spec, int experts_per_token = 0);
  std::vector<std::string> router_specs() const;  // per layer; "" for dense layers
  ModelSummary summary() const;

  // Offloading: the cache's counters, or nullopt when the experts are not offloaded.
  std::optional<offload::CacheStats> expert_cache_stats() const;
  const offload::ExpertCache* expert_cache() const { return cache_.get(); }
  uint64_t routed_expert_bytes() const { return routed_expert_bytes_; }  // all routed experts, as stored
  // Finishes the trace file (flush, fsync, rename into place); throws on I/O errors. No-op without
  // a trace. The destructor closes an open trace too, but swallows errors.
  void close_trace();

 private:
  struct Layer;
  struct Segment {  // tokens [begin, begin + n) of a forward batch belong to *cache
    KVCache* cache;
    int64_t begin, n;
    int32_t seq;
  };
  Model() = default;
  // The decoder over a batch of segments, each continuing its own sequence; logits: every row
  // (all_logits, one segment) or the last row of each segment.
  void run(std::span<const int32_t> tokens, std::span<const Segment> segs, float* logits, bool all_logits,
           ForwardStats* stats);
  void load_weights(const LoadOptions& opt);
  void setup_offload(const LoadOptions& opt, std::vector<offload::CacheLayerSpec> specs);
  void rebuild_prefetcher();
  WeightRef matrix(const std::string& name, int64_t rows, int64_t cols);
  std::vector<float> vector(const std::string& name, int64_t n);

  std::string dir_;
  ModelConfig cfg_;
  const Architecture* arch_ = nullptr;
  std::shared_ptr<Checkpoint> src_;
  std::string require_dtype_;
  WeightRef embed_, lm_head_;
  std::vector<float> final_norm_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::vector<uint8_t>> realigned_;  // copies of tensors not aligned to their dtype
  ModelSummary summary_;
  uint64_t routed_expert_bytes_ = 0;
  std::shared_ptr<offload::ExpertCache> cache_;
  std::unique_ptr<offload::TraceWriter> trace_;
  std::unique_ptr<offload::PredictivePrefetcher> prefetcher_;
  int lookahead_ = 1;
};

}  // namespace sy
