// Private to the tokenizer's .cpp files: the loaded state of a Tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tokenizer.h"
#include "io/tokenizer_regex.h"

namespace sy {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to U+0100+n.
struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};  // -1: not a byte char
  ByteLevelTable();
  static const ByteLevelTable& get();
};

struct Tokenizer::Impl {
  std::string source;

  // Vocabulary: model vocab and added tokens, indexed by id.
  std::vector<std::string> id_to_token;  // tokenizer.json string ("" for unused ids)
  std::vector<std::string> id_to_bytes;  // what decode emits for the id
  std::vector<uint8_t> id_special;
  std::unordered_map<std::string, int32_t> token_to_id;  // tokenizer.json strings
  std::unordered_map<std::string, int32_t> bytes_to_id;  // model vocab by raw bytes

  // BPE model.
  std::array<int32_t, 256> byte_id{};
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left<<32|right) -> (rank, merged id)
  bool ignore_merges = false;

  // Normalizer.
  bool nfc = false;

  // Pre-tokenizer steps, in order (Split steps first, then exactly one ByteLevel).
  struct PreStep {
    std::unique_ptr<SplitRegex> split;  // Split step when set
    bool add_prefix_space = false;      // ByteLevel step otherwise
  };
  std::vector<PreStep> pre;

  // Added tokens.
  struct Added {
    std::string content;
    int32_t id = 0;
    bool lstrip = false, rstrip = false, normalized = false, special = false;
  };
  std::vector<Added> added;
  std::array<std::vector<uint32_t>, 256> added_by_byte;  // first byte -> indices, longest first

  // Post-processor template (TemplateProcessing "single"): -1 stands for the sequence.
  std::vector<int32_t> template_single;
  bool has_template = false;

  int32_t bos = -1, eos = -1;

  // Cache of BPE results for pre-tokenized pieces.
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

// Parses tokenizer.json (and tokenizer_config.json when not empty) into `impl`.
void load_tokenizer_json(Tokenizer::Impl& impl, std::string_view json, std::string_view config_json);

}  // namespace sy
