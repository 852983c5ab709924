// Every router against the independent PyTorch reference (tests/reference/gen_routers.py).
#include <gtest/gtest.h>

#include <cstring>

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
    for (const auto& name : st.names()) {  // per-layer router tensors, "param.<name>"
      if (name.rfind("param.", 0) != 0) continue;
      auto v = st.to_f32(name);
      router->set_param(name.substr(6), v);
    }
    std::vector<int32_t> ids;
    std::vector<int64_t> pos;
    RouteInput in;
    in.logits = logits.data();
    in.n_tokens = T;
    in.n_scores = S;
    if (const auto* ti = st.find("token_ids")) {
      ASSERT_EQ(ti->dtype, DType::I32);
      ids.resize(size_t(T));
      std::memcpy(ids.data(), ti->data, ids.size() * sizeof(int32_t));
      in.token_ids = ids.data();
    }
    if (const auto* pi = st.find("positions")) {
      ASSERT_EQ(pi->dtype, DType::I64);
      pos.resize(size_t(T));
      std::memcpy(pos.data(), pi->data, pos.size() * sizeof(int64_t));
      in.positions = pos.data();
    }
    if (st.metadata().count("layer")) in.layer = std::stoi(test::meta(st, "layer"));
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
