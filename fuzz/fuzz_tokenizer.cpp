// libFuzzer target for the tokenizer: tokenizer.json parsing (including the Split regex compiler)
// and encode/decode.
//   input starting with '{': parsed as a tokenizer.json; when it loads, a few fixed texts are
//     encoded and decoded (must not crash; decode must return valid UTF-8).
//   any other input: text for a fixed small tokenizer (Qwen's split pattern, NFC, added tokens);
//     when it is valid UTF-8, decode(encode(x)) must equal NFC(x), and the streaming decoder fed
//     ids taken from the input must agree with decode().
// Errors (sy::Error) are the expected outcome for malformed input; anything else is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/tokenizer_unicode.h"

namespace {

std::string byte_char(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    int cp = printable ? x : 256 + n++;
    if (x == b) {
      std::string s;
      sy::uni::append_utf8(s, char32_t(cp));
      return s;
    }
  }
  return "";
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

const sy::Tokenizer& fixed_tokenizer() {
  static const sy::Tokenizer tok = [] {
    std::string vocab, merges;
    int id = 0;
    for (int b = 0; b < 256; ++b) vocab += (b ? "," : "") + std::string("\"") + json_escape(byte_char(b)) + "\":" + std::to_string(id++);
    const char* pairs[][2] = {{"t", "h"}, {"h", "e"}, {"th", "e"}, {"Ġ", "t"}, {"Ġt", "he"}, {"i", "n"}, {"a", "n"}, {"an", "d"}, {"Ġ", "a"}};
    for (auto& p : pairs) {
      vocab += ",\"" + json_escape(std::string(p[0]) + p[1]) + "\":" + std::to_string(id++);
      merges += std::string(merges.empty() ? "" : ",") + "[\"" + json_escape(p[0]) + "\",\"" + json_escape(p[1]) + "\"]";
    }
    std::string json = R"({"added_tokens":[{"id":300,"content":"<|end|>","special":true,"normalized":false},
      {"id":301,"content":"<x>","special":false,"normalized":true}],
      "normalizer":{"type":"NFC"},
      "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        "behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},
      "post_processor":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},
      "model":{"type":"BPE","dropout":null,"ignore_merges":false,"byte_fallback":false,"vocab":{)" +
                       vocab + "},\"merges\":[" + merges + "]}}";
    return sy::Tokenizer::from_json(json, "fuzz/fixed.json");
  }();
  return tok;
}

bool valid_utf8(const std::string& s) {
  bool incomplete = false;
  return sy::uni::valid_utf8_prefix(s, &incomplete) == s.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!in.empty() && in[0] == '{') {
    try {
      sy::Tokenizer tok = sy::Tokenizer::from_json(in, "fuzz/tokenizer.json");
      for (const char* text : {"Hello world", "  x\n\n 12 don't", "é中😀", ""}) {
        std::string out = tok.decode(tok.encode(text, true));
        if (!valid_utf8(out)) __builtin_trap();
      }
    } catch (const sy::Error&) {
    }
    return 0;
  }
  const sy::Tokenizer& tok = fixed_tokenizer();
  std::string text(in);
  bool incomplete = false;
  if (sy::uni::valid_utf8_prefix(text, &incomplete) == text.size()) {
    std::vector<int32_t> ids = tok.encode(text);
    if (tok.decode(ids) != sy::uni::nfc(text)) __builtin_trap();
  } else {
    try {
      tok.encode(text);
      __builtin_trap();  // invalid UTF-8 must be refused
    } catch (const sy::Error&) {
    }
  }
  // Ids from the input bytes: streaming decode must equal decode and emit only whole characters.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back(int32_t((data[i] | (data[i + 1] << 8)) % tok.vocab_size()));
  ids.erase(std::remove_if(ids.begin(), ids.end(), [&](int32_t id) { return tok.token_string(id).empty(); }), ids.end());
  sy::StreamDecoder sd(tok);
  std::string streamed;
  for (int32_t id : ids) {
    std::string chunk = sd.put(id);
    if (!valid_utf8(chunk)) __builtin_trap();
    streamed += chunk;
  }
  streamed += sd.finish();
  if (streamed != tok.decode(ids)) __builtin_trap();
  return 0;
}
