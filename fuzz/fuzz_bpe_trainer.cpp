// libFuzzer target for the training-data and BPE-training code paths that read untrusted text.
//   bytes 0-1: options (vocab size 259 + b0 % 96, min frequency 1 + b1 % 3); the rest is text.
//   * brown_plain(rest) (the Brown tag stripper, any bytes as latin1) must return valid UTF-8
//     made of whole lines;
//   * invalid UTF-8 text must be refused by train_bpe with sy::Error;
//   * valid UTF-8 text: train_bpe must return at most vocab size tokens with merge counts that
//     never increase; its tokenizer.json must load in the runtime Tokenizer, and
//     decode(encode(text)) must equal the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/tokenizer_unicode.h"
#include "train/bpe_trainer.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);

  const std::string plain = sy::train::brown_plain(text);
  bool tail = false;
  if (sy::uni::valid_utf8_prefix(plain, &tail) != plain.size()) __builtin_trap();
  if (!plain.empty() && plain.back() != '\n') __builtin_trap();

  sy::train::BpeOptions opt;
  opt.vocab_size = 259 + data[0] % 96;
  opt.min_frequency = 1 + data[1] % 3;
  const bool valid = sy::uni::valid_utf8_prefix(text, &tail) == text.size();
  sy::train::BpeModel m;
  try {
    m = sy::train::train_bpe(std::vector<std::string_view>{text}, opt);
  } catch (const sy::Error&) {
    // Refused: invalid UTF-8, or nothing to learn from (empty, or only special tokens).
    return 0;
  }
  if (!valid) __builtin_trap();
  if (m.vocab_size() > opt.vocab_size) __builtin_trap();
  for (size_t i = 1; i < m.merge_count.size(); ++i)
    if (m.merge_count[i] > m.merge_count[i - 1] || m.merge_count[i] < opt.min_frequency) __builtin_trap();
  const sy::Tokenizer tok = sy::Tokenizer::from_json(sy::train::tokenizer_json(m), "fuzz.json");
  if (tok.decode(tok.encode(text)) != text) __builtin_trap();
  return 0;
}
