// `switchyard demo` (no flags): the main job on the embedded default. Loads the demo model
// (models/brown-moe: a small Qwen3-MoE-format model trained by `switchyard train` on the Brown
// corpus; its TRAINING.md has the command, seed, log and validation loss), generates a
// continuation of a prompt, and shows the routing:
//   1. the text, streamed;
//   2. for every generated token, the experts each MoE layer chose;
//   3. per layer, the load (max/mean tokens per expert) and experts per token over the generation;
//   4. the same model under other routers, one flag each (--experts-per-token, --router): mean loss
//      on a few Brown validation documents, experts per token and speed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/find_upward.h"
#include "core/threadpool.h"
#include "demo.h"
#include "io/json_file.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "model/sampling.h"
#include "train/data.h"

namespace sy::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// models/brown-moe searched upwards from the current directory, then from the executable's folder.
std::string find_demo_model() {
  const auto dir = find_upward("models/brown-moe", [](const fs::path& d) {
    std::error_code ec;
    return fs::exists(d / "config.json", ec);
  });
  if (dir) return dir->string();
  fail("[demo] the demo model models/brown-moe was not found above ", fs::current_path().string(),
       " or the executable; run from the repository, pass -m DIR, or try `switchyard demo --layer`");
}

// A token's text for the routing table: escaped, at most 14 characters.
std::string show(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20) o += '?';
    else o += char(c);
  }
  if (o.size() > 14) o = o.substr(0, 13) + "~";
  return "'" + o + "'";
}

std::vector<int> chosen(const RoutingStats& s) {
  std::vector<int> e;
  for (size_t i = 0; i < s.tokens_per_expert.size(); ++i)
    if (s.tokens_per_expert[i] > 0) e.push_back(int(i));
  return e;
}

struct Score {
  double loss = 0, experts_per_token = 0, tok_per_s = 0;
};

// Mean next-token loss over windows of the given documents (each from an empty cache).
Score score(Model& m, const std::vector<std::vector<int32_t>>& docs) {
  const int64_t V = m.config().vocab;
  int64_t ctx = 0;
  for (const auto& d : docs) ctx = std::max<int64_t>(ctx, int64_t(d.size()));
  KVCache cache = m.make_cache(ctx);
  std::vector<float> logits(size_t(ctx * V));
  ForwardStats fs;
  double nll = 0;
  int64_t n = 0, toks = 0;
  const auto t0 = Clock::now();
  for (const auto& d : docs) {
    if (d.size() < 2) continue;
    cache.clear();
    m.forward(d, cache, logits.data(), true, &fs);
    for (size_t t = 1; t < d.size(); ++t) nll -= token_logprob(logits.data() + (t - 1) * V, V, d[t]);
    n += int64_t(d.size()) - 1;
    toks += int64_t(d.size());
  }
  Score s;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  s.loss = n > 0 ? nll / double(n) : 0;
  s.tok_per_s = secs > 0 ? double(toks) / secs : 0;
  double ept = 0;
  int layers = 0;
  for (const auto& l : fs.layers)
    if (l.n_tokens > 0) {
      ept += l.experts_per_token_mean;
      ++layers;
    }
  s.experts_per_token = layers ? ept / layers : 0;
  return s;
}

}  // namespace

void run_model_demo(const DemoOptions& o) {
  const std::string dir = o.model.empty() ? find_demo_model() : o.model;
  auto model = Model::load(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  const ModelConfig& cfg = model->config();
  const ModelSummary sum = model->summary();
  const auto specs = model->router_specs();
  std::string router;
  int64_t E = 0;
  for (size_t l = 0; l < specs.size(); ++l)
    if (!specs[l].empty()) {
      router = specs[l];
      E = cfg.layers[l].n_experts;
    }
  std::printf("Switchyard demo: %s\n  %s, %lld layers (%d MoE), %lld experts per MoE layer, router %s\n"
              "  %.2fM parameters, %.2fM active per token; %d threads\n\n",
              dir.c_str(), cfg.architecture.c_str(), (long long)cfg.n_layers, sum.n_moe_layers, (long long)E,
              router.c_str(), double(sum.params_total) / 1e6, double(sum.params_active) / 1e6, default_pool().size());

  // 1. Generate.
  SamplingParams sp;
  sp.temperature = 0.8f;
  sp.top_k = 40;
  sp.top_p = 0.95f;
  if (auto gc = read_json_file_if_exists(dir + "/generation_config.json"))
    sp = sampling_from_generation_config(*gc, dir + "/generation_config.json", sp);
  sp.seed = o.seed;
  Sampler sampler(sp);
  std::vector<int32_t> ids = tok.encode(o.prompt);
  SY_CHECK(!ids.empty(), "[demo] the prompt is empty after tokenization");
  std::vector<int32_t> eos = cfg.eos_ids;
  if (tok.eos_id() >= 0) eos.push_back(tok.eos_id());
  KVCache cache = model->make_cache(int64_t(ids.size()) + o.n_predict);
  std::vector<float> logits(size_t(cfg.vocab));
  std::vector<int32_t> history = ids;
  ForwardStats all;
  struct Step {
    std::string text;
    std::vector<std::vector<int>> experts;  // [layer]
  };
  std::vector<Step> steps;
  StreamDecoder dec(tok, /*skip_special=*/true);
  std::printf("prompt: \"%s\"  (temperature %.2f, top-k %d, top-p %.2f, seed %llu)\n\n%s", o.prompt.c_str(),
              double(sp.temperature), sp.top_k, double(sp.top_p), (unsigned long long)sp.seed, o.prompt.c_str());
  std::fflush(stdout);
  const auto t0 = Clock::now();
  model->forward(ids, cache, logits.data(), false, &all);
  int n_gen = 0;
  while (n_gen < o.n_predict) {
    const int32_t next = sampler.sample(logits.data(), cfg.vocab, history);
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    ++n_gen;
    history.push_back(next);
    const std::string piece = dec.put(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (cache.len >= cache.capacity) break;
    ForwardStats one;
    const int32_t in[1] = {next};
    model->forward(in, cache, logits.data(), false, &one);
    Step s;
    s.text = tok.decode(std::span<const int32_t>(in, 1));
    for (const auto& l : one.layers) s.experts.push_back(l.n_tokens > 0 ? chosen(l) : std::vector<int>{});
    steps.push_back(std::move(s));
    for (size_t l = 0; l < one.layers.size(); ++l)
      if (one.layers[l].n_tokens > 0) all.layers[l].merge(one.layers[l]);
  }
  const std::string rest = dec.finish();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("\n\n(%zu prompt + %d generated tokens in %.2f s)\n\n", ids.size(), n_gen, secs);

  // 2. Per-token routing.
  std::printf("Experts chosen for each generated token (one column per MoE layer):\n  %-16s", "token");
  for (size_t l = 0; l < specs.size(); ++l)
    if (!specs[l].empty()) std::printf(" %-9s", str("layer ", l).c_str());
  std::printf("\n");
  for (const auto& s : steps) {
    std::printf("  %-16s", show(s.text).c_str());
    for (size_t l = 0; l < s.experts.size(); ++l) {
      if (specs[l].empty()) continue;
      std::string e;
      for (int x : s.experts[l]) e += (e.empty() ? "" : ",") + std::to_string(x);
      std::printf(" %-9s", e.empty() ? "-" : e.c_str());
    }
    std::printf("\n");
  }

  // 3. Load per layer over prompt + generation.
  std::printf("\nPer layer, over all %lld tokens: experts per token, load max/mean (1.00 = balanced), tokens per "
              "expert\n", (long long)(int64_t(ids.size()) + n_gen));
  for (size_t l = 0; l < all.layers.size(); ++l) {
    const auto& s = all.layers[l];
    if (s.n_tokens == 0) continue;
    std::printf("  layer %zu: %.2f  %.2f  [", l, s.experts_per_token_mean, s.load_max_over_mean);
    for (size_t e = 0; e < s.tokens_per_expert.size(); ++e)
      std::printf("%s%lld", e ? " " : "", (long long)s.tokens_per_expert[e]);
    std::printf("]\n");
  }

  // 4. Other routers, one flag away, on Brown validation text.
  std::vector<std::vector<int32_t>> docs;
  try {
    const train::Corpus c = train::load_corpus("brown");
    for (size_t i = 0; i < c.val.size() && docs.size() < 6; i += std::max<size_t>(1, c.val.size() / 6)) {
      std::vector<int32_t> d = tok.encode(c.val[i].text);
      d.resize(std::min<size_t>(d.size(), 256));
      docs.push_back(std::move(d));
    }
  } catch (const Error& e) {
    std::printf("\n(router comparison skipped: %s)\n", e.what());
  }
  if (!docs.empty()) {
    std::printf("\nThe same model under other routers (mean loss on %zu Brown validation documents, 256 tokens each):\n"
                "  %-34s %10s %14s %10s\n", docs.size(), "flag", "loss", "experts/tok", "tok/s");
    const std::string k = E > 0 ? std::to_string(std::min<int64_t>(E, 4)) : "4";
    const std::vector<std::pair<std::string, std::pair<std::string, int>>> variants{
        {"(trained router)", {"", 0}},
        {"--experts-per-token 1", {"", 1}},
        {"--experts-per-token " + k, {"", int(std::stoi(k))}},
        {"--router topp:p=0.5", {"topp:p=0.5", 0}},
        {"--router topk:k=2,norm=false", {"topk:k=2,norm=false", 0}},
    };
    for (const auto& [flag, v] : variants) {
      try {
        model->set_router(v.first, v.second);
        const Score s = score(*model, docs);
        std::printf("  %-34s %10.4f %14.2f %10.0f\n", flag.c_str(), s.loss, s.experts_per_token, s.tok_per_s);
      } catch (const Error& e) {
        std::printf("  %-34s (%s)\n", flag.c_str(), e.what());
      }
    }
    model->set_router("", 0);
  }
  std::printf("\nTry: switchyard generate -m %s -p \"Once upon a time\" --router topp:p=0.5\n"
              "     switchyard route -m %s          (expert specialisation by Brown genre)\n"
              "     switchyard demo --layer          (every router on a random MoE layer)\n",
              dir.c_str(), dir.c_str());
}

}  // namespace sy::cli
