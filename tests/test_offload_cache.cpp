// The budgeted expert cache (offload/expert_cache.h): an MoE layer reading its experts through
// CachedExperts gives bitwise the outputs of InMemoryExperts over the same safetensors file
// (bf16 and f32, 25% and 50% budgets, LRU/LFU/predictive), the live cache's hit counts equal the
// trace replay of the same policy, and bad input (a file that changes, a budget below one token's
// experts) gives clear errors. Concurrent prefetch + acquire runs under the ASan build too.
// Per-layer split: the shares and minimum total by hand, a layer never evicts another layer's
// experts, every layer stays within its share over random steps (and a global budget does not).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "file_test_util.h"
#include "io/safetensors.h"
#include "moe/moe_layer.h"
#include "offload/expert_cache.h"
#include "offload/predictor.h"
#include "offload/trace_analysis.h"

namespace sy::offload {
namespace {

using test::error_of;  // "" when nothing is thrown

constexpr int64_t kE = 8, kH = 32, kF = 24;

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("sy_offload_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::string tname(int64_t e, const char* w) { return "experts." + std::to_string(e) + "." + w; }

// Writes E experts (gate, up, down) with random weights in `dt`, plus one f32 tensor first so
// that expert offsets are not 0. Returns the path.
std::string write_experts(const std::string& name, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  std::vector<std::vector<uint8_t>> store;
  std::vector<TensorToWrite> ts;
  std::vector<float> pad(37);
  for (auto& v : pad) v = nd(rng);
  ts.push_back({"aaa.padding", DType::F32, {37}, pad.data()});
  auto add = [&](const std::string& n, int64_t r, int64_t c) {
    std::vector<float> f(size_t(r * c));
    for (auto& v : f) v = nd(rng);
    store.emplace_back(f.size() * dtype_size(dt));
    from_f32(dt, f.data(), store.back().data(), f.size());
    ts.push_back({n, dt, {r, c}, store.back().data()});
  };
  for (int64_t e = 0; e < kE; ++e) {
    add(tname(e, "gate"), kF, kH);
    add(tname(e, "up"), kF, kH);
    add(tname(e, "down"), kH, kF);
  }
  std::string path = tmp_path(name);
  write_safetensors(path, ts);
  return path;
}

WeightRef view(const TensorInfo& t) { return {t.data, t.dtype, t.shape[0], t.shape[1]}; }

std::vector<CacheLayerSpec> spec_of(const SafeTensors& st, int k) {
  CacheLayerSpec s;
  s.active_per_token = k;
  for (int64_t e = 0; e < kE; ++e) {
    ExpertLocation x;
    x.gate = tensor_location(st.path(), st.get(tname(e, "gate")));
    x.up = tensor_location(st.path(), st.get(tname(e, "up")));
    x.down = tensor_location(st.path(), st.get(tname(e, "down")));
    s.experts.push_back(x);
  }
  return {s};
}

std::shared_ptr<InMemoryExperts> in_memory(const SafeTensors& st) {
  std::vector<FfnWeights> ex;
  for (int64_t e = 0; e < kE; ++e) {
    FfnWeights w;
    w.gate = view(st.get(tname(e, "gate")));
    w.up = view(st.get(tname(e, "up")));
    w.down = view(st.get(tname(e, "down")));
    ex.push_back(w);
  }
  return std::make_shared<InMemoryExperts>(ex);
}

size_t expert_bytes(DType dt) { return size_t(3 * kF * kH) * dtype_size(dt); }

struct Case {
  DType dtype;
  int budget_pct;
  PolicyKind policy;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << dtype_name(c.dtype) << ", budget " << c.budget_pct << "%, " << policy_name(c.policy);
}

class CachedLayer : public ::testing::TestWithParam<Case> {};

TEST_P(CachedLayer, BitwiseIdenticalToInMemory) {
  const Case c = GetParam();
  std::string path = write_experts(str("layer_", dtype_name(c.dtype), c.budget_pct, ".safetensors"), c.dtype, 7);
  SafeTensors st(path);
  const int k = 2;
  ExpertCacheOptions opt;
  opt.budget_bytes = size_t(kE) * expert_bytes(c.dtype) * size_t(c.budget_pct) / 100;
  opt.policy = c.policy;
  auto cache = ExpertCache::create(spec_of(st, k), opt);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> gate(size_t(kE * kH));
  for (auto& v : gate) v = nd(rng) * 0.3f;
  MoEConfig cfg{kH, kE, kF, {}};
  MoEWeights wm, wc;
  wm.router = wc.router = {gate.data(), DType::F32, kE, kH};
  wm.experts = in_memory(st);
  wc.experts = cache->store(0);
  MoELayer ref(cfg, wm, make_router("topk:k=2,norm=true", int(kE)));
  MoELayer cached(cfg, wc, make_router("topk:k=2,norm=true", int(kE)));
  // Decode: one token per step, 40 steps; then one batch of 16 tokens (may pin past the budget).
  for (int64_t T : {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 16}) {
    std::vector<float> x(size_t(T * kH)), y0(x.size()), y1(x.size());
    for (auto& v : x) v = nd(rng);
    ref.forward(x.data(), T, y0.data());
    cached.forward(x.data(), T, y1.data());
    ASSERT_EQ(std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(float)), 0) << "T=" << T;
    if (T == 1) {
      EXPECT_LE(cache->stats().peak_resident_bytes, opt.budget_bytes) << "decode stays within the budget";
    }
  }
  CacheStats s = cache->stats();
  EXPECT_GT(s.loads, int64_t(kE) * c.budget_pct / 100) << "a budget below all experts must evict and reload";
  EXPECT_GT(s.evictions, 0);
  EXPECT_EQ(s.bytes_read, uint64_t(s.loads) * expert_bytes(c.dtype));
  EXPECT_EQ(s.acquires, s.hits + s.late_prefetches + s.misses);
  cache.reset();  // the store still holds the cache; releasing in any order is safe
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Offload, CachedLayer,
                         ::testing::Values(Case{DType::BF16, 25, PolicyKind::LRU}, Case{DType::BF16, 50, PolicyKind::LRU},
                                           Case{DType::BF16, 25, PolicyKind::LFU}, Case{DType::BF16, 50, PolicyKind::LFU},
                                           Case{DType::F32, 25, PolicyKind::LRU}, Case{DType::F32, 50, PolicyKind::LRU},
                                           Case{DType::F32, 25, PolicyKind::LFU}, Case{DType::F32, 50, PolicyKind::LFU},
                                           Case{DType::F32, 25, PolicyKind::Predictive}),
                         [](const auto& info) {
                           return str(dtype_name(info.param.dtype), "_", info.param.budget_pct, "pct_",
                                      policy_name(info.param.policy));
                         });

// The live cache makes the same decisions as the trace replay of the same policy.
TEST(ExpertCache, HitsMatchTraceReplay) {
  std::string path = write_experts("replay.safetensors", DType::BF16, 11);
  SafeTensors st(path);
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> steps;
  std::vector<int32_t> prev = {0, 1};
  for (int t = 0; t < 60; ++t) {
    std::vector<int32_t> s = prev;
    if (rng() % 2) s[rng() % 2] = int32_t(rng() % kE);
    if (s[0] == s[1]) s[1] = (s[0] + 1) % int32_t(kE);
    steps.push_back(s);
    prev = s;
  }
  std::string text = str("{\"format\":\"switchyard-trace\",\"version\":1,\"n_layers\":1,\"n_experts\":", kE,
                         ",\"expert_bytes\":[", expert_bytes(DType::BF16), "]}\n");
  for (size_t t = 0; t < steps.size(); ++t)
    text += str("{\"pos\":", t, ",\"r\":[[0,[", steps[t][0], ",", steps[t][1], "],[0.5,0.5]]]}\n");
  Trace tr = parse_trace(text, "steps");
  for (PolicyKind p : {PolicyKind::LRU, PolicyKind::LFU}) {
    for (int cap : {2, 3, 5}) {
      ExpertCacheOptions opt;
      opt.budget_bytes = size_t(cap) * expert_bytes(DType::BF16);
      opt.policy = p;
      auto cache = ExpertCache::create(spec_of(st, 2), opt);
      for (const auto& s : steps) {
        cache->prefetch(0, s);  // as MoELayer::forward does before acquiring a step's experts
        std::vector<ExpertHandle> hs;
        for (int32_t e : s) hs.push_back(cache->acquire(0, e));
      }
      ReplayResult r = replay_policy(tr, p, cap, CacheScope::PerLayer);
      CacheStats cs = cache->stats();
      EXPECT_EQ(cs.hits, r.hits) << policy_name(p) << " capacity " << cap;
      EXPECT_EQ(cs.bytes_read, r.bytes_read) << policy_name(p) << " capacity " << cap;
    }
  }
  std::filesystem::remove(path);
}

TEST(ExpertCache, LruCountsByHand) {
  std::string path = write_experts("lru.safetensors", DType::F32, 2);
  SafeTensors st(path);
  ExpertCacheOptions opt;
  opt.budget_bytes = 2 * expert_bytes(DType::F32);
  auto cache = ExpertCache::create(spec_of(st, 1), opt);
  // 0 miss, 1 miss, 0 hit, 2 miss (evicts 1), 0 hit, 1 miss (evicts 2).
  for (int e : {0, 1, 0, 2, 0, 1}) {
    ExpertHandle h = cache->acquire(0, e);
    // The weights are the file's bytes.
    const TensorInfo& up = st.get(tname(e, "up"));
    ASSERT_EQ(std::memcmp(h.weights.up.data, up.data, up.nbytes), 0);
  }
  CacheStats s = cache->stats();
  EXPECT_EQ(s.hits, 2);
  EXPECT_EQ(s.misses, 4);
  EXPECT_EQ(s.evictions, 2);
  EXPECT_EQ(s.bytes_read, 4 * expert_bytes(DType::F32));
  EXPECT_GE(s.stall_seconds, 0.0);
  std::filesystem::remove(path);
}

TEST(ExpertCache, BudgetBelowOneTokensExpertsIsAnError) {
  std::string path = write_experts("small.safetensors", DType::BF16, 1);
  SafeTensors st(path);
  ExpertCacheOptions opt;
  opt.budget_bytes = 2 * expert_bytes(DType::BF16) - 1;
  std::string msg = error_of([&] { ExpertCache::create(spec_of(st, 2), opt); });
  EXPECT_NE(msg.find("smaller than one token's active experts"), std::string::npos) << msg;
  EXPECT_NE(msg.find(str("minimum budget ", 2 * expert_bytes(DType::BF16), " bytes")), std::string::npos) << msg;
  opt.budget_bytes += 1;
  EXPECT_NO_THROW(ExpertCache::create(spec_of(st, 2), opt));
  std::filesystem::remove(path);
}

TEST(ExpertCache, BadLocationsAreErrors) {
  std::string path = write_experts("loc.safetensors", DType::BF16, 1);
  SafeTensors st(path);
  ExpertCacheOptions opt;
  opt.budget_bytes = 1 << 30;
  auto spec = spec_of(st, 2);
  spec[0].experts[3].down.offset = st.file_size();
  EXPECT_NE(error_of([&] { ExpertCache::create(spec, opt); }).find("past the end of"), std::string::npos);
  spec = spec_of(st, 2);
  std::swap(spec[0].experts[1].down.rows, spec[0].experts[1].down.cols);
  EXPECT_NE(error_of([&] { ExpertCache::create(spec, opt); }).find("down is [24, 32], expected [32, 24]"),
            std::string::npos);
  spec = spec_of(st, 2);
  spec[0].experts[0].up.file = tmp_path("missing.safetensors");
  EXPECT_NE(error_of([&] { ExpertCache::create(spec, opt); }).find("cannot open"), std::string::npos);
  auto cache = ExpertCache::create(spec_of(st, 2), opt);
  EXPECT_NE(error_of([&] { cache->acquire(0, kE); }).find("expert 8 out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { cache->acquire(1, 0); }).find("layer 1 out of range"), std::string::npos);
  std::filesystem::remove(path);
}

// Per-layer split (ExpertCacheOptions::per_layer). Layer 0: bf16 experts (b bytes each, k = 2);
// layer 1: f32 experts (2b each). All experts: 8b + 16b = 24b.
std::vector<CacheLayerSpec> two_layer_spec(const SafeTensors& bf16, const SafeTensors& f32, int k1) {
  auto specs = spec_of(bf16, 2);
  specs.push_back(spec_of(f32, k1)[0]);
  return specs;
}

// Shares floor(budget * B_l / B); the minimum total is max_l ceil(need_l * B / B_l):
// layer 0 needs 2b -> 2b * 24b / 8b = 6b; layer 1 (k = 1) needs 2b -> 2b * 24b / 16b = 3b.
TEST(ExpertCache, PerLayerSplitSharesAndMinimumTotal) {
  std::string p16 = write_experts("split16.safetensors", DType::BF16, 21);
  std::string p32 = write_experts("split32.safetensors", DType::F32, 22);
  SafeTensors s16(p16), s32(p32);
  const size_t b = expert_bytes(DType::BF16);
  ASSERT_EQ(expert_bytes(DType::F32), 2 * b);
  ExpertCacheOptions opt;
  opt.per_layer = true;
  opt.budget_bytes = 9 * b;
  auto cache = ExpertCache::create(two_layer_spec(s16, s32, 1), opt);
  EXPECT_EQ(cache->layer_budget_bytes(0), 3 * b);
  EXPECT_EQ(cache->layer_budget_bytes(1), 6 * b);
  EXPECT_EQ(cache->max_held(0), 3);
  EXPECT_EQ(cache->max_held(1), 3);
  EXPECT_EQ(cache->min_budget_bytes(), 6 * b);
  opt.budget_bytes = 9 * b + 2;  // floors: 3b + 0 and 6b + 1; one byte dropped
  cache = ExpertCache::create(two_layer_spec(s16, s32, 1), opt);
  EXPECT_EQ(cache->layer_budget_bytes(0), 3 * b);
  EXPECT_EQ(cache->layer_budget_bytes(1), 6 * b + 1);
  opt.budget_bytes = 6 * b - 1;  // layer 0's share: 2b - 1
  std::string msg = error_of([&] { ExpertCache::create(two_layer_spec(s16, s32, 1), opt); });
  EXPECT_NE(msg.find("split per layer gives layer 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find(str("minimum budget ", 6 * b, " bytes")), std::string::npos) << msg;
  ExpertCacheOptions global = opt;
  global.per_layer = false;
  EXPECT_NO_THROW(ExpertCache::create(two_layer_spec(s16, s32, 1), global)) << "a global 6b - 1 holds one layer's 2b";
  opt.budget_bytes = 6 * b;
  EXPECT_NO_THROW(ExpertCache::create(two_layer_spec(s16, s32, 1), opt));
  std::filesystem::remove(p16);
  std::filesystem::remove(p32);
}

// Two equal layers, k = 1, budget 4 experts (2 per layer), LRU. A hand-made pattern with a known
// answer: with the split, layer 1's third expert evicts layer 1's oldest; with one global budget
// it evicts the oldest of all, layer 0's.
TEST(ExpertCache, PerLayerSplitNeverEvictsAnotherLayersExperts) {
  std::string path = write_experts("split_lru.safetensors", DType::BF16, 23);
  SafeTensors st(path);
  auto specs = spec_of(st, 1);
  specs.push_back(specs[0]);
  for (bool per_layer : {true, false}) {
    SCOPED_TRACE(per_layer ? "per-layer" : "global");
    ExpertCacheOptions opt;
    opt.budget_bytes = 4 * expert_bytes(DType::BF16);
    opt.per_layer = per_layer;
    auto cache = ExpertCache::create(specs, opt);
    for (auto [l, e] : {std::pair{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, 2}}) cache->acquire(l, e);
    EXPECT_EQ(cache->stats().evictions, 1);
    EXPECT_EQ(cache->resident(0, 0), per_layer);
    EXPECT_TRUE(cache->resident(0, 1));
    EXPECT_EQ(cache->resident(1, 0), !per_layer);
    EXPECT_TRUE(cache->resident(1, 1));
    EXPECT_TRUE(cache->resident(1, 2));
    if (per_layer) {
      cache->acquire(0, 3);  // layer 0 is full: evicts its own oldest, 0, never layer 1's 1
      EXPECT_FALSE(cache->resident(0, 0));
      EXPECT_TRUE(cache->resident(0, 1) && cache->resident(0, 3) && cache->resident(1, 1) && cache->resident(1, 2));
      EXPECT_EQ(cache->layer_resident_bytes(0), 2 * expert_bytes(DType::BF16));
      EXPECT_EQ(cache->layer_resident_bytes(1), 2 * expert_bytes(DType::BF16));
    }
  }
  // Pins count against their layer's share: layer 0 (2 experts, k = 1) can pin one.
  ExpertCacheOptions opt;
  opt.budget_bytes = 4 * expert_bytes(DType::BF16);
  opt.per_layer = true;
  auto cache = ExpertCache::create(specs, opt);
  int32_t five[] = {5}, six[] = {6};
  cache->pin(0, five);
  EXPECT_EQ(cache->max_held(0), 1);
  EXPECT_EQ(cache->max_held(1), 2);
  std::string msg = error_of([&] { cache->pin(0, six); });
  EXPECT_NE(msg.find("of its share of the budget"), std::string::npos) << msg;
  EXPECT_NO_THROW(cache->pin(1, six));
  for (int e : {0, 1, 2, 3}) cache->acquire(0, e);  // layer 0 cycles through its one free slot
  EXPECT_TRUE(cache->resident(0, 5));
  EXPECT_TRUE(cache->resident(1, 6));
  EXPECT_EQ(cache->layer_resident_bytes(0), 2 * expert_bytes(DType::BF16));
  std::filesystem::remove(path);
}

// Random decode-like steps (a prediction prefetched into one layer, then a step of two experts on
// a layer: prefetch + acquire both) under each policy: with the split, every layer's resident
// bytes stay within its share after every step, and nothing is loaded past it (io_threads = 1:
// at most one load in flight, and a share of 3 experts always leaves room for a step's 2). The
// same steps under one global budget do put more than its share into layer 0 (the check can fail).
TEST(ExpertCache, PerLayerSharesHoldUnderRandomSteps) {
  std::string p16 = write_experts("split_r16.safetensors", DType::BF16, 24);
  std::string p32 = write_experts("split_r32.safetensors", DType::F32, 25);
  SafeTensors s16(p16), s32(p32);
  const SafeTensors* files[2] = {&s16, &s32};
  const size_t b = expert_bytes(DType::BF16);
  for (PolicyKind p : {PolicyKind::LRU, PolicyKind::LFU, PolicyKind::Predictive}) {
    bool global_exceeded = false;
    for (bool per_layer : {true, false}) {
      SCOPED_TRACE(str(policy_name(p), per_layer ? " per-layer" : " global"));
      ExpertCacheOptions opt;
      opt.budget_bytes = 9 * b;  // shares 3b (3 bf16 experts) and 6b (3 f32 experts)
      opt.policy = p;
      opt.io_threads = 1;
      opt.per_layer = per_layer;
      auto cache = ExpertCache::create(two_layer_spec(s16, s32, 2), opt);
      const size_t share[2] = {3 * b, 6 * b};
      std::mt19937 rng(uint32_t(31 + int(p)));
      for (int i = 0; i < 300; ++i) {
        const int l = i < 60 ? 0 : int(rng() % 2);  // first only layer 0's steps
        int32_t a = int32_t(rng() % kE), c = int32_t(rng() % kE);
        int32_t pred[] = {a, c};
        if (rng() % 2) cache->prefetch(1 - l, pred, true);
        int32_t x = int32_t(rng() % kE), y = (x + 1 + int32_t(rng() % (kE - 1))) % int32_t(kE);
        int32_t step[] = {x, y};
        cache->prefetch(l, step, false);
        {
          ExpertHandle hx = cache->acquire(l, x), hy = cache->acquire(l, y);
          const TensorInfo& up = files[l]->get(tname(y, "up"));
          ASSERT_EQ(std::memcmp(hy.weights.up.data, up.data, up.nbytes), 0);
        }
        const size_t r0 = cache->layer_resident_bytes(0), r1 = cache->layer_resident_bytes(1);
        EXPECT_EQ(r0 + r1, cache->stats().resident_bytes);
        if (per_layer) {
          ASSERT_LE(r0, share[0]) << "step " << i;
          ASSERT_LE(r1, share[1]) << "step " << i;
        } else {
          global_exceeded |= r0 > share[0] || r1 > share[1];
        }
      }
      CacheStats s = cache->stats();
      EXPECT_LE(s.peak_resident_bytes, opt.budget_bytes);
      if (per_layer) {
        EXPECT_EQ(s.overflow_loads, 0);
        EXPECT_GT(s.evictions, 0);
        EXPECT_GT(s.hits, 0);
        EXPECT_EQ(s.acquires, s.hits + s.late_prefetches + s.misses);
      }
    }
    EXPECT_TRUE(global_exceeded) << policy_name(p) << ": the global budget never went past a share";
  }
  std::filesystem::remove(p16);
  std::filesystem::remove(p32);
}

void set_mtime_later(const std::string& path) {
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ts[1].tv_sec += 5;  // file systems with coarse timestamps still see a change
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0);
}

TEST(ExpertCache, FileChangeIsAnErrorNeverWrongWeights) {
  for (int mode = 0; mode < 3; ++mode) {
    std::string path = write_experts(str("change", mode, ".safetensors"), DType::BF16, 4);
    SafeTensors st(path);
    ExpertCacheOptions opt;
    opt.budget_bytes = 2 * expert_bytes(DType::BF16);
    auto cache = ExpertCache::create(spec_of(st, 1), opt);
    { auto h = cache->acquire(0, 0); }
    const char* want = nullptr;
    if (mode == 0) {  // overwritten in place
      int fd = ::open(path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      uint8_t junk[64] = {1};
      ASSERT_EQ(::pwrite(fd, junk, sizeof junk, off_t(st.get(tname(5, "up")).file_offset)), ssize_t(sizeof junk));
      ::close(fd);
      set_mtime_later(path);
      want = "changed since it was opened";
    } else if (mode == 1) {  // truncated
      ASSERT_EQ(::truncate(path.c_str(), off_t(st.get(tname(5, "up")).file_offset)), 0);
      want = "shrank from";
    } else {  // replaced by a new file (atomic rename): same size, other inode
      write_experts(str("change", mode, ".safetensors"), DType::BF16, 99);
      want = "was replaced or removed";
    }
    std::string msg = error_of([&] { cache->acquire(0, 5); });
    EXPECT_NE(msg.find(want), std::string::npos) << "mode " << mode << ": " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("layer 0 expert 5"), std::string::npos) << msg;
    // A failed background prefetch is reported by the acquire that needs it.
    int32_t six[] = {6};
    cache->prefetch(0, six);
    EXPECT_NE(error_of([&] { cache->acquire(0, 6); }).find(want), std::string::npos) << "mode " << mode;
    // Still failing on retry: never silently serves other bytes.
    EXPECT_NE(error_of([&] { cache->acquire(0, 5); }).find(want), std::string::npos) << "mode " << mode;
    std::filesystem::remove(path);
  }
}

// Many threads acquire and prefetch at random; every handle must hold the file's bytes while it
// is pinned. Run under ASan/UBSan (and TSan-clean by construction: one mutex guards the state).
TEST(ExpertCache, ConcurrentPrefetchAndAcquire) {
  std::string path = write_experts("concurrent.safetensors", DType::BF16, 8);
  SafeTensors st(path);
  for (PolicyKind p : {PolicyKind::LRU, PolicyKind::LFU, PolicyKind::Predictive}) {
    ExpertCacheOptions opt;
    opt.budget_bytes = 3 * expert_bytes(DType::BF16);
    opt.policy = p;
    opt.io_threads = 3;
    auto cache = ExpertCache::create(spec_of(st, 2), opt);
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(uint32_t(100 + t));
        for (int i = 0; i < 300; ++i) {
          int32_t a = int32_t(rng() % kE), b = int32_t(rng() % kE);
          int32_t pf[] = {a, b};
          cache->prefetch(0, pf);
          ExpertHandle h = cache->acquire(0, int64_t(rng() % kE));
          int64_t e = -1;
          for (int64_t x = 0; x < kE; ++x)
            if (std::memcmp(h.weights.down.data, st.get(tname(x, "down")).data, st.get(tname(x, "down")).nbytes) == 0)
              e = x;
          if (e < 0) ++bad;
          std::this_thread::yield();
        }
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(bad.load(), 0) << policy_name(p);
    CacheStats s = cache->stats();
    EXPECT_EQ(s.acquires, 4 * 300);
    EXPECT_EQ(s.acquires, s.hits + s.late_prefetches + s.misses);
    EXPECT_LE(s.resident_bytes, opt.budget_bytes) << "back within the budget once nothing is pinned";
  }
  std::filesystem::remove(path);
}

// The predictor applied with a layer's own gate to that layer's input predicts exactly what the
// layer then chooses; the hook prefetches into the next layer's store and records the trace.
TEST(Predictor, OwnGatePredictsExactlyAndHookPrefetches) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t T = 5;
  std::vector<float> x(size_t(T * kH)), gate(size_t(kE * kH));
  for (auto& v : x) v = nd(rng);
  for (auto& v : gate) v = nd(rng);
  auto router = make_router("topk:k=2,norm=true", int(kE));
  WeightRef g{gate.data(), DType::F32, kE, kH};
  ExpertPrediction p = predict_experts(x.data(), T, kH, g, nullptr, *router, int(kE));
  // Reference: the router on W_g x computed by the naive backend.
  std::vector<float> logits(size_t(T * kE));
  naive_backend().linear(x.data(), T, g, nullptr, logits.data());
  RouteInput in;
  in.logits = logits.data();
  in.n_tokens = T;
  in.n_scores = int(kE);
  Routing r;
  router->route(in, int(kE), r);
  std::set<int32_t> uni;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> want(r.expert.begin() + r.offsets[size_t(t)], r.expert.begin() + r.offsets[size_t(t) + 1]);
    EXPECT_EQ(p.per_token[size_t(t)], want);
    uni.insert(want.begin(), want.end());
  }
  EXPECT_EQ(p.experts, std::vector<int32_t>(uni.begin(), uni.end()));

  // The hook: layer 0 predicts layer 1 into layer 1's store and the trace.
  std::string path = write_experts("hook.safetensors", DType::BF16, 3);
  SafeTensors st(path);
  ExpertCacheOptions opt;
  opt.budget_bytes = size_t(kE) * expert_bytes(DType::BF16);
  opt.policy = PolicyKind::Predictive;
  auto specs = spec_of(st, 2);
  specs.push_back(specs[0]);
  auto cache = ExpertCache::create(specs, opt);
  std::string tpath = tmp_path("hook.trace");
  {
    TraceWriter tw(tpath, {2, int(kE), {expert_bytes(DType::BF16), expert_bytes(DType::BF16)}, 2, "hook"});
    for (int64_t t = 0; t < T; ++t) tw.begin_token(t);
    std::vector<PredictivePrefetcher::Layer> layers(2);
    for (auto& L : layers) {
      L.gate = g;
      L.router = router.get();
      L.n_experts = int(kE);
    }
    layers[0].store = cache->store(0);
    layers[1].store = cache->store(1);
    PredictivePrefetcher pf(layers, 2, &tw);
    pf.on_layer(0, x.data(), T);
    EXPECT_EQ(pf.stats().predictions, 1);  // layer 2 does not exist
    EXPECT_EQ(pf.stats().experts_prefetched, int64_t(uni.size()));
    for (int32_t e : uni) cache->acquire(1, e);  // prefetched: hits or waits, never a miss
    EXPECT_EQ(cache->stats().misses, 0);
    tw.close();
  }
  Trace tr = read_trace(tpath);
  ASSERT_EQ(tr.tokens.size(), size_t(T));
  for (int64_t t = 0; t < T; ++t) {
    ASSERT_EQ(tr.tokens[size_t(t)].predictions.size(), 1u);
    EXPECT_EQ(tr.tokens[size_t(t)].predictions[0].to, 1);
    EXPECT_EQ(tr.tokens[size_t(t)].predictions[0].experts, p.per_token[size_t(t)]);
  }
  std::filesystem::remove(tpath);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sy::offload
