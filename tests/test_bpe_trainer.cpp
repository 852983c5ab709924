// Byte-level BPE trainer (train/bpe_trainer.h): the same merges, counts and vocabulary as the
// independent Python trainer tests/reference/gen_bpe.py (run at test time) on its corpora; the
// written tokenizer.json loads in the runtime Tokenizer, decode(encode(x)) == x, the special
// tokens get the ids after the BPE vocabulary; a Brown subset trains to the requested size; bad
// input errors. (The npm tokenizer's agreement on the written file is tests/cli/tokenizer_train.sh.)
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "file_test_util.h"
#include "golden.h"
#include "io/atomic_file.h"
#include "io/tokenizer.h"
#include "train/bpe_trainer.h"

namespace sy::train {
namespace {
using test::error_of;
using test::expect_error_with;
using test::read_bytes;

nlohmann::json reference_manifest() {
  const std::string path = test::env_or_empty("SY_GOLDEN_DIR") + "/bpe/manifest.json";
  std::ifstream f(path);
  if (!f) {
    ADD_FAILURE() << "no " << path << " (did reference.gen_bpe run?)";
    return nlohmann::json::object({{"cases", nlohmann::json::array()}});
  }
  return nlohmann::json::parse(f);
}

TEST(BpeTrainer, MatchesPythonReference) {
  const nlohmann::json manifest = reference_manifest();
  ASSERT_GE(manifest["cases"].size(), 5u);
  const std::string dir = test::env_or_empty("SY_GOLDEN_DIR") + "/bpe/";
  std::set<std::string> stops;
  for (const auto& c : manifest["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const std::string text = read_bytes(dir + c["text"].get<std::string>());
    BpeOptions opt;
    opt.vocab_size = c["vocab_size"];
    opt.min_frequency = c["min_frequency"];
    opt.special_tokens = c["specials"].get<std::vector<std::string>>();
    const BpeModel m = train_bpe(std::vector<std::string_view>{text}, opt);
    EXPECT_EQ(m.words, c["words"].get<int64_t>());
    EXPECT_EQ(m.unique_words, c["unique_words"].get<int64_t>());
    EXPECT_EQ(m.stopped, c["stopped"].get<std::string>());
    stops.insert(m.stopped);
    const auto& ref_ids = c["merge_ids"];
    ASSERT_EQ(m.merges.size(), ref_ids.size());
    for (size_t i = 0; i < m.merges.size(); ++i) {
      ASSERT_EQ(m.merges[i].first, ref_ids[i][0].get<int32_t>()) << "merge " << i;
      ASSERT_EQ(m.merges[i].second, ref_ids[i][1].get<int32_t>()) << "merge " << i;
      ASSERT_EQ(m.merge_result[i], ref_ids[i][2].get<int32_t>()) << "merge " << i;
      ASSERT_EQ(m.merge_count[i], c["merge_counts"][i].get<int64_t>()) << "merge " << i;
    }
    const auto& vocab = c["vocab"];
    ASSERT_EQ(m.token_bytes.size(), vocab.size());
    for (size_t i = 0; i < vocab.size(); ++i)
      ASSERT_EQ(byte_level_string(m.token_bytes[i]), vocab[i].get<std::string>()) << "token " << i;
    // The written merges are the reference's string pairs.
    const nlohmann::json j = nlohmann::json::parse(tokenizer_json(m));
    EXPECT_EQ(j["model"]["merges"], c["merges"]);
  }
  // The corpora reach every way of stopping.
  EXPECT_EQ(stops, (std::set<std::string>{"vocab_size", "min_frequency", "no pairs"}));
}

TEST(BpeTrainer, WrittenTokenizerLoadsAndRoundTrips) {
  const std::string text = read_bytes(test::env_or_empty("SY_GOLDEN_DIR") + "/bpe/english.txt");
  ASSERT_FALSE(text.empty());
  BpeOptions opt;
  opt.vocab_size = 600;
  const BpeModel m = train_bpe(std::vector<std::string_view>{text}, opt);
  ASSERT_EQ(m.vocab_size(), 600);
  const Tokenizer tok = Tokenizer::from_json(tokenizer_json(m), "trained.json", tokenizer_config_json(m));
  EXPECT_EQ(tok.vocab_size(), 600);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 597);
  EXPECT_EQ(tok.token_id("<|im_start|>"), 598);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 599);
  EXPECT_TRUE(tok.is_special(599));
  EXPECT_EQ(tok.eos_id(), 597);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.token_id("!"), 0);  // GPT-2 byte order
  EXPECT_EQ(tok.token_string(220), "\xc4\xa0");  // "Ġ" = byte 0x20: 188 printable bytes + 32
  EXPECT_EQ(tok.token_bytes(220), " ");
  // A merged token's bytes encode back to that token (BPE in isolation can segment differently
  // from the training context only at overlapping pairs, e.g. "aaa", so allow a few).
  int single = 0, total = 0;
  for (size_t id = 256; id < m.token_bytes.size(); ++id) {
    const auto ids = tok.encode(m.token_bytes[id]);
    ++total;
    single += ids == std::vector<int32_t>{int32_t(id)};
  }
  EXPECT_GE(single, total * 95 / 100) << single << " of " << total;
  const std::vector<std::string> samples{
      text.substr(0, 3000),
      "Hello, world! It's 2026 -- the  cat's   hat.\r\n\tTabs and   spaces   \n",
      "na\xc3\xafve caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, \xf0\x9f\x99\x82 \xce\xb1\xce\xb2\xce\xb3",
      "<|im_start|>user\nhi<|im_end|><|endoftext|>",
      "",
      " ",
      "\n\n\n"};
  for (const auto& s : samples) {
    const std::vector<int32_t> ids = tok.encode(s);
    EXPECT_EQ(tok.decode(ids), s);
    for (int32_t id : ids) EXPECT_LT(id, 600);
  }
  const auto sp = tok.encode("a<|endoftext|>");
  ASSERT_EQ(sp.size(), 2u);
  EXPECT_EQ(sp[1], 597);
  // Compression: the training text takes far fewer tokens than bytes.
  EXPECT_LT(tok.encode(text).size(), text.size() / 2);
}

TEST(BpeTrainer, BrownSubsetToVocabSize) {
  Corpus c = load_corpus("brown", 0.1, SY_TEST_SOURCE_DIR);
  c.train.resize(20);
  BpeOptions opt;
  opt.vocab_size = 1024;
  const BpeModel m = train_bpe(c.train, opt);
  EXPECT_EQ(m.stopped, "vocab_size");
  EXPECT_EQ(m.vocab_size(), 1024);
  EXPECT_EQ(m.merges.size(), 1024u - 256 - 3);  // Brown has no repeated merge results at this size
  // Counts never increase: each merge takes the most frequent pair.
  for (size_t i = 1; i < m.merge_count.size(); ++i) ASSERT_LE(m.merge_count[i], m.merge_count[i - 1]) << i;
  test::TempDir dir("bpe");
  write_file_atomic(dir / "tokenizer.json", tokenizer_json(m));
  const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
  size_t bytes = 0, tokens = 0;
  for (size_t i = 0; i < 5; ++i) {
    const auto ids = tok.encode(c.val[i].text);
    EXPECT_EQ(tok.decode(ids), c.val[i].text) << c.val[i].name;
    bytes += c.val[i].text.size();
    tokens += ids.size();
  }
  EXPECT_GT(double(bytes) / double(tokens), 2.5);  // a 1k vocabulary on English compresses
  // Deterministic.
  const BpeModel again = train_bpe(c.train, opt);
  EXPECT_EQ(again.merges, m.merges);
}

TEST(BpeTrainer, BadInput) {
  const std::vector<std::string_view> text{"some text to learn from"};
  BpeOptions opt;
  opt.vocab_size = 258;
  expect_error_with(error_of([&] { train_bpe(text, opt); }), {"vocab size 258 is too small", "259"});
  opt.vocab_size = 300;
  opt.min_frequency = 0;
  expect_error_with(error_of([&] { train_bpe(text, opt); }), {"min frequency 0"});
  opt.min_frequency = 2;
  expect_error_with(error_of([&] { train_bpe(std::vector<std::string_view>{"", ""}, opt); }), {"no training text"});
  expect_error_with(error_of([&] { train_bpe(std::vector<std::string_view>{"<|endoftext|><|im_end|>"}, opt); }),
                    {"no training text"});
  expect_error_with(error_of([&] { train_bpe(std::vector<std::string_view>{}, opt); }), {"no training text"});
  expect_error_with(error_of([&] { train_bpe(std::vector<std::string_view>{"ok", "bad \xff byte"}, opt); }),
                    {"training text 1", "invalid UTF-8 at byte 4"});
  opt.special_tokens = {"<a>", "<a>"};
  expect_error_with(error_of([&] { train_bpe(text, opt); }), {"special token <a> given twice"});
  opt.special_tokens = {""};
  expect_error_with(error_of([&] { train_bpe(text, opt); }), {"empty special token"});
  expect_error_with(error_of([&] { write_file_atomic("/proc/version/x/tokenizer.json", "{}"); }),
                    {"tokenizer.json.tmp", "cannot create"});
}

}  // namespace
}  // namespace sy::train
