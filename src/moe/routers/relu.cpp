// ReLU router (BlockFFN, Song et al. 2025; ../shared/ROUTING.md). Per token, logits l [E]:
//   z = RMSNorm(l) = l / sqrt(mean_i l_i^2 + eps) * g   g = per-layer "norm_weight" [E], default ones
//   gate = ReLU(z)                                      (computed in double, rounded to f32)
//   S = { i : gate_i > 0 }                              variable count, possibly 0 (no expert)
//   w_i = gate_i                                        not normalised
// Experts are listed by descending gate (ties: lower index). Routing::probs = gate_i / sum_j gate_j
// (the share of the token's gate mass; a token with no active expert has a zero row), used only for
// the statistics. Params: eps (> 0, default 1e-6).
#include <cmath>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class ReluRouter final : public Router {
 public:
  ReluRouter(int E, double eps) : E_(E), eps_(eps), weight_(size_t(E), 1.0f) {}

  std::string spec() const override { return str("relu:eps=", eps_); }
  std::vector<std::string> param_names() const override { return {"norm_weight"}; }
  void set_param(const std::string& name, std::span<const float> v) override {
    if (name != "norm_weight") return Router::set_param(name, v);
    weight_ = routing::checked_param("relu", name, v, size_t(E_));
  }

  void route(const RouteInput& in, int E, Routing& out) const override {
    SY_CHECK(E == E_, "[router relu] built for ", E_, " experts, called with ", E);
    routing::check_finite(in, "relu");
    out.reset(in.n_tokens, E, E);
    out.probs.assign(size_t(in.n_tokens) * E, 0.0f);
    std::vector<float> gate(static_cast<size_t>(E));
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      const float* l = in.logits + t * in.n_scores;
      double ms = 0;
      for (int e = 0; e < E; ++e) ms += double(l[e]) * double(l[e]);
      const double inv = 1.0 / std::sqrt(ms / E + eps_);
      double total = 0;
      for (int e = 0; e < E; ++e) {
        double z = double(l[e]) * inv * double(weight_[size_t(e)]);
        gate[size_t(e)] = z > 0 ? float(z) : 0.0f;
        total += gate[size_t(e)];
      }
      routing::topk_indices(gate.data(), E, E, order.data());
      float* p = out.probs.data() + t * E;
      for (int j = 0; j < E && gate[size_t(order[size_t(j)])] > 0; ++j) {
        const int32_t e = order[size_t(j)];
        out.push(e, gate[size_t(e)]);
        p[e] = float(gate[size_t(e)] / total);
      }
      out.end_token();
    }
  }

 private:
  int E_;
  double eps_;
  std::vector<float> weight_;
};

}  // namespace

void register_relu_router() {
  register_router({"relu", "gate = ReLU(RMSNorm(logits)); every expert with a positive gate (BlockFFN)",
                   "eps=1e-6 RMSNorm epsilon (> 0); tensor norm_weight [E]", "relu:eps=1e-06",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     return std::make_unique<ReluRouter>(E, routing::spec_positive(s, "eps", 1e-6));
                   }});
}

}  // namespace sy
