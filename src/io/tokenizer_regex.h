// The regular expressions of tokenizer.json "Split" pre-tokenizers (GPT-2, GPT-4/Qwen, o200k/gpt-oss
// patterns), matched over code points with the semantics of Oniguruma, which Hugging Face
// tokenizers uses: backtracking, leftmost-first alternation, greedy quantifiers.
//
// Supported syntax (anything else throws sy::Error naming the pattern and offset):
//   alternation |, groups (...) (?:...), case-insensitive groups (?i:...) over ASCII literals,
//   lookahead (?=...) (?!...), quantifiers ? * + {n} {n,} {n,m} (greedy only),
//   classes [...] [^...] with ranges, escapes \s \S \d \D \w \W \p{X} \P{X} \pX (X a general
//   category such as L, Lu, N, Nd, M), \r \n \t \f \v, escaped punctuation, and '.'.
// Character properties (Unicode 15.0, see tokenizer_unicode.h), as Oniguruma defines them:
//   \s = White_Space (U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
//   U+2029, U+202F, U+205F, U+3000), \d = Nd, \w = L | M | Nd | Pc. Under (?i) a letter also
//   matches its simple case folding partners: s/S/U+017F, k/K/U+212A, other ASCII letters their
//   other case. (JavaScript regexes differ on U+0085, U+FEFF and U+017F.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sy {

class SplitRegex {
 public:
  // Throws sy::Error "[tokenizer] WHERE: unsupported regex PATTERN: REASON at offset N".
  SplitRegex(std::string_view pattern, std::string_view where);

  // End (in code points) of the leftmost-first match starting exactly at pos, or -1.
  // Throws when a match needs more than a bounded number of backtracking steps.
  int64_t match_at(std::u32string_view s, size_t pos) const;
  // Successive non-overlapping matches [begin, end) in code points, scanning left to right as
  // Oniguruma's find_iter does; empty matches are dropped.
  std::vector<std::pair<size_t, size_t>> find_all(std::u32string_view s) const;

  const std::string& pattern() const { return pattern_; }

  // Internal representation (public so that the compiler in the .cpp can build it).
  struct Item {
    enum Kind : uint8_t { kRange, kCategory, kWhite } kind;
    bool negate = false;
    char32_t lo = 0, hi = 0;  // kRange
    uint32_t cats = 0;        // kCategory: bit mask of sy::uni::Category
  };
  struct Set {
    bool negate = false;
    std::vector<Item> items;
    uint64_t ascii[2] = {0, 0};  // precomputed membership of U+0000..U+007F
    bool contains(char32_t c) const;
    bool slow_contains(char32_t c) const;
  };
  struct Inst {
    enum Op : uint8_t { kSet, kSplit, kJmp, kLook, kMatch } op;
    bool negate = false;    // kLook: (?!...)
    uint32_t set = 0;       // kSet
    uint32_t min = 1, max = 1;  // kSet repetition (greedy); max = UINT32_MAX for unbounded
    uint32_t x = 0, y = 0;  // kSplit: try x then y; kJmp: x; kLook: sub-program at x
  };

 private:
  int64_t run(std::u32string_view s, size_t pos, uint32_t pc, uint64_t& steps) const;
  std::string pattern_;
  std::vector<Set> sets_;
  std::vector<Inst> prog_;
  friend class RegexCompiler;
};

}  // namespace sy
