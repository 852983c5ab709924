// The model runtime against the independent PyTorch reference forward (tests/reference/hf_ref.py,
// cases made by tests/reference/gen_models.py): for every tiny checkpoint of every supported
// architecture, per-token log-probabilities of the prompt match within the case's tolerance
// (1e-4 for f32 weights, 1e-3 for bf16/f16; see gen_models.py) and 20 greedy decode steps through
// the KV cache produce the reference's tokens exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "golden.h"
#include "model/model.h"

namespace sy {
namespace {

std::vector<double> log_softmax(const float* x, int64_t n) {
  double mx = -INFINITY, s = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - mx - std::log(s);
  return out;
}

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

struct Case {
  std::string name, dir;
  std::vector<int32_t> prompt, greedy;
  std::vector<float> logprobs;
  double tol = 0;
};

Case read_case(const std::string& path) {
  SafeTensors st(path);
  Case c;
  c.name = std::filesystem::path(path).stem().string();
  c.dir = (std::filesystem::path(path).parent_path() / test::meta(st, "dir")).string();
  for (float f : st.to_f32("prompt")) c.prompt.push_back(int32_t(f));
  for (float f : st.to_f32("greedy")) c.greedy.push_back(int32_t(f));
  c.logprobs = st.to_f32("logprobs");
  c.tol = std::stod(test::meta(st, "tol"));
  return c;
}

// Log-probs of prompt tokens 1..T-1, running the prompt in chunks of the given sizes.
std::vector<float> prompt_logprobs(Model& m, const std::vector<int32_t>& prompt, const std::vector<int64_t>& chunks,
                                   KVCache& cache) {
  const int64_t V = m.config().vocab;
  std::vector<float> all;
  size_t at = 0;
  for (int64_t n : chunks) {
    std::vector<float> logits(size_t(n * V));
    m.forward(std::span<const int32_t>(prompt.data() + at, size_t(n)), cache, logits.data(), true);
    all.insert(all.end(), logits.begin(), logits.end());
    at += size_t(n);
  }
  std::vector<float> lp;
  for (size_t t = 1; t < prompt.size(); ++t) lp.push_back(float(log_softmax(all.data() + (t - 1) * V, V)[size_t(prompt[t])]));
  return lp;
}

void expect_abs_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d, at = i;
  }
  EXPECT_LE(worst, tol) << what << ": worst |log-prob error| " << worst << " at token " << at + 1 << " (got "
                        << got[at] << ", want " << want[at] << ")";
}

TEST(ModelGolden, PromptLogprobsAndGreedyDecodeMatchReference) {
  auto cases = test::golden_cases("models");
  EXPECT_GE(cases.size(), 8u);
  for (const auto& path : cases) {
    Case c = read_case(path);
    SCOPED_TRACE(c.name);
    auto m = Model::load(c.dir);
    const int64_t V = m->config().vocab, T = int64_t(c.prompt.size());
    KVCache cache = m->make_cache(T + int64_t(c.greedy.size()));
    auto lp = prompt_logprobs(*m, c.prompt, {T}, cache);
    expect_abs_close(lp, c.logprobs, c.tol, c.name + " prompt log-probs");

    // Greedy decode through the KV cache, one token per step.
    std::vector<float> last(static_cast<size_t>(V));
    {
      KVCache fresh = m->make_cache(T + int64_t(c.greedy.size()));
      m->forward(c.prompt, fresh, last.data(), /*all_logits=*/false);
      cache = std::move(fresh);
    }
    std::vector<int32_t> got;
    for (size_t i = 0; i < c.greedy.size(); ++i) {
      int32_t next = argmax(last.data(), V);
      got.push_back(next);
      if (i + 1 < c.greedy.size()) m->forward(std::span<const int32_t>(&next, 1), cache, last.data(), false);
    }
    EXPECT_EQ(got, c.greedy) << c.name << ": greedy decode differs from the reference";
    EXPECT_EQ(cache.len, T + int64_t(c.greedy.size()) - 1);
  }
}

TEST(ModelGolden, ChunkedPromptThroughCacheMatchesReference) {
  // The prompt in three calls (positions continue in the cache) gives the same log-probs.
  for (const auto& path : test::golden_cases("models")) {
    Case c = read_case(path);
    SCOPED_TRACE(c.name);
    auto m = Model::load(c.dir);
    const int64_t T = int64_t(c.prompt.size());
    KVCache cache = m->make_cache(T);
    auto lp = prompt_logprobs(*m, c.prompt, {5, 1, T - 6}, cache);
    expect_abs_close(lp, c.logprobs, c.tol, c.name + " chunked prompt log-probs");
  }
}

TEST(ModelGolden, LastLogitsOnlyEqualsLastRowOfAll) {
  auto cases = test::golden_cases("models");
  ASSERT_FALSE(cases.empty());
  Case c = read_case(cases.front());
  auto m = Model::load(c.dir);
  const int64_t V = m->config().vocab, T = int64_t(c.prompt.size());
  std::vector<float> all(size_t(T * V)), last(static_cast<size_t>(V));
  KVCache a = m->make_cache(T), b = m->make_cache(T);
  m->forward(c.prompt, a, all.data(), true);
  m->forward(c.prompt, b, last.data(), false);
  for (int64_t i = 0; i < V; ++i) ASSERT_EQ(last[size_t(i)], all[size_t((T - 1) * V + i)]) << i;
}

}  // namespace
}  // namespace sy
