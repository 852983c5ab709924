// Byte-level BPE training (GPT-2 / Qwen style; Sennrich et al. 2016, "Neural Machine Translation
// of Rare Words with Subword Units", on bytes as in GPT-2), writing a Hugging Face tokenizer.json
// that io/tokenizer.h (and the `tokenizers` library) loads as it is.
//
// Algorithm (tests/reference/gen_bpe.py is an independent Python version of exactly this):
//   1. Each text is cut at the special tokens (they never take part in merges), then
//      pre-tokenized as the written tokenizer.json does: the Qwen2/Qwen3 Split regex
//      (kQwenSplitPattern, "Isolated": matches and the gaps between them are pieces). Pieces are
//      counted: word (its UTF-8 bytes) -> count.
//   2. Initial vocabulary: the 256 bytes, id i = the i-th byte in GPT-2's bytes_to_unicode order
//      (the printable bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF ascending, then the other bytes
//      ascending; so id 0 = '!', as in GPT-2 and Qwen). Every word starts as its bytes' ids.
//   3. Repeat: count adjacent pairs over all words (a pair's count = sum over the words holding it
//      of occurrences * word count); pick the pair with the HIGHEST count, ties broken by the
//      SMALLEST (left id, right id), compared left first; stop when no pair is left, its count is
//      below min_frequency, or the vocabulary has vocab_size - specials tokens. The merged token is
//      left bytes + right bytes: a new id (the next free one) unless those bytes already have a
//      token (then the merge is still recorded, and reuses that id). In every word, occurrences of
//      the pair are replaced left to right without overlap ("a a a" -> "aa a").
//      Counts are updated incrementally: only the words holding the merged pair are visited.
//   4. Special tokens get the ids after the BPE vocabulary, in the given order.
// The output (tokenizer_json): model BPE {vocab, merges as [left, right] string pairs in rank
// order, ignore_merges false, byte_fallback false}, normalizer null (so decode(encode(x)) == x for
// every valid UTF-8 x), pre_tokenizer Sequence[Split(kQwenSplitPattern, Isolated), ByteLevel
// (add_prefix_space false, use_regex false)], post_processor and decoder ByteLevel, added_tokens
// the specials (special, not normalized). Token strings are bytes mapped by bytes_to_unicode.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "train/data.h"

namespace sy::train {

// Qwen2 / Qwen3's pre-tokenizer pattern (the "Regex" of their tokenizer.json Split step).
inline constexpr std::string_view kQwenSplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct BpeOptions {
  int64_t vocab_size = 8192;  // total, special tokens included (the model's embedding rows)
  int64_t min_frequency = 2;  // a pair seen fewer times is never merged
  std::vector<std::string> special_tokens{"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  // Called now and then with (merges done, merges at most) while merging; may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct BpeModel {
  std::vector<std::string> token_bytes;               // BPE vocabulary: id -> raw bytes
  std::vector<std::pair<int32_t, int32_t>> merges;     // rank order: (left id, right id)
  std::vector<int32_t> merge_result;                   // id each merge produces
  std::vector<int64_t> merge_count;                    // the pair's count when it was merged
  std::vector<std::string> special_tokens;             // ids token_bytes.size() + i
  int64_t words = 0;         // pre-tokenized pieces in the training text
  int64_t unique_words = 0;  // distinct pieces
  std::string stopped;       // why merging stopped: "vocab_size", "min_frequency", "no pairs"

  int64_t vocab_size() const { return int64_t(token_bytes.size() + special_tokens.size()); }
};

// Trains on `texts` (valid UTF-8; sy::Error otherwise). Throws "[bpe] ..." when vocab_size <
// 256 + the number of special tokens, min_frequency < 1, a special token is empty or repeated, or
// the texts hold no text to learn from.
BpeModel train_bpe(const std::vector<std::string_view>& texts, const BpeOptions& opt = {});
BpeModel train_bpe(const std::vector<Document>& docs, const BpeOptions& opt = {});

// The tokenizer.json text of a trained model (see above), pretty-printed.
std::string tokenizer_json(const BpeModel& m);
// A tokenizer_config.json for it (Qwen2Tokenizer class, no BOS, EOS and padding = the first
// special token, added_tokens_decoder), read by io/tokenizer.h for bos/eos and by transformers.
std::string tokenizer_config_json(const BpeModel& m);

// GPT-2's bytes_to_unicode string of raw bytes ("Ġthe" for " the").
std::string byte_level_string(std::string_view bytes);

}  // namespace sy::train
