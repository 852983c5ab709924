// Top-p dynamic routing (Huang et al. 2024, "Harder Tasks Need More Experts: Dynamic Routing in MoE
// Models"; code ZhenweiAn/Dynamic_MoE; ../shared/ROUTING.md). Per token, logits l [E]:
//   p = softmax(l)                                    f32 (double sum)
//   sort p descending (ties: lower expert index); c_j = p_(1) + ... + p_(j) (summed in double)
//   S = the experts (1) .. (n) with n the first j at which c_j > threshold, i.e. every expert up to
//       AND INCLUDING the one whose probability makes the sum cross the threshold; if the sum never
//       exceeds it (threshold 1 and rounding) all E experts are kept; at most max_k experts
//   w_i = p_i                                         raw probabilities, NOT renormalised
// Params: p (threshold, in (0, 1], default 0.4), max_k (cap, in [1, E], default E = no cap).
// Routing::probs = p. Experts are listed in descending p.
#include <algorithm>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class TopPRouter final : public Router {
 public:
  TopPRouter(double p, int max_k, bool capped) : p_(p), max_k_(max_k), capped_(capped) {}

  std::string spec() const override {
    return capped_ ? str("topp:max_k=", max_k_, ",p=", p_) : str("topp:p=", p_);
  }

  void route(const RouteInput& in, int E, Routing& out) const override {
    routing::check_finite(in, "topp");
    const int cap = capped_ ? std::min(max_k_, E) : E;
    out.reset(in.n_tokens, E, E);
    out.probs.resize(size_t(in.n_tokens) * E);
    std::vector<int32_t> order(static_cast<size_t>(E));
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      float* p = out.probs.data() + t * E;
      routing::softmax_row(in.logits + t * in.n_scores, E, p);
      routing::topk_indices(p, E, E, order.data());
      double cum = 0;
      for (int j = 0; j < cap; ++j) {
        out.push(order[size_t(j)], p[order[size_t(j)]]);
        cum += p[order[size_t(j)]];
        if (cum > p_) break;
      }
      out.end_token();
    }
  }

 private:
  double p_;
  int max_k_;
  bool capped_;
};

}  // namespace

void register_topp_router() {
  register_router({"topp",
                   "top-p dynamic routing: fewest experts whose probabilities exceed p, raw weights "
                   "(Harder Tasks Need More Experts)",
                   "p=0.4 threshold in (0, 1]; max_k=E cap on experts per token",
                   "topp:p=0.4",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     double p = routing::spec_positive(s, "p", 0.4, 1.0);
                     bool capped = s.has("max_k");
                     int max_k = routing::spec_k(s, "max_k", E, E);
                     return std::make_unique<TopPRouter>(p, max_k, capped);
                   }});
}

}  // namespace sy
