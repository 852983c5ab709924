// The whole MoE layer against the independent PyTorch reference (tests/reference/gen_moe_layer.py):
// outputs, routing statistics and losses; identical results across thread counts and backends.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threadpool.h"
#include "golden.h"
#include "moe/moe_layer.h"

namespace sy {
namespace {

WeightRef view(const TensorInfo& t) {
  return {t.data, t.dtype, t.shape.size() == 2 ? t.shape[0] : 1, t.shape.back()};
}

const float* fview(const SafeTensors& st, const std::string& name) {
  const TensorInfo* t = st.find(name);
  if (!t) return nullptr;
  EXPECT_EQ(t->dtype, DType::F32) << name;
  return reinterpret_cast<const float*>(t->data);
}

struct LoadedCase {
  std::unique_ptr<SafeTensors> st;
  std::unique_ptr<MoELayer> layer;
  std::vector<float> x, want;
  int64_t T = 0, H = 0;
};

LoadedCase load_case(const std::string& path) {
  LoadedCase c;
  c.st = std::make_unique<SafeTensors>(path);
  const SafeTensors& st = *c.st;
  MoEConfig cfg;
  cfg.hidden = std::stoll(test::meta(st, "hidden"));
  cfg.n_experts = std::stoll(test::meta(st, "n_experts"));
  cfg.expert_ffn = std::stoll(test::meta(st, "ffn"));
  cfg.ffn.act = parse_activation(test::meta(st, "act").c_str());
  std::vector<FfnWeights> experts;
  for (int64_t e = 0; e < cfg.n_experts; ++e) {
    std::string p = "experts." + std::to_string(e) + ".";
    FfnWeights w;
    if (st.find(p + "gate")) w.gate = view(st.get(p + "gate"));
    w.up = view(st.get(p + "up"));
    w.down = view(st.get(p + "down"));
    w.gate_bias = fview(st, p + "gate_bias");
    w.up_bias = fview(st, p + "up_bias");
    w.down_bias = fview(st, p + "down_bias");
    experts.push_back(w);
  }
  MoEWeights w;
  w.router = view(st.get("router"));
  w.router_bias = fview(st, "router_bias");
  w.experts = std::make_shared<InMemoryExperts>(experts);
  if (st.find("shared.up")) {
    w.shared.gate = view(st.get("shared.gate"));
    w.shared.up = view(st.get("shared.up"));
    w.shared.down = view(st.get("shared.down"));
  }
  if (st.find("shared_gate")) w.shared_gate = view(st.get("shared_gate"));
  c.layer = std::make_unique<MoELayer>(cfg, w, make_router(test::meta(st, "spec"), int(cfg.n_experts)));
  c.x = st.to_f32("x");
  c.want = st.to_f32("expected_out");
  c.H = cfg.hidden;
  c.T = int64_t(c.x.size()) / c.H;
  return c;
}

TEST(MoELayerGolden, OutputsAndStatsMatchPyTorch) {
  for (const auto& path : test::golden_cases("moe_layer")) {
    SCOPED_TRACE(path);
    LoadedCase c = load_case(path);
    const SafeTensors& st = *c.st;
    std::vector<float> out(c.x.size());
    MoEForwardInfo info;
    c.layer->forward(c.x.data(), c.T, out.data(), {}, &info);
    // f32 compute on exactly the same (dtype-rounded) weights: only summation order differs.
    test::expect_close(out, c.want, 1e-5, "out (" + test::meta(st, "dtype") + ")");
    auto tpe = st.to_f32("expected_tokens_per_expert");
    ASSERT_EQ(info.stats.tokens_per_expert.size(), tpe.size());
    for (size_t e = 0; e < tpe.size(); ++e) EXPECT_EQ(double(info.stats.tokens_per_expert[e]), tpe[e]) << "expert " << e;
    EXPECT_NEAR(info.stats.lb_loss, std::stod(test::meta(st, "lb_loss")), 1e-5);
    double z = std::stod(test::meta(st, "z_loss"));
    EXPECT_NEAR(info.stats.z_loss, z, 1e-5 * std::max(1.0, z));
    EXPECT_NEAR(info.stats.entropy, std::stod(test::meta(st, "entropy")), 1e-5);

    // The naive oracle backend gives the same answer.
    std::vector<float> out_naive(c.x.size());
    c.layer->forward(c.x.data(), c.T, out_naive.data(), {}, nullptr, naive_backend());
    test::expect_close(out_naive, c.want, 1e-5, "naive backend out");
  }
}

TEST(MoELayerGolden, IdenticalAcrossThreadCountsAndRepeats) {
  for (const auto& path : test::golden_cases("moe_layer")) {
    SCOPED_TRACE(path);
    LoadedCase c = load_case(path);
    std::vector<float> a(c.x.size()), b(c.x.size()), d(c.x.size());
    set_default_threads(1);
    c.layer->forward(c.x.data(), c.T, a.data());
    set_default_threads(2);
    c.layer->forward(c.x.data(), c.T, b.data());
    c.layer->forward(c.x.data(), c.T, d.data());
    set_default_threads(0);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "1 vs 2 threads differ";
    EXPECT_EQ(0, std::memcmp(b.data(), d.data(), b.size() * 4)) << "repeated runs differ";
  }
}

TEST(MoELayer, RejectsMismatchedShapes) {
  const int64_t H = 8, F = 4, E = 4;
  std::vector<float> wgt(size_t(F * H), 0.1f), gate(size_t(E * H), 0.1f);
  FfnWeights fw{{wgt.data(), DType::F32, F, H}, {wgt.data(), DType::F32, F, H}, {wgt.data(), DType::F32, H, F}};
  auto store = std::make_shared<InMemoryExperts>(std::vector<FfnWeights>(E, fw));
  MoEWeights w;
  w.router = {gate.data(), DType::F32, E, H};
  w.experts = store;
  auto expect_error = [&](MoEConfig cfg, MoEWeights ww, const std::string& spec, const std::string& needle) {
    try {
      MoELayer l(cfg, ww, make_router(spec, int(cfg.n_experts)));
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({H, E + 1, F, {}}, w, "topk:k=2", "expert store holds 4 experts");
  MoEWeights bad = w;
  bad.router.cols = H - 1;
  expect_error({H, E, F, {}}, bad, "topk:k=2", "router weight has 7 columns");
  bad = w;
  bad.router.rows = E - 1;
  expect_error({H, E, F, {}}, bad, "topk:k=2", "gate weight has 3 rows");
  expect_error({0, E, F, {}}, w, "topk:k=2", "must be positive");
  // Expert weights that do not match hidden: caught when the layer runs.
  std::vector<float> g2(size_t(E * (H + 1)), 0.1f);
  MoEWeights w2 = w;
  w2.router = {g2.data(), DType::F32, E, H + 1};
  MoELayer ok({H + 1, E, F, {}}, w2, make_router("topk:k=1", int(E)));
  std::vector<float> xin(size_t(2 * (H + 1)), 1.0f), out(xin.size());
  EXPECT_THROW(ok.forward(xin.data(), 2, out.data()), Error);
}

}  // namespace
}  // namespace sy
