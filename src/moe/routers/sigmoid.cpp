// DeepSeek-V3 sigmoid router with auxiliary-loss-free bias and group-limited selection
// (../shared/ROUTING.md; deepseek-ai/DeepSeek-V3 inference/model.py `Gate`). Per token, logits l [E]:
//   s  = sigmoid(l)                                   f32 (sigmoid evaluated in double, rounded)
//   s' = s + b                                        b = per-layer "e_score_correction_bias" [E],
//                                                     default zeros; f32 add
//   if groups > 1: group g = experts [g*E/G, (g+1)*E/G); score_g = sum of the 2 largest s' in g (f32);
//                  keep the topk_group best groups; every expert of the other groups gets s' = -inf
//                  (the reference masks with -inf; HF's 0.0 lets a negative-biased score pick a masked
//                  group, transformers #45440 / vLLM #13474)
//   S  = top-k(s')                                    ties: lower expert index (also for groups)
//   w_i = s_i (gathered from s, WITHOUT the bias); if norm: w_i /= (sum_{j in S} s_j + 1e-20);
//   w_i *= scale                                      (routed_scaling_factor)
// Params: k (default 2), groups (n_group, 1), topk_group (= groups), norm (norm_topk_prob, true),
// scale (routed_scaling_factor, 1). groups > 1 needs at least 2 experts per group.
// Routing::probs (for the balance statistics) = s_i / sum_j s_j, the normalised affinities of
// DeepSeek-V3's sequence-wise balance loss (DeepSeek-V3 report, eq. 18-19).
#include <cmath>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class SigmoidRouter final : public Router {
 public:
  SigmoidRouter(int E, int k, routing::GroupParams g, bool norm, double scale)
      : E_(E), k_(k), g_(g), norm_(norm), scale_(scale), bias_(size_t(E), 0.0f) {}

  std::string spec() const override {
    return str("sigmoid:groups=", g_.groups, ",k=", k_, ",norm=", norm_ ? "true" : "false", ",scale=", scale_,
               ",topk_group=", g_.topk_group);
  }
  std::vector<std::string> param_names() const override { return {"e_score_correction_bias"}; }
  void set_param(const std::string& name, std::span<const float> v) override {
    if (name != "e_score_correction_bias") return Router::set_param(name, v);
    bias_ = routing::checked_param("sigmoid", name, v, size_t(E_));
  }

  void route(const RouteInput& in, int E, Routing& out) const override {
    SY_CHECK(E == E_, "[router sigmoid] built for ", E_, " experts, called with ", E);
    routing::check_finite(in, "sigmoid");
    out.reset(in.n_tokens, E, E);
    out.probs.resize(size_t(in.n_tokens) * E);
    const int per = E / g_.groups;
    std::vector<float> s(static_cast<size_t>(E)), sb(static_cast<size_t>(E)), gscore(static_cast<size_t>(g_.groups));
    std::vector<int32_t> idx(static_cast<size_t>(k_));
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      const float* l = in.logits + t * in.n_scores;
      double total = 0;
      for (int e = 0; e < E; ++e) {
        s[size_t(e)] = float(1.0 / (1.0 + std::exp(-double(l[e]))));
        sb[size_t(e)] = s[size_t(e)] + bias_[size_t(e)];
        total += s[size_t(e)];
      }
      float* p = out.probs.data() + t * E;
      for (int e = 0; e < E; ++e) p[e] = float(s[size_t(e)] / total);
      if (g_.groups > 1) {
        for (int gi = 0; gi < g_.groups; ++gi) {
          int32_t top2[2];
          routing::topk_indices(sb.data() + gi * per, per, 2, top2);
          gscore[size_t(gi)] = sb[size_t(gi * per + top2[0])] + sb[size_t(gi * per + top2[1])];
        }
        routing::mask_groups(sb.data(), E, g_, gscore.data());
      }
      routing::topk_indices(sb.data(), E, k_, idx.data());
      double sum = 0;
      for (int j = 0; j < k_; ++j) sum += s[size_t(idx[j])];
      const double denom = norm_ ? sum + 1e-20 : 1.0;
      for (int j = 0; j < k_; ++j) out.push(idx[j], float(double(s[size_t(idx[j])]) / denom * scale_));
      out.end_token();
    }
  }

 private:
  int E_, k_;
  routing::GroupParams g_;
  bool norm_;
  double scale_;
  std::vector<float> bias_;
};

}  // namespace

void register_sigmoid_router() {
  register_router({"sigmoid",
                   "sigmoid scores + correction bias, group-limited top-k, weights from the unbiased scores "
                   "(DeepSeek-V3)",
                   "k=2; groups=1 (n_group); topk_group=groups; norm=true divide by the top-k sum; scale=1 "
                   "(routed_scaling_factor); tensor e_score_correction_bias [E]",
                   "sigmoid:k=2,groups=4,topk_group=2,scale=2.5",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     int k = routing::spec_k(s, "k", 2, E);
                     auto g = routing::spec_groups(s, E, k);
                     SY_CHECK(g.groups == 1 || E / g.groups >= 2, "[router sigmoid] parameter groups=", g.groups,
                              " leaves fewer than 2 experts per group (the group score sums the top 2)");
                     bool norm = s.get_bool("norm", true);
                     double scale = routing::spec_positive(s, "scale", 1.0);
                     return std::make_unique<SigmoidRouter>(E, k, g, norm, scale);
                   }});
}

}  // namespace sy
