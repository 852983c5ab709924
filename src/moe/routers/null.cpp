// Null experts (Zeng et al. 2024, "AdaMoE: Token-Adaptive Routing with Null Experts for
// Mixture-of-Experts Language Models"; ../shared/ROUTING.md). The gate has E + m outputs: columns
// [0, E) are the real experts, [E, E+m) the m null experts (output 0, no FLOPs). Per token, logits l [E+m]:
//   p = softmax(l) over all E + m columns            f32 (double sum)
//   S = top-k(p) over all E + m                      ties: lower column index
//   w_i = p_i / sum_{j in S} p_j   (norm=true, default: renormalised over the WHOLE top-k including the
//                                   chosen null experts, as Mixtral-style top-k does when AdaMoE is
//                                   applied to Mixtral; the paper text we have (abstract only) does not
//                                   spell this out) or w_i = p_i (norm=false)
//   only the real experts of S are listed, so a token uses between max(0, k-m) and min(k, E) experts and
//   its real weights sum to <= 1.
// Routing::probs = p [T, E+m]; Routing::selected counts every column (null ones too) so the balance
// statistics treat the null columns as one averaged bucket, as AdaMoE's load-balancing loss does.
// Params: k (default 2, at most E+m), m (null experts, default E), norm (true).
#include <vector>

#include "moe/router.h"
#include "moe/routers/common.h"
#include "moe/routers/families.h"

namespace sy {
namespace {

class NullExpertRouter final : public Router {
 public:
  NullExpertRouter(int k, int m, bool norm) : k_(k), m_(m), norm_(norm) {}

  std::string spec() const override { return str("null:k=", k_, ",m=", m_, ",norm=", norm_ ? "true" : "false"); }
  int num_scores(int n_experts) const override { return n_experts + m_; }

  void route(const RouteInput& in, int E, Routing& out) const override {
    const int S = E + m_;
    SY_CHECK(in.n_scores == S, "[router null] expects ", S, " gate outputs (", E, " experts + ", m_,
             " null experts), got ", in.n_scores);
    SY_CHECK(k_ <= S, "[router null] k=", k_, " exceeds the ", S, " experts + null experts");
    routing::check_finite(in, "null");
    out.reset(in.n_tokens, E, S);
    out.probs.resize(size_t(in.n_tokens) * S);
    out.selected.assign(size_t(S), 0);
    std::vector<int32_t> idx(static_cast<size_t>(k_));
    for (int64_t t = 0; t < in.n_tokens; ++t) {
      float* p = out.probs.data() + t * S;
      routing::softmax_row(in.logits + t * in.n_scores, S, p);
      routing::topk_indices(p, S, k_, idx.data());
      double sum = 0;
      for (int j = 0; j < k_; ++j) sum += p[idx[j]];
      for (int j = 0; j < k_; ++j) {
        out.selected[size_t(idx[j])]++;
        if (idx[j] < E) out.push(idx[j], norm_ ? float(double(p[idx[j]]) / sum) : p[idx[j]]);
      }
      out.end_token();
    }
  }

 private:
  int k_, m_;
  bool norm_;
};

}  // namespace

void register_null_router() {
  register_router({"null",
                   "softmax top-k over E real + m null experts; chosen null experts cost nothing (AdaMoE)",
                   "k=2 slots per token (real + null); m=E null experts; norm=true divide by the top-k sum "
                   "(null experts included)",
                   "null:k=3,m=4",
                   [](const RouterSpec& s, int E) -> std::unique_ptr<Router> {
                     int64_t m = s.get_int("m", E);
                     SY_CHECK(m >= 1 && m <= 1 << 20, "[router null] parameter m=", m,
                              " (null experts) must be in [1, 1048576]");
                     int k = routing::spec_k(s, "k", 2, E + int(m), "experts + null experts");
                     return std::make_unique<NullExpertRouter>(k, int(m), s.get_bool("norm", true));
                   }});
}

}  // namespace sy
