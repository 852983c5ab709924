// Sampler: processed distributions against the PyTorch reference of the HF logits processors
// (tests/reference/gen_sampling.py), seeded draws (deterministic, and frequencies matching the
// distribution), parameter checks, generation_config parsing, and the streaming StopMatcher.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "golden.h"
#include "model/sampling.h"

namespace sy {
namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SamplingGolden, ProcessedDistributionsMatchPyTorch) {
  auto cases = test::golden_cases("sampling");
  EXPECT_GE(cases.size(), 50u);
  for (const auto& path : cases) {
    SCOPED_TRACE(path);
    SafeTensors st(path);
    SamplingParams p;
    p.temperature = std::stof(test::meta(st, "temperature"));
    p.top_k = std::stoi(test::meta(st, "top_k"));
    p.top_p = std::stof(test::meta(st, "top_p"));
    p.min_p = std::stof(test::meta(st, "min_p"));
    p.repetition_penalty = std::stof(test::meta(st, "repetition_penalty"));
    auto logits = st.to_f32("logits");
    auto hf = st.to_f32("history");
    std::vector<int32_t> history(hf.begin(), hf.end());
    auto want = st.to_f32("probs");
    Sampler s(p);
    auto got = s.probabilities(logits.data(), int64_t(logits.size()), history);
    test::expect_close(got, want, 1e-6, path);
    size_t support_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) support_diff += (got[i] == 0.0f) != (want[i] == 0.0f);
    EXPECT_EQ(support_diff, 0u) << "tokens kept/removed differ from the reference";
    // process() leaves exactly the removed tokens at -inf.
    auto x = logits;
    s.process(x.data(), int64_t(x.size()), history);
    if (!p.greedy()) {
      for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(std::isinf(x[i]) && x[i] < 0, want[i] == 0.0f) << i;
    }
  }
}

std::vector<float> test_logits() { return {0.5f, 2.0f, -1.0f, 1.0f, 1.5f, -3.0f, 0.0f, 1.2f}; }

TEST(Sampling, SameSeedSameTokensDifferentSeedDifferentTokens) {
  auto L = test_logits();
  SamplingParams p;
  p.temperature = 1.3f;
  p.seed = 1234;
  auto run = [&](Sampler& s) {
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(L.data(), int64_t(L.size()), {}));
    return out;
  };
  Sampler a(p), b(p);
  auto ta = run(a);
  EXPECT_EQ(ta, run(b));
  a.reseed(1234);
  EXPECT_EQ(ta, run(a));
  p.seed = 99;
  Sampler c(p);
  EXPECT_NE(ta, run(c));
}

TEST(Sampling, DrawFrequenciesMatchTheDistribution) {
  auto L = test_logits();
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 6;  // ids 2 and 5 (the two smallest) are removed
  p.seed = 7;
  Sampler s(p);
  const auto prob = s.probabilities(L.data(), int64_t(L.size()), {});
  ASSERT_EQ(prob[2], 0.0f);
  ASSERT_EQ(prob[5], 0.0f);
  const int N = 40000;
  std::vector<int> count(L.size(), 0);
  for (int i = 0; i < N; ++i) count[size_t(s.sample(L.data(), int64_t(L.size()), {}))]++;
  EXPECT_EQ(count[2], 0);
  EXPECT_EQ(count[5], 0);
  double chi2 = 0;
  for (size_t i = 0; i < L.size(); ++i) {
    const double want = prob[i] * N;
    if (want == 0) continue;
    chi2 += (count[i] - want) * (count[i] - want) / want;
    EXPECT_NEAR(count[i], want, 5 * std::sqrt(want)) << "token " << i;
  }
  EXPECT_LT(chi2, 25.0);  // 5 degrees of freedom: P(chi2 > 25) < 2e-4 for a correct sampler
}

TEST(Sampling, GreedyIsArgmaxAfterPenaltyAndUsesNoRandomness) {
  auto L = test_logits();
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(L.data(), 8, {}), 1);
  std::vector<int32_t> hist = {1, 1};
  p.repetition_penalty = 2.0f;  // logit 2.0 -> 1.0 < 1.5
  Sampler s2(p);
  EXPECT_EQ(s2.sample(L.data(), 8, hist), 4);
  std::vector<float> ties = {1, 3, 3, 0};
  EXPECT_EQ(s.sample(ties.data(), 4, {}), 1);  // lowest id on ties
  // top_k = 1 sampling is greedy as well, whatever the seed.
  SamplingParams q;
  q.top_k = 1;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    q.seed = seed;
    Sampler t(q);
    EXPECT_EQ(t.sample(L.data(), 8, {}), 1);
  }
}

TEST(Sampling, RejectsBadParametersAndInputs) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(error_of([&] { Sampler s(p); }).find("top_p"), std::string::npos);
  p = {};
  p.min_p = 1.5f;
  EXPECT_NE(error_of([&] { Sampler s(p); }).find("min_p"), std::string::npos);
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_NE(error_of([&] { Sampler s(p); }).find("repetition_penalty"), std::string::npos);
  p = {};
  p.repetition_penalty = 1.1f;
  Sampler s(p);
  auto L = test_logits();
  std::vector<int32_t> bad = {3, 8};
  EXPECT_NE(error_of([&] { s.sample(L.data(), 8, bad); }).find("history token id 8"), std::string::npos);
  L[3] = NAN;
  EXPECT_NE(error_of([&] { s.sample(L.data(), 8, {}); }).find("token 3 is NaN"), std::string::npos);
  std::vector<float> dead(4, -INFINITY);
  EXPECT_NE(error_of([&] { s.sample(dead.data(), 4, {}); }).find("all logits are -inf"), std::string::npos);
}

TEST(Sampling, GenerationConfigAndEosIds) {
  auto j = nlohmann::json::parse(R"({"do_sample": true, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
                                     "eos_token_id": [151645, 151643], "bos_token_id": 151643})");
  SamplingParams p = sampling_from_generation_config(j, "generation_config.json");
  EXPECT_FLOAT_EQ(p.temperature, 0.6f);
  EXPECT_EQ(p.top_k, 20);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_EQ(p.min_p, 0.0f);
  EXPECT_EQ(eos_token_ids(j, "g"), (std::vector<int32_t>{151645, 151643}));
  EXPECT_EQ(eos_token_ids(nlohmann::json::parse(R"({"eos_token_id": 2})"), "g"), std::vector<int32_t>{2});
  EXPECT_TRUE(eos_token_ids(nlohmann::json::parse(R"({"eos_token_id": null})"), "g").empty());
  EXPECT_TRUE(sampling_from_generation_config(nlohmann::json::parse(R"({"do_sample": false, "temperature": 0.7})"), "g")
                  .greedy());
  EXPECT_NE(error_of([] { sampling_from_generation_config(nlohmann::json::parse(R"({"top_p": 0})"), "gc.json"); })
                .find("gc.json"),
            std::string::npos);
  EXPECT_NE(error_of([] { sampling_from_generation_config(nlohmann::json::parse(R"({"top_k": "20"})"), "gc.json"); })
                .find("'top_k'"),
            std::string::npos);
  EXPECT_NE(error_of([] { eos_token_ids(nlohmann::json::parse(R"({"eos_token_id": [1, "x"]})"), "c.json"); })
                .find("eos_token_id[1]"),
            std::string::npos);
}

// Feeds `pieces` one at a time; returns everything emitted (feeds + finish).
std::string stream(StopMatcher& m, const std::vector<std::string>& pieces, std::vector<std::string>* emitted = nullptr) {
  std::string out;
  for (const auto& p : pieces) {
    std::string e = m.feed(p);
    if (emitted) emitted->push_back(e);
    out += e;
  }
  return out + m.finish();
}

TEST(StopMatcher, HoldsBackPossiblePrefixesAndCutsAtTheStop) {
  {
    StopMatcher m({"<|im_end|>"});
    std::vector<std::string> emitted;
    EXPECT_EQ(stream(m, {"Hello", " wor", "ld<|", "im_", "end|>", "more"}, &emitted), "Hello world");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.matched(), "<|im_end|>");
    EXPECT_EQ(emitted, (std::vector<std::string>{"Hello", " wor", "ld", "", "", ""}));
  }
  {  // a false start is released as soon as it cannot be a stop string any more
    StopMatcher m({"<|im_end|>"});
    std::vector<std::string> emitted;
    EXPECT_EQ(stream(m, {"a<|i", "x", "b"}, &emitted), "a<|ixb");
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(emitted, (std::vector<std::string>{"a", "<|ix", "b"}));
  }
  {  // held text is emitted at the end when no stop came
    StopMatcher m({"\n\nUser:"});
    EXPECT_EQ(stream(m, {"ok\n", "\nUs"}), "ok\n\nUs");
    EXPECT_FALSE(m.stopped());
  }
  {  // earliest of several stop strings wins, also within one piece; overlapping self-prefix
    StopMatcher m({"STOP", "ab", "aab"});
    EXPECT_EQ(stream(m, {"xxaa", "abSTOP"}), "xxa");  // "xxa|aab|STOP"
    EXPECT_EQ(m.matched(), "aab");
  }
  {  // stop string made of multibyte UTF-8, fed byte by byte
    StopMatcher m({"\xe4\xb8\xad\xe6\x96\x87"});
    std::string text = "ab\xe4\xb8\xad\xe4\xb8\xad\xe6\x96\x87zz";
    std::vector<std::string> bytes;
    for (char c : text) bytes.emplace_back(1, c);
    EXPECT_EQ(stream(m, bytes), "ab\xe4\xb8\xad");
    EXPECT_TRUE(m.stopped());
  }
  {  // no stop strings: everything passes straight through
    StopMatcher m({});
    std::vector<std::string> emitted;
    EXPECT_EQ(stream(m, {"a", "b"}, &emitted), "ab");
    EXPECT_EQ(emitted, (std::vector<std::string>{"a", "b"}));
  }
  EXPECT_NE(error_of([] { StopMatcher m({"x", ""}); }).find("empty"), std::string::npos);
}

}  // namespace
}  // namespace sy
