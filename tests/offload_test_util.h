// Shared by the offloading tests: the tiny reference checkpoints of tests/reference/gen_models.py
// with their prompts, greedy argmax, bitwise comparison.
#pragma once
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "golden.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace sy::test {

struct ModelCase {
  std::string name, dir;
  std::vector<int32_t> prompt;
};

inline std::vector<ModelCase> model_cases() {
  std::vector<ModelCase> out;
  for (const auto& path : golden_cases("models")) {
    SafeTensors st(path);
    ModelCase c;
    c.name = std::filesystem::path(path).stem().string();
    c.dir = (std::filesystem::path(path).parent_path() / meta(st, "dir")).string();
    for (float f : st.to_f32("prompt")) c.prompt.push_back(int32_t(f));
    out.push_back(std::move(c));
  }
  return out;
}

inline int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

inline bool bitwise_equal(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }
inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && bitwise_equal(a.data(), b.data(), a.size());
}

// The prompt in one forward (all logits), then n_decode greedy steps through the KV cache.
struct GreedyRun {
  std::vector<float> prompt_logits;  // [T, V]
  std::vector<std::vector<float>> decode_logits;
  std::vector<int32_t> tokens;       // greedy continuation
};

inline GreedyRun greedy_run(Model& m, const std::vector<int32_t>& prompt, int n_decode) {
  const int64_t V = m.config().vocab, T = int64_t(prompt.size());
  GreedyRun r;
  KVCache cache = m.make_cache(T + n_decode);
  r.prompt_logits.resize(size_t(T * V));
  m.forward(prompt, cache, r.prompt_logits.data(), /*all_logits=*/true);
  const float* last = r.prompt_logits.data() + (T - 1) * V;
  for (int i = 0; i < n_decode; ++i) {
    int32_t next = argmax(last, V);
    r.tokens.push_back(next);
    r.decode_logits.emplace_back(static_cast<size_t>(V));
    m.forward(std::span<const int32_t>(&next, 1), cache, r.decode_logits.back().data(), false);
    last = r.decode_logits.back().data();
  }
  return r;
}

}  // namespace sy::test
