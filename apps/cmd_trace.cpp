// `switchyard trace analyze FILE`: replays a routing trace (offload/trace.h) under every cache
// policy and several cache sizes, beside Belady's optimum, and prints the predictor's accuracy
// and the local routing consistency metrics SRP and SCH (offload/trace_analysis.h).
#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "offload/trace_analysis.h"

namespace sy::cli {
namespace {

using namespace sy::offload;

struct TraceOptions {
  std::string file;
  bool json = false;
  std::vector<int> cache;     // experts per layer
  std::vector<int> segments;  // SRP / SCH segment lengths
};

void run_analyze(const TraceOptions& o) {
  Trace tr = read_trace(o.file);
  const auto& h = tr.header;
  SY_CHECK(!tr.tokens.empty(), "[trace] ", o.file, ": the trace holds no tokens");
  const int k = std::max(tr.max_active(), 1);
  int moe_layers = 0;
  std::vector<bool> used(size_t(h.n_layers), false);
  for (const auto& t : tr.tokens)
    for (int l = 0; l < h.n_layers; ++l)
      if (t.recorded[size_t(l)]) used[size_t(l)] = true;
  for (bool u : used) moe_layers += u;
  std::vector<int> sizes = o.cache;
  if (sizes.empty()) {
    std::set<int> s{k, 2 * k, 4 * k, h.n_experts / 4, h.n_experts / 2};
    for (int c : s)
      if (c >= k && c <= h.n_experts) sizes.push_back(c);
  }
  for (int c : sizes)
    SY_CHECK(c >= k, "[trace] --cache ", c, " is smaller than one token's active experts per layer (", k,
             "); minimum ", k);
  std::vector<int> segs = o.segments.empty() ? std::vector<int>{1, 2, 4, 8, 16, 32} : o.segments;

  const PolicyKind policies[] = {PolicyKind::LRU, PolicyKind::LFU, PolicyKind::Predictive};
  const bool preds = tr.has_predictions();
  nlohmann::json out;
  out["file"] = o.file;
  out["tokens"] = tr.tokens.size();
  out["n_layers"] = h.n_layers;
  out["moe_layers"] = moe_layers;
  out["n_experts"] = h.n_experts;
  out["max_active"] = k;
  out["model"] = h.model;
  out["has_predictions"] = preds;
  out["replays"] = nlohmann::json::array();
  for (CacheScope scope : {CacheScope::PerLayer, CacheScope::Global}) {
    for (int c : sizes) {
      int cap = scope == CacheScope::PerLayer ? c : c * std::max(moe_layers, 1);
      std::vector<ReplayResult> rs;
      for (PolicyKind p : policies) rs.push_back(replay_policy(tr, p, cap, scope));
      rs.push_back(replay_belady(tr, cap, scope));
      for (const auto& r : rs) {
        out["replays"].push_back({{"scope", scope_name(scope)}, {"capacity", cap}, {"per_layer", c},
                                  {"policy", r.policy}, {"requests", r.requests}, {"hits", r.hits},
                                  {"hit_rate", r.hit_rate()}, {"loads", r.loads}, {"prefetches", r.prefetches},
                                  {"prefetch_used", r.prefetch_used}, {"bytes_read", r.bytes_read}});
      }
    }
  }
  out["predictor"] = nlohmann::json::array();
  for (const auto& a : predictor_accuracy(tr))
    out["predictor"].push_back({{"distance", a.distance}, {"predictions", a.predictions},
                                {"recall", a.recall()}, {"precision", a.precision()}});
  out["srp"] = nlohmann::json::array();
  out["sch"] = nlohmann::json::array();
  const int max_c = *std::max_element(sizes.begin(), sizes.end());
  for (int m : segs) {
    out["srp"].push_back({{"segment", m}, {"srp", segment_routing_best_performance(tr, m)}});
    auto sch = segment_cache_best_hit_rate(tr, m, max_c);
    nlohmann::json row = {{"future", m}};
    for (int c : sizes) row["cache_" + std::to_string(c)] = sch[size_t(c - 1)];
    out["sch"].push_back(row);
  }
  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }

  std::printf("trace %s: %zu tokens, %d of %d layers with routed experts, %d experts, up to %d active per layer%s\n",
              o.file.c_str(), tr.tokens.size(), moe_layers, h.n_layers, h.n_experts, k,
              h.model.empty() ? "" : (", model " + h.model).c_str());
  std::printf("\nhit rate by cache size (experts); bytes read in MiB (demand loads + prefetches). Caches start "
              "empty.\npredictive = LRU + prefetching the trace's predictions%s; belady = optimal demand loading "
              "(no prefetch),\nso a prefetching policy can beat its hit rate, paying in bytes read.\n",
              preds ? "" : " (this trace has none: same as LRU)");
  std::printf("%-10s %6s %8s | %7s %7s %10s %7s | %9s %9s %9s %9s\n", "scope", "per-l", "capacity", "lru", "lfu",
              "predictive", "belady", "MiB lru", "MiB lfu", "MiB pred", "MiB MIN");
  for (size_t i = 0; i < out["replays"].size(); i += 4) {
    const auto& r = out["replays"];
    auto mib = [](const nlohmann::json& j) { return double(j["bytes_read"].get<uint64_t>()) / (1024.0 * 1024.0); };
    std::printf("%-10s %6d %8d | %7.4f %7.4f %10.4f %7.4f | %9.2f %9.2f %9.2f %9.2f\n",
                r[i]["scope"].get<std::string>().c_str(), r[i]["per_layer"].get<int>(), r[i]["capacity"].get<int>(),
                r[i]["hit_rate"].get<double>(), r[i + 1]["hit_rate"].get<double>(),
                r[i + 2]["hit_rate"].get<double>(), r[i + 3]["hit_rate"].get<double>(), mib(r[i]), mib(r[i + 1]),
                mib(r[i + 2]), mib(r[i + 3]));
  }
  if (preds) {
    std::printf("\npredictor accuracy (recall = needed experts that were predicted)\n");
    for (const auto& a : out["predictor"])
      std::printf("  layer +%d: recall %.4f, precision %.4f over %lld predictions\n", a["distance"].get<int>(),
                  a["recall"].get<double>(), a["precision"].get<double>(), (long long)a["predictions"].get<int64_t>());
  }
  std::printf("\nlocal routing consistency (moe-lrc): SRP by segment length; SCH by future length and cache size\n");
  std::printf("%8s %8s |", "segment", "SRP");
  for (int c : sizes) std::printf(" SCH c=%-4d", c);
  std::printf("\n");
  for (size_t i = 0; i < segs.size(); ++i) {
    std::printf("%8d %8.4f |", segs[i], out["srp"][i]["srp"].get<double>());
    for (int c : sizes) std::printf(" %10.4f", out["sch"][i]["cache_" + std::to_string(c)].get<double>());
    std::printf("\n");
  }
}

}  // namespace

void add_trace(CLI::App& app) {
  auto* trace = app.add_subcommand("trace", "routing traces: analyze expert cache behaviour offline");
  trace->require_subcommand(1);
  auto opts = std::make_shared<TraceOptions>();
  auto* an = trace->add_subcommand("analyze", "replay a trace under every cache policy and size beside Belady's "
                                              "optimum; predictor accuracy; SRP and SCH (moe-lrc)");
  an->add_option("file", opts->file, "trace file (JSON lines, see src/offload/trace.h)")->required();
  an->add_flag("--json", opts->json, "print JSON instead of tables");
  an->add_option("--cache", opts->cache, "cache sizes in experts per layer (comma separated; the global budget "
                                         "is this times the MoE layers)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  an->add_option("--segments", opts->segments, "segment / future lengths for SRP and SCH (comma separated)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  an->callback([opts] { run_analyze(*opts); });
}

}  // namespace sy::cli
