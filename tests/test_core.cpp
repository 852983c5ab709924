// Core pieces: dtype conversions, thread pool, router spec parsing.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "moe/router.h"

namespace sy {
namespace {

TEST(DType, Bf16RoundTripAndRounding) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1+2^-7: ties to even -> 1.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, F16MatchesKnownEncodings) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x0001), 5.960464477539063e-08f);
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  for (int h = 0; h < 0x7c00; ++h) EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << h;
}

TEST(ThreadPool, RunsEveryTaskOnceAndPropagatesErrors) {
  ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1000, [&](int64_t t, int th) {
    EXPECT_LT(th, pool.size());
    hits[size_t(t)]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_THROW(pool.parallel_for(100, [](int64_t t, int) {
    if (t == 37) fail("boom");
  }), Error);
  int n = 0;
  pool.parallel_for(3, [&](int64_t, int) { pool.parallel_for(1, [&](int64_t, int) {}); });
  pool.parallel_for(1, [&](int64_t, int) { ++n; });
  EXPECT_EQ(n, 1);
  EXPECT_LE(ThreadPool(1000).size(), available_cores());
}

TEST(RouterSpec, ParsesAndRejectsBadInput) {
  auto s = RouterSpec::parse("topk:k=2,norm=true");
  EXPECT_EQ(s.name, "topk");
  EXPECT_EQ(s.get_int("k", 0), 2);
  EXPECT_TRUE(s.get_bool("norm", false));
  EXPECT_THROW(RouterSpec::parse("topk:k"), Error);
  EXPECT_THROW(RouterSpec::parse("topk:k=1,k=2"), Error);
  EXPECT_THROW(RouterSpec::parse(""), Error);
  EXPECT_THROW(RouterSpec::parse("Top K"), Error);
}

TEST(RouterSpec, ErrorsNameTheParameter) {
  auto expect_msg = [](const std::string& spec, int E, const std::string& needle) {
    try {
      make_router(spec, E);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_msg("topk:k=9", 8, "k=9");
  expect_msg("topk:k=0", 8, "k=0");
  expect_msg("topk:kk=2", 8, "unknown parameter 'kk'");
  expect_msg("topk:k=two", 8, "k='two'");
  expect_msg("nosuch:k=2", 8, "unknown router 'nosuch'");
  expect_msg("topk:norm=maybe", 8, "norm='maybe'");
}

TEST(Routers, RejectNonFiniteLogits) {
  for (const auto& info : router_registry()) {
    auto r = make_router(info.example, 8);
    if (!r->uses_logits()) continue;
    int S = r->num_scores(8);
    std::vector<float> l(size_t(4 * S), 0.5f);
    l[size_t(S + 1)] = NAN;
    RouteInput in;
    in.logits = l.data();
    in.n_tokens = 4;
    in.n_scores = S;
    Routing out;
    EXPECT_THROW(r->route(in, 8, out), Error) << info.name;
    l[size_t(S + 1)] = INFINITY;
    EXPECT_THROW(r->route(in, 8, out), Error) << info.name;
  }
}

}  // namespace
}  // namespace sy
