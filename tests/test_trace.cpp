// Routing traces: writer/reader round trip, validation errors, and the replays and metrics of
// `switchyard trace analyze` against answers worked out by hand (in the comments).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "offload/trace.h"
#include "offload/trace_analysis.h"

namespace sy::offload {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("sy_trace_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::string header_line(int L, int E, uint64_t bytes = 100) {
  std::string s = "{\"format\":\"switchyard-trace\",\"version\":1,\"n_layers\":" + std::to_string(L) +
                  ",\"n_experts\":" + std::to_string(E) + ",\"expert_bytes\":[";
  for (int l = 0; l < L; ++l) {
    if (l) s += ',';
    s += std::to_string(bytes);
  }
  return s + "]}\n";
}

// A one-layer trace, one expert per token, all in sequence 0 unless seqs is given.
Trace single_layer(int E, const std::vector<int>& experts, const std::vector<int>& seqs = {}) {
  std::string text = header_line(1, E);
  for (size_t i = 0; i < experts.size(); ++i)
  {
    text += "{\"pos\":";
    text += std::to_string(i);
    text += ",\"seq\":";
    text += std::to_string(seqs.empty() ? 0 : seqs[i]);
    text += ",\"r\":[[0,[";
    text += std::to_string(experts[i]);
    text += "],[1]]]}\n";
  }
  return parse_trace(text, "test");
}

std::string error_of(const std::string& text) {
  try {
    parse_trace(text, "bad.trace");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Trace, WriterReaderRoundTrip) {
  std::string path = tmp_path("rt.trace");
  {
    TraceWriter w(path, {3, 8, {0, 4096, 4096}, 2, "tiny"});
    w.begin_token(0);
    int32_t e1[] = {3, 5};
    float w1[] = {0.75f, 0.25f};
    w.record(1, e1, w1);
    int32_t p[] = {1, 2};
    w.predict(1, 2, p);
    int32_t e2[] = {1, 7};
    float w2[] = {0.6f, 1.0f / 3.0f};
    w.record(2, e2, w2);
    w.flush();
    // A batch of two tokens from two sequences, recorded from a Routing.
    w.begin_token(1, 0);
    w.begin_token(0, 1);
    Routing r;
    r.reset(2, 8, 8);
    r.push(4, 1.0f);
    r.end_token();
    r.push(0, 0.5f);
    r.push(6, 0.5f);
    r.end_token();
    w.record_batch(1, r);
    w.predict_batch(1, 2, {{2}, {}});
    EXPECT_FALSE(std::filesystem::exists(path)) << "the trace appears only when closed";
    w.close();
  }
  Trace tr = read_trace(path);
  EXPECT_EQ(tr.header.n_layers, 3);
  EXPECT_EQ(tr.header.n_experts, 8);
  EXPECT_EQ(tr.header.expert_bytes, (std::vector<uint64_t>{0, 4096, 4096}));
  EXPECT_EQ(tr.header.top_k, 2);
  EXPECT_EQ(tr.header.model, "tiny");
  ASSERT_EQ(tr.tokens.size(), 3u);
  EXPECT_FALSE(tr.tokens[0].recorded[0]);
  EXPECT_EQ(tr.tokens[0].experts[1], (std::vector<int32_t>{3, 5}));
  EXPECT_EQ(tr.tokens[0].weights[2], (std::vector<float>{0.6f, 1.0f / 3.0f}));  // %.9g round-trips floats
  ASSERT_EQ(tr.tokens[0].predictions.size(), 1u);
  EXPECT_EQ(tr.tokens[0].predictions[0].experts, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(tr.tokens[1].pos, 1);
  EXPECT_EQ(tr.tokens[2].seq, 1);
  EXPECT_EQ(tr.tokens[1].experts[1], (std::vector<int32_t>{4}));
  EXPECT_EQ(tr.tokens[2].experts[1], (std::vector<int32_t>{0, 6}));
  EXPECT_EQ(tr.tokens[1].predictions[0].experts, (std::vector<int32_t>{2}));
  EXPECT_TRUE(tr.tokens[2].predictions[0].experts.empty());
  EXPECT_EQ(tr.max_active(), 2);
  std::filesystem::remove(path);
}

TEST(Trace, WriterRejectsBadCalls) {
  std::string path = tmp_path("bad_calls.trace");
  TraceWriter w(path, {2, 4, {10, 10}, 1, ""});
  int32_t e[] = {4};
  float wt[] = {1};
  EXPECT_THROW(w.record(0, e, wt), Error);  // no token begun
  w.begin_token(0);
  EXPECT_THROW(w.record(0, e, wt), Error);  // expert 4 of 4
  int32_t ok[] = {1};
  EXPECT_THROW(w.record(2, ok, wt), Error);  // layer 2 of 2
  w.record(0, ok, wt);
  EXPECT_THROW(w.record(0, ok, wt), Error);  // twice
  EXPECT_THROW(w.predict(1, 0, ok), Error);  // backwards
  w.close();
  std::filesystem::remove(path);
}

TEST(Trace, ReaderErrorsNameLineAndProblem) {
  std::string h = header_line(2, 4);
  EXPECT_NE(error_of("").find("empty file"), std::string::npos);
  EXPECT_NE(error_of("{\"format\":\"other\"}\n").find("not a switchyard trace"), std::string::npos);
  EXPECT_NE(error_of("{\"format\":\"switchyard-trace\",\"version\":2}\n").find("unsupported trace version 2"),
            std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1],[1]]]}").find("line 2: the last line has no newline"),
            std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[4],[1]]]}\n").find("line 2: expert id = 4 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[2,[1],[1]]]}\n").find("layer = 2 is out of range"), std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1,1],[1,1]]]}\n").find("lists expert 1 twice"), std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1],[1,2]]]}\n").find("one weight per expert"), std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1],[1]],[0,[2],[1]]]}\n").find("layer 0 is recorded twice"),
            std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":-1,\"r\":[]}\n").find("pos = -1"), std::string::npos);
  EXPECT_NE(error_of(h + "{\"r\":[]}\n").find("missing field \"pos\""), std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[],\"p\":[[1,1,[0]]]}\n").find("must target a later layer"),
            std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1],[1e999]]]}\n").find("line 2"), std::string::npos);
  EXPECT_NE(error_of(h + "\n").find("line 2: empty line"), std::string::npos);
  EXPECT_NE(error_of(h + "{\"pos\":0,\"r\":[[0,[1],[\"x\"]]]}\n").find("not a number"), std::string::npos);
  EXPECT_NE(error_of(h + "[1,2\n").find("not valid JSON"), std::string::npos);
  std::string short_bytes = "{\"format\":\"switchyard-trace\",\"version\":1,\"n_layers\":2,\"n_experts\":4,"
                            "\"expert_bytes\":[100]}\n";
  EXPECT_NE(error_of(short_bytes).find("expert_bytes must be an array of n_layers"), std::string::npos);
  EXPECT_THROW(read_trace(tmp_path("does_not_exist.trace")), Error);
}

// Requests 0 1 2 0 1 3 0 1 (one layer, one expert per token).
const std::vector<int> kClassic = {0, 1, 2, 0, 1, 3, 0, 1};

TEST(TraceReplay, LruByHand) {
  Trace tr = single_layer(4, kClassic);
  // capacity 2: every request evicts what comes back next -> 0 hits.
  auto r2 = replay_policy(tr, PolicyKind::LRU, 2, CacheScope::PerLayer);
  EXPECT_EQ(r2.requests, 8);
  EXPECT_EQ(r2.hits, 0);
  EXPECT_EQ(r2.bytes_read, 800u);
  // capacity 3: 0 1 2 miss, 0 1 hit, 3 evicts 2 (least recent), 0 1 hit -> 4 hits.
  EXPECT_EQ(replay_policy(tr, PolicyKind::LRU, 3, CacheScope::PerLayer).hits, 4);
}

TEST(TraceReplay, LfuByHand) {
  Trace tr = single_layer(4, kClassic);
  // capacity 2, frequencies kept across evictions, ties to the least recent:
  //  0 m {0}  1 m {0,1}  2 m: f0=f1=1, 0 older -> {1,2}  0 m: f1=f2=1, 1 older -> {2,0} (f0=2)
  //  1 m: f2=1 < f0=2 -> {0,1} (f1=2)  3 m: f0=f1=2, 0 older -> {1,3}  0 m: f3=1 -> {1,0} (f0=3)
  //  1 hit -> 1 hit.
  EXPECT_EQ(replay_policy(tr, PolicyKind::LFU, 2, CacheScope::PerLayer).hits, 1);
}

TEST(TraceReplay, BeladyByHand) {
  Trace tr = single_layer(4, kClassic);
  // capacity 2: 0 m, 1 m, 2 m evicts 1 (next use 4 > 3) -> {0,2}; 0 hit; 1 m evicts 2 (never again)
  // -> {0,1}; 3 m evicts 1 (7 > 6) -> {0,3}; 0 hit; 1 m -> 2 hits.
  auto r = replay_belady(tr, 2, CacheScope::PerLayer);
  EXPECT_EQ(r.hits, 2);
  EXPECT_EQ(r.loads, 6);
  EXPECT_EQ(r.bytes_read, 600u);
  // capacity 3: only the 4 first uses miss.
  EXPECT_EQ(replay_belady(tr, 3, CacheScope::PerLayer).hits, 4);
  // Belady is never beaten by the online policies.
  for (int c = 1; c <= 4; ++c)
    for (PolicyKind p : {PolicyKind::LRU, PolicyKind::LFU, PolicyKind::Predictive})
      EXPECT_LE(replay_policy(tr, p, c, CacheScope::PerLayer).hits, replay_belady(tr, c, CacheScope::PerLayer).hits);
}

TEST(TraceReplay, GlobalAndPerLayerScopes) {
  // Two layers, E = 2. Tokens: (L0 0, L1 0), (L0 1, L1 0), (L0 0, L1 1). Keys a=(0,0) b=(1,0)
  // c=(0,1) d=(1,1); stream a b c b a d.
  std::string text = header_line(2, 2, 10);
  text += "{\"pos\":0,\"r\":[[0,[0],[1]],[1,[0],[1]]]}\n";
  text += "{\"pos\":1,\"r\":[[0,[1],[1]],[1,[0],[1]]]}\n";
  text += "{\"pos\":2,\"r\":[[1,[1],[1]],[0,[0],[1]]]}\n";  // layer order in the line does not matter
  Trace tr = parse_trace(text, "t");
  // Global LRU, capacity 2: a m, b m, c m (evict a), b hit, a m (evict c), d m (evict b) -> 1 hit.
  EXPECT_EQ(replay_policy(tr, PolicyKind::LRU, 2, CacheScope::Global).hits, 1);
  // Global Belady, capacity 2: c evicts a (next at 4) keeping b (next at 3): b hit; a, d miss -> 1.
  EXPECT_EQ(replay_belady(tr, 2, CacheScope::Global).hits, 1);
  // Global, capacity 3: a b c miss, b hit, a hit, d miss -> 2.
  EXPECT_EQ(replay_belady(tr, 3, CacheScope::Global).hits, 2);
  EXPECT_EQ(replay_policy(tr, PolicyKind::LRU, 3, CacheScope::Global).hits, 2);
  // Per layer, 1 expert each: layer 0 sees 0 1 0 (no hit), layer 1 sees 0 0 1 (1 hit).
  auto r = replay_policy(tr, PolicyKind::LRU, 1, CacheScope::PerLayer);
  EXPECT_EQ(r.hits, 1);
  EXPECT_EQ(r.bytes_read, 50u);
}

TEST(TraceReplay, PredictiveUsesRecordedPredictions) {
  // Two layers, E = 4, one expert per layer cache. Token 0: layer 0 -> 0, predicted 1 for layer 1,
  // layer 1 -> 1. Token 1: layer 0 -> 0, predicted 2, layer 1 -> 3.
  std::string text = header_line(2, 4, 10);
  text += "{\"pos\":0,\"r\":[[0,[0],[1]],[1,[1],[1]]],\"p\":[[0,1,[1]]]}\n";
  text += "{\"pos\":1,\"r\":[[0,[0],[1]],[1,[3],[1]]],\"p\":[[0,1,[2]]]}\n";
  Trace tr = parse_trace(text, "t");
  // Predictive: t0 L0 miss, prefetch 1, t0 L1 hit; t1 L0 hit, prefetch 2 (evicts 1), L1 3 miss -> 2 hits.
  auto p = replay_policy(tr, PolicyKind::Predictive, 1, CacheScope::PerLayer);
  EXPECT_EQ(p.hits, 2);
  EXPECT_EQ(p.prefetches, 2);
  EXPECT_EQ(p.prefetch_used, 1);
  EXPECT_EQ(p.bytes_read, 10u * (2 + 2));  // 2 demand loads + 2 prefetches
  // LRU ignores predictions: only t1 L0 hits.
  EXPECT_EQ(replay_policy(tr, PolicyKind::LRU, 1, CacheScope::PerLayer).hits, 1);
  auto acc = predictor_accuracy(tr);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].distance, 1);
  EXPECT_EQ(acc[0].predictions, 2);
  EXPECT_DOUBLE_EQ(acc[0].recall(), 0.5);
  EXPECT_DOUBLE_EQ(acc[0].precision(), 0.5);
}

TEST(TraceReplay, CapacityBelowActiveExpertsIsAnError) {
  std::string text = header_line(1, 4) + "{\"pos\":0,\"r\":[[0,[0,1,2],[1,1,1]]]}\n";
  Trace tr = parse_trace(text, "t");
  try {
    replay_policy(tr, PolicyKind::LRU, 2, CacheScope::PerLayer);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("minimum 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(replay_belady(tr, 2, CacheScope::Global), Error);
}

TEST(TraceMetrics, SrpByHand) {
  // E = 4, tokens 0 0 1 0, m = 2: windows (0,0) (0,1) (1,0). Pairs (window, expert) by count:
  // c=0: 3+2+2 = 7, c=1: 0+2+2 = 4, c=2: 1. actual = 4 + 2 = 6.
  // j=0: 2*6/(12*2+6) = 0.4;  j=1: 2*6/(5*2+6) = 0.75;  j=2: 2*2/(1*2+6) = 0.5  -> SRP 0.75.
  Trace tr = single_layer(4, {0, 0, 1, 0});
  EXPECT_DOUBLE_EQ(segment_routing_best_performance(tr, 2), 0.75);
  // m = 1: every token is served exactly by its own expert: F1 = 1.
  EXPECT_DOUBLE_EQ(segment_routing_best_performance(tr, 1), 1.0);
  // A second sequence (2 3) adds one window: c=0 +2, c=1 +2 -> hist 9/6/1, actual 8:
  // j=0: 16/(32+8) = 0.4;  j=1: 16/(14+8) = 8/11;  j=2: 4/(2+8) = 0.4.
  Trace tr2 = single_layer(4, {0, 2, 0, 1, 3, 0}, {0, 1, 0, 0, 1, 0});
  EXPECT_DOUBLE_EQ(segment_routing_best_performance(tr2, 2), 16.0 / 22.0);
  // No sequence long enough.
  EXPECT_EQ(segment_routing_best_performance(tr, 5), 0.0);
}

TEST(TraceMetrics, SchByHand) {
  // Tokens 0 1 0 2 1, L = 1. 0: new, 0 seen < C -> hit for C >= 1. 1: new, 1 seen -> hit for C >= 2.
  // 0: seen, needed now -> rank 0, hit. 2: new, 2 seen -> hit for C >= 3. 1: rank 0, hit.
  Trace tr = single_layer(4, {0, 1, 0, 2, 1});
  auto s = segment_cache_best_hit_rate(tr, 1, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_DOUBLE_EQ(s[0], 3.0 / 5);
  EXPECT_DOUBLE_EQ(s[1], 4.0 / 5);
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  EXPECT_DOUBLE_EQ(s[3], 1.0);
  // Tokens 0 1 2 0 1, L = 3, C = 1: 0 hit (free slot); 1, 2 miss; at 3 the window {0, 1} ranks
  // 1 (more recent) before 0 -> miss; at 4 the window {1} ranks 1 first -> hit. 2/5.
  // C = 2: 0, 1 (free slots), 0 (rank 1), 1 -> 4/5.
  Trace tr2 = single_layer(4, {0, 1, 2, 0, 1});
  auto s2 = segment_cache_best_hit_rate(tr2, 3, 2);
  EXPECT_DOUBLE_EQ(s2[0], 2.0 / 5);
  EXPECT_DOUBLE_EQ(s2[1], 4.0 / 5);
}

}  // namespace
}  // namespace sy::offload
