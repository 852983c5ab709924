// DeepSeek-V2 softmax router, `greedy` and `group_limited_greedy` (../shared/ROUTING.md; HF
// DeepseekV2MoEGate / deepseek-ai/DeepSeek-V2 modeling_deepseek.py MoEGate). Per token, logits l [E]:
//   p = softmax(l)                                    f32 (double sum)
//   if groups > 1: group g = experts [g*E/G, (g+1)*E/G); score_g = max_{i in g} p_i; keep the
//                  topk_group best groups; the other groups' experts are excluded (-inf; the reference
//                  fills 0.0, which is the same unless p underflows to 0 for a kept expert)
//   S = top-k(p among the kept groups)                ties: lower expert index (also for groups)
//   if k > 1 and norm: w_i = p_i / (sum_{j in S} p_j + 1e-20)
//   else:              w_i = p_i * scale              (routed_scaling_factor)
// groups=1 is topk_method=greedy. Params: k (default 2), groups (n_group, 1), topk_group (= groups),
// norm (norm_topk_prob, false), scale (routed_scaling_factor, 1). Routing::probs = p.
#include <algorithm>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class GroupedRouter final : public Router {
 public:
  GroupedRouter(int k, routing::GroupParams g, bool norm, double scale) : k_(k), g_(g), norm_(norm), scale_(scale) {}

  std::string spec() const override {
    return str("grouped:groups=", g_.groups, ",k=", k_, ",norm=", norm_ ? "true" : "false", ",scale=", scale_,
               ",topk_group=", g_.topk_group);
  }

  void route(const RouteInput& in, int E, Routing& out) const override {
    routing::check_finite(in, "grouped");
    SY_CHECK(E % g_.groups == 0 && k_ <= E, "[router grouped] built for a multiple of ", g_.groups,
             " experts and k=", k_, ", called with ", E);
    out.reset(in.n_tokens, E, E);
    out.probs.resize(size_t(in.n_tokens) * E);
    const int per = E / g_.groups;
    std::vector<float> masked(static_cast<size_t>(E)), gscore(static_cast<size_t>(g_.groups));
    std::vector<int32_t> idx(static_cast<size_t>(k_));
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      float* p = out.probs.data() + t * E;
      routing::softmax_row(in.logits + t * in.n_scores, E, p);
      masked.assign(p, p + E);
      if (g_.groups > 1) {
        for (int gi = 0; gi < g_.groups; ++gi) {
          float m = p[gi * per];
          for (int e = gi * per + 1; e < (gi + 1) * per; ++e) m = std::max(m, p[e]);
          gscore[size_t(gi)] = m;
        }
        routing::mask_groups(masked.data(), E, g_, gscore.data());
      }
      routing::topk_indices(masked.data(), E, k_, idx.data());
      const bool renorm = k_ > 1 && norm_;
      double sum = 0;
      for (int j = 0; j < k_; ++j) sum += p[idx[j]];
      for (int j = 0; j < k_; ++j) {
        double w = renorm ? double(p[idx[j]]) / (sum + 1e-20) : double(p[idx[j]]) * scale_;
        out.push(idx[j], float(w));
      }
      out.end_token();
    }
  }

 private:
  int k_;
  routing::GroupParams g_;
  bool norm_;
  double scale_;
};

}  // namespace

void register_grouped_router() {
  register_router({"grouped",
                   "softmax, group-limited greedy top-k: best groups by max prob, then top-k (DeepSeek-V2)",
                   "k=2; groups=1 (n_group; 1 = greedy); topk_group=groups; norm=false renormalise when k>1, "
                   "else multiply by scale=1 (routed_scaling_factor)",
                   "grouped:k=2,groups=4,topk_group=2",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     int k = routing::spec_k(s, "k", 2, E);
                     auto g = routing::spec_groups(s, E, k);
                     bool norm = s.get_bool("norm", false);
                     double scale = routing::spec_positive(s, "scale", 1.0);
                     return std::make_unique<GroupedRouter>(k, g, norm, scale);
                   }});
}

}  // namespace sy
