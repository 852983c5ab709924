// Expert offloading beyond one sequence's decode (issue #5), on the tiny reference checkpoints of
// tests/reference/gen_models.py; the plain mapped model is the oracle throughout:
//   - a prompt that uses more experts than the budget holds is computed in chunks (MoELayer +
//     ExpertStore::max_held): bitwise the same logits, and the cache never loads past the budget;
//   - batched decode (Model::forward_batch, token regrouping): every sequence's logits are bitwise
//     those of decoding it alone, and each step acquires each (layer, expert) once;
//   - pinning hot experts from a recorded profile (offload/pin_profile.h): hand-made trace with a
//     known answer, mismatched profiles refused, pinned experts never evicted, output unchanged;
//   - O_DIRECT reads: same output; the cache says whether O_DIRECT was used or why not.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "offload/pin_profile.h"
#include "offload/trace.h"
#include "offload_test_util.h"

namespace sy {
namespace {

namespace fs = std::filesystem;
using test::bitwise_equal;

void expect_same_run(const test::GreedyRun& got, const test::GreedyRun& want) {
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_TRUE(bitwise_equal(got.prompt_logits, want.prompt_logits)) << "prompt logits differ";
  ASSERT_EQ(got.decode_logits.size(), want.decode_logits.size());
  for (size_t i = 0; i < got.decode_logits.size(); ++i)
    EXPECT_TRUE(bitwise_equal(got.decode_logits[i], want.decode_logits[i])) << "decode step " << i << " logits differ";
}

// Distinct experts per layer that one forward of `tokens` uses.
std::vector<int> distinct_experts(const ForwardStats& st) {
  std::vector<int> out;
  for (const RoutingStats& r : st.layers)
    out.push_back(int(std::count_if(r.tokens_per_expert.begin(), r.tokens_per_expert.end(), [](int64_t n) { return n > 0; })));
  return out;
}

fs::path temp_path(const std::string& tag) {
  return fs::temp_directory_path() / ("sy_offload_batch_" + std::to_string(::getpid()) + "_" + tag);
}

TEST(OffloadBatch, PromptOverBudgetIsChunkedBitwiseAndWithinBudget) {
  constexpr int kDecode = 4;
  bool saw_chunking = false;
  for (const auto& c : test::model_cases()) {
    SCOPED_TRACE(c.name);
    auto plain = Model::load(c.dir);
    const test::GreedyRun want = test::greedy_run(*plain, c.prompt, kDecode);
    KVCache kv = plain->make_cache(int64_t(c.prompt.size()));
    std::vector<float> logits(size_t(plain->config().vocab));
    ForwardStats st;
    plain->forward(c.prompt, kv, logits.data(), false, &st);
    const std::vector<int> used = distinct_experts(st);

    LoadOptions probe;
    probe.expert_budget_fraction = 1.0;
    const size_t minimum = Model::load(c.dir, probe)->expert_cache()->min_budget_bytes();
    for (auto pol : {offload::PolicyKind::LRU, offload::PolicyKind::LFU, offload::PolicyKind::Predictive}) {
      SCOPED_TRACE(offload::policy_name(pol));
      LoadOptions lo;
      lo.expert_budget_bytes = minimum;  // one token's experts: every longer prompt is over budget
      lo.cache_policy = pol;
      auto m = Model::load(c.dir, lo);
      const offload::ExpertCache& cache = *m->expert_cache();
      for (size_t l = 0; l < used.size(); ++l)
        if (used[l] > 0 && used[l] > cache.max_held(int(l))) saw_chunking = true;
      expect_same_run(test::greedy_run(*m, c.prompt, kDecode), want);
      const offload::CacheStats cs = *m->expert_cache_stats();
      if (pol != offload::PolicyKind::Predictive) {
        EXPECT_EQ(cs.overflow_loads, 0) << cs.summary();
        EXPECT_LE(cs.peak_resident_bytes, minimum) << cs.summary();
      } else {
        // Predictions already being read (io_threads = 2 at a time) cannot be cancelled: a demand
        // may load past the budget by at most that many experts.
        int64_t k = 0;
        for (const auto& spec : m->router_specs())
          if (!spec.empty()) k = std::max<int64_t>(k, RouterSpec::parse(spec).get_int("k", 0));
        ASSERT_GT(k, 0);
        EXPECT_LE(cs.peak_resident_bytes, minimum + 2 * (minimum / size_t(k))) << cs.summary();
      }
      EXPECT_LE(cs.resident_bytes, minimum);
    }
  }
  EXPECT_TRUE(saw_chunking) << "no prompt used more experts than the minimum budget holds: chunking untested";
}

// n sequences: decoded alone (prompt, then greedy steps), and together (each prompt alone, then
// forward_batch steps over all of them) must give the same logits bit for bit.
TEST(OffloadBatch, BatchedDecodeMatchesDecodingAloneAndLoadsEachExpertOncePerStep) {
  constexpr int kSteps = 6, kSeqs = 3;
  bool saw_sharing = false;
  for (const auto& c : test::model_cases()) {
    SCOPED_TRACE(c.name);
    std::vector<std::vector<int32_t>> prompts;
    for (int s = 0; s < kSeqs; ++s) {  // different lengths and contents
      std::vector<int32_t> p(c.prompt.begin(), c.prompt.end() - s);
      std::rotate(p.begin(), p.begin() + s, p.end());
      prompts.push_back(p);
    }
    auto plain = Model::load(c.dir);
    const int64_t V = plain->config().vocab;
    std::vector<test::GreedyRun> alone;
    for (const auto& p : prompts) alone.push_back(test::greedy_run(*plain, p, kSteps + 1));

    for (bool offloaded : {false, true}) {
      SCOPED_TRACE(offloaded ? "offloaded (lru, 100%)" : "mapped");
      LoadOptions lo;
      if (offloaded) {
        lo.expert_budget_fraction = 1.0;  // nothing evicted: loads = experts never seen before
        lo.cache_policy = offload::PolicyKind::LRU;
      }
      auto m = Model::load(c.dir, lo);
      std::vector<KVCache> kv;
      std::vector<int32_t> next(kSeqs);
      std::vector<float> logits(static_cast<size_t>(V));
      for (int s = 0; s < kSeqs; ++s) {
        kv.push_back(m->make_cache(int64_t(prompts[size_t(s)].size()) + kSteps));
        m->forward(prompts[size_t(s)], kv.back(), logits.data(), false);
        next[size_t(s)] = alone[size_t(s)].tokens[0];
      }
      std::vector<KVCache*> ptrs;
      for (auto& k : kv) ptrs.push_back(&k);
      std::set<std::pair<size_t, int>> seen;  // (layer, expert) loaded so far
      if (offloaded) {
        ForwardStats all;  // the prompts' experts are resident now
        for (int s = 0; s < kSeqs; ++s) {
          KVCache tmp = plain->make_cache(int64_t(prompts[size_t(s)].size()));
          plain->forward(prompts[size_t(s)], tmp, logits.data(), false, &all);
        }
        for (size_t l = 0; l < all.layers.size(); ++l)
          for (size_t e = 0; e < all.layers[l].tokens_per_expert.size(); ++e)
            if (all.layers[l].tokens_per_expert[e] > 0) seen.insert({l, int(e)});
      }
      std::vector<float> batch_logits(size_t(kSeqs * V));
      for (int step = 0; step < kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const offload::CacheStats before = offloaded ? *m->expert_cache_stats() : offload::CacheStats{};
        ForwardStats st;
        m->forward_batch(next, ptrs, batch_logits.data(), &st);
        for (int s = 0; s < kSeqs; ++s) {
          EXPECT_TRUE(bitwise_equal(batch_logits.data() + s * V, alone[size_t(s)].decode_logits[size_t(step)].data(),
                                    size_t(V)))
              << "sequence " << s << " logits differ from decoding it alone";
          next[size_t(s)] = alone[size_t(s)].tokens[size_t(step) + 1];
        }
        if (!offloaded) continue;
        const offload::CacheStats after = *m->expert_cache_stats();
        const std::vector<int> used = distinct_experts(st);
        int64_t distinct = 0, fresh = 0, per_token = 0;
        for (size_t l = 0; l < used.size(); ++l) {
          distinct += used[l];
          for (size_t e = 0; e < st.layers[l].tokens_per_expert.size(); ++e) {
            per_token += st.layers[l].tokens_per_expert[e];
            if (st.layers[l].tokens_per_expert[e] > 0 && seen.insert({l, int(e)}).second) ++fresh;
          }
        }
        EXPECT_EQ(after.acquires - before.acquires, distinct) << "each expert acquired once per step";
        EXPECT_EQ(after.loads - before.loads, fresh) << "only experts never loaded before are read";
        saw_sharing |= distinct < per_token;  // regrouping saved acquires over one-by-one decode
      }
    }
  }
  EXPECT_TRUE(saw_sharing) << "no step had two sequences sharing an expert: regrouping untested";
}

TEST(OffloadBatch, BatchedDecodeRejectsBadInput) {
  const auto c = test::model_cases().at(0);
  auto m = Model::load(c.dir);
  KVCache a = m->make_cache(4);
  std::vector<float> logits(size_t(2 * m->config().vocab));
  std::vector<int32_t> two = {1, 2};
  std::vector<KVCache*> same = {&a, &a};
  EXPECT_THROW(m->forward_batch(two, same, logits.data()), Error);
  std::vector<KVCache*> one = {&a};
  EXPECT_THROW(m->forward_batch(two, one, logits.data()), Error);
}

offload::Trace hand_trace() {
  // 3 layers (layer 1 dense), 4 experts of 100 bytes (layer 2: 50 bytes).
  const char* text =
      "{\"format\":\"switchyard-trace\",\"version\":1,\"n_layers\":3,\"n_experts\":4,"
      "\"expert_bytes\":[100,0,50],\"top_k\":2,\"model\":\"hand\"}\n"
      "{\"pos\":0,\"r\":[[0,[2,1],[0.5,0.5]],[2,[0,3],[0.5,0.5]]]}\n"
      "{\"pos\":1,\"r\":[[0,[2,0],[0.5,0.5]],[2,[3,1],[0.5,0.5]]]}\n"
      "{\"pos\":2,\"r\":[[0,[2,1],[0.5,0.5]],[2,[3,0],[0.5,0.5]]]}\n";
  return offload::parse_trace(text, "hand.jsonl");
}

TEST(OffloadPin, HotExpertsOfAHandMadeTrace) {
  const offload::Trace tr = hand_trace();
  // layer 0 counts: e2 3, e1 2, e0 1, e3 0; layer 2: e3 3, e0 2, e1 1, e2 0.
  // 500 bytes over 2 MoE layers: 250 each -> 2 experts of 100 bytes, 5 of 50 (only 3 were used).
  auto hot = offload::hot_experts(tr, {100, 0, 50}, {4, 0, 4}, 500);
  EXPECT_EQ(hot[0], (std::vector<int32_t>{2, 1}));
  EXPECT_TRUE(hot[1].empty());
  EXPECT_EQ(hot[2], (std::vector<int32_t>{3, 0, 1}));
  hot = offload::hot_experts(tr, {100, 0, 50}, {4, 0, 4}, 199);  // 99 each: nothing of 100 bytes fits
  EXPECT_TRUE(hot[0].empty());
  EXPECT_EQ(hot[2], (std::vector<int32_t>{3}));
  EXPECT_THROW(offload::hot_experts(tr, {100, 0, 60}, {4, 0, 4}, 500), Error);  // other expert sizes
  EXPECT_THROW(offload::hot_experts(tr, {100, 50}, {4, 4}, 500), Error);         // other layer count
  EXPECT_THROW(offload::hot_experts(tr, {100, 0, 50}, {4, 0, 2}, 500), Error);   // expert 3 of 2
}

TEST(OffloadPin, ProfilePinsHotExpertsThatStayResidentAndOutputIsUnchanged) {
  constexpr int kDecode = 8;
  const auto c = test::model_cases().at(0);
  const fs::path trace = temp_path("profile.jsonl");
  {
    LoadOptions rec;
    rec.trace_path = trace.string();
    auto m = Model::load(c.dir, rec);
    test::greedy_run(*m, c.prompt, kDecode);
    m->close_trace();
  }
  auto plain = Model::load(c.dir);
  const test::GreedyRun want = test::greedy_run(*plain, c.prompt, kDecode);
  LoadOptions lo;
  lo.expert_budget_fraction = 0.5;
  lo.cache_policy = offload::PolicyKind::LRU;
  lo.pin_profile = trace.string();
  lo.pin_fraction = 0.5;
  auto m = Model::load(c.dir, lo);
  // The expected pin set, from the same profile.
  const offload::Trace tr = offload::read_trace(trace.string());
  std::vector<uint64_t> bytes(tr.header.expert_bytes.begin(), tr.header.expert_bytes.end());
  std::vector<int> n_experts;
  for (const auto& s : m->config().layers) n_experts.push_back(s.moe ? int(s.n_experts) : 0);
  const auto hot = offload::hot_experts(tr, bytes, n_experts, uint64_t(double(m->expert_cache()->budget_bytes()) * 0.5));
  int64_t n_hot = 0;
  for (const auto& h : hot) n_hot += int64_t(h.size());
  ASSERT_GT(n_hot, 0);
  offload::CacheStats cs = *m->expert_cache_stats();
  EXPECT_EQ(cs.pinned_experts, n_hot);
  EXPECT_LE(cs.pinned_bytes, m->expert_cache()->budget_bytes() / 2);
  expect_same_run(test::greedy_run(*m, c.prompt, kDecode), want);
  cs = *m->expert_cache_stats();
  EXPECT_GT(cs.evictions, 0) << "the unpinned rest of the cache must have been under pressure";
  for (size_t l = 0; l < hot.size(); ++l)
    for (int32_t e : hot[l]) EXPECT_TRUE(m->expert_cache()->resident(int(l), e)) << "layer " << l << " expert " << e;

  // Too large a share, or a profile without a budget: clear errors.
  lo.pin_fraction = 0.999;
  EXPECT_THROW(Model::load(c.dir, lo), Error);
  LoadOptions no_budget;
  no_budget.pin_profile = trace.string();
  EXPECT_THROW(Model::load(c.dir, no_budget), Error);
  // A profile of another model: refused, naming the mismatch.
  const auto cs_all = test::model_cases();
  for (const auto& other : cs_all) {
    auto om = Model::load(other.dir);
    if (om->routed_expert_bytes() == plain->routed_expert_bytes() && om->config().n_layers == plain->config().n_layers)
      continue;
    LoadOptions wrong = lo;
    wrong.pin_fraction = 0.5;
    try {
      Model::load(other.dir, wrong);
      ADD_FAILURE() << "a profile of " << c.name << " was accepted for " << other.name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("record the profile with the same model"), std::string::npos) << e.what();
    }
    break;
  }
  fs::remove(trace);
}

// O_DIRECT where the file system takes it (or buffered reads with the reason said), same output.
// Run on the checkpoint where the test data lives and on a copy in /dev/shm (tmpfs: refuses
// O_DIRECT on older kernels, takes it on newer ones; whichever, the cache must say so truthfully).
TEST(OffloadDirectIO, SameOutputAndTheCacheSaysHowItRead) {
  constexpr int kDecode = 6;
  const auto c = test::model_cases().at(0);
  auto plain = Model::load(c.dir);
  const test::GreedyRun want = test::greedy_run(*plain, c.prompt, kDecode);
  std::vector<std::string> dirs = {c.dir};
  const fs::path shm = fs::path("/dev/shm") / ("sy_direct_" + std::to_string(::getpid()));
  std::error_code ec;
  if (fs::is_directory("/dev/shm") && fs::create_directory(shm, ec)) {
    fs::copy(c.dir, shm, fs::copy_options::recursive);
    dirs.push_back(shm.string());
  }
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir);
    LoadOptions lo;
    lo.expert_budget_fraction = 0.25;
    lo.cache_policy = offload::PolicyKind::LRU;
    lo.direct_io = true;
    auto m = Model::load(dir, lo);
    expect_same_run(test::greedy_run(*m, c.prompt, kDecode), want);
    const offload::CacheStats cs = *m->expert_cache_stats();
    const std::string note = m->expert_cache()->io_note();
    // What the file system does, asked independently of the cache.
    bool takes_direct = false;
    for (const auto& f : fs::directory_iterator(dir)) {
      if (f.path().extension() != ".safetensors") continue;
      int fd = ::open(f.path().c_str(), O_RDONLY | O_DIRECT);
      if (fd >= 0) {
        alignas(4096) static unsigned char buf[4096];
        takes_direct = ::pread(fd, buf, sizeof buf, 0) >= 0;
        ::close(fd);
      }
      break;
    }
    if (takes_direct) {
      EXPECT_EQ(note, "O_DIRECT");
      EXPECT_GT(cs.direct_reads, 0);
      EXPECT_EQ(cs.buffered_reads, 0);
    } else {
      EXPECT_NE(note.find("O_DIRECT refused"), std::string::npos) << note;
      EXPECT_EQ(cs.direct_reads, 0);
      EXPECT_GT(cs.buffered_reads, 0);
    }
    LoadOptions buffered = lo;
    buffered.direct_io = false;
    auto b = Model::load(dir, buffered);
    test::greedy_run(*b, c.prompt, 1);
    EXPECT_EQ(b->expert_cache()->io_note(), "");
    EXPECT_EQ(b->expert_cache_stats()->direct_reads, 0);
  }
  if (dirs.size() > 1) fs::remove_all(shm);
}

}  // namespace
}  // namespace sy
