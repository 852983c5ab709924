// Expert offloading in the model runtime (src/model/model.cpp + src/offload/): on every tiny
// reference checkpoint of tests/reference/gen_models.py (four architectures, f32 and bf16/f16
// weights, single-file and sharded), a model whose routed experts live in a budgeted cache (25% and
// 50% of all experts' bytes; lru, lfu and predictive; one global budget and a per-layer split, each
// layer then held to its share) produces bitwise the same logits as the plain mapped model — for
// the whole prompt (hence identical log-probabilities) and for 20 greedy decode steps through the
// KV cache (hence identical tokens). The cache must really have been used: experts read from the
// file, evictions at 25%. A per-layer split whose shares cannot hold k experts (mixtral's 4 experts
// at 25%) is refused. Also: a budget below one token's active experts is refused with the minimum
// in the message (the minimum total with a per-layer split); --trace output is a valid trace of
// what ran.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "golden.h"
#include "offload_test_util.h"
#include "model/model.h"
#include "offload/trace.h"

namespace sy {
namespace {

constexpr int kDecode = 20;

using Outputs = test::GreedyRun;
Outputs run(Model& m, const std::vector<int32_t>& prompt) { return test::greedy_run(m, prompt, kDecode); }

using Case = test::ModelCase;
using test::bitwise_equal;

std::vector<Case> cases() { return test::model_cases(); }

TEST(ModelOffload, SameTokensAndBitwiseLogitsAsMappedModel) {
  auto cs = cases();
  ASSERT_GE(cs.size(), 8u);
  bool saw_bf16 = false, saw_f32 = false;
  for (const Case& c : cs) {
    SCOPED_TRACE(c.name);
    auto plain = Model::load(c.dir);
    ASSERT_FALSE(plain->expert_cache_stats().has_value());
    const Outputs want = run(*plain, c.prompt);
    const auto dtypes = plain->summary().params_by_dtype;
    saw_bf16 |= dtypes.count("bf16") > 0;
    saw_f32 |= dtypes.count("f32") > 0 && dtypes.size() == 1;
    // Split per layer, a fraction f gives each (equal) MoE layer f x E experts: below k it is refused.
    int64_t E = 0, k = 0;
    for (const auto& s : plain->config().layers)
      if (s.moe) E = s.n_experts;
    for (const auto& spec : plain->router_specs())
      if (!spec.empty()) k = RouterSpec::parse(spec).get_int("k", 0);
    ASSERT_GT(k, 0);
    for (double frac : {0.25, 0.5}) {
      for (auto pol : {offload::PolicyKind::LRU, offload::PolicyKind::LFU, offload::PolicyKind::Predictive}) {
        for (bool per_layer : {false, true}) {
          SCOPED_TRACE(std::string(offload::policy_name(pol)) + " at " + std::to_string(frac) +
                       (per_layer ? ", per-layer split" : ", global"));
          LoadOptions lo;
          lo.expert_budget_fraction = frac;
          lo.cache_policy = pol;
          lo.expert_budget_per_layer = per_layer;
          if (per_layer && frac * double(E) < double(k)) {  // mixtral's 4 experts at 25%: 1 expert per layer
            std::string msg = "(no error)";
            try {
              Model::load(c.dir, lo);
            } catch (const Error& e) {
              msg = e.what();
            }
            EXPECT_NE(msg.find("split per layer gives layer"), std::string::npos) << msg;
            continue;
          }
          auto m = Model::load(c.dir, lo);
          ASSERT_NE(m->expert_cache(), nullptr);
          ASSERT_EQ(m->expert_cache()->per_layer(), per_layer);
          EXPECT_EQ(m->expert_cache()->budget_bytes(), size_t(double(m->routed_expert_bytes()) * frac));
          const Outputs got = run(*m, c.prompt);
          EXPECT_EQ(got.tokens, want.tokens);
          EXPECT_TRUE(bitwise_equal(got.prompt_logits, want.prompt_logits)) << "prompt logits differ";
          for (int i = 0; i < kDecode; ++i)
            EXPECT_TRUE(bitwise_equal(got.decode_logits[size_t(i)], want.decode_logits[size_t(i)]))
                << "decode step " << i << " logits differ";
          const offload::CacheStats st = *m->expert_cache_stats();
          EXPECT_GT(st.loads, 0);
          EXPECT_GT(st.bytes_read, 0u);
          EXPECT_GT(st.acquires, 0);
          if (frac == 0.25) {
            EXPECT_GT(st.evictions, 0) << "a 25% cache must evict over 32 tokens";
          }
          // Decode steps (one token) stay within the budget; only the prefill batch may pin more.
          EXPECT_LE(st.resident_bytes, m->expert_cache()->budget_bytes());
          if (per_layer) {  // and each layer within its share
            const offload::ExpertCache& ec = *m->expert_cache();
            size_t shares = 0;
            for (int l = 0; l < ec.num_layers(); ++l) {
              shares += ec.layer_budget_bytes(l);
              EXPECT_LE(ec.layer_resident_bytes(l), ec.layer_budget_bytes(l)) << "layer " << l;
            }
            EXPECT_LE(shares, ec.budget_bytes());
          }
        }
      }
    }
  }
  EXPECT_TRUE(saw_bf16) << "no bf16 reference checkpoint found";
  EXPECT_TRUE(saw_f32) << "no f32 reference checkpoint found";
}

TEST(ModelOffload, BudgetBelowOneTokensExpertsIsRefusedWithTheMinimum) {
  const Case c = cases().at(0);
  auto plain = Model::load(c.dir);
  // The minimum is k experts of the largest layer: every layer's expert has the same size here.
  const ModelConfig& cfg = plain->config();
  int64_t n_experts = 0, k = 0;
  for (const auto& spec : plain->router_specs())
    if (!spec.empty()) k = RouterSpec::parse(spec).get_int("k", 0);
  for (const auto& s : cfg.layers)
    if (s.moe) n_experts += s.n_experts;
  ASSERT_GT(k, 0);
  const uint64_t per_expert = plain->routed_expert_bytes() / uint64_t(n_experts);
  // Split per layer, every MoE layer's share must hold k experts: the minimum total is k experts
  // per MoE layer (equal layers here).
  int64_t moe_layers = 0;
  for (const auto& s : cfg.layers) moe_layers += s.moe ? 1 : 0;
  LoadOptions lo;
  for (bool per_layer : {false, true}) {
    SCOPED_TRACE(per_layer ? "per-layer split" : "global");
    const uint64_t minimum = uint64_t(k) * per_expert * uint64_t(per_layer ? moe_layers : 1);
    lo.expert_budget_per_layer = per_layer;
    lo.expert_budget_bytes = size_t(minimum - 1);
    try {
      Model::load(c.dir, lo);
      FAIL() << "a budget of " << minimum - 1 << " bytes should be refused";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("minimum budget " + std::to_string(minimum) + " bytes"), std::string::npos) << msg;
    }
    lo.expert_budget_bytes = size_t(minimum);  // exactly the minimum works, and decodes the same tokens
    auto m = Model::load(c.dir, lo);
    EXPECT_EQ(run(*m, c.prompt).tokens, run(*plain, c.prompt).tokens);
  }
  lo.expert_budget_per_layer = false;
  lo.expert_budget_bytes = 0;
  lo.expert_budget_fraction = 1.5;
  EXPECT_THROW(Model::load(c.dir, lo), Error);
}

TEST(ModelOffload, TraceRecordsEveryTokensRouting) {
  const Case c = cases().at(0);
  const auto path = std::filesystem::temp_directory_path() / ("sy_offload_" + std::to_string(::getpid()) + ".trace");
  LoadOptions lo;
  lo.expert_budget_fraction = 0.5;
  lo.trace_path = path.string();
  auto m = Model::load(c.dir, lo);
  const Outputs got = run(*m, c.prompt);
  m->close_trace();
  offload::Trace tr = offload::read_trace(path.string());
  std::filesystem::remove(path);
  const ModelConfig& cfg = m->config();
  EXPECT_EQ(tr.header.n_layers, cfg.n_layers);
  ASSERT_EQ(tr.tokens.size(), c.prompt.size() + size_t(kDecode));
  EXPECT_TRUE(tr.has_predictions());  // predictive policy: the prefetcher's predictions are recorded
  for (size_t t = 0; t < tr.tokens.size(); ++t) {
    EXPECT_EQ(tr.tokens[t].pos, int64_t(t));
    for (int l = 0; l < cfg.n_layers; ++l) {
      const bool moe = cfg.layers[size_t(l)].moe;
      EXPECT_EQ(bool(tr.tokens[t].recorded[size_t(l)]), moe) << "token " << t << " layer " << l;
      if (moe) {
        EXPECT_EQ(tr.tokens[t].experts[size_t(l)].size(), size_t(tr.header.top_k));
      }
    }
  }
}

}  // namespace
}  // namespace sy
