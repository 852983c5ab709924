#include "io/tokenizer_unicode.h"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "core/error.h"

namespace sy::uni {

namespace {

// Categories of the Basic Multilingual Plane, expanded once (64 KiB) so that the pre-tokenizer's
// per-character lookups are one load; other planes use binary search over the ranges.
struct BmpTable {
  std::array<uint8_t, 0x10000> cat;
  BmpTable() {
    cat.fill(Cn);
    for (size_t i = 0; i < data::kCategoryCount; ++i) {
      const auto& r = data::kCategory[i];
      if (r.first > 0xFFFF) break;
      for (char32_t c = r.first; c <= std::min<char32_t>(r.last, 0xFFFF); ++c) cat[c] = r.cat;
    }
  }
};
const BmpTable& bmp() {
  static const BmpTable t;
  return t;
}

template <typename R>
const R* find_range(const R* begin, size_t n, char32_t cp) {
  const R* end = begin + n;
  const R* it = std::upper_bound(begin, end, cp, [](char32_t c, const R& r) { return c < r.first; });
  if (it == begin) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

// Hangul syllable constants (Unicode section 3.12).
constexpr char32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr char32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

struct NfcTables {
  std::unordered_map<char32_t, const data::Decomposition*> decomp;
  std::unordered_map<uint64_t, char32_t> compose;  // (a << 32 | b) -> composite
  NfcTables() {
    decomp.reserve(data::kDecompositionCount * 2);
    for (size_t i = 0; i < data::kDecompositionCount; ++i) {
      const auto& d = data::kDecomposition[i];
      decomp[d.cp] = &d;
      if (!d.excluded && d.b != 0) compose[(uint64_t(d.a) << 32) | d.b] = d.cp;
    }
  }
};
const NfcTables& nfc_tables() {
  static const NfcTables t;
  return t;
}

void decompose(char32_t cp, std::u32string& out, const NfcTables& t) {
  if (cp >= SBase && cp < SBase + SCount) {
    char32_t s = cp - SBase;
    out.push_back(LBase + s / NCount);
    out.push_back(VBase + (s % NCount) / TCount);
    if (s % TCount) out.push_back(TBase + s % TCount);
    return;
  }
  auto it = t.decomp.find(cp);
  if (it == t.decomp.end()) {
    out.push_back(cp);
    return;
  }
  decompose(it->second->a, out, t);
  if (it->second->b) decompose(it->second->b, out, t);
}

char32_t compose_pair(char32_t a, char32_t b, const NfcTables& t) {
  if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
    return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
  if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
    return a + (b - TBase);
  auto it = t.compose.find((uint64_t(a) << 32) | b);
  return it == t.compose.end() ? 0 : it->second;
}

}  // namespace

uint32_t category_mask(std::string_view name) {
  static const char* names[kCategoryCount] = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl",
                                              "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc",
                                              "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"};
  uint32_t m = 0;
  for (int i = 0; i < kCategoryCount; ++i) {
    std::string_view n = names[i];
    if (n == name || (name.size() == 1 && n[0] == name[0])) m |= 1u << i;
  }
  SY_CHECK(m != 0, "[tokenizer] unknown Unicode general category '", name, "'");
  return m;
}

Category category(char32_t cp) {
  if (cp <= 0xFFFF) return Category(bmp().cat[cp]);
  const auto* r = find_range(data::kCategory, data::kCategoryCount, cp);
  return r ? Category(r->cat) : Cn;
}

bool is_white_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return find_range(data::kWhiteSpace, data::kWhiteSpaceCount, cp) != nullptr;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* r = find_range(data::kCcc, data::kCccCount, cp);
  return r ? r->ccc : 0;
}

const char* unicode_version() { return data::kUnicodeVersion; }

// Decodes one code point at text[i]; returns its length, or 0 when the bytes there are not valid
// UTF-8. `need` (if not null) is set to the full length a valid lead byte announces.
static size_t decode_one(std::string_view text, size_t i, char32_t* cp, size_t* need = nullptr) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  unsigned char c = s[i];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  char32_t v, lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode table 3-7)
  if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (need) *need = len;
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) return 0;
    unsigned char b = s[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return len;
}

std::u32string decode_utf8(std::string_view text, std::vector<uint32_t>* offsets, std::string_view what) {
  std::u32string out;
  out.reserve(text.size());
  if (offsets) offsets->clear(), offsets->reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    size_t len = decode_one(text, i, &cp);
    SY_CHECK(len != 0, "[tokenizer] ", what, ": invalid UTF-8 at byte ", i);
    if (offsets) offsets->push_back(uint32_t(i));
    out.push_back(cp);
    i += len;
  }
  if (offsets) offsets->push_back(uint32_t(text.size()));
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

size_t utf8_maximal_subpart(std::string_view text, size_t i, bool* truncated_at_end) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  unsigned char c = s[i];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else {
    *truncated_at_end = false;
    return 1;
  }
  size_t k = 1;
  for (; k < len && i + k < text.size(); ++k) {
    unsigned char b = s[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
  }
  *truncated_at_end = (i + k == text.size() && k < len);
  return k;
}

size_t valid_utf8_prefix(std::string_view bytes, bool* incomplete_tail) {
  size_t i = 0;
  *incomplete_tail = false;
  while (i < bytes.size()) {
    char32_t cp;
    size_t len = decode_one(bytes, i, &cp);
    if (len == 0) {
      bool trunc;
      utf8_maximal_subpart(bytes, i, &trunc);
      *incomplete_tail = trunc;
      return i;
    }
    i += len;
  }
  return i;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    char32_t cp;
    size_t len = decode_one(bytes, i, &cp);
    if (len) {
      out.append(bytes.substr(i, len));
      i += len;
    } else {
      bool trunc;
      i += utf8_maximal_subpart(bytes, i, &trunc);
      out += "\xEF\xBF\xBD";
    }
  }
  return out;
}

std::u32string nfc(std::u32string_view cps) {
  const NfcTables& t = nfc_tables();
  std::u32string d;
  d.reserve(cps.size() + 8);
  for (char32_t c : cps) decompose(c, d, t);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition (UAX #15 section 1.3 / the sample code of the UAX).
  if (d.empty()) return d;
  size_t starter = 0, out = 1;
  int last_class = combining_class(d[0]) ? 256 : 0;
  bool have_starter = last_class == 0;
  for (size_t i = 1; i < d.size(); ++i) {
    char32_t ch = d[i];
    int cls = combining_class(ch);
    char32_t comp = have_starter ? compose_pair(d[starter], ch, t) : 0;
    if (comp && (last_class < cls || last_class == 0)) {
      d[starter] = comp;
      continue;
    }
    if (cls == 0) {
      starter = out;
      have_starter = true;
    }
    last_class = cls;
    d[out++] = ch;
  }
  d.resize(out);
  return d;
}

std::string nfc(std::string_view text) {
  // Code points below U+0300 are never changed by NFC and never combine with what follows them
  // unless a later code point is >= U+0300: such text is returned as it is.
  bool trivial = true;
  for (unsigned char c : text)
    if (c >= 0xCC) {  // lead bytes of U+0300 and above
      trivial = false;
      break;
    }
  if (trivial) return std::string(text);
  return encode_utf8(nfc(decode_utf8(text, nullptr, "text to normalize")));
}

}  // namespace sy::uni
