// `switchyard perplexity -m DIR -f FILE`: the model's perplexity on a text, exp(-mean log p(token_t |
// tokens before t in its window)). The token stream is cut into windows of --ctx tokens, each run
// from an empty KV cache; the first token of a window has no context and is not scored (as in
// llama.cpp's perplexity without its half-window overlap). --per-token lists each scored token's
// id and log-probability, the way implementations and quantisations are compared.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "model/sampling.h"
#include "offload_flags.h"

namespace sy::cli {
namespace {

struct PerplexityOptions {
  std::string dir, file, ids_file, router;
  int64_t ctx = 512;
  int experts_per_token = 0;
  bool json = false, per_token = false;
  OffloadFlags offload;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SY_CHECK(f.good(), "[perplexity] cannot open ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<int32_t> read_ids(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<int32_t> ids;
  std::string w;
  while (in >> w) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SY_CHECK(used == w.size() && v >= 0 && v <= INT32_MAX, "[perplexity] ", path, ": '", w,
             "' is not a token id (expected whitespace-separated non-negative integers)");
    ids.push_back(int32_t(v));
  }
  return ids;
}

void run_perplexity(const PerplexityOptions& o) {
  SY_CHECK(o.file.empty() != o.ids_file.empty(), "[perplexity] give exactly one of -f FILE or --ids FILE");
  LoadOptions lo;
  lo.router = o.router;
  lo.experts_per_token = o.experts_per_token;
  apply_offload_flags(o.offload, lo);
  auto m = Model::load(o.dir, lo);
  std::vector<int32_t> ids = o.ids_file.empty() ? Tokenizer::load(o.dir).encode(read_file(o.file)) : read_ids(o.ids_file);
  SY_CHECK(ids.size() >= 2, "[perplexity] ", o.file.empty() ? o.ids_file : o.file, " has ", ids.size(),
           " tokens; at least 2 are needed");
  const int64_t V = m->config().vocab, N = int64_t(ids.size());
  const int64_t ctx = std::min(o.ctx, N);
  KVCache cache = m->make_cache(ctx);
  std::vector<float> logits(size_t(ctx * V));
  std::vector<std::pair<int32_t, double>> scored;  // (id, log p)
  double nll = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t start = 0; start + 1 < N; start += ctx) {
    const int64_t n = std::min(ctx, N - start);
    if (n < 2) break;
    cache.clear();
    m->forward(std::span<const int32_t>(ids.data() + start, size_t(n)), cache, logits.data(), true);
    for (int64_t t = 1; t < n; ++t) {
      const int32_t id = ids[size_t(start + t)];
      const double lp = token_logprob(logits.data() + (t - 1) * V, V, id);
      scored.emplace_back(id, lp);
      nll -= lp;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m->close_trace();
  const double mean = nll / double(scored.size()), ppl = std::exp(mean);
  const auto cs = m->expert_cache_stats();
  if (o.json) {
    nlohmann::json j = {{"model", o.dir}, {"tokens", N}, {"scored", scored.size()}, {"ctx", ctx},
                        {"nll", mean}, {"ppl", ppl}, {"seconds", secs}, {"tokens_per_second", double(N) / secs}};
    if (cs)
      j["expert_cache"] = {{"policy", offload::policy_name(m->expert_cache()->policy())},
                           {"budget_bytes", m->expert_cache()->budget_bytes()}, {"hit_rate", cs->hit_rate()},
                           {"bytes_read", cs->bytes_read}, {"stall_seconds", cs->stall_seconds}};
    if (o.per_token) {
      nlohmann::json pt = nlohmann::json::array();
      for (const auto& [id, lp] : scored) pt.push_back({{"id", id}, {"logprob", lp}});
      j["per_token"] = pt;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  if (o.per_token) {
    std::printf("# id logprob\n");
    for (const auto& [id, lp] : scored) std::printf("%d %.6f\n", id, lp);
  }
  std::printf("perplexity %.4f  (mean nll %.6f over %zu scored tokens of %lld, windows of %lld; %.1f tokens/s)\n", ppl,
              mean, scored.size(), (long long)N, (long long)ctx, double(N) / secs);
  if (cs) std::fprintf(stderr, "expert cache: %s\n", cs->summary().c_str());
}

}  // namespace

void add_perplexity(CLI::App& app) {
  static PerplexityOptions o;
  auto* cmd = app.add_subcommand("perplexity", "perplexity of a model on a text file (or token ids)");
  cmd->add_option("-m,--model", o.dir, "checkpoint directory (config.json, *.safetensors, tokenizer.json)")->required();
  cmd->add_option("-f,--file", o.file, "text file, tokenized with the model's tokenizer.json");
  cmd->add_option("--ids", o.ids_file, "file of whitespace-separated token ids (instead of -f)");
  cmd->add_option("--ctx", o.ctx, "window length in tokens (each window starts from an empty cache)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--router", o.router, "router spec for every MoE layer (see `switchyard routers`)");
  cmd->add_option("--experts-per-token", o.experts_per_token, "experts per token (replaces k)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o.json, "print JSON");
  cmd->add_flag("--per-token", o.per_token, "print every scored token's id and log-probability");
  add_offload_flags(cmd, o.offload);
  cmd->callback([] { run_perplexity(o); });
}

}  // namespace sy::cli
