#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "io/json_file.h"

namespace sy {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Probabilities of x (unnormalised when sum is returned separately): exp(x - max) in double.
double softmax_into(const std::vector<double>& x, std::vector<double>& p) {
  double m = kNegInf;
  for (double v : x) m = std::max(m, v);
  SY_CHECK(m > kNegInf, "[sampling] every token has probability 0 (all logits are -inf)");
  p.resize(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += (p[i] = std::exp(x[i] - m));
  for (double& v : p) v /= sum;
  return sum;
}

// Steps 1-5 of the header, in double.
void process_d(const SamplingParams& p, const float* logits, int64_t V, std::span<const int32_t> history,
               std::vector<double>& x) {
  SY_CHECK(V > 0, "[sampling] vocabulary size must be positive, got ", V);
  x.resize(size_t(V));
  for (int64_t i = 0; i < V; ++i) {
    SY_CHECK(!std::isnan(logits[i]), "[sampling] logit of token ", i, " is NaN");
    x[size_t(i)] = double(logits[i]);
  }
  if (p.repetition_penalty != 1.0f) {
    std::vector<int32_t> ids(history.begin(), history.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    const double pen = p.repetition_penalty;
    for (int32_t id : ids) {
      SY_CHECK(id >= 0 && id < V, "[sampling] history token id ", id, " outside the vocabulary [0, ", V, ")");
      double& v = x[size_t(id)];
      v = v < 0 ? v * pen : v / pen;
    }
  }
  if (p.greedy()) return;
  if (p.temperature != 1.0f)
    for (double& v : x) v /= double(p.temperature);
  if (p.top_k > 0 && p.top_k < V) {
    std::vector<double> tmp(x);
    auto kth = tmp.begin() + (p.top_k - 1);
    std::nth_element(tmp.begin(), kth, tmp.end(), std::greater<double>());
    const double thr = *kth;
    for (double& v : x)
      if (v < thr) v = kNegInf;
  }
  std::vector<double> prob;
  if (p.top_p < 1.0f) {
    softmax_into(x, prob);
    std::vector<int32_t> order;
    for (int64_t i = 0; i < V; ++i)
      if (x[size_t(i)] > kNegInf) order.push_back(int32_t(i));
    // Ascending, ties by lower id first (a stable ascending sort of the ids in order).
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[size_t(a)] < x[size_t(b)]; });
    const double cut = 1.0 - double(p.top_p);
    double cum = 0;
    for (size_t r = 0; r + 1 < order.size(); ++r) {  // the last (most likely) is always kept
      cum += prob[size_t(order[r])];
      if (cum <= cut) x[size_t(order[r])] = kNegInf;
      else break;
    }
  }
  if (p.min_p > 0.0f) {
    softmax_into(x, prob);
    const double maxp = *std::max_element(prob.begin(), prob.end());
    const double thr = double(p.min_p) * maxp;
    for (size_t i = 0; i < x.size(); ++i)
      if (prob[i] < thr) x[i] = kNegInf;
  }
}

int32_t argmax(const std::vector<double>& x) {
  return int32_t(std::max_element(x.begin(), x.end()) - x.begin());  // first maximum
}

}  // namespace

void SamplingParams::validate() const {
  SY_CHECK(!std::isnan(temperature), "[sampling] temperature is NaN");
  SY_CHECK(top_p > 0.0f && !std::isnan(top_p), "[sampling] top_p must be in (0, 1], got ", top_p);
  SY_CHECK(min_p <= 1.0f && !std::isnan(min_p), "[sampling] min_p must be in [0, 1], got ", min_p);
  SY_CHECK(repetition_penalty > 0.0f && std::isfinite(repetition_penalty),
           "[sampling] repetition_penalty must be a positive number, got ", repetition_penalty);
}

SamplingParams sampling_from_generation_config(const nlohmann::json& j, const std::string& file, SamplingParams p) {
  p.temperature = json_field_or<float>(j, "temperature", p.temperature, file);
  p.top_k = json_field_or<int>(j, "top_k", p.top_k, file);
  p.top_p = json_field_or<float>(j, "top_p", p.top_p, file);
  p.min_p = json_field_or<float>(j, "min_p", p.min_p, file);
  p.repetition_penalty = json_field_or<float>(j, "repetition_penalty", p.repetition_penalty, file);
  if (!json_field_or<bool>(j, "do_sample", true, file)) p.temperature = 0.0f;
  try {
    p.validate();
  } catch (const Error& e) {
    fail("[sampling] ", file, ": ", e.what());
  }
  return p;
}

std::vector<int32_t> eos_token_ids(const nlohmann::json& j, const std::string& file) {
  SY_CHECK(j.is_object(), "[json] ", file, ": expected a JSON object when reading field 'eos_token_id'");
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return {};
  if (it->is_array()) return json_field<std::vector<int32_t>>(j, "eos_token_id", file);
  return {json_field<int32_t>(j, "eos_token_id", file)};
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { p_.validate(); }

void Sampler::process(float* logits, int64_t V, std::span<const int32_t> history) const {
  std::vector<double> x;
  process_d(p_, logits, V, history, x);
  for (int64_t i = 0; i < V; ++i) logits[i] = float(x[size_t(i)]);
}

std::vector<float> Sampler::probabilities(const float* logits, int64_t V, std::span<const int32_t> history) const {
  std::vector<double> x, prob;
  process_d(p_, logits, V, history, x);
  std::vector<float> out(size_t(V), 0.0f);
  if (p_.greedy()) {
    out[size_t(argmax(x))] = 1.0f;
    return out;
  }
  softmax_into(x, prob);
  for (size_t i = 0; i < out.size(); ++i) out[i] = float(prob[i]);
  return out;
}

int32_t Sampler::sample(const float* logits, int64_t V, std::span<const int32_t> history) {
  process_d(p_, logits, V, history, work_);
  if (p_.greedy()) return argmax(work_);
  std::vector<double>& prob = prob_;
  softmax_into(work_, prob);
  // 53 random bits -> u in [0, 1): the same on every standard library (unlike uniform_real_distribution).
  const double u = double(rng_() >> 11) * 0x1.0p-53;
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < prob.size(); ++i) {
    if (prob[i] <= 0) continue;
    cum += prob[i];
    last = int32_t(i);
    if (u < cum) return int32_t(i);
  }
  return last;  // u within rounding of 1
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) SY_CHECK(!s.empty(), "[sampling] stop strings must not be empty");
}

std::string StopMatcher::feed(std::string_view text) {
  if (stopped_) return "";
  pending_.append(text);
  size_t best = std::string::npos;
  for (const auto& s : stops_) {
    size_t pos = pending_.find(s);
    if (pos < best || (pos == best && pos != std::string::npos && s.size() > matched_.size())) {
      best = pos;
      matched_ = s;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, best);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(pending_.size(), s.size() - 1); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::finish() {
  std::string out;
  out.swap(pending_);
  return stopped_ ? std::string() : out;
}

double token_logprob(const float* logits, int64_t V, int32_t id) {
  SY_CHECK(id >= 0 && id < V, "[sampling] token id ", id, " outside [0, ", V, ")");
  double mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, double(logits[i]));
  for (int64_t i = 0; i < V; ++i) sum += std::exp(double(logits[i]) - mx);
  return double(logits[id]) - mx - std::log(sum);
}

}  // namespace sy
