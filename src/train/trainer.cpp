// The training loop (trainer.h): data streams, batches, steps, evaluation, the log.
// Checkpoint files and the config's JSON form are in trainer_io.cpp.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/threadpool.h"
#include "io/tokenizer.h"
#include "train/data.h"
#include "train/optim.h"

namespace sy::train {

namespace fs = std::filesystem;

int64_t TrainConfig::total_steps() const {
  if (steps > 0) return steps;
  return (tokens + tokens_per_step() - 1) / tokens_per_step();
}

void TrainConfig::validate() const {
  SY_CHECK(seq_len >= 1, "[train] --seq-len ", seq_len, " must be at least 1");
  SY_CHECK(batch >= 1, "[train] --batch ", batch, " must be at least 1");
  SY_CHECK(grad_accum >= 1, "[train] --grad-accum ", grad_accum, " must be at least 1");
  SY_CHECK(steps > 0 || tokens > 0, "[train] give --steps or --tokens (a positive number)");
  SY_CHECK(steps >= 0 && tokens >= 0, "[train] --steps / --tokens must not be negative");
  SY_CHECK(lr > 0 && std::isfinite(lr), "[train] --lr ", lr, " must be positive");
  SY_CHECK(min_lr >= 0 && min_lr <= lr, "[train] --min-lr ", min_lr, " must be in [0, --lr ", lr, "]");
  SY_CHECK(warmup >= 0, "[train] --warmup ", warmup, " must not be negative");
  SY_CHECK(wd >= 0, "[train] --wd ", wd, " must not be negative");
  SY_CHECK(clip >= 0, "[train] --clip ", clip, " must not be negative (0 = no clipping)");
  SY_CHECK(balance == "micro" || balance == "global", "[train] --balance '", balance,
           "' is not one of: micro, global");
  SY_CHECK(save_dtype == "f32" || save_dtype == "bf16", "[train] --save-dtype '", save_dtype,
           "' is not one of: f32, bf16");
  SY_CHECK(precision == "f32" || precision == "bf16", "[train] --precision '", precision,
           "' is not one of: f32, bf16");
  SY_CHECK(eval_every >= 0 && save_every >= 0 && log_every >= 1, "[train] --eval-every / --save-every must not be "
           "negative");
  SY_CHECK(eval_tokens >= 0, "[train] --eval-tokens must not be negative");
  SY_CHECK(keep >= 1, "[train] --keep ", keep, " must be at least 1");
  SY_CHECK(val_fraction > 0 && val_fraction < 1, "[train] validation fraction ", val_fraction, " must be in (0, 1)");
  SY_CHECK(!out.empty(), "[train] --out DIR is required");
  SY_CHECK(model.vocab > 0, "[train] vocabulary size must be positive");
}

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  SY_CHECK(f.good(), "[train] cannot open ", what, " ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Tokenizes documents in parallel (each document independently, so the result is the same for any
// thread count) and joins them with `sep` after each document.
TokenStream tokenize(const Tokenizer& tok, const std::vector<Document>& docs, int32_t sep,
                     const std::vector<std::string>& label_names) {
  std::vector<std::vector<int32_t>> ids(docs.size());
  default_pool().parallel_for(int64_t(docs.size()), [&](int64_t d, int) {
    try {
      ids[size_t(d)] = tok.encode(docs[size_t(d)].text);
    } catch (const Error& e) {
      fail("[train] document '", docs[size_t(d)].name, "': ", e.what());
    }
  });
  TokenStream s;
  for (size_t d = 0; d < docs.size(); ++d) {
    const auto it = std::find(label_names.begin(), label_names.end(), docs[d].label);
    const uint16_t label = uint16_t(it - label_names.begin());
    s.ids.insert(s.ids.end(), ids[d].begin(), ids[d].end());
    s.ids.push_back(sep);
    s.labels.insert(s.labels.end(), ids[d].size() + 1, label);
    ++s.documents;
  }
  return s;
}

}  // namespace

Trainer::Trainer(TrainConfig cfg, const std::string& resume_dir, TrainCallbacks cb)
    : cfg_(std::move(cfg)), cb_(std::move(cb)) {
  std::string ckpt;
  if (!resume_dir.empty()) {
    ckpt = resolve_checkpoint(resume_dir);
    const TrainConfig saved = load_config(ckpt);
    const nlohmann::json a = to_json(saved), b = to_json(cfg_);
    for (const std::string& ptr : fixed_on_resume()) {
      const nlohmann::json::json_pointer p(ptr);
      std::string key = ptr.substr(1);
      std::replace(key.begin(), key.end(), '/', '.');
      SY_CHECK(a.at(p) == b.at(p), "[train] --resume ", ckpt, ": the checkpoint was trained with ", key, " = ",
               a.at(p).dump(), " but this run asks for ", b.at(p).dump(), "; ", key, " cannot change when resuming");
    }
    // The checkpoint's own tokenizer is the one the data must be tokenized with.
    tokenizer_json_ = read_text(ckpt + "/tokenizer.json", "checkpoint tokenizer");
    if (fs::exists(ckpt + "/tokenizer_config.json"))
      tokenizer_config_ = read_text(ckpt + "/tokenizer_config.json", "checkpoint tokenizer config");
    if (!cfg_.tokenizer.empty()) {
      SY_CHECK(read_text(cfg_.tokenizer, "tokenizer") == tokenizer_json_, "[train] --resume ", ckpt,
               ": --tokenizer ", cfg_.tokenizer, " differs from the checkpoint's tokenizer.json");
    }
  } else {
    SY_CHECK(!cfg_.tokenizer.empty(), "[train] --tokenizer FILE (a tokenizer.json) is required");
    if (fs::is_directory(cfg_.tokenizer)) cfg_.tokenizer = (fs::path(cfg_.tokenizer) / "tokenizer.json").string();
    tokenizer_json_ = read_text(cfg_.tokenizer, "tokenizer");
    const fs::path config = fs::path(cfg_.tokenizer).parent_path() / "tokenizer_config.json";
    if (fs::exists(config)) tokenizer_config_ = read_text(config.string(), "tokenizer config");
  }
  const Tokenizer tok = Tokenizer::from_json(
      tokenizer_json_, ckpt.empty() ? cfg_.tokenizer : ckpt + "/tokenizer.json", tokenizer_config_);
  bos_id_ = tok.bos_id();
  if (auto e = tok.find("<|endoftext|>"))
    eos_id_ = *e;
  else
    eos_id_ = tok.eos_id();
  SY_CHECK(eos_id_ >= 0, "[train] tokenizer ", tok.source(),
           " has no <|endoftext|> token and no eos_token: documents cannot be separated");
  cfg_.model.vocab = tok.vocab_size();
  cfg_.validate();

  Corpus corpus = load_corpus(cfg_.data, cfg_.val_fraction, cfg_.brown_dir);
  SY_CHECK(!corpus.train.empty(), "[train] data '", cfg_.data, "' has no training documents");
  SY_CHECK(!corpus.val.empty(), "[train] data '", cfg_.data, "' has no validation documents");
  for (const auto* split : {&corpus.train, &corpus.val})
    for (const Document& d : *split)
      if (std::find(label_names_.begin(), label_names_.end(), d.label) == label_names_.end())
        label_names_.push_back(d.label);
  train_ = tokenize(tok, corpus.train, eos_id_, label_names_);
  val_ = tokenize(tok, corpus.val, eos_id_, label_names_);
  const int64_t W = cfg_.seq_len + 1;
  SY_CHECK(int64_t(train_.ids.size()) >= W, "[train] the training split of '", cfg_.data, "' has ", train_.ids.size(),
           " tokens, fewer than --seq-len + 1 = ", W);
  SY_CHECK(cfg_.eval_tokens == 0 || int64_t(val_.ids.size()) >= W, "[train] the validation split of '", cfg_.data,
           "' has ", val_.ids.size(), " tokens, fewer than --seq-len + 1 = ", W);
  if (cb_.on_message)
    cb_.on_message(str("data: ", train_.documents, " train documents (", train_.ids.size(), " tokens), ",
                       val_.documents, " validation documents (", val_.ids.size(), " tokens), ",
                       label_names_.size(), " labels"));

  model_ = std::make_unique<MoELM>(cfg_.model);
  model_->set_matmul_precision(parse_matmul_precision(cfg_.precision));
  if (ckpt.empty()) {
    model_->init(cfg_.seed);
    rng_ = cfg_.seed ^ 0x5DEECE66Dull;
    std::error_code ec;
    SY_CHECK(!fs::exists(cfg_.out + "/latest", ec) && !fs::is_symlink(cfg_.out + "/latest", ec), "[train] --out ",
             cfg_.out, " already holds a checkpoint (", cfg_.out, "/latest); continue it with --resume ", cfg_.out,
             " or choose another --out");
    fs::create_directories(cfg_.out, ec);
    SY_CHECK(!ec, "[train] cannot create --out ", cfg_.out, ": ", ec.message());
    std::ofstream(cfg_.out + "/log.jsonl", std::ios::trunc);  // a fresh run starts a fresh log
  } else {
    restore(ckpt);
  }
  if (cb_.on_message) {
    int64_t n = 0;
    for (const auto& p : model_->params()) n += p.numel;
    cb_.on_message(str("model: ", n, " parameters (", cfg_.model.n_layers, " layers, hidden ", cfg_.model.hidden,
                       ", ", cfg_.model.n_experts, " experts of width ", cfg_.model.expert_ffn, ", router ",
                       cfg_.model.router, ", vocab ", cfg_.model.vocab, "), ",
                       cfg_.precision == "bf16" ? "bf16 mixed-precision products" : "f32 products"));
  }
}

Trainer::~Trainer() = default;

void Trainer::draw_batch(std::vector<int32_t>& tokens, std::vector<int32_t>& targets) {
  const int64_t T = cfg_.seq_len, B = cfg_.batch;
  const uint64_t n_starts = uint64_t(train_.ids.size()) - uint64_t(T);  // windows of T + 1 tokens
  tokens.resize(size_t(B * T));
  targets.resize(size_t(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t s = splitmix(rng_) % n_starts;
    std::copy_n(train_.ids.begin() + int64_t(s), T, tokens.begin() + b * T);
    std::copy_n(train_.ids.begin() + int64_t(s) + 1, T, targets.begin() + b * T);
  }
}

std::vector<int32_t> Trainer::eval_ids() const {
  const int64_t W = cfg_.seq_len + 1;
  const int64_t n = std::min<int64_t>(cfg_.eval_tokens / W, int64_t(val_.ids.size()) / W);
  return {val_.ids.begin(), val_.ids.begin() + n * W};
}

EvalReport Trainer::evaluate() {
  const int64_t T = cfg_.seq_len, W = T + 1;
  const std::vector<int32_t> ids = eval_ids();
  const int64_t n = int64_t(ids.size()) / W;
  EvalReport r;
  r.step = step_;
  if (n == 0) return r;  // --eval-tokens 0 (or fewer than one window): no evaluation
  double sum = 0;
  std::vector<int32_t> tokens, targets;
  for (int64_t w0 = 0; w0 < n; w0 += cfg_.batch) {
    const int64_t B = std::min(cfg_.batch, n - w0);
    tokens.resize(size_t(B * T));
    targets.resize(size_t(B * T));
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(ids.begin() + (w0 + b) * W, T, tokens.begin() + b * T);
      std::copy_n(ids.begin() + (w0 + b) * W + 1, T, targets.begin() + b * T);
    }
    sum += model_->forward_backward(tokens, targets, B, T, false).ce * double(B);
  }
  r.loss = sum / double(n);
  r.tokens = n * T;
  log({{"type", "eval"}, {"step", step_}, {"val_loss", r.loss}, {"val_tokens", r.tokens}});
  if (cb_.on_eval) cb_.on_eval(r);
  return r;
}

void Trainer::run(int64_t stop_at) {
  const int64_t total = cfg_.total_steps(), GA = cfg_.grad_accum, L = cfg_.model.n_layers;
  const int S = model_->n_scores();
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t step0 = step_;
  std::vector<std::vector<int32_t>> tok(static_cast<size_t>(GA)), tgt(static_cast<size_t>(GA));
  const int64_t end = stop_at > 0 ? std::min(stop_at, total) : total;
  while (step_ < end) {
    model_->zero_grad();
    for (int64_t m = 0; m < GA; ++m) draw_batch(tok[size_t(m)], tgt[size_t(m)]);
    std::vector<std::vector<double>> global_f;
    if (cfg_.balance == "global") {  // selection fractions over the whole step's tokens first
      std::vector<std::vector<int64_t>> counts(size_t(L), std::vector<int64_t>(size_t(S), 0));
      for (int64_t m = 0; m < GA; ++m) {
        const StepStats s = model_->forward_backward(tok[size_t(m)], tgt[size_t(m)], cfg_.batch, cfg_.seq_len, false);
        for (int64_t l = 0; l < L; ++l)
          for (int i = 0; i < S; ++i) counts[size_t(l)][size_t(i)] += s.load[size_t(l)][size_t(i)];
      }
      const double N = double(GA * cfg_.batch * cfg_.seq_len);
      global_f.assign(size_t(L), std::vector<double>(size_t(S)));
      for (int64_t l = 0; l < L; ++l)
        for (int i = 0; i < S; ++i) global_f[size_t(l)][size_t(i)] = double(counts[size_t(l)][size_t(i)]) / N;
    }
    StepReport r;
    std::vector<std::vector<int64_t>> load(size_t(L), std::vector<int64_t>(size_t(S), 0));
    for (int64_t m = 0; m < GA; ++m) {
      const StepStats s = model_->forward_backward(tok[size_t(m)], tgt[size_t(m)], cfg_.batch, cfg_.seq_len, true,
                                                   accumulation_scale(int(GA)), global_f.empty() ? nullptr : &global_f);
      r.loss += s.loss / double(GA);
      r.ce += s.ce / double(GA);
      r.balance += s.balance / double(GA);
      r.z += s.z / double(GA);
      r.entropy += s.entropy / double(GA);
      for (int64_t l = 0; l < L; ++l)
        for (int i = 0; i < S; ++i) load[size_t(l)][size_t(i)] += s.load[size_t(l)][size_t(i)];
    }
    auto g = model_->grads();
    r.grad_norm = cfg_.clip > 0 ? clip_grad_norm(g.data(), int64_t(g.size()), cfg_.clip)
                                : grad_norm(g.data(), int64_t(g.size()));
    r.lr = lr_at(step_, cfg_.warmup, total, cfg_.lr, cfg_.min_lr);
    model_->adamw_step(step_ + 1, float(r.lr), float(cfg_.wd));
    model_->update_router_bias(load);
    ++step_;
    tokens_seen_ += cfg_.tokens_per_step();
    for (int64_t l = 0; l < L; ++l) {  // routed experts only: null columns are not experts
      const auto& ld = load[size_t(l)];
      int64_t mx = 0, sum = 0;
      for (int64_t e = 0; e < cfg_.model.n_experts; ++e) {
        mx = std::max(mx, ld[size_t(e)]);
        sum += ld[size_t(e)];
      }
      if (sum > 0) r.load_max_mean = std::max(r.load_max_mean, double(mx) * double(cfg_.model.n_experts) / double(sum));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.step = step_;
    r.total_steps = total;
    r.tokens_seen = tokens_seen_;
    r.tokens_per_second = double((step_ - step0) * cfg_.tokens_per_step()) / std::max(secs, 1e-9);
    r.eta_seconds = secs / double(step_ - step0) * double(total - step_);
    if (step_ % cfg_.log_every == 0 || step_ == total || step_ == step0 + 1)
      log({{"type", "step"}, {"step", step_}, {"loss", r.loss}, {"ce", r.ce}, {"balance", r.balance}, {"z", r.z},
           {"entropy", r.entropy}, {"grad_norm", r.grad_norm}, {"lr", r.lr}, {"load_max_mean", r.load_max_mean},
           {"tokens", tokens_seen_}, {"tokens_per_second", r.tokens_per_second}});
    if (cb_.on_step) cb_.on_step(r);
    if ((cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) || step_ == total) evaluate();
    if ((cfg_.save_every > 0 && step_ % cfg_.save_every == 0) || step_ == end) save();
  }
}

void Trainer::log(const nlohmann::json& j) {
  std::ofstream f(cfg_.out + "/log.jsonl", std::ios::app);
  SY_CHECK(f.good(), "[train] cannot append to ", cfg_.out, "/log.jsonl");
  f << j.dump() << "\n";
}

}  // namespace sy::train
