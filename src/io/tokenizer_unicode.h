// Unicode support for the tokenizer: General_Category and White_Space lookups (for the
// pre-tokenizer's \p{L}, \p{N}, \s ...), UTF-8 decoding/encoding, and NFC normalization.
// Tables are generated from the Unicode Character Database (tokenizer_unicode_data.cpp, made by
// scripts/gen_unicode_tables.py from Debian's unicode-data, Unicode 15.0).
// NFC follows UAX #15: canonical decomposition (Hangul by the algorithm of Unicode section 3.12),
// canonical ordering by Canonical_Combining_Class, then canonical composition skipping
// Full_Composition_Exclusion characters.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sy::uni {

// General_Category values, in this order (the generated tables store the index).
enum Category : uint8_t {
  Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi,
  Pf, Po, Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn, kCategoryCount
};

// "Lu" -> Lu; also the one-letter major classes via category_mask(). Throws for unknown names.
uint32_t category_mask(std::string_view name);  // bit i set = category i included
inline uint32_t bit(Category c) { return 1u << c; }

Category category(char32_t cp);   // Cn for unassigned and for cp > 0x10FFFF
bool is_white_space(char32_t cp);  // the White_Space property (PropList.txt)
uint8_t combining_class(char32_t cp);
const char* unicode_version();

// UTF-8. decode_utf8 throws sy::Error "[tokenizer] WHAT: invalid UTF-8 at byte N" on malformed
// input (overlong forms, surrogates, > U+10FFFF, truncated sequences). offsets (if not null)
// receives the byte offset of each code point plus a final entry = text.size().
std::u32string decode_utf8(std::string_view text, std::vector<uint32_t>* offsets = nullptr,
                           std::string_view what = "text");
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view cps);

// Length of the longest prefix of `bytes` that is complete, valid UTF-8 (never splits a sequence).
// `incomplete_tail` is set when the rest is a valid but truncated sequence at the very end (1-3
// bytes) that more bytes could complete.
size_t valid_utf8_prefix(std::string_view bytes, bool* incomplete_tail);
// Lossy UTF-8 -> valid UTF-8: each maximal invalid subpart becomes U+FFFD (Unicode section 3.9,
// "U+FFFD Substitution of Maximal Subparts", as Rust's from_utf8_lossy and WHATWG TextDecoder do).
std::string utf8_lossy(std::string_view bytes);
// Length (>= 1) of the maximal subpart at bytes[i], which must not start a complete valid
// sequence: the longest prefix of a valid sequence there, or 1. truncated_at_end: that prefix runs
// to the end of `bytes` (more bytes could still complete it).
size_t utf8_maximal_subpart(std::string_view bytes, size_t i, bool* truncated_at_end);

// NFC of valid UTF-8 text (returns the input unchanged when it is already trivially NFC).
std::string nfc(std::string_view text);
std::u32string nfc(std::u32string_view cps);

}  // namespace sy::uni

namespace sy::uni::data {
struct CategoryRange { char32_t first, last; uint8_t cat; };
struct CodeRange { char32_t first, last; };
struct CccRange { char32_t first, last; uint8_t ccc; };
// cp -> (a, b) canonical decomposition, b == 0 for singletons; excluded = Full_Composition_Exclusion.
struct Decomposition { char32_t cp, a, b; uint8_t excluded; };
extern const char* const kUnicodeVersion;
extern const CategoryRange kCategory[];
extern const size_t kCategoryCount;
extern const CodeRange kWhiteSpace[];
extern const size_t kWhiteSpaceCount;
extern const CccRange kCcc[];
extern const size_t kCccCount;
extern const Decomposition kDecomposition[];
extern const size_t kDecompositionCount;
}  // namespace sy::uni::data
