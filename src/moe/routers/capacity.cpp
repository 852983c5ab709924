// Token choice with expert capacity (Switch Transformer, Fedus et al. 2021; GShard, Lepikhin et al.
// 2020; ../shared/ROUTING.md). For a batch of T tokens, logits [T, E]:
//   p = softmax(l) per token                          f32 (double sum)
//   S_t = top-k(p_t)                                  ties: lower expert index
//   C = ceil(T / E * cf)                              capacity per expert (cf = capacity_factor)
//   slots are admitted by priority rank first, then token order: all tokens' 1st choices (t = 0..T-1),
//   then all 2nd choices, ... (GShard's top-2 gating fills the 2nd choices after every 1st choice);
//   a slot whose expert already holds C slots is dropped: removed from the token's list and counted in
//   Routing::dropped. A token may end with no expert (the residual carries it).
//   w_t,e = p_t,e (Switch, k=1: not renormalised), or p_t,e / sum_{j in S_t} p_t,j when norm=true
//   (normalised over the top-k BEFORE dropping, as GShard normalises its top-2 gates first).
// Routing::selected = per-expert slot counts before dropping (for the balance loss); probs = p.
// Params: k (default 1), cf (> 0, default 1.25), norm (default false).
#include <algorithm>
#include <cmath>
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class CapacityRouter final : public Router {
 public:
  CapacityRouter(int k, double cf, bool norm) : k_(k), cf_(cf), norm_(norm) {}

  std::string spec() const override {
    return str("capacity:cf=", cf_, ",k=", k_, ",norm=", norm_ ? "true" : "false");
  }
  bool causal() const override { return false; }  // capacity is shared by the batch

  void route(const RouteInput& in, int E, Routing& out) const override {
    routing::check_finite(in, "capacity");
    SY_CHECK(k_ <= E, "[router capacity] k=", k_, " exceeds the number of experts (", E, ")");
    const int64_t T = in.n_tokens;
    out.reset(T, E, E);
    out.probs.resize(size_t(T) * E);
    out.selected.assign(size_t(E), 0);
    std::vector<int32_t> idx(size_t(T) * k_);
    std::vector<float> w(size_t(T) * k_);
    for (int64_t t = 0; t < T; ++t) {
      float* p = out.probs.data() + t * E;
      routing::softmax_row(in.logits + t * in.n_scores, E, p);
      int32_t* it = idx.data() + t * k_;
      routing::topk_indices(p, E, k_, it);
      double sum = 0;
      for (int j = 0; j < k_; ++j) sum += p[it[j]];
      for (int j = 0; j < k_; ++j) w[size_t(t * k_ + j)] = norm_ ? float(double(p[it[j]]) / sum) : p[it[j]];
    }
    const int64_t C = T == 0 ? 0 : std::max<int64_t>(1, int64_t(std::ceil(double(T) / double(E) * cf_)));
    std::vector<int64_t> load(size_t(E), 0);
    std::vector<char> keep(size_t(T) * k_, 0);
    for (int j = 0; j < k_; ++j) {
      for (int64_t t = 0; t < T; ++t) {
        const int32_t e = idx[size_t(t * k_ + j)];
        out.selected[size_t(e)]++;
        if (load[size_t(e)] < C) {
          load[size_t(e)]++;
          keep[size_t(t * k_ + j)] = 1;
        } else {
          out.dropped++;
        }
      }
    }
    for (int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < k_; ++j)
        if (keep[size_t(t * k_ + j)]) out.push(idx[size_t(t * k_ + j)], w[size_t(t * k_ + j)]);
      out.end_token();
    }
  }

 private:
  int k_;
  double cf_;
  bool norm_;
};

}  // namespace

void register_capacity_router() {
  register_router({"capacity",
                   "softmax top-k with expert capacity C = ceil(T/E*cf); overflow dropped (Switch, GShard)",
                   "k=1 experts per token; cf=1.25 capacity factor (> 0); norm=false divide by the top-k sum",
                   "capacity:k=1,cf=1.25",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     int k = routing::spec_k(s, "k", 1, E);
                     double cf = routing::spec_positive(s, "cf", 1.25);
                     return std::make_unique<CapacityRouter>(k, cf, s.get_bool("norm", false));
                   }});
}

}  // namespace sy
