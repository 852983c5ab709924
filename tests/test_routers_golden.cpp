// Every router against the independent PyTorch reference (tests/reference/gen_routers.py).
#include <gtest/gtest.h>

#include "golden.h"
#include "moe/router.h"

namespace sy {
namespace {

TEST(RoutersGolden, MatchPyTorchReference) {
  auto cases = test::golden_cases("routers");
  for (const auto& path : cases) {
    SCOPED_TRACE(path);
    SafeTensors st(path);
    const std::string spec = test::meta(st, "spec");
    const int E = std::stoi(test::meta(st, "n_experts"));
    const auto& li = st.get("logits");
    auto logits = st.to_f32("logits");
    auto want_w = st.to_f32("weights");
    auto want_c = st.to_f32("chosen");
    const int64_t T = li.shape[0];
    const int S = int(li.shape[1]);
    auto router = make_router(spec, E);
    ASSERT_EQ(router->num_scores(E), S) << spec;
    std::vector<int32_t> ids;
    RouteInput in;
    in.logits = logits.data();
    in.n_tokens = T;
    in.n_scores = S;
    if (st.find("token_ids")) {
      auto f = st.to_f32("token_ids");
      ids.assign(f.begin(), f.end());
      in.token_ids = ids.data();
    }
    Routing r;
    router->route(in, E, r);
    ASSERT_EQ(r.n_tokens, T);
    ASSERT_EQ(int64_t(r.offsets.size()), T + 1);
    std::vector<float> got_w(size_t(T) * E, 0.0f), got_c(size_t(T) * E, 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      for (int32_t j = r.offsets[t]; j < r.offsets[t + 1]; ++j) {
        ASSERT_GE(r.expert[j], 0);
        ASSERT_LT(r.expert[j], E);
        EXPECT_EQ(got_c[t * E + r.expert[j]], 0.0f) << spec << ": token " << t << " chose expert " << r.expert[j] << " twice";
        got_c[t * E + r.expert[j]] = 1.0f;
        got_w[t * E + r.expert[j]] = r.weight[j];
      }
    }
    EXPECT_EQ(got_c, want_c) << spec << ": chosen experts differ from the reference";
    test::expect_close(got_w, want_w, 1e-6, spec + " weights");
    EXPECT_EQ(r.dropped, std::stoll(test::meta(st, "dropped"))) << spec;
  }
}

}  // namespace
}  // namespace sy
