// Tokenizer unit tests: the split-regex engine, NFC against Unicode's NormalizationTest.txt, UTF-8
// handling and the streaming decoder, BPE merge order on hand-made vocabularies, added tokens,
// post-processor templates, and errors for malformed tokenizer.json files.
// The comparison with the JavaScript reference tokenizers is in test_tokenizer_reference.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "golden.h"
#include "io/tokenizer.h"
#include "io/tokenizer_regex.h"
#include "io/tokenizer_unicode.h"
#include "tokenizer_test_util.h"

namespace sy {
namespace {

using nlohmann::json;
using test::tiny_tokenizer;

const char* kQwenPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::vector<std::string> split(const SplitRegex& re, const std::string& text) {
  std::vector<uint32_t> off;
  std::u32string cps = uni::decode_utf8(text, &off);
  std::vector<std::string> out;
  size_t last = 0;
  for (auto [b, e] : re.find_all(cps)) {
    if (b > last) out.push_back("<gap>" + text.substr(off[last], off[b] - off[last]));
    out.push_back(text.substr(off[b], off[e] - off[b]));
    last = e;
  }
  return out;
}

using V = std::vector<std::string>;

TEST(TokenizerRegex, QwenPatternSplitsAsTheRegexDefines) {
  SplitRegex re(kQwenPattern, "test");
  EXPECT_EQ(split(re, "Hello world"), (V{"Hello", " world"}));
  // \s+(?!\S) leaves the last space to the following word; digits are single.
  EXPECT_EQ(split(re, "a   b 123"), (V{"a", "  ", " b", " ", "1", "2", "3"}));
  // (?i:'s|...) comes first, so "'LL" is one piece; other letters join their word.
  EXPECT_EQ(split(re, "I'LL don't"), (V{"I", "'LL", " don", "'t"}));
  // Punctuation run takes trailing newlines; newline runs keep leading spaces.
  EXPECT_EQ(split(re, "x!!\n\ny  \n z"), (V{"x", "!!\n\n", "y", "  \n", " z"}));
  EXPECT_EQ(split(re, "  \t"), (V{"  \t"}));
  EXPECT_EQ(split(re, "日本語です"), (V{"日本語です"}));
}

TEST(TokenizerRegex, GptOssPatternCaseRulesAndDigitGroups) {
  SplitRegex re(
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      "test");
  EXPECT_EQ(split(re, "XMLHttpRequest"), (V{"XMLHttp", "Request"}));
  EXPECT_EQ(split(re, "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split(re, "they're"), (V{"they're"}));
  EXPECT_EQ(split(re, "a//b"), (V{"a", "//", "b"}));
}

// Where Oniguruma (Hugging Face tokenizers) and JavaScript regexes differ, we follow Oniguruma.
TEST(TokenizerRegex, OnigurumaCharacterClassesNotJavaScripts) {
  SplitRegex ws("\\s+", "test");
  EXPECT_EQ(ws.match_at(U"\u0085", 0), 1);   // NEL is White_Space
  EXPECT_EQ(ws.match_at(U"\uFEFF", 0), -1);  // BOM is not (JavaScript's \s includes it)
  SplitRegex ci("(?i:'s|'t)", "test");
  EXPECT_EQ(ci.match_at(U"'\u017F", 0), 2);  // long s folds to s under (?i)
  EXPECT_EQ(ci.match_at(U"'T", 0), 2);
  EXPECT_EQ(ci.match_at(U"'x", 0), -1);
}

TEST(TokenizerRegex, UnsupportedSyntaxIsAClearError) {
  for (const char* p : {"a*?", "(?<=x)a", "\\bx", "[[a]]", "^a", "a$", "(?i:[a-z])", "(a*)*", "[]a]", "\\p{Greek}",
                        "a{2,1}", "(ab", "ab)", "x{1001}", "\\"}) {
    try {
      SplitRegex re(p, "tok.json: field 'x'");
      ADD_FAILURE() << "accepted " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tok.json: field 'x': unsupported regex"), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerUnicode, CategoriesAndWhiteSpace) {
  EXPECT_EQ(uni::category(U'A'), uni::Lu);
  EXPECT_EQ(uni::category(U'ǅ'), uni::Lt);
  EXPECT_EQ(uni::category(U'中'), uni::Lo);
  EXPECT_EQ(uni::category(0x20000), uni::Lo);  // CJK Extension B (range entry in UnicodeData.txt)
  EXPECT_EQ(uni::category(0x0301), uni::Mn);
  EXPECT_EQ(uni::category(U'²'), uni::No);
  EXPECT_EQ(uni::category(U'Ⅻ'), uni::Nl);
  EXPECT_EQ(uni::category(0x1F600), uni::So);
  EXPECT_EQ(uni::category(0x10FFFF), uni::Cn);
  EXPECT_TRUE(uni::is_white_space(0x3000));
  EXPECT_FALSE(uni::is_white_space(0x200B));
  EXPECT_STREQ(uni::unicode_version(), "15.0.0");
}

std::u32string hex_cps(const std::string& field) {
  std::u32string out;
  std::istringstream ss(field);
  std::string h;
  while (ss >> h) out.push_back(char32_t(std::stoul(h, nullptr, 16)));
  return out;
}

// Unicode's conformance test: for every line c1;c2;c3;c4;c5, NFC(c1..c3) = c2 and NFC(c4, c5) = c4;
// every code point not listed in part 1 is unchanged by NFC.
TEST(TokenizerUnicode, NfcPassesNormalizationTest) {
  std::string dir = test::env_or_empty("SY_GOLDEN_DIR");
  ASSERT_FALSE(dir.empty());
  std::ifstream f(dir + "/tokenizer_nfc/NormalizationTest.txt");
  ASSERT_TRUE(f) << "no NormalizationTest.txt (did reference.gen_tokenizer_nfc run?)";
  std::string line;
  bool part1 = false;
  std::vector<bool> in_part1(0x110000);
  size_t lines = 0, failures = 0;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '@') {
      part1 = line.rfind("@Part1", 0) == 0;
      continue;
    }
    std::vector<std::u32string> c;
    std::istringstream ss(line);
    std::string col;
    for (int i = 0; i < 5 && std::getline(ss, col, ';'); ++i) c.push_back(hex_cps(col));
    ASSERT_EQ(c.size(), 5u) << line;
    if (part1) in_part1[c[0][0]] = true;
    ++lines;
    bool ok = uni::nfc(c[0]) == c[1] && uni::nfc(c[1]) == c[1] && uni::nfc(c[2]) == c[1] && uni::nfc(c[3]) == c[3] &&
              uni::nfc(c[4]) == c[3];
    // The UTF-8 entry point must agree (it has an ASCII/Latin fast path).
    ok = ok && uni::nfc(uni::encode_utf8(c[0])) == uni::encode_utf8(c[1]);
    if (!ok && failures++ < 5) ADD_FAILURE() << "NFC fails: " << line;
  }
  EXPECT_GT(lines, 18000u);
  EXPECT_EQ(failures, 0u);
  size_t changed = 0;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if (in_part1[cp] || (cp >= 0xD800 && cp <= 0xDFFF)) continue;
    std::u32string s(1, cp);
    if (uni::nfc(s) != s && changed++ < 5) ADD_FAILURE() << "NFC changes U+" << std::hex << uint32_t(cp);
  }
  EXPECT_EQ(changed, 0u);
}

TEST(TokenizerUnicode, Utf8DecodingAndLossyReplacement) {
  EXPECT_THROW(uni::decode_utf8("ab\xC0\xAF"), Error);      // overlong
  EXPECT_THROW(uni::decode_utf8("\xED\xA0\x80"), Error);    // surrogate
  EXPECT_THROW(uni::decode_utf8("\xF4\x90\x80\x80"), Error);  // > U+10FFFF
  EXPECT_THROW(uni::decode_utf8("\xE2\x82"), Error);        // truncated
  try {
    uni::decode_utf8("abc\xFF", nullptr, "input");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 3"), std::string::npos) << e.what();
  }
  const std::string R = "\xEF\xBF\xBD";
  // Maximal subparts (Unicode 15 section 3.9, table 3-8 example).
  EXPECT_EQ(uni::utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
  EXPECT_EQ(uni::utf8_lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");
  bool incomplete = false;
  EXPECT_EQ(uni::valid_utf8_prefix("ab\xE2\x82", &incomplete), 2u);
  EXPECT_TRUE(incomplete);
  EXPECT_EQ(uni::valid_utf8_prefix("ab\xE2\x41", &incomplete), 2u);
  EXPECT_FALSE(incomplete);
}

Tokenizer tiny(const json& j, const std::string& config = "") {
  return Tokenizer::from_json(j.dump(), "tiny/tokenizer.json", config);
}

TEST(TokenizerBpe, MergesLowestRankFirstLeftmostOnTies) {
  auto t1 = tiny(tiny_tokenizer({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(t1.encode("abc"), (std::vector<int32_t>{'a', 256}));
  auto t2 = tiny(tiny_tokenizer({{"a", "b"}, {"b", "c"}}));
  EXPECT_EQ(t2.encode("abc"), (std::vector<int32_t>{256, 'c'}));
  auto t3 = tiny(tiny_tokenizer({{"a", "a"}, {"aa", "a"}}));
  EXPECT_EQ(t3.encode("aaa"), (std::vector<int32_t>{257}));  // aa+a, not a+aa
  EXPECT_EQ(t3.encode("aaaa"), (std::vector<int32_t>{256, 256}));
  // "a b" string merges and ["a","b"] array merges are the same model.
  auto t4 = tiny(tiny_tokenizer({{"b", "c"}, {"a", "b"}}, false));
  EXPECT_EQ(t4.encode("abc abc"), t1.encode("abc abc"));
  // Pieces are split by the GPT-2 pattern and mapped to byte chars: " b" is "Ġ" + "b".
  auto t5 = tiny(tiny_tokenizer({{"Ġ", "b"}}));
  EXPECT_EQ(t5.encode("a b"), (std::vector<int32_t>{'a', 256}));
  EXPECT_EQ(t5.decode(t5.encode("a b\n\xC3\xA9")), "a b\n\xC3\xA9");
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeVocabularyWords) {
  json j = tiny_tokenizer({{"a", "b"}, {"b", "c"}});
  j["model"]["vocab"]["abc"] = 258;
  EXPECT_EQ(tiny(j).encode("abc"), (std::vector<int32_t>{256, 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(tiny(j).encode("abc"), (std::vector<int32_t>{258}));
}

TEST(TokenizerAdded, LeftmostLongestWithStripFlagsAndTemplate) {
  json j = tiny_tokenizer({});
  j["added_tokens"] = json::array({
      {{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}},
      {{"id", 301}, {"content", "<s>x"}, {"special", true}, {"normalized", false}},
      {{"id", 302}, {"content", "<m>"}, {"special", false}, {"normalized", false}, {"lstrip", true}, {"rstrip", true}},
  });
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}}}}};
  auto t = tiny(j, R"({"bos_token": {"content": "<s>"}, "eos_token": "<s>x"})");
  EXPECT_EQ(t.encode("a<s>xb<s>"), (std::vector<int32_t>{'a', 301, 'b', 300}));
  EXPECT_EQ(t.encode("a  <m>\n b"), (std::vector<int32_t>{'a', 302, 'b'}));
  EXPECT_EQ(t.encode("a", true), (std::vector<int32_t>{300, 'a'}));
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 301);
  EXPECT_EQ(t.decode(t.encode("q<s>r")), "q<s>r");
  EXPECT_EQ(t.decode(t.encode("q<s>r"), true), "qr");
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(302));
  EXPECT_EQ(t.vocab_size(), 303);
  EXPECT_THROW(t.decode(std::vector<int32_t>{303}), Error);
  EXPECT_THROW(t.encode("bad \xFF"), Error);
}

void expect_error(const json& j, const std::string& want, const std::string& config = "") {
  try {
    Tokenizer::from_json(j.is_string() ? j.get<std::string>() : j.dump(), "m/tokenizer.json", config);
    ADD_FAILURE() << "no error; wanted: " << want;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

TEST(TokenizerLoad, MalformedFilesNameTheFileAndField) {
  json base = tiny_tokenizer({{"a", "b"}});
  expect_error(json("{\"model\": "), "m/tokenizer.json: not valid JSON");
  expect_error(json::array(), "m/tokenizer.json: expected a JSON object");
  json j = base; j.erase("model");
  expect_error(j, "m/tokenizer.json: missing field 'model'");
  j = base; j["model"].erase("vocab");
  expect_error(j, "missing field 'model.vocab'");
  j = base; j["model"]["type"] = "Unigram";
  expect_error(j, "field 'model.type' = \"Unigram\" is not supported");
  j = base; j["model"]["vocab"]["zz"] = -4;
  expect_error(j, "field 'model.vocab[\"zz\"]' = -4 is out of range");
  j = base; j["model"]["vocab"]["zz"] = "x";
  expect_error(j, "field 'model.vocab[\"zz\"]' is a string, expected an integer");
  j = base; j["model"]["vocab"]["zz"] = 3;
  expect_error(j, "is also the id of");
  j = base; j["model"]["vocab"].erase(test::byte_char(0));
  expect_error(j, "field 'model.vocab' has no token for byte 0x00");
  j = base; j["model"]["merges"].push_back({"a", "q!"});
  expect_error(j, "field 'model.merges[1]' names \"q!\", which is not in model.vocab");
  j = base; j["model"]["merges"].push_back("a b c");
  expect_error(j, "field 'model.merges[1]' = \"a b c\" is not two tokens");
  j = base; j["model"]["merges"].push_back({"b", "a"});
  expect_error(j, "field 'model.merges[1]' merges into \"ba\"");
  j = base; j["model"]["merges"].push_back(7);
  expect_error(j, "field 'model.merges[1]' is an integer");
  j = base; j["model"]["byte_fallback"] = true;
  expect_error(j, "field 'model.byte_fallback' = true is not supported");
  j = base; j["normalizer"] = {{"type", "NFKC"}};
  expect_error(j, "field 'normalizer.type' = \"NFKC\" is not supported");
  j = base; j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Metaspace"}}})}};
  expect_error(j, "field 'pre_tokenizer.pretokenizers[0].type' = \"Metaspace\" is not supported");
  j = base;
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "a(?<=b)"}}}, {"behavior", "Isolated"}},
                                                       {{"type", "ByteLevel"}}})}};
  expect_error(j, "field 'pre_tokenizer.pretokenizers[0].pattern.Regex': unsupported regex a(?<=b)");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "a";
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_error(j, "field 'pre_tokenizer.pretokenizers[0].behavior' = \"Removed\" is not supported");
  j = base; j["pre_tokenizer"] = nullptr;
  expect_error(j, "field 'pre_tokenizer' is missing or null");
  j = base; j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, "field 'decoder.type' = \"WordPiece\" is not supported");
  j = base; j["added_tokens"] = json::array({{{"id", 5}, {"content", "<x>"}, {"single_word", true}}});
  expect_error(j, "field 'added_tokens[0].single_word' = true is not supported");
  j = base; j["added_tokens"] = json::array({{{"content", "<x>"}}});
  expect_error(j, "missing field 'added_tokens[0].id'");
  expect_error(base, "m/tokenizer_config.json: field 'eos_token' = \"<nope>\" is not a token", R"({"eos_token": "<nope>"})");
  expect_error(base, "m/tokenizer_config.json: not valid JSON", "{");
}

TEST(TokenizerLoad, MissingFileIsAnError) {
  try {
    Tokenizer::load("/nonexistent/dir");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir"), std::string::npos) << e.what();
  }
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Streaming decode of real tokenizers: every chunk is valid UTF-8, and the chunks add up to decode().
void check_streaming(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder sd(tok);
  std::string all;
  for (int32_t id : ids) {
    std::string chunk = sd.put(id);
    bool incomplete = false;
    ASSERT_EQ(uni::valid_utf8_prefix(chunk, &incomplete), chunk.size()) << "broken UTF-8 emitted after id " << id;
    all += chunk;
  }
  all += sd.finish();
  EXPECT_EQ(all, tok.decode(ids));
}

void real_tokenizer_checks(const std::string& name, bool nfc, int32_t bos, int32_t eos, int32_t vocab) {
  Tokenizer tok = Tokenizer::load(test::npm_tokenizer_dir(name));
  EXPECT_EQ(tok.bos_id(), bos);
  EXPECT_EQ(tok.eos_id(), eos);
  EXPECT_EQ(tok.vocab_size(), vocab);
  std::string hard = read_text(test::source_dir() + "/tests/data/tokenizer_hard_cases.txt");
  ASSERT_GT(hard.size(), 1000u);
  auto ids = tok.encode(hard);
  // decode(encode(x)) == x, up to the tokenizer's normalizer.
  EXPECT_EQ(tok.decode(ids), nfc ? uni::nfc(hard) : hard);
  EXPECT_EQ(tok.decode(tok.encode(uni::nfc(hard))), uni::nfc(hard));
  check_streaming(tok, ids);
  // Random id sequences produce arbitrary byte soup: streaming must still match decode().
  std::mt19937 rng(7);
  std::vector<int32_t> ids_pool = tok.encode("😀👨‍👩‍👧 中文 é ж");
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> r;
    for (int k = 0; k < 12; ++k)
      r.push_back(rng() % 2 ? ids_pool[rng() % ids_pool.size()] : int32_t(rng() % uint32_t(tok.vocab_size())));
    check_streaming(tok, r);
  }
}

TEST(TokenizerReal, Qwen3RoundTripStreamingAndConfig) {
  real_tokenizer_checks("qwen3", true, -1, 151645, 151669);
}

TEST(TokenizerReal, GptOssRoundTripStreamingAndConfig) {
  real_tokenizer_checks("gptoss", false, 199998, 200002, 200019);
}

}  // namespace
}  // namespace sy
