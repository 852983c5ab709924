// Hugging Face tokenizer.json byte-level BPE tokenizers (Qwen2/Qwen3, gpt-oss/o200k, GPT-2 style),
// encode and decode, with the semantics of the Rust `tokenizers` library:
//   encode(text): 1. added tokens are cut out of the raw text first (leftmost-longest match;
//                    lstrip/rstrip swallow adjacent whitespace; those with "normalized": true are
//                    matched after normalization instead);
//                 2. normalizer on the remaining pieces (supported: null, NFC, Sequence of those);
//                 3. pre_tokenizer (supported: Split with a Regex pattern and behavior "Isolated",
//                    ByteLevel with add_prefix_space / use_regex (the GPT-2 pattern), Sequence);
//                    every piece is mapped byte -> char with GPT-2's bytes_to_unicode table;
//                 4. model BPE: merges applied lowest rank first, leftmost on ties; with
//                    "ignore_merges" a piece that is itself in the vocabulary is one token;
//                 5. post_processor when add_special is true (supported: null, ByteLevel (no ids
//                    change), TemplateProcessing "single", Sequence of those).
//   decode(ids): each token's string goes through the ByteLevel decoder (the only decoder
//                supported): chars map back to bytes when all of them are in the byte table,
//                else the token's own UTF-8 is used; invalid UTF-8 becomes U+FFFD.
// Input text must be valid UTF-8 (sy::Error names the byte offset otherwise).
// Anything else in tokenizer.json (other models, normalizers, pre-tokenizers, decoders, unknown
// regex syntax, byte_fallback, dropout, single_word added tokens) is refused at load time with an
// error naming the file and the field, e.g. "[tokenizer] dir/tokenizer.json: field
// 'pre_tokenizer.pretokenizers[0].behavior' = "Removed" is not supported (expected "Isolated")".
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sy {

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a directory holding tokenizer.json (and optionally
  // tokenizer_config.json, read for bos_token / eos_token).
  static Tokenizer load(const std::string& path);
  // Parses tokenizer.json text held in memory; `name` stands for the file in error messages.
  // `config_json` (may be empty) is the text of tokenizer_config.json.
  static Tokenizer from_json(std::string_view json, const std::string& name, std::string_view config_json = {});

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text` (valid UTF-8). add_special: apply the post_processor's template.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // Text of `ids`; throws for an id outside [0, vocab_size()). skip_special drops special tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The bytes one token stands for (may be a partial UTF-8 sequence).
  std::string token_bytes(int32_t id) const;

  // Id of a token given by its tokenizer.json string (e.g. "<|im_end|>", "Ġthe"), or nullopt.
  std::optional<int32_t> find(std::string_view token) const;
  int32_t token_id(std::string_view token) const;  // throws when absent
  const std::string& token_string(int32_t id) const;  // tokenizer.json string; throws when out of range
  bool is_special(int32_t id) const;
  int32_t vocab_size() const;  // 1 + the largest id (model vocab and added tokens)
  int32_t bos_id() const;      // from tokenizer_config.json; -1 when there is none
  int32_t eos_id() const;
  const std::string& source() const;  // the file it was loaded from

  struct Impl;  // internal (io/tokenizer_impl.h)

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class StreamDecoder;
};

// Turns ids into text while generating: put() returns only complete UTF-8 characters and keeps an
// incomplete trailing sequence (up to 3 bytes) for the next call; bytes that can never become
// valid UTF-8 come out as U+FFFD at once. The concatenation of put()s and finish() equals
// tokenizer.decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false) : tok_(&tok), skip_special_(skip_special) {}
  std::string put(int32_t id);
  std::string finish();  // flushes a truncated sequence as U+FFFD and resets

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace sy
