// Every training op's forward and backward against PyTorch autograd (tests/reference/gen_grads.py,
// float64 reference, relative error <= 1e-4), plus the optimizer pieces against torch.optim.AdamW /
// clip_grad_norm_ and the LR formula; linear also against a naive loop oracle.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/ops.h"
#include "train/optim.h"
#include "train/routing_ops.h"
#include "train_test_util.h"

namespace sy::train {
namespace {

using test::expect_rel;

std::unique_ptr<SafeTensors> load(const std::string& name) {
  for (const auto& p : test::golden_cases("grads"))
    if (std::filesystem::path(p).stem() == name) return std::make_unique<SafeTensors>(p);
  ADD_FAILURE() << "no reference case grads/" << name;
  return nullptr;
}

int64_t dim(const SafeTensors& st, const std::string& n, size_t i) { return st.get(n).shape.at(i); }
double metaf(const SafeTensors& st, const std::string& k) { return std::stod(test::meta(st, k)); }

TEST(TrainOps, LinearMatchesAutogradAndNaiveOracle) {
  auto st = load("linear");
  ASSERT_TRUE(st);
  auto x = st->to_f32("inp"), W = st->to_f32("W"), b = st->to_f32("b"), dout = st->to_f32("dout");
  const int64_t M = dim(*st, "inp", 0), K = dim(*st, "inp", 1), N = dim(*st, "W", 0);
  std::vector<float> out(size_t(M * N)), dx(x.size(), 0.5f), dW(W.size(), 0.0f), db(b.size(), 0.0f);
  linear_forward(out.data(), x.data(), W.data(), b.data(), M, K, N);
  expect_rel(out, st->to_f32("out"), "out");
  // naive oracle for the three products
  std::vector<float> naive(out.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b[size_t(n)];
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * W[size_t(n * K + k)];
      naive[size_t(m * N + n)] = float(s);
    }
  expect_rel(out, naive, "out vs naive");
  linear_backward(dx.data(), dW.data(), db.data(), dout.data(), x.data(), W.data(), M, K, N);
  auto want_dx = st->to_f32("grad.inp");
  for (float& v : want_dx) v += 0.5f;  // backward accumulates into what is there
  expect_rel(dx, want_dx, "grad.inp");
  expect_rel(dW, st->to_f32("grad.W"), "grad.W");
  expect_rel(db, st->to_f32("grad.b"), "grad.b");
}

TEST(TrainOps, Embedding) {
  auto st = load("embedding");
  ASSERT_TRUE(st);
  auto tok = test::ints(*st, "tokens");
  auto table = st->to_f32("table"), dout = st->to_f32("dout");
  const int64_t V = dim(*st, "table", 0), H = dim(*st, "table", 1), N = int64_t(tok.size());
  std::vector<float> out(size_t(N * H)), dt(table.size(), 0.0f);
  embedding_forward(out.data(), tok.data(), table.data(), N, V, H);
  expect_rel(out, st->to_f32("out"), "out");
  embedding_backward(dt.data(), dout.data(), tok.data(), N, H);
  expect_rel(dt, st->to_f32("grad.table"), "grad.table");
  tok[2] = int32_t(V);
  EXPECT_THROW(embedding_forward(out.data(), tok.data(), table.data(), N, V, H), Error);
}

TEST(TrainOps, RMSNorm) {
  auto st = load("rmsnorm");
  ASSERT_TRUE(st);
  auto x = st->to_f32("inp"), w = st->to_f32("w"), dout = st->to_f32("dout");
  const int64_t N = dim(*st, "inp", 0), C = dim(*st, "inp", 1);
  std::vector<float> out(x.size()), rstd(static_cast<size_t>(N)), dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, float(metaf(*st, "eps")));
  expect_rel(out, st->to_f32("out"), "out");
  rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
  expect_rel(dx, st->to_f32("grad.inp"), "grad.inp");
  expect_rel(dw, st->to_f32("grad.w"), "grad.w");
}

TEST(TrainOps, RoPE) {
  auto st = load("rope");
  ASSERT_TRUE(st);
  auto x = st->to_f32("inp"), dout = st->to_f32("dout");
  auto pos = test::longs(*st, "pos");
  const int64_t nh = std::stoll(test::meta(*st, "heads")), D = std::stoll(test::meta(*st, "head_dim"));
  const int64_t N = int64_t(pos.size());
  std::vector<float> out(x.size()), dx(x.size(), 0.0f);
  rope_forward(out.data(), x.data(), pos.data(), N, nh, D, metaf(*st, "theta"));
  expect_rel(out, st->to_f32("out"), "out");
  rope_backward(dx.data(), dout.data(), pos.data(), N, nh, D, metaf(*st, "theta"));
  expect_rel(dx, st->to_f32("grad.inp"), "grad.inp");
}

// Products large enough to be cut into tiles (rows: 300 x 520; columns: 20 x 4096), with
// accumulation into non-zero gradients: identical bits for 1 and 2 threads, and equal to a naive
// double-precision loop oracle.
TEST(TrainOps, TiledLinearSameForAnyThreadCountAndMatchesNaiveOracle) {
  for (auto [M, K, N] : {std::array<int64_t, 3>{300, 256, 520}, std::array<int64_t, 3>{20, 512, 4096}}) {
    std::vector<float> x(size_t(M * K)), W(size_t(N * K)), dout(size_t(M * N));
    uint64_t s = 12345;
    auto rnd = [&] {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      return float(int64_t(s >> 40) % 2001 - 1000) / 1000.0f;
    };
    for (auto* v : {&x, &W, &dout})
      for (float& f : *v) f = rnd();
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2}) {
      set_default_threads(threads);
      std::vector<float> out(size_t(M * N)), dx(x.size(), 0.25f), dW(W.size(), -0.5f);
      linear_forward(out.data(), x.data(), W.data(), nullptr, M, K, N);
      linear_backward(dx.data(), dW.data(), nullptr, dout.data(), x.data(), W.data(), M, K, N);
      std::vector<float> all = out;
      all.insert(all.end(), dx.begin(), dx.end());
      all.insert(all.end(), dW.begin(), dW.end());
      runs.push_back(all);
    }
    set_default_threads(0);
    EXPECT_EQ(runs[0], runs[1]) << "linear depends on the thread count (" << M << "x" << K << "x" << N << ")";
    const float* out = runs[0].data();
    const float* dx = out + M * N;
    const float* dW = dx + M * K;
    double worst = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t k = 0; k < K; ++k) ref += double(x[size_t(m * K + k)]) * W[size_t(n * K + k)];
        worst = std::max(worst, std::abs(out[m * N + n] - ref));
      }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        double ref = 0.25;
        for (int64_t n = 0; n < N; ++n) ref += double(dout[size_t(m * N + n)]) * W[size_t(n * K + k)];
        worst = std::max(worst, std::abs(dx[m * K + k] - ref));
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        double ref = -0.5;
        for (int64_t m = 0; m < M; ++m) ref += double(dout[size_t(m * N + n)]) * x[size_t(m * K + k)];
        worst = std::max(worst, std::abs(dW[n * K + k] - ref));
      }
    EXPECT_LT(worst, 1e-3) << M << "x" << K << "x" << N;  // sums of <= 4096 products of magnitude <= 1
  }
}

TEST(TrainOps, CausalGQAAttentionSameForAnyThreadCount) {
  for (const char* name : {"attention", "attention_long"}) {  // T = 5, and T = 150 (three query blocks)
    SCOPED_TRACE(name);
    auto st = load(name);
    ASSERT_TRUE(st);
    auto q = st->to_f32("q"), k = st->to_f32("k"), v = st->to_f32("v"), dout = st->to_f32("dout");
    auto m = [&](const char* key) { return std::stoll(test::meta(*st, key)); };
    const int64_t B = m("B"), T = m("T"), Hq = m("Hq"), Hkv = m("Hkv"), D = m("D");
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2}) {
      set_default_threads(threads);
      std::vector<float> out(q.size()), att(size_t(B * Hq * T * T)), dq(q.size(), 0.0f), dk(k.size(), 0.0f),
          dv(v.size(), 0.0f);
      attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
      expect_rel(out, st->to_f32("out"), "out");
      attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), att.data(), B, T, Hq,
                         Hkv, D);
      expect_rel(dq, st->to_f32("grad.q"), "grad.q");
      expect_rel(dk, st->to_f32("grad.k"), "grad.k");
      expect_rel(dv, st->to_f32("grad.v"), "grad.v");
      dq.insert(dq.end(), dk.begin(), dk.end());
      dq.insert(dq.end(), dv.begin(), dv.end());
      runs.push_back(dq);
    }
    set_default_threads(0);
    EXPECT_EQ(runs[0], runs[1]) << "attention backward depends on the thread count";
  }
}

TEST(TrainOps, SwiGLUFfn) {
  auto st = load("swiglu_ffn");
  ASSERT_TRUE(st);
  auto x = st->to_f32("x"), Wg = st->to_f32("Wg"), Wu = st->to_f32("Wu"), Wd = st->to_f32("Wd");
  auto dout = st->to_f32("dout");
  const int64_t M = dim(*st, "x", 0), H = dim(*st, "x", 1), F = dim(*st, "Wg", 0);
  std::vector<float> y(size_t(M * H)), g(size_t(M * F)), u(g.size()), h(g.size());
  std::vector<float> dx(x.size(), 0.0f), dWg(Wg.size(), 0.0f), dWu(Wu.size(), 0.0f), dWd(Wd.size(), 0.0f);
  swiglu_ffn_forward(y.data(), {g.data(), u.data(), h.data()}, x.data(), Wg.data(), Wu.data(), Wd.data(), M, H, F);
  expect_rel(y, st->to_f32("out"), "out");
  swiglu_ffn_backward(dx.data(), dWg.data(), dWu.data(), dWd.data(), dout.data(), x.data(), {g.data(), u.data(), h.data()},
                      Wg.data(), Wu.data(), Wd.data(), M, H, F);
  expect_rel(dx, st->to_f32("grad.x"), "grad.x");
  expect_rel(dWg, st->to_f32("grad.Wg"), "grad.Wg");
  expect_rel(dWu, st->to_f32("grad.Wu"), "grad.Wu");
  expect_rel(dWd, st->to_f32("grad.Wd"), "grad.Wd");
}

// The same reference with Wg and Wu (and dWg, dWu) adjacent in one buffer, as MoELM lays out its
// experts: the gate and up projections then run as one stacked product.
TEST(TrainOps, SwiGLUFfnStackedGateUp) {
  auto st = load("swiglu_ffn");
  ASSERT_TRUE(st);
  auto x = st->to_f32("x"), Wg = st->to_f32("Wg"), Wu = st->to_f32("Wu"), Wd = st->to_f32("Wd");
  auto dout = st->to_f32("dout");
  const int64_t M = dim(*st, "x", 0), H = dim(*st, "x", 1), F = dim(*st, "Wg", 0);
  std::vector<float> Wgu(Wg);
  Wgu.insert(Wgu.end(), Wu.begin(), Wu.end());
  std::vector<float> y(size_t(M * H)), g(size_t(M * F)), u(g.size()), h(g.size());
  std::vector<float> dx(x.size(), 0.0f), dWgu(Wgu.size(), 0.0f), dWd(Wd.size(), 0.0f);
  const float* wu = Wgu.data() + F * H;
  swiglu_ffn_forward(y.data(), {g.data(), u.data(), h.data()}, x.data(), Wgu.data(), wu, Wd.data(), M, H, F);
  expect_rel(y, st->to_f32("out"), "out");
  swiglu_ffn_backward(dx.data(), dWgu.data(), dWgu.data() + F * H, dWd.data(), dout.data(), x.data(),
                      {g.data(), u.data(), h.data()}, Wgu.data(), wu, Wd.data(), M, H, F);
  expect_rel(dx, st->to_f32("grad.x"), "grad.x");
  expect_rel(std::vector<float>(dWgu.begin(), dWgu.begin() + F * H), st->to_f32("grad.Wg"), "grad.Wg");
  expect_rel(std::vector<float>(dWgu.begin() + F * H, dWgu.end()), st->to_f32("grad.Wu"), "grad.Wu");
  expect_rel(dWd, st->to_f32("grad.Wd"), "grad.Wd");
}

// Stacked projections equal the separate ones (naive double oracle), with uneven widths.
TEST(TrainOps, LinearStackedMatchesSeparate) {
  const int64_t M = 37, K = 19, N1 = 24, N2 = 8, N3 = 5, NT = N1 + N2 + N3;
  uint64_t rs = 7;
  auto rnd = [&] {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return float(int64_t(rs >> 40) % 2001 - 1000) / 1000.0f;
  };
  std::vector<float> x(size_t(M * K)), W(size_t(NT * K)), d(size_t(M * NT));
  for (auto* v : {&x, &W, &d})
    for (float& e : *v) e = rnd();
  std::vector<float> o1(size_t(M * N1)), o2(size_t(M * N2)), o3(size_t(M * N3));
  float* outs[3] = {o1.data(), o2.data(), o3.data()};
  const int64_t widths[3] = {N1, N2, N3};
  linear_forward_stacked(outs, widths, x.data(), W.data(), M, K);
  std::vector<float> d1, d2, d3;  // the column blocks of d
  for (int64_t m = 0; m < M; ++m) {
    d1.insert(d1.end(), d.begin() + m * NT, d.begin() + m * NT + N1);
    d2.insert(d2.end(), d.begin() + m * NT + N1, d.begin() + m * NT + N1 + N2);
    d3.insert(d3.end(), d.begin() + m * NT + N1 + N2, d.begin() + (m + 1) * NT);
  }
  std::vector<float> dx(x.size(), 0.25f), dW(W.size(), 0.5f);
  const float* douts[3] = {d1.data(), d2.data(), d3.data()};
  linear_backward_stacked(dx.data(), dW.data(), douts, widths, x.data(), W.data(), M, K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < NT; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * W[size_t(n * K + k)];
      const float got = n < N1 ? o1[size_t(m * N1 + n)]
                                : n < N1 + N2 ? o2[size_t(m * N2 + n - N1)] : o3[size_t(m * N3 + n - N1 - N2)];
      ASSERT_NEAR(got, s, 1e-5) << m << " " << n;
    }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.25;
      for (int64_t n = 0; n < NT; ++n) s += double(d[size_t(m * NT + n)]) * W[size_t(n * K + k)];
      ASSERT_NEAR(dx[size_t(m * K + k)], s, 1e-5) << "dx " << m << " " << k;
    }
  for (int64_t n = 0; n < NT; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.5;
      for (int64_t m = 0; m < M; ++m) s += double(d[size_t(m * NT + n)]) * x[size_t(m * K + k)];
      ASSERT_NEAR(dW[size_t(n * K + k)], s, 1e-5) << "dW " << n << " " << k;
    }
}

TEST(TrainOps, CrossEntropyWithIgnoredTarget) {
  auto st = load("cross_entropy");
  ASSERT_TRUE(st);
  auto logits = st->to_f32("logits");
  auto tgt = test::ints(*st, "targets");
  for (int32_t& t : tgt) t = t < 0 ? -1 : t;  // any negative target is ignored
  const int64_t N = dim(*st, "logits", 0), V = dim(*st, "logits", 1);
  std::vector<float> d(logits.size(), 0.0f);
  const double loss = cross_entropy(d.data(), logits.data(), tgt.data(), N, V, float(metaf(*st, "dloss")));
  EXPECT_NEAR(loss, test::scalar(*st, "loss"), 1e-5 * std::fabs(test::scalar(*st, "loss")));
  expect_rel(d, st->to_f32("grad.logits"), "grad.logits");
}

// Scores -> selection -> gates, gradient to the router logits (softmax top-k with/without renorm,
// sigmoid + selection bias + scale, top-p with raw weights).
void check_gates(const std::string& name) {
  SCOPED_TRACE(name);
  auto st = load(name);
  ASSERT_TRUE(st);
  auto logits = st->to_f32("logits"), bias = st->to_f32("bias"), dw = st->to_f32("dw");
  const int64_t N = dim(*st, "logits", 0);
  const int S = int(dim(*st, "logits", 1));
  const std::string kind = test::meta(*st, "kind");
  std::vector<float> s(logits.size());
  Selection sel;
  bool norm = false;
  float eps = 0, scale = 1;
  if (kind == "sigmoid") {
    sigmoid_forward(s.data(), logits.data(), N * S);
    std::vector<float> rank(s);
    for (int64_t t = 0; t < N; ++t)
      for (int i = 0; i < S; ++i) rank[size_t(t * S + i)] += bias[size_t(i)];
    sel = select_topk(rank.data(), N, S, std::stoi(test::meta(*st, "k")));
    norm = test::meta(*st, "norm") == "true";
    eps = float(metaf(*st, "eps"));
    scale = float(metaf(*st, "scale"));
  } else {
    softmax_forward(s.data(), logits.data(), N, S);
    if (kind == "topp") {
      sel = select_topp(s.data(), N, S, metaf(*st, "p"), S);
    } else {
      sel = select_topk(s.data(), N, S, std::stoi(test::meta(*st, "k")));
      norm = test::meta(*st, "norm") == "true";
    }
  }
  EXPECT_EQ(sel.offsets, test::ints(*st, "offsets"));
  EXPECT_EQ(sel.col, test::ints(*st, "cols"));
  ASSERT_EQ(size_t(sel.nnz()), dw.size());
  std::vector<float> w(dw.size()), ds(s.size(), 0.0f), dl(s.size(), 0.0f);
  gates_forward(w.data(), s.data(), sel, norm, eps, scale);
  expect_rel(w, st->to_f32("w"), "w");
  gates_backward(ds.data(), dw.data(), s.data(), sel, norm, eps, scale);
  if (kind == "sigmoid")
    sigmoid_backward(dl.data(), ds.data(), s.data(), N * S);
  else
    softmax_backward(dl.data(), ds.data(), s.data(), N, S);
  expect_rel(dl, st->to_f32("grad.logits"), "grad.logits");
}

TEST(TrainOps, RouterGates) {
  for (const char* n : {"gates_topk_norm", "gates_topk_raw", "gates_sigmoid", "gates_topp"}) check_gates(n);
}

TEST(TrainOps, MoEBlockDispatchExpertsCombine) {
  auto st = load("moe_block");
  ASSERT_TRUE(st);
  auto x = st->to_f32("x"), Wg = st->to_f32("Wg"), dout = st->to_f32("dout");
  const int64_t N = dim(*st, "x", 0), H = dim(*st, "x", 1);
  const int E = std::stoi(test::meta(*st, "E")), k = std::stoi(test::meta(*st, "k"));
  const int64_t F = std::stoll(test::meta(*st, "F"));
  std::vector<std::vector<float>> ew(size_t(3 * E)), dew(size_t(3 * E));
  const char* nm[3] = {"gate", "up", "down"};
  for (int e = 0; e < E; ++e)
    for (int j = 0; j < 3; ++j) {
      ew[size_t(3 * e + j)] = st->to_f32(str("experts.", e, ".", nm[j]));
      dew[size_t(3 * e + j)].assign(ew[size_t(3 * e + j)].size(), 0.0f);
    }
  std::vector<float> logits(size_t(N * E)), p(logits.size());
  linear_forward(logits.data(), x.data(), Wg.data(), nullptr, N, H, E);
  softmax_forward(p.data(), logits.data(), N, E);
  Selection sel = select_topk(p.data(), N, E, k);
  std::vector<float> w(size_t(sel.nnz()));
  gates_forward(w.data(), p.data(), sel, true, 0.0f, 1.0f);
  Dispatch d = make_dispatch(sel, E);
  const int64_t R = d.rows();
  std::vector<float> xe(size_t(R * H)), ye(size_t(R * H)), g(size_t(R * F)), u(g.size()), h(g.size()), y(size_t(N * H));
  dispatch_forward(xe.data(), x.data(), d, H);
  for (int e = 0; e < E; ++e) {
    const int64_t r0 = d.expert_offsets[size_t(e)], m = d.expert_offsets[size_t(e) + 1] - r0;
    swiglu_ffn_forward(ye.data() + r0 * H, {g.data() + r0 * F, u.data() + r0 * F, h.data() + r0 * F}, xe.data() + r0 * H,
                       ew[size_t(3 * e)].data(), ew[size_t(3 * e + 1)].data(), ew[size_t(3 * e + 2)].data(), m, H, F);
  }
  combine_forward(y.data(), ye.data(), w.data(), sel, d, H);
  expect_rel(y, st->to_f32("out"), "out");
  std::vector<float> dye(ye.size(), 0.0f), dxe(xe.size(), 0.0f), dw(w.size(), 0.0f), dx(x.size(), 0.0f),
      dp(p.size(), 0.0f), dl(p.size(), 0.0f), dWg(Wg.size(), 0.0f);
  combine_backward(dye.data(), dw.data(), dout.data(), ye.data(), w.data(), sel, d, H);
  for (int e = 0; e < E; ++e) {
    const int64_t r0 = d.expert_offsets[size_t(e)], m = d.expert_offsets[size_t(e) + 1] - r0;
    swiglu_ffn_backward(dxe.data() + r0 * H, dew[size_t(3 * e)].data(), dew[size_t(3 * e + 1)].data(),
                        dew[size_t(3 * e + 2)].data(), dye.data() + r0 * H, xe.data() + r0 * H,
                        {g.data() + r0 * F, u.data() + r0 * F, h.data() + r0 * F}, ew[size_t(3 * e)].data(),
                        ew[size_t(3 * e + 1)].data(), ew[size_t(3 * e + 2)].data(), m, H, F);
  }
  dispatch_backward(dx.data(), dxe.data(), sel, d, H);
  gates_backward(dp.data(), dw.data(), p.data(), sel, true, 0.0f, 1.0f);
  softmax_backward(dl.data(), dp.data(), p.data(), N, E);
  linear_backward(dx.data(), dWg.data(), nullptr, dl.data(), x.data(), Wg.data(), N, H, E);
  expect_rel(dx, st->to_f32("grad.x"), "grad.x");
  expect_rel(dWg, st->to_f32("grad.Wg"), "grad.Wg");
  for (int e = 0; e < E; ++e)
    for (int j = 0; j < 3; ++j)
      expect_rel(dew[size_t(3 * e + j)], st->to_f32(str("grad.experts.", e, ".", nm[j])), str("grad expert ", e, nm[j]));
}

TEST(TrainOps, BalanceLossPerMicroBatchGlobalFAndNullBucket) {
  for (const char* name : {"balance_micro", "balance_global_f", "balance_null"}) {
    SCOPED_TRACE(name);
    auto st = load(name);
    ASSERT_TRUE(st);
    auto logits = st->to_f32("logits");
    const int64_t N = dim(*st, "logits", 0);
    const int S = int(dim(*st, "logits", 1)), E = std::stoi(test::meta(*st, "E"));
    std::vector<float> p(logits.size()), dp(p.size(), 0.0f), dl(p.size(), 0.0f);
    softmax_forward(p.data(), logits.data(), N, S);
    Selection sel = select_topk(p.data(), N, S, std::stoi(test::meta(*st, "k")));
    std::vector<double> f = selection_fraction(sel);
    if (st->find("f")) {
      auto ff = st->to_f32("f");
      f.assign(ff.begin(), ff.end());
    }
    const double loss = balance_loss(dp.data(), p.data(), N, S, E, f.data(), float(metaf(*st, "coef")));
    EXPECT_NEAR(loss, test::scalar(*st, "loss"), 1e-5 * std::fabs(test::scalar(*st, "loss")));
    softmax_backward(dl.data(), dp.data(), p.data(), N, S);
    expect_rel(dl, st->to_f32("grad.logits"), "grad.logits");
  }
}

TEST(TrainOps, ZLossAndEntropyLoss) {
  {
    auto st = load("z_loss");
    ASSERT_TRUE(st);
    auto l = st->to_f32("logits");
    const int64_t N = dim(*st, "logits", 0);
    const int S = int(dim(*st, "logits", 1));
    std::vector<float> d(l.size(), 0.0f);
    const double loss = z_loss(d.data(), l.data(), N, S, float(metaf(*st, "coef")));
    EXPECT_NEAR(loss, test::scalar(*st, "loss"), 1e-5 * std::fabs(test::scalar(*st, "loss")));
    expect_rel(d, st->to_f32("grad.logits"), "z grad.logits");
  }
  auto st = load("entropy");
  ASSERT_TRUE(st);
  auto l = st->to_f32("logits");
  const int64_t N = dim(*st, "logits", 0);
  const int S = int(dim(*st, "logits", 1));
  std::vector<float> p(l.size()), dp(l.size(), 0.0f), dl(l.size(), 0.0f);
  softmax_forward(p.data(), l.data(), N, S);
  const double loss = entropy_loss(dp.data(), p.data(), N, S, float(metaf(*st, "coef")));
  EXPECT_NEAR(loss, test::scalar(*st, "loss"), 1e-5 * std::fabs(test::scalar(*st, "loss")));
  softmax_backward(dl.data(), dp.data(), p.data(), N, S);
  expect_rel(dl, st->to_f32("grad.logits"), "entropy grad.logits");
}

TEST(TrainOps, AuxFreeBiasUpdate) {
  auto st = load("bias_update");
  ASSERT_TRUE(st);
  auto load_ = test::longs(*st, "load");
  auto b = st->to_f32("bias");
  aux_free_bias_update(b.data(), load_.data(), int(load_.size()), float(metaf(*st, "rate")));
  expect_rel(b, st->to_f32("out"), "bias");
}

TEST(TrainOptim, AdamWMatchesTorch) {
  auto st = load("adamw");
  ASSERT_TRUE(st);
  auto p0 = st->to_f32("p0"), p1 = st->to_f32("p1");
  std::vector<float> m0(p0.size(), 0.0f), v0(p0.size(), 0.0f), m1(p1.size(), 0.0f), v1(p1.size(), 0.0f);
  AdamWParams hp{float(metaf(*st, "beta1")), float(metaf(*st, "beta2")), float(metaf(*st, "eps"))};
  const float lr = float(metaf(*st, "lr")), wd = float(metaf(*st, "wd"));
  for (int s = 0; s < std::stoi(test::meta(*st, "steps")); ++s) {
    auto g0 = st->to_f32(str("g0.", s)), g1 = st->to_f32(str("g1.", s));
    adamw_step(p0.data(), g0.data(), m0.data(), v0.data(), int64_t(p0.size()), s + 1, lr, wd, hp);
    adamw_step(p1.data(), g1.data(), m1.data(), v1.data(), int64_t(p1.size()), s + 1, lr, 0.0f, hp);
    expect_rel(p0, st->to_f32(str("after0.", s)), str("decayed param, step ", s + 1), 1e-5);
    expect_rel(p1, st->to_f32(str("after1.", s)), str("undecayed param, step ", s + 1), 1e-5);
  }
  EXPECT_THROW(adamw_step(p0.data(), p0.data(), m0.data(), v0.data(), 1, 0, lr, wd, hp), Error);
}

TEST(TrainOptim, ClipGradNormMatchesTorch) {
  for (const char* name : {"clip_active", "clip_inactive"}) {
    SCOPED_TRACE(name);
    auto st = load(name);
    ASSERT_TRUE(st);
    auto g0 = st->to_f32("g0"), g1 = st->to_f32("g1");
    std::vector<std::span<float>> gs{g0, g1};
    const double total = clip_grad_norm(gs, metaf(*st, "max_norm"));
    EXPECT_NEAR(total, test::scalar(*st, "total"), 1e-5 * test::scalar(*st, "total"));
    expect_rel(g0, st->to_f32("out0"), "g0");
    expect_rel(g1, st->to_f32("out1"), "g1");
  }
}

TEST(TrainOptim, WarmupCosineSchedule) {
  auto st = load("lr_schedule");
  ASSERT_TRUE(st);
  auto steps = test::longs(*st, "steps");
  auto want = st->to_f32("lr");
  std::vector<float> got;
  for (int64_t s : steps)
    got.push_back(float(lr_at(s, std::stoll(test::meta(*st, "warmup")), std::stoll(test::meta(*st, "total")),
                              metaf(*st, "max_lr"), metaf(*st, "min_lr"))));
  expect_rel(got, want, "lr", 1e-6);
}

}  // namespace
}  // namespace sy::train
