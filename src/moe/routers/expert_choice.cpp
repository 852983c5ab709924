// Expert-choice routing (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing";
// ../shared/ROUTING.md). For a batch of T tokens, logits [T, E]:
//   p = softmax over experts per token                [T, E], f32 (double sum)
//   c = min(T, ceil(T * cf / E))                      capacity per expert (cf = capacity_factor)
//   expert e takes the c tokens with the largest p[:, e] (ties: lower token index)
//   w_t,e = p_t,e for every (t, e) taken              a token may get 0, 1 or several experts
// Not causal: a token's experts depend on the rest of the batch, so route() refuses decode steps.
// Each token's experts are listed by descending p (ties: lower expert index). Routing::probs = p.
// Params: cf (capacity factor > 0, default 1).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class ExpertChoiceRouter final : public Router {
 public:
  explicit ExpertChoiceRouter(double cf) : cf_(cf) {}

  std::string spec() const override { return str("expert_choice:cf=", cf_); }
  bool causal() const override { return false; }

  // c = min(T, ceil(T * cf / E)); at least 1 when T > 0.
  int64_t capacity(int64_t T, int E) const {
    if (T == 0) return 0;
    double c = std::ceil(double(T) * cf_ / double(E));
    return c >= double(T) ? T : std::max<int64_t>(1, int64_t(c));
  }

  void route(const RouteInput& in, int E, Routing& out) const override {
    SY_CHECK(!in.decode, "[router expert_choice] expert_choice looks at the whole batch and cannot be used in "
                         "autoregressive decode; use a token-choice router such as topk");
    routing::check_finite(in, "expert_choice");
    const int64_t T = in.n_tokens;
    out.reset(T, E, E);
    out.probs.resize(size_t(T) * E);
    for (int64_t t = 0; t < T; ++t) routing::softmax_row(in.logits + t * in.n_scores, E, out.probs.data() + t * E);
    const float* p = out.probs.data();
    const int64_t c = capacity(T, E);
    std::vector<char> taken(size_t(T) * E, 0);
    std::vector<int64_t> tok(static_cast<size_t>(T));
    for (int e = 0; e < E; ++e) {
      std::iota(tok.begin(), tok.end(), 0);
      std::partial_sort(tok.begin(), tok.begin() + c, tok.end(), [&](int64_t a, int64_t b) {
        float pa = p[a * E + e], pb = p[b * E + e];
        return pa > pb || (pa == pb && a < b);
      });
      for (int64_t j = 0; j < c; ++j) taken[size_t(tok[size_t(j)] * E + e)] = 1;
    }
    std::vector<int32_t> mine;
    for (int64_t t = 0; t < T; ++t) {
      const float* pt = p + t * E;
      mine.clear();
      for (int e = 0; e < E; ++e)
        if (taken[size_t(t * E + e)]) mine.push_back(e);
      std::stable_sort(mine.begin(), mine.end(), [&](int32_t a, int32_t b) { return pt[a] > pt[b]; });
      for (int32_t e : mine) out.push(e, pt[e]);
      out.end_token();
    }
  }

 private:
  double cf_;
};

}  // namespace

void register_expert_choice_router() {
  register_router({"expert_choice",
                   "each expert takes its top-c tokens, c = ceil(T*cf/E); not causal (Zhou et al. 2022)",
                   "cf=1 capacity factor (> 0)", "expert_choice:cf=1",
                   [](const RouterSpec& s, int) -> std::unique_ptr<Router> {
                     return std::make_unique<ExpertChoiceRouter>(routing::spec_positive(s, "cf", 1.0));
                   }});
}

}  // namespace sy
