// Softmax top-k routers used by released models (../shared/ROUTING.md, "Token-choice routers").
//   topk:        p = softmax(logits) over E; S = top-k(p); w_i = p_i, or p_i / sum_{j in S} p_j
//                when norm=true (Mixtral always; Qwen2/3-MoE and OLMoE with norm_topk_prob).
//                HF MixtralSparseMoeBlock / Qwen3MoeSparseMoeBlock / OlmoeSparseMoeBlock.
//   topk_logits: S = top-k(logits); w = softmax over the k chosen logits only (gpt-oss, GptOssTopKRouter).
// Ties: equal scores go to the lower expert index.
#include <vector>

#include "core/error.h"
#include "moe/router.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

int checked_k(const RouterSpec& s, int n_experts, int64_t def) {
  int64_t k = s.get_int("k", def);
  SY_CHECK(k >= 1, "[router ", s.name, "] parameter k=", k, " must be at least 1");
  SY_CHECK(k <= n_experts, "[router ", s.name, "] parameter k=", k, " exceeds the number of experts (", n_experts, ")");
  return int(k);
}

class SoftmaxTopK final : public Router {
 public:
  SoftmaxTopK(int k, bool norm) : k_(k), norm_(norm) {}
  std::string spec() const override { return str("topk:k=", k_, ",norm=", norm_ ? "true" : "false"); }
  void route(const RouteInput& in, int E, Routing& out) const override {
    routing::check_finite(in, "topk");
    out.reset(in.n_tokens, E, E);
    out.probs.resize(size_t(in.n_tokens) * E);
    std::vector<int32_t> idx(k_);
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      float* p = out.probs.data() + t * E;
      routing::softmax_row(in.logits + t * in.n_scores, E, p);
      routing::topk_indices(p, E, k_, idx.data());
      double sum = 0;
      for (int j = 0; j < k_; ++j) sum += p[idx[j]];
      for (int j = 0; j < k_; ++j) out.push(idx[j], norm_ ? float(p[idx[j]] / sum) : p[idx[j]]);
      out.end_token();
    }
  }

 private:
  int k_;
  bool norm_;
};

class LogitTopK final : public Router {
 public:
  explicit LogitTopK(int k) : k_(k) {}
  std::string spec() const override { return str("topk_logits:k=", k_); }
  void route(const RouteInput& in, int E, Routing& out) const override {
    routing::check_finite(in, "topk_logits");
    out.reset(in.n_tokens, E, E);
    out.probs.resize(size_t(in.n_tokens) * E);
    std::vector<int32_t> idx(k_);
    std::vector<float> chosen(k_), w(k_);
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      const float* l = in.logits + t * in.n_scores;
      routing::softmax_row(l, E, out.probs.data() + t * E);
      routing::topk_indices(l, E, k_, idx.data());
      for (int j = 0; j < k_; ++j) chosen[j] = l[idx[j]];
      routing::softmax_row(chosen.data(), k_, w.data());
      for (int j = 0; j < k_; ++j) out.push(idx[j], w[j]);
      out.end_token();
    }
  }

 private:
  int k_;
};

}  // namespace

void register_topk_routers() {
  register_router({"topk", "softmax over experts, top-k, optional renormalisation (Mixtral, Qwen, OLMoE)",
                   "k=2 experts per token; norm=true divide by the top-k sum", "topk:k=2,norm=true",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     int k = checked_k(s, E, 2);
                     return std::make_unique<SoftmaxTopK>(k, s.get_bool("norm", true));
                   }});
  register_router({"topk_logits", "top-k on the logits, softmax over the chosen (gpt-oss)",
                   "k=4 experts per token", "topk_logits:k=2",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     return std::make_unique<LogitTopK>(checked_k(s, E, 4));
                   }});
}

}  // namespace sy
