// Routers: the functions that turn a token's router logits into a set of (expert, weight) pairs.
// Each family lives in routers/<family>.cpp and registers itself in router_registry.cpp; a router
// is chosen by a spec string "name:key=value,key=value" (for example "topk:k=2,norm=true").
// Formulas and their sources: ../shared/ROUTING.md and each family's header comment.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sy {

struct RouteInput {
  const float* logits = nullptr;         // [n_tokens, n_scores] = W_g x (+ b_g), f32 row-major
  int64_t n_tokens = 0;
  int n_scores = 0;                      // router outputs: experts (+ null experts)
  const int32_t* token_ids = nullptr;    // [n_tokens] token ids (hash routing); may be null
  const int64_t* positions = nullptr;    // [n_tokens] positions in the sequence; null = 0..T-1
  int layer = 0;
  bool decode = false;                   // an autoregressive decode step (non-causal routers refuse)
};

// The routing decision for a batch, in CSR form over tokens.
struct Routing {
  int64_t n_tokens = 0;
  int n_experts = 0;                  // real experts; null experts are never listed in `expert`
  int n_scores = 0;                   // columns of `probs`
  std::vector<int32_t> offsets;       // [n_tokens + 1]; token t uses entries [offsets[t], offsets[t+1])
  std::vector<int32_t> expert;        // [nnz] expert ids in [0, n_experts), ascending rank order
  std::vector<float> weight;          // [nnz] combine weights
  std::vector<float> probs;           // [n_tokens, n_scores] router probabilities P_i used by the
                                      // balance loss and entropy (softmax, sigmoid, ...); may be empty
  std::vector<int64_t> selected;      // [n_scores] how many token slots chose each score column
                                      // before capacity dropping (incl. null experts); empty = derive
                                      // from the CSR lists
  int64_t dropped = 0;                // token-expert assignments removed by capacity limits

  int64_t nnz() const { return offsets.empty() ? 0 : offsets.back(); }
  void reset(int64_t tokens, int experts, int scores);  // offsets = {0}, clears the rest
  void push(int32_t e, float w) { expert.push_back(e); weight.push_back(w); }
  void end_token() { offsets.push_back(int32_t(expert.size())); }
};

// Parsed "name:key=value,..." with typed getters that remember which keys were read, so that
// finish() can reject unknown parameters by name.
class RouterSpec {
 public:
  static RouterSpec parse(std::string_view spec);
  std::string name;
  std::map<std::string, std::string> params;

  bool has(const std::string& key) const { return params.count(key) != 0; }
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_str(const std::string& key, const std::string& def) const;
  void finish() const;  // throws "[router topk] unknown parameter 'kk' (known: k, norm)"
  std::string str() const;  // canonical form, keys sorted

 private:
  mutable std::set<std::string> used_;
};

class Router {
 public:
  virtual ~Router() = default;
  virtual std::string spec() const = 0;                            // canonical spec string
  virtual int num_scores(int n_experts) const { return n_experts; }  // router outputs needed
  virtual bool causal() const { return true; }   // false: a token's routing depends on others
  virtual bool uses_logits() const { return true; }  // false: hash/random ignore the gate
  // Fills `out` (reset first). Throws sy::Error on bad input (NaN/inf logits, decode when not causal).
  virtual void route(const RouteInput& in, int n_experts, Routing& out) const = 0;
  // Per-layer tensors some routers read from the checkpoint (DeepSeek-V3 "e_score_correction_bias",
  // the ReLU router's "norm_weight"). Default: none.
  virtual std::vector<std::string> param_names() const { return {}; }
  virtual void set_param(const std::string& name, std::span<const float> values);
};

struct RouterInfo {
  std::string name;     // "topk"
  std::string summary;  // one line for --help
  std::string params;   // "k=2 experts per token; norm=true divide by the top-k sum"
  std::string example;  // a spec the demo and tests run, e.g. "topk:k=2,norm=true"
  std::function<std::unique_ptr<Router>(const RouterSpec&, int n_experts)> make;
};

// The registry of router families. Built-in families are registered on first use.
const std::vector<RouterInfo>& router_registry();
void register_router(RouterInfo info);
// Builds a router from a spec string for a layer with n_experts routed experts. Throws with the
// offending parameter named: unknown router, unknown key, k > experts, p outside (0, 1], ...
std::unique_ptr<Router> make_router(std::string_view spec, int n_experts);
std::string router_help();  // every router with its parameters, for --help

// Shared helpers for router implementations.
namespace routing {
// Throws "[router NAME] logits of token T, column C are not finite (nan)" on NaN/inf.
void check_finite(const RouteInput& in, const std::string& router_name);
void softmax_row(const float* x, int n, float* out);  // numerically stable, f32 out, double sum
// Indices of the k largest values, descending; ties go to the lower index (torch.topk on CPU is
// not specified for ties; we fix this order and document it).
void topk_indices(const float* x, int n, int k, int32_t* out);
}  // namespace routing

}  // namespace sy
