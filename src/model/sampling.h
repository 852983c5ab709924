// Next-token sampling with the Hugging Face transformers logits processors and their semantics.
//
// Order (HF `GenerationMixin._get_logits_processor` with do_sample=True, min_tokens_to_keep = 1):
//   1. repetition penalty (RepetitionPenaltyLogitsProcessor): for each distinct token id in the
//      history, logit < 0 -> logit * penalty, else logit / penalty
//   2. temperature (TemperatureLogitsWarper): logit / T
//   3. top-k (TopKLogitsWarper): logits below the k-th largest -> -inf (ties with it are kept)
//   4. top-p (TopPLogitsWarper): sort ascending, p = softmax, c = cumsum(p); tokens with
//      c <= 1 - top_p -> -inf; the most likely token is always kept
//   5. min-p (MinPLogitsWarper): p = softmax; tokens with p < min_p * max(p) -> -inf (the most
//      likely is always kept)
//   6. softmax, then one draw by inverse CDF over the token ids in order.
// llama.cpp's default chain applies temperature after the truncations instead; with T = 1 the two
// agree. Greedy (temperature <= 0, HF do_sample=False): argmax after the repetition penalty only,
// lowest id on ties. All arithmetic is in double; the draw uses std::mt19937_64(seed), so a seed
// gives the same tokens on every machine.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sy {

struct SamplingParams {
  float temperature = 1.0f;         // <= 0: greedy
  int top_k = 0;                    // <= 0: off
  float top_p = 1.0f;               // >= 1: off; must be > 0
  float min_p = 0.0f;               // <= 0: off; must be <= 1
  float repetition_penalty = 1.0f;  // 1: off; must be > 0
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0.0f; }
  void validate() const;  // throws "[sampling] top_p must be in (0, 1], got ..."
};

// Defaults from a generation_config.json (temperature, top_k, top_p, min_p, repetition_penalty,
// do_sample=false -> greedy); fields absent keep `base`. `file` names it in errors.
SamplingParams sampling_from_generation_config(const nlohmann::json& j, const std::string& file,
                                               SamplingParams base = {});
// "eos_token_id" of a config.json / generation_config.json: an integer or a list of integers;
// empty when absent or null.
std::vector<int32_t> eos_token_ids(const nlohmann::json& j, const std::string& file);
// log softmax(logits)[id] over logits [V], in double (max-subtracted): the score of perplexity.
double token_logprob(const float* logits, int64_t V, int32_t id);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);  // validates p
  const SamplingParams& params() const { return p_; }

  // Steps 1-5 on logits [V] in place (removed tokens become -inf). `history`: every token id the
  // model has seen so far (prompt and generated), for the repetition penalty; ids outside [0, V)
  // throw. Greedy mode applies step 1 only.
  void process(float* logits, int64_t V, std::span<const int32_t> history) const;
  // The distribution the next token is drawn from, [V] (greedy: one-hot at the argmax).
  std::vector<float> probabilities(const float* logits, int64_t V, std::span<const int32_t> history) const;
  // Picks the next token (logits are not modified). Advances the random state unless greedy.
  int32_t sample(const float* logits, int64_t V, std::span<const int32_t> history);
  void reseed(uint64_t seed) { rng_.seed(seed); }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<double> work_, prob_;  // scratch for sample()
};

// Stop strings over a stream of decoded text. feed() returns the text that can be shown now; text
// that could still be the start of a stop string is held back until it can't. Once a stop string
// appears, stopped() is true and the text up to (not including) it has been returned; later
// feeds return "". finish() returns the held-back text at the end of generation (EOS or length).
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings are rejected
  std::string feed(std::string_view text);
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string found, or ""

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace sy
