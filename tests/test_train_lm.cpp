// One full training step of the tiny MoE LM (src/train/moe_lm.h) against PyTorch autograd
// (tests/reference/gen_grads.py, lm_* cases): loss and its parts, every parameter's gradient,
// clip_grad_norm_ + one AdamW step, the aux-free bias update; for the softmax top-k (renormalised
// with a gated shared expert, and raw), sigmoid + bias, top-p (+ entropy loss) and null-expert
// routers; the same step in bf16 mixed precision (softmax top-k with a gated shared expert, sigmoid +
// bias). Also: gradient accumulation, thread-count independence (f32 and bf16), router refusal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/moe_lm.h"
#include "train/optim.h"
#include "train_test_util.h"

namespace sy::train {
namespace {

using test::expect_rel;

MoELMConfig config_of(const SafeTensors& st) {
  auto i = [&](const char* k) { return std::stoll(test::meta(st, k)); };
  auto f = [&](const char* k) { return std::stod(test::meta(st, k)); };
  MoELMConfig c;
  c.vocab = i("vocab");
  c.hidden = i("hidden");
  c.n_layers = i("n_layers");
  c.n_heads = i("n_heads");
  c.n_kv_heads = i("n_kv_heads");
  c.head_dim = i("head_dim");
  c.n_experts = i("n_experts");
  c.expert_ffn = i("expert_ffn");
  c.shared_ffn = i("shared_ffn");
  c.shared_gate = i("shared_gate") != 0;
  c.router = test::meta(st, "router");
  c.rope_theta = f("rope_theta");
  c.rms_eps = float(f("rms_eps"));
  c.lb_coef = float(f("lb_coef"));
  c.z_coef = float(f("z_coef"));
  c.entropy_coef = float(f("entropy_coef"));
  c.bias_update_rate = float(f("bias_update_rate"));
  return c;
}

// The case's weights and router biases into lm; every parameter is in the file under its Qwen3-MoE
// name, with the same shape, and vice versa.
void load_case(const SafeTensors& st, MoELM& lm) {
  size_t n_file_params = 0;
  for (const auto& n : st.names())
    if (n.rfind("model.", 0) == 0 || n == "lm_head.weight") ++n_file_params;
  ASSERT_EQ(lm.params().size(), n_file_params);
  for (const auto& p : lm.params()) {
    auto v = st.to_f32(p.name);
    ASSERT_EQ(st.get(p.name).shape, p.shape) << p.name;
    std::copy(v.begin(), v.end(), lm.weight(p.name));
  }
  for (int64_t l = 0; l < lm.config().n_layers; ++l)
    if (st.find(str("bias.", l))) {
      auto b = st.to_f32(str("bias.", l));
      std::copy(b.begin(), b.end(), lm.router_bias(l).begin());
    }
}

// tol: relative error of the gradients and updated weights (see expect_rel).
void check_lm_case(const std::string& path, double tol) {
  SCOPED_TRACE(path);
  SafeTensors st(path);
  MoELMConfig cfg = config_of(st);
  MoELM lm(cfg);
  lm.set_matmul_precision(parse_matmul_precision(test::meta(st, "precision")));
  load_case(st, lm);
  if (testing::Test::HasFatalFailure()) return;
  auto tokens = test::ints(st, "tokens"), targets = test::ints(st, "targets");
  const int64_t B = std::stoll(test::meta(st, "B")), T = std::stoll(test::meta(st, "T"));
  lm.zero_grad();
  StepStats s = lm.forward_backward(tokens, targets, B, T);
  auto near = [&](double got, const char* key) {
    const double want = test::scalar(st, key);
    EXPECT_NEAR(got, want, 1e-4 * std::max(std::fabs(want), 1e-6)) << key;
  };
  near(s.loss, "loss");
  near(s.ce, "ce");
  near(s.balance, "balance");
  near(s.z, "z");
  if (std::fabs(test::scalar(st, "entropy")) > 0) near(s.entropy, "entropy");
  for (int64_t l = 0; l < cfg.n_layers; ++l) EXPECT_EQ(s.load[size_t(l)], test::longs(st, str("load.", l))) << l;
  for (const auto& p : lm.params())
    expect_rel(lm.grad(p.name), st.to_f32("grad." + p.name), "grad." + p.name, tol);

  const double total = clip_grad_norm(lm.grads().data(), int64_t(lm.grads().size()), std::stod(test::meta(st, "max_norm")));
  near(total, "grad_norm");
  AdamWParams hp{std::stof(test::meta(st, "beta1")), std::stof(test::meta(st, "beta2")),
                 std::stof(test::meta(st, "eps"))};
  lm.adamw_step(1, std::stof(test::meta(st, "lr")), std::stof(test::meta(st, "wd")), hp);
  for (const auto& p : lm.params())
    expect_rel(lm.weight(p.name), st.to_f32("after." + p.name), "after." + p.name, tol);

  lm.update_router_bias(s.load);
  for (int64_t l = 0; l < cfg.n_layers; ++l)
    if (st.find(str("bias_after.", l))) expect_rel(lm.router_bias(l).data(), st.to_f32(str("bias_after.", l)), "bias");
}

TEST(TrainMoELM, TrainingStepMatchesPyTorchForEachRouter) {
  int n = 0;
  for (const auto& path : test::golden_cases("grads"))
    if (path.find("/lm_") != std::string::npos && path.find("/lm_bf16_") == std::string::npos) {
      check_lm_case(path, 1e-4);
      ++n;
    }
  EXPECT_GE(n, 5) << "expected the topk (x2), sigmoid, topp and null model cases";
}

// bf16 mixed precision against the same step with bf16-rounded products in autograd. Both sides
// round the same quantities, but ours are f32 values and the reference's float64 ones, so a value
// within ~1e-7 of a bf16 rounding boundary can round the other way (one product then differs by
// up to 2^-8 relative): hence 1e-3, still well below what unrounded (f32) products give (checked
// below).
TEST(TrainMoELM, Bf16MixedPrecisionStepMatchesPyTorch) {
  int n = 0;
  for (const auto& path : test::golden_cases("grads"))
    if (path.find("/lm_bf16_") != std::string::npos) {
      check_lm_case(path, 1e-3);
      ++n;
    }
  EXPECT_GE(n, 2) << "expected the bf16 topk (shared expert) and sigmoid cases";
}

// The bf16 references really differ from f32 products by more than that tolerance (so the test
// above can tell rounded from unrounded products).
TEST(TrainMoELM, Bf16ReferenceIsFarFromF32Products) {
  for (const auto& path : test::golden_cases("grads")) {
    if (path.find("/lm_bf16_") == std::string::npos) continue;
    SafeTensors st(path);
    MoELM lm(config_of(st));  // f32 products
    load_case(st, lm);
    lm.zero_grad();
    lm.forward_backward(test::ints(st, "tokens"), test::ints(st, "targets"), std::stoll(test::meta(st, "B")),
                        std::stoll(test::meta(st, "T")));
    double worst = 0;
    for (const auto& p : lm.params()) {
      const auto want = st.to_f32("grad." + p.name);
      double scale = 0, err = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        scale = std::max(scale, double(std::fabs(want[i])));
        err = std::max(err, double(std::fabs(lm.grad(p.name)[i] - want[i])));
      }
      worst = std::max(worst, err / std::max(scale, 1e-30));
    }
    EXPECT_GT(worst, 5e-3) << path;
  }
}

MoELMConfig small(const std::string& router) {
  MoELMConfig c;
  c.router = router;
  c.shared_ffn = 8;
  c.z_coef = 1e-3f;
  return c;
}

std::vector<int32_t> seq(int64_t n, int mul, int64_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = int32_t((i * mul + 7) % vocab);
  return v;
}

TEST(TrainMoELM, GradientAccumulationOverMicroBatchesEqualsFullBatch) {
  // Without the balance loss (whose f is per micro-batch by design) the mean CE and z-loss of two
  // equal micro-batches with scale 1/2 must give the full batch's gradient.
  MoELMConfig c = small("topk:k=2,norm=true");
  c.lb_coef = 0;
  MoELM lm(c);
  lm.init(7);
  const int64_t B = 4, T = 8, N = B * T;
  auto tok = seq(N, 5, c.vocab), tgt = seq(N, 11, c.vocab);
  lm.zero_grad();
  lm.forward_backward(tok, tgt, B, T);
  std::vector<float> full(lm.grads().begin(), lm.grads().end());
  lm.zero_grad();
  const float sc = accumulation_scale(2);
  for (int m = 0; m < 2; ++m)
    lm.forward_backward(std::span(tok).subspan(size_t(m * N / 2), size_t(N / 2)),
                        std::span(tgt).subspan(size_t(m * N / 2), size_t(N / 2)), B / 2, T, true, sc);
  expect_rel(lm.grads().data(), full, "accumulated gradient", 1e-5);
}

TEST(TrainMoELM, GlobalBatchBalanceUsesTheGivenFractions) {
  // With balance_f equal to the batch's own fractions the result is unchanged; with other
  // fractions the router gradient changes (and only the balance term differs).
  MoELMConfig c = small("topk:k=2,norm=false");
  c.lb_coef = 0.5f;
  MoELM lm(c);
  lm.init(3);
  const int64_t B = 2, T = 8;
  auto tok = seq(B * T, 3, c.vocab), tgt = seq(B * T, 13, c.vocab);
  lm.zero_grad();
  StepStats s = lm.forward_backward(tok, tgt, B, T);
  std::vector<float> own(lm.grads().begin(), lm.grads().end());
  std::vector<std::vector<double>> f;
  for (const auto& ld : s.load) {
    f.emplace_back();
    for (int64_t x : ld) f.back().push_back(double(x) / double(B * T));
  }
  lm.zero_grad();
  StepStats s2 = lm.forward_backward(tok, tgt, B, T, true, 1.0f, &f);
  EXPECT_DOUBLE_EQ(s.balance, s2.balance);
  expect_rel(lm.grads().data(), own, "same f", 0);
  for (auto& fl : f) fl = {1.0, 0.0, 0.5, 0.5};
  lm.zero_grad();
  StepStats s3 = lm.forward_backward(tok, tgt, B, T, true, 1.0f, &f);
  EXPECT_NE(s3.balance, s.balance);
  const float* g = lm.grad("model.layers.1.mlp.gate.weight");
  const float* g0 = own.data() + lm.param("model.layers.1.mlp.gate.weight").offset;
  bool differs = false;
  for (int64_t i = 0; i < lm.param("model.layers.1.mlp.gate.weight").numel; ++i) differs |= g[i] != g0[i];
  EXPECT_TRUE(differs);
}

TEST(TrainMoELM, SameResultForAnyThreadCount) {
  for (const char* r : {"topk:k=2,norm=true", "sigmoid:k=2", "topp:p=0.5", "null:k=2,m=2"}) {
    SCOPED_TRACE(r);
    std::vector<std::vector<float>> grads;
    std::vector<double> losses;
    for (int threads : {1, 2}) {
      set_default_threads(threads);
      MoELM lm(small(r));
      lm.init(11);
      auto tok = seq(16, 3, 64), tgt = seq(16, 5, 64);
      lm.zero_grad();
      losses.push_back(lm.forward_backward(tok, tgt, 2, 8).loss);
      grads.emplace_back(lm.grads().begin(), lm.grads().end());
    }
    set_default_threads(0);
    EXPECT_EQ(losses[0], losses[1]);
    EXPECT_EQ(grads[0], grads[1]);
  }
}

// bf16 mixed precision at a size where the products are cut into several tiles (up to 8) and the
// expert row counts are not multiples of 32: still the same bits for 1 and 2 threads.
TEST(TrainMoELM, Bf16SameResultForAnyThreadCount) {
  MoELMConfig c = small("topk:k=2,norm=true");
  c.vocab = 2048;
  c.hidden = 128;
  c.head_dim = 32;
  c.expert_ffn = 96;
  std::vector<std::vector<float>> grads;
  std::vector<double> losses;
  for (int threads : {1, 2}) {
    set_default_threads(threads);
    MoELM lm(c);
    lm.set_matmul_precision(MatmulPrecision::bf16);
    lm.init(5);
    auto tok = seq(4 * 150, 7, c.vocab), tgt = seq(4 * 150, 11, c.vocab);
    lm.zero_grad();
    losses.push_back(lm.forward_backward(tok, tgt, 4, 150).loss);
    grads.emplace_back(lm.grads().begin(), lm.grads().end());
  }
  set_default_threads(0);
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(TrainMoELM, TrainingLowersTheLoss) {
  MoELMConfig c = small("topk:k=2,norm=true");
  MoELM lm(c);
  lm.init(5);
  auto tok = seq(32, 3, c.vocab), tgt = seq(32, 3, c.vocab);
  for (size_t i = 0; i + 1 < tok.size(); ++i) tgt[i] = tok[i + 1];
  double first = 0, last = 0;
  for (int step = 1; step <= 30; ++step) {
    lm.zero_grad();
    StepStats s = lm.forward_backward(tok, tgt, 4, 8);
    if (step == 1) first = s.loss;
    last = s.loss;
    clip_grad_norm(lm.grads().data(), int64_t(lm.grads().size()), 1.0);
    lm.adamw_step(step, float(lr_at(step - 1, 3, 30, 1e-2, 1e-3)), 0.01f);
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
}

TEST(TrainMoELM, TensorsRoundTripThroughSafetensorsWithQwenNames) {
  MoELM lm(small("sigmoid:k=2"));
  lm.init(9);
  lm.router_bias(1)[2] = 0.25f;
  const std::string path = (std::filesystem::temp_directory_path() / "sy_train_lm_tensors.safetensors").string();
  write_safetensors(path, lm.tensors());
  SafeTensors st(path);
  EXPECT_EQ(st.names().size(), lm.params().size() + 2);  // + one e_score_correction_bias per layer
  for (const auto& p : lm.params()) {
    ASSERT_EQ(st.get(p.name, p.shape).dtype, DType::F32);
    auto v = st.to_f32(p.name);
    EXPECT_TRUE(std::equal(v.begin(), v.end(), lm.weight(p.name))) << p.name;
  }
  EXPECT_EQ(st.to_f32("model.layers.1.mlp.gate.e_score_correction_bias").at(2), 0.25f);
  EXPECT_EQ(lm.param("model.layers.0.mlp.experts.3.down_proj.weight").shape, (std::vector<int64_t>{32, 16}));
  EXPECT_FALSE(lm.param("model.norm.weight").decay);
  std::filesystem::remove(path);
}

TEST(TrainMoELM, RefusesRoutersThatCannotBeTrained) {
  auto msg = [](const std::string& r) {
    try {
      MoELM lm(small(r));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("hash").find("no gradient"), std::string::npos) << msg("hash");
  EXPECT_NE(msg("expert_choice").find("not causal"), std::string::npos) << msg("expert_choice");
  EXPECT_NE(msg("relu").find("trainable routers"), std::string::npos) << msg("relu");
  EXPECT_NE(msg("topk:k=9").find("k=9"), std::string::npos) << msg("topk:k=9");
  EXPECT_NE(msg("topk:kk=2").find("kk"), std::string::npos) << msg("topk:kk=2");
  EXPECT_NE(msg("sigmoid:groups=2").find("group"), std::string::npos) << msg("sigmoid:groups=2");
  MoELM ok(small("null:k=3,m=2"));
  EXPECT_EQ(ok.n_scores(), 6);
  EXPECT_EQ(ok.param("model.layers.0.mlp.gate.weight").shape, (std::vector<int64_t>{6, 32}));
  EXPECT_THROW(ok.param("model.layers.9.mlp.gate.weight"), Error);
  std::vector<int32_t> bad(16, 64);
  EXPECT_THROW(ok.forward_backward(bad, bad, 2, 8), Error);
}

}  // namespace
}  // namespace sy::train
