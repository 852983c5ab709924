// `switchyard generate`: streams text from a Hugging Face MoE checkpoint, then prints prompt and
// decode speed and a routing summary (per-layer load and experts per token) to stderr.
// --parallel N: N sampled continuations of the prompt (seeds seed..seed+N-1) decoded together with
// Model::forward_batch (one step = one token of every unfinished continuation; with offloading each
// expert is loaded once per step), printed one after the other when all are done.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "io/json_file.h"
#include "io/tokenizer.h"
#include "kernels/backend.h"
#include "model/chat_template.h"
#include "model/model.h"
#include "model/sampling.h"
#include "offload_flags.h"

namespace sy::cli {
namespace {

struct GenerateOptions {
  std::string model_dir, prompt, router, system;
  int n_predict = 128, experts_per_token = 0, ctx = 4096, parallel = 1;
  SamplingParams sampling;  // explicit flags
  std::vector<CLI::Option*> sampling_flags;  // temp, top-k, top-p, min-p, repeat-penalty
  bool chat = false, no_think = false, no_stats = false;
  std::vector<std::string> stops;
  OffloadFlags offload;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The prompt as one user turn of the model's chat template (tokenizer_config.json).
std::string apply_chat(const std::string& dir, const std::string& user, const std::string& system, bool no_think) {
  std::string file = dir + "/tokenizer_config.json";
  auto j = read_json_file_if_exists(file);
  SY_CHECK(j, "[generate] --chat needs ", file, " with a chat_template");
  ChatTemplate tpl = ChatTemplate::from_tokenizer_config(*j, file);
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system, std::nullopt});
  msgs.push_back({"user", user, std::nullopt});
  ChatOptions opt;
  if (no_think) opt.enable_thinking = false;
  return tpl.render(msgs, opt);
}

void print_routing_summary(const Model& model, const ForwardStats& st) {
  std::fprintf(stderr, "routing (per MoE layer, over %lld tokens):\n", (long long)st.tokens);
  std::fprintf(stderr, "  %5s  %-28s %8s %8s %6s %8s\n", "layer", "router", "exp/tok", "load", "cv", "dropped");
  auto specs = model.router_specs();
  for (size_t l = 0; l < st.layers.size(); ++l) {
    const RoutingStats& s = st.layers[l];
    if (s.n_tokens == 0) continue;
    std::fprintf(stderr, "  %5zu  %-28s %8.2f %8.2f %6.2f %8lld\n", l, specs[l].c_str(), s.experts_per_token_mean,
                 s.load_max_over_mean, s.load_cv, (long long)s.dropped);
  }
}

void print_cache_report(const Model& model, double total_s, size_t tokens);

// N continuations of one prompt: the prompt runs once, its KV cache is copied N times, and every
// step decodes one token of each unfinished continuation in one forward_batch.
void run_parallel(const GenerateOptions& o, Model& model, const Tokenizer& tok, const std::vector<int32_t>& ids,
                  const std::vector<int32_t>& eos, const SamplingParams& sp) {
  const int64_t V = model.config().vocab;
  const int N = o.parallel;
  KVCache prompt_cache = model.make_cache(std::min<int64_t>(o.ctx, int64_t(ids.size()) + o.n_predict));
  ForwardStats stats;
  std::vector<float> logits(size_t(V) * size_t(N));
  auto t0 = Clock::now();
  model.forward(ids, prompt_cache, logits.data(), false, &stats);
  for (int i = 1; i < N; ++i) std::copy_n(logits.data(), V, logits.data() + int64_t(i) * V);
  const double t_prompt = seconds_since(t0);
  struct Seq {
    KVCache cache;
    Sampler sampler;
    StopMatcher stop;
    StreamDecoder dec;
    std::vector<int32_t> history;
    std::string text, reason = "length";
    int n_gen = 0;
    bool done = false;
  };
  std::vector<Seq> seqs;
  for (int i = 0; i < N; ++i) {
    SamplingParams p = sp;
    p.seed = sp.seed + uint64_t(i);
    seqs.push_back(Seq{prompt_cache, Sampler(p), StopMatcher(o.stops), StreamDecoder(tok, true), ids, "", "length", 0, false});
  }
  auto t1 = Clock::now();
  int64_t n_tokens = 0;
  std::vector<int32_t> step_tokens;
  std::vector<KVCache*> step_caches;
  std::vector<int> step_seq(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) step_seq[size_t(i)] = i;  // row of logits -> sequence
  if (o.n_predict == 0) step_seq.clear();
  for (;;) {
    step_tokens.clear();
    step_caches.clear();
    std::vector<int> next_rows;
    for (size_t row = 0; row < step_seq.size(); ++row) {
      Seq& s = seqs[size_t(step_seq[row])];
      const int32_t next = s.sampler.sample(logits.data() + int64_t(row) * V, V, s.history);
      ++s.n_gen;
      if (std::find(eos.begin(), eos.end(), next) != eos.end()) {
        s.done = true, s.reason = "eos";
        continue;
      }
      s.history.push_back(next);
      s.text += s.stop.feed(s.dec.put(next));
      if (s.stop.stopped()) {
        s.done = true, s.reason = "stop string";
        continue;
      }
      if (s.n_gen >= o.n_predict || s.cache.len >= s.cache.capacity) {
        s.done = true;
        continue;
      }
      step_tokens.push_back(next);
      step_caches.push_back(&s.cache);
      next_rows.push_back(step_seq[row]);
    }
    step_seq = next_rows;
    if (step_tokens.empty()) break;
    model.forward_batch(step_tokens, step_caches, logits.data(), &stats);
    n_tokens += int64_t(step_tokens.size());
  }
  const double t_decode = seconds_since(t1);
  int total_gen = 0;
  for (int i = 0; i < N; ++i) {
    Seq& s = seqs[size_t(i)];
    if (!s.stop.stopped()) s.text += s.stop.feed(s.dec.finish()) + s.stop.finish();
    std::printf("[%d]%s\n", i, s.text.c_str());
    total_gen += s.n_gen;
  }
  std::fflush(stdout);
  model.close_trace();
  if (!o.offload.trace.empty()) std::fprintf(stderr, "trace: %s\n", o.offload.trace.c_str());
  if (o.no_stats) return;
  std::fprintf(stderr, "\nprompt: %zu tokens in %.3f s (%.1f tok/s); decode: %d continuations, %d tokens sampled, "
               "%lld decoded in %.3f s (%.1f tok/s)\n", ids.size(), t_prompt, double(ids.size()) / t_prompt, N,
               total_gen, (long long)n_tokens, t_decode, t_decode > 0 ? double(n_tokens) / t_decode : 0.0);
  for (int i = 0; i < N; ++i)
    std::fprintf(stderr, "  [%d] %d tokens, stopped: %s\n", i, seqs[size_t(i)].n_gen, seqs[size_t(i)].reason.c_str());
  print_routing_summary(model, stats);
  print_cache_report(model, t_prompt + t_decode, ids.size() + size_t(n_tokens));
}

void run_generate(GenerateOptions& o) {
  LoadOptions lo;
  lo.router = o.router;
  lo.experts_per_token = o.experts_per_token;
  apply_offload_flags(o.offload, lo);
  auto t_load = Clock::now();
  auto model = Model::load(o.model_dir, lo);
  Tokenizer tok = Tokenizer::load(o.model_dir);
  const ModelConfig& cfg = model->config();
  std::fprintf(stderr, "loaded %s (%lld layers) from %s in %.2f s\n", cfg.architecture.c_str(), (long long)cfg.n_layers,
               o.model_dir.c_str(), seconds_since(t_load));

  std::string text = o.chat ? apply_chat(o.model_dir, o.prompt, o.system, o.no_think) : o.prompt;
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/!o.chat);
  SY_CHECK(!ids.empty(), "[generate] the prompt is empty after tokenization; give -p TEXT");
  SY_CHECK(int64_t(ids.size()) < o.ctx, "[generate] prompt has ", ids.size(), " tokens, context is ", o.ctx,
           " (raise --ctx)");
  // EOS: the model's config, generation_config.json, and the tokenizer's eos token.
  std::vector<int32_t> eos = cfg.eos_ids;
  if (tok.eos_id() >= 0) eos.push_back(tok.eos_id());
  if (o.chat) {
    if (auto im_end = tok.find("<|im_end|>")) eos.push_back(*im_end);
  }

  // Sampling: llama.cpp-like defaults, then the checkpoint's generation_config.json, then flags.
  SamplingParams sp;
  sp.temperature = 0.8f;
  sp.top_k = 40;
  sp.top_p = 0.95f;
  sp.min_p = 0.05f;
  if (auto gc = read_json_file_if_exists(o.model_dir + "/generation_config.json"))
    sp = sampling_from_generation_config(*gc, o.model_dir + "/generation_config.json", sp);
  auto given = [&](int i) { return o.sampling_flags[size_t(i)]->count() > 0; };
  if (given(0)) sp.temperature = o.sampling.temperature;
  if (given(1)) sp.top_k = o.sampling.top_k;
  if (given(2)) sp.top_p = o.sampling.top_p;
  if (given(3)) sp.min_p = o.sampling.min_p;
  if (given(4)) sp.repetition_penalty = o.sampling.repetition_penalty;
  sp.seed = o.sampling.seed;
  if (o.parallel > 1) {
    run_parallel(o, *model, tok, ids, eos, sp);
    return;
  }
  Sampler sampler(sp);
  StopMatcher stop(o.stops);
  StreamDecoder dec(tok, /*skip_special=*/true);
  KVCache cache = model->make_cache(std::min<int64_t>(o.ctx, int64_t(ids.size()) + o.n_predict));
  ForwardStats stats;
  std::vector<float> logits(size_t(cfg.vocab));
  std::vector<int32_t> history = ids;

  auto t0 = Clock::now();
  model->forward(ids, cache, logits.data(), false, &stats);
  double t_prompt = seconds_since(t0);
  int n_gen = 0;
  auto t1 = Clock::now();
  std::string reason = "length";
  while (n_gen < o.n_predict && cache.len < cache.capacity) {
    int32_t next = sampler.sample(logits.data(), cfg.vocab, history);
    ++n_gen;
    bool is_eos = false;
    for (int32_t e : eos) is_eos |= (e == next);
    if (is_eos) {
      reason = "eos";
      break;
    }
    history.push_back(next);
    std::string piece = stop.feed(dec.put(next));
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (stop.stopped()) {
      reason = "stop string";
      break;
    }
    if (n_gen == o.n_predict || cache.len >= cache.capacity) break;
    int32_t one[1] = {next};
    model->forward(one, cache, logits.data(), false, &stats);
  }
  if (!stop.stopped()) {
    std::string rest = stop.feed(dec.finish());
    rest += stop.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::fputs("\n", stdout);
  std::fflush(stdout);
  double t_decode = seconds_since(t1);
  model->close_trace();
  if (!o.offload.trace.empty()) std::fprintf(stderr, "trace: %s\n", o.offload.trace.c_str());
  if (o.no_stats) return;
  std::fprintf(stderr, "\nprompt: %zu tokens in %.3f s (%.1f tok/s); decode: %d tokens in %.3f s (%.1f tok/s); "
               "stopped: %s\n", ids.size(), t_prompt, double(ids.size()) / t_prompt, n_gen, t_decode,
               n_gen > 0 ? double(n_gen) / t_decode : 0.0, reason.c_str());
  print_routing_summary(*model, stats);
  print_cache_report(*model, t_prompt + t_decode, ids.size() + size_t(n_gen));
}

void print_cache_report(const Model& model, double total_s, size_t tokens) {
  if (auto cs = model.expert_cache_stats()) {
    std::fprintf(stderr, "expert cache (%s, budget %.2f MiB of %.2f MiB experts): hit rate %.1f%% (%lld of %lld), "
                 "%.2f MiB read, stalled %.3f s waiting for experts, %.1f tokens/s overall\n",
                 offload::policy_name(model.expert_cache()->policy()),
                 double(model.expert_cache()->budget_bytes()) / (1024.0 * 1024.0),
                 double(model.routed_expert_bytes()) / (1024.0 * 1024.0), 100.0 * cs->hit_rate(),
                 (long long)cs->hits, (long long)cs->acquires, double(cs->bytes_read) / (1024.0 * 1024.0),
                 cs->stall_seconds, total_s > 0 ? double(tokens) / total_s : 0.0);
    std::fprintf(stderr, "  %s\n", cs->summary().c_str());
    const std::string io = model.expert_cache()->io_note();
    if (!io.empty()) std::fprintf(stderr, "  expert reads: %s\n", io.c_str());
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  static GenerateOptions o;
  auto* cmd = app.add_subcommand("generate", "generate text from a Hugging Face MoE checkpoint directory");
  cmd->add_option("-m,--model", o.model_dir, "checkpoint directory (config.json, *.safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("-p,--prompt", o.prompt, "prompt text")->required();
  cmd->add_option("-n,--n-predict", o.n_predict, "tokens to generate")->check(CLI::Range(0, 1 << 20));
  o.sampling_flags = {
      cmd->add_option("--temp", o.sampling.temperature, "temperature (0 = greedy; default 0.8 or generation_config.json)")
          ->check(CLI::Range(0.0, 100.0)),
      cmd->add_option("--top-k", o.sampling.top_k, "top-k sampling (0 = off; default 40)")->check(CLI::NonNegativeNumber),
      cmd->add_option("--top-p", o.sampling.top_p, "top-p (nucleus) sampling in (0, 1] (1 = off; default 0.95)"),
      cmd->add_option("--min-p", o.sampling.min_p, "min-p sampling in [0, 1] (0 = off; default 0.05)"),
      cmd->add_option("--repeat-penalty", o.sampling.repetition_penalty, "repetition penalty (1 = off)")};
  cmd->add_option("--seed", o.sampling.seed, "random seed");
  cmd->add_option("--stop", o.stops, "stop string (repeatable)");
  cmd->add_option("--router", o.router, "router spec for every MoE layer, e.g. 'topp:p=0.5' (switchyard routers)");
  cmd->add_option("--experts-per-token", o.experts_per_token, "override k of the router")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--ctx", o.ctx, "maximum context length in tokens")->check(CLI::Range(1, 1 << 24));
  cmd->add_flag("--chat", o.chat, "wrap the prompt in the model's chat template (tokenizer_config.json)");
  cmd->add_option("--system", o.system, "system message for --chat");
  cmd->add_flag("--no-think", o.no_think, "with --chat: disable thinking (Qwen3 enable_thinking=false)");
  cmd->add_flag("--no-stats", o.no_stats, "do not print speed and routing statistics");
  cmd->add_option("--parallel", o.parallel,
                  "decode N sampled continuations of the prompt together (seeds seed..seed+N-1; batched decode, "
                  "each expert loaded once per step)")
      ->check(CLI::Range(1, 256));
  cmd->add_option_function<std::string>(
         "--compute",
         [](const std::string& c) { set_default_backend(c == "bf16" ? &cpu_bf16_backend() : &cpu_backend()); },
         "expert FFN precision: f32 (default) or bf16 (activations and weights rounded to bf16, f32 sums: vdpbf16ps, oneDNN for prefill; opt-in)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  add_offload_flags(cmd, o.offload);
  cmd->callback([] {
    o.sampling.validate();
    run_generate(o);
  });
}

}  // namespace sy::cli
