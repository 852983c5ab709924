#include "io/tokenizer_regex.h"

#include <climits>
#include <memory>

#include "core/error.h"
#include "io/tokenizer_unicode.h"

namespace sy {

namespace {
constexpr uint32_t kInf = UINT32_MAX;
constexpr size_t kMaxProgram = 1 << 16;      // instructions; bounds {n,m} expansion
constexpr uint64_t kMaxSteps = 20'000'000;  // backtracking steps per match attempt
}  // namespace

bool SplitRegex::Set::slow_contains(char32_t c) const {
  bool in = false;
  for (const Item& it : items) {
    bool m;
    switch (it.kind) {
      case Item::kRange: m = c >= it.lo && c <= it.hi; break;
      case Item::kCategory: m = (it.cats >> uni::category(c)) & 1; break;
      default: m = uni::is_white_space(c); break;
    }
    if (m != it.negate) {
      in = true;
      break;
    }
  }
  return in != negate;
}

bool SplitRegex::Set::contains(char32_t c) const {
  if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
  return slow_contains(c);
}

// Parses the pattern into a tree, then emits a backtracking program.
class RegexCompiler {
 public:
  RegexCompiler(SplitRegex& re, std::string_view where) : re_(re), where_(where) {
    cps_ = uni::decode_utf8(re.pattern_, nullptr, where);
  }

  void compile() {
    auto root = parse_alt();
    if (pos_ < cps_.size()) error(cps_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    emit(*root);
    re_.prog_.push_back({SplitRegex::Inst::kMatch});
    for (auto& s : re_.sets_)
      for (char32_t c = 0; c < 128; ++c)
        if (s.slow_contains(c)) s.ascii[c >> 6] |= uint64_t(1) << (c & 63);
  }

 private:
  struct Node {
    enum Kind { kEmpty, kSet, kConcat, kAlt, kRepeat, kLook } kind;
    uint32_t set = 0;
    uint32_t min = 1, max = 1;
    bool negate = false;
    std::vector<std::unique_ptr<Node>> kids;
  };
  using P = std::unique_ptr<Node>;

  [[noreturn]] void error(std::string_view why) const {
    fail("[tokenizer] ", where_, ": unsupported regex ", re_.pattern_, ": ", why, " at offset ", pos_,
         " (code points)");
  }
  bool at_end() const { return pos_ >= cps_.size(); }
  char32_t peek() const { return at_end() ? 0 : cps_[pos_]; }
  bool eat(char32_t c) {
    if (!at_end() && cps_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  static P node(Node::Kind k) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    return n;
  }
  P set_node(SplitRegex::Set s) {
    re_.sets_.push_back(std::move(s));
    auto n = node(Node::kSet);
    n->set = uint32_t(re_.sets_.size() - 1);
    return n;
  }

  P parse_alt() {
    auto first = parse_concat();
    if (peek() != '|') return first;
    auto alt = node(Node::kAlt);
    alt->kids.push_back(std::move(first));
    while (eat('|')) alt->kids.push_back(parse_concat());
    return alt;
  }

  P parse_concat() {
    auto cat = node(Node::kConcat);
    while (!at_end() && peek() != '|' && peek() != ')') cat->kids.push_back(parse_repeat());
    if (cat->kids.empty()) return node(Node::kEmpty);
    if (cat->kids.size() == 1) return std::move(cat->kids[0]);
    return cat;
  }

  uint32_t parse_number() {
    uint64_t v = 0;
    size_t start = pos_;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + (cps_[pos_++] - '0');
      if (v > 1000) error("repetition count above 1000");
    }
    if (pos_ == start) error("expected a number in {}");
    return uint32_t(v);
  }

  P parse_repeat() {
    auto atom = parse_atom();
    for (;;) {
      uint32_t mn, mx;
      if (eat('?')) mn = 0, mx = 1;
      else if (eat('*')) mn = 0, mx = kInf;
      else if (eat('+')) mn = 1, mx = kInf;
      else if (eat('{')) {
        mn = parse_number();
        mx = mn;
        if (eat(',')) mx = peek() == '}' ? kInf : parse_number();
        if (!eat('}')) error("expected '}'");
        if (mx < mn) error("{n,m} with m < n");
      } else {
        return atom;
      }
      if (peek() == '?' || peek() == '+') error("lazy and possessive quantifiers are not supported");
      if (atom->kind == Node::kLook || atom->kind == Node::kEmpty) error("quantifier on an empty expression");
      auto r = node(Node::kRepeat);
      r->min = mn;
      r->max = mx;
      r->kids.push_back(std::move(atom));
      atom = std::move(r);
    }
  }

  P parse_atom() {
    char32_t c = cps_[pos_++];
    switch (c) {
      case '(': return parse_group();
      case '[': return set_node(parse_class());
      case '.': {
        SplitRegex::Set s;
        s.negate = true;
        s.items.push_back({SplitRegex::Item::kRange, false, '\n', '\n'});
        return set_node(std::move(s));
      }
      case '\\': {
        SplitRegex::Set s;
        s.items.push_back(parse_escape(false));
        return literal_or_set(std::move(s));
      }
      case '^': case '$': --pos_; error("anchors are not supported");
      case '*': case '+': case '?': case '{': --pos_; error("quantifier without an operand");
      case ')': case '|': --pos_; error("unexpected character");
      default: {
        SplitRegex::Set s;
        s.items.push_back({SplitRegex::Item::kRange, false, c, c});
        return literal_or_set(std::move(s));
      }
    }
  }

  // A single literal under (?i) becomes the set of its case partners.
  P literal_or_set(SplitRegex::Set s) {
    if (icase_ > 0) {
      const auto& it = s.items[0];
      if (it.kind != SplitRegex::Item::kRange || it.lo != it.hi) {
        --pos_;
        error("classes inside (?i:...) are not supported");
      }
      char32_t c = it.lo;
      if (c >= 128) {
        --pos_;
        error("non-ASCII literals inside (?i:...) are not supported");
      }
      char32_t lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;
      if (lower >= 'a' && lower <= 'z') {
        s.items.clear();
        s.items.push_back({SplitRegex::Item::kRange, false, lower, lower});
        s.items.push_back({SplitRegex::Item::kRange, false, lower - 32, lower - 32});
        if (lower == 's') s.items.push_back({SplitRegex::Item::kRange, false, 0x17F, 0x17F});
        if (lower == 'k') s.items.push_back({SplitRegex::Item::kRange, false, 0x212A, 0x212A});
      }
    }
    return set_node(std::move(s));
  }

  P parse_group() {
    if (!eat('?')) {  // capturing group: captures are not used by Split, so it is a plain group
      auto inner = parse_alt();
      if (!eat(')')) error("missing ')'");
      return inner;
    }
    if (eat(':')) {
      auto inner = parse_alt();
      if (!eat(')')) error("missing ')'");
      return inner;
    }
    if (eat('i')) {
      if (!eat(':')) error("only the (?i:...) flag group is supported");
      ++icase_;
      auto inner = parse_alt();
      --icase_;
      if (!eat(')')) error("missing ')'");
      return inner;
    }
    bool neg;
    if (eat('!')) neg = true;
    else if (eat('=')) neg = false;
    else error("unsupported group kind (only (?:, (?i:, (?=, (?! )");
    auto look = node(Node::kLook);
    look->negate = neg;
    look->kids.push_back(parse_alt());
    if (!eat(')')) error("missing ')'");
    return look;
  }

  SplitRegex::Item parse_escape(bool in_class) {
    using I = SplitRegex::Item;
    if (at_end()) error("pattern ends with '\\'");
    char32_t c = cps_[pos_++];
    auto lit = [](char32_t v) { return I{I::kRange, false, v, v}; };
    switch (c) {
      case 'r': return lit('\r');
      case 'n': return lit('\n');
      case 't': return lit('\t');
      case 'f': return lit('\f');
      case 'v': return lit('\v');
      case 's': return I{I::kWhite, false};
      case 'S': return I{I::kWhite, true};
      case 'd': return I{I::kCategory, false, 0, 0, uni::bit(uni::Nd)};
      case 'D': return I{I::kCategory, true, 0, 0, uni::bit(uni::Nd)};
      case 'w': case 'W': {
        uint32_t m = uni::category_mask("L") | uni::category_mask("M") | uni::bit(uni::Nd) | uni::bit(uni::Pc);
        return I{I::kCategory, c == 'W', 0, 0, m};
      }
      case 'p': case 'P': {
        std::string name;
        if (eat('{')) {
          while (!at_end() && peek() != '}') name.push_back(char(cps_[pos_++]));
          if (!eat('}')) error("missing '}' after \\p{");
        } else {
          if (at_end()) error("pattern ends after \\p");
          name.push_back(char(cps_[pos_++]));
        }
        bool neg = c == 'P';
        if (!name.empty() && name[0] == '^') neg = !neg, name.erase(0, 1);
        if (name.size() < 1 || name.size() > 2) error(str("unsupported property \\p{", name, "}"));
        uint32_t m;
        try {
          m = uni::category_mask(name);
        } catch (const Error&) {
          error(str("unknown general category \\p{", name, "}"));
        }
        return I{I::kCategory, neg, 0, 0, m};
      }
      default:
        if (c < 128 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
          --pos_;
          error(in_class ? "unsupported escape in class" : "unsupported escape");
        }
        return lit(c);  // escaped punctuation stands for itself
    }
  }

  SplitRegex::Set parse_class() {
    using I = SplitRegex::Item;
    SplitRegex::Set s;
    s.negate = eat('^');
    if (peek() == ']') error("empty class or leading ']' (ambiguous between engines)");
    for (;;) {
      if (at_end()) error("missing ']'");
      char32_t c = cps_[pos_++];
      if (c == ']') break;
      if (c == '[') {
        --pos_;
        error("nested classes are not supported");
      }
      if (c == '&' && peek() == '&') error("class intersection is not supported");
      I item = c == '\\' ? parse_escape(true) : I{I::kRange, false, c, c};
      if (peek() == '-' && pos_ + 1 < cps_.size() && cps_[pos_ + 1] != ']') {
        ++pos_;
        if (item.kind != I::kRange) error("range from a class escape");
        char32_t hi_c = cps_[pos_++];
        I hi = hi_c == '\\' ? parse_escape(true) : I{I::kRange, false, hi_c, hi_c};
        if (hi.kind != I::kRange || hi.lo < item.lo) error("bad range in class");
        item.hi = hi.lo;
      }
      s.items.push_back(item);
    }
    if (icase_ > 0) error("classes inside (?i:...) are not supported");
    return s;
  }

  static bool nullable(const Node& n) {
    switch (n.kind) {
      case Node::kEmpty: case Node::kLook: return true;
      case Node::kSet: return false;
      case Node::kRepeat: return n.min == 0 || nullable(*n.kids[0]);
      case Node::kConcat:
        for (const auto& k : n.kids)
          if (!nullable(*k)) return false;
        return true;
      case Node::kAlt:
        for (const auto& k : n.kids)
          if (nullable(*k)) return true;
        return false;
    }
    return true;
  }

  uint32_t here() const { return uint32_t(re_.prog_.size()); }
  uint32_t push(SplitRegex::Inst in) {
    if (re_.prog_.size() >= kMaxProgram) fail("[tokenizer] ", where_, ": regex ", re_.pattern_, " is too large");
    re_.prog_.push_back(in);
    return here() - 1;
  }

  void emit(const Node& n) {
    using I = SplitRegex::Inst;
    switch (n.kind) {
      case Node::kEmpty: return;
      case Node::kSet: push({I::kSet, false, n.set, 1, 1}); return;
      case Node::kConcat:
        for (const auto& k : n.kids) emit(*k);
        return;
      case Node::kAlt: {
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          if (i + 1 == n.kids.size()) {
            emit(*n.kids[i]);
            break;
          }
          uint32_t split = push({I::kSplit});
          re_.prog_[split].x = here();
          emit(*n.kids[i]);
          jumps.push_back(push({I::kJmp}));
          re_.prog_[split].y = here();
        }
        for (uint32_t j : jumps) re_.prog_[j].x = here();
        return;
      }
      case Node::kLook: {
        uint32_t look = push({I::kLook, n.negate});
        uint32_t jmp = push({I::kJmp});
        re_.prog_[look].x = here();
        emit(*n.kids[0]);
        push({I::kMatch});
        re_.prog_[jmp].x = here();
        return;
      }
      case Node::kRepeat: {
        const Node& k = *n.kids[0];
        if (k.kind == Node::kSet) {  // one instruction with a backtrackable count
          push({I::kSet, false, k.set, n.min, n.max});
          return;
        }
        if (n.max == kInf && nullable(k)) error("a repeated group that can match the empty string");
        for (uint32_t i = 0; i < n.min; ++i) emit(k);
        if (n.max == kInf) {
          uint32_t split = push({I::kSplit});
          re_.prog_[split].x = here();
          emit(k);
          uint32_t jmp = push({I::kJmp});
          re_.prog_[jmp].x = split;
          re_.prog_[split].y = here();
          return;
        }
        std::vector<uint32_t> splits;
        for (uint32_t i = n.min; i < n.max; ++i) {
          uint32_t split = push({I::kSplit});
          re_.prog_[split].x = here();
          splits.push_back(split);
          emit(k);
        }
        for (uint32_t s : splits) re_.prog_[s].y = here();
        return;
      }
    }
  }

  SplitRegex& re_;
  std::string where_;
  std::u32string cps_;
  size_t pos_ = 0;
  int icase_ = 0;
};

SplitRegex::SplitRegex(std::string_view pattern, std::string_view where) : pattern_(pattern) {
  RegexCompiler(*this, where).compile();
}

int64_t SplitRegex::run(std::u32string_view s, size_t pos, uint32_t pc, uint64_t& steps) const {
  struct Frame {
    uint32_t pc;
    size_t lo, hi;  // positions still to try, from hi down to lo
  };
  std::vector<Frame> stack;
  const size_t n = s.size();
  for (;;) {
    if (++steps > kMaxSteps) fail("[tokenizer] regex ", pattern_, ": backtracking limit exceeded");
    const Inst& in = prog_[pc];
    bool ok = true;
    switch (in.op) {
      case Inst::kSet: {
        const Set& set = sets_[in.set];
        size_t k = 0;
        while (k < in.max && pos + k < n && set.contains(s[pos + k])) ++k;
        if (k < in.min) {
          ok = false;
          break;
        }
        if (k > in.min) stack.push_back({pc + 1, pos + in.min, pos + k - 1});
        pos += k;
        ++pc;
        break;
      }
      case Inst::kSplit:
        stack.push_back({in.y, pos, pos});
        pc = in.x;
        break;
      case Inst::kJmp: pc = in.x; break;
      case Inst::kLook: {
        bool matched = run(s, pos, in.x, steps) >= 0;
        if (matched == in.negate) ok = false;
        else ++pc;
        break;
      }
      case Inst::kMatch: return int64_t(pos);
    }
    if (ok) continue;
    if (stack.empty()) return -1;
    Frame& f = stack.back();
    pc = f.pc;
    pos = f.hi;
    if (f.hi > f.lo) --f.hi;
    else stack.pop_back();
  }
}

int64_t SplitRegex::match_at(std::u32string_view s, size_t pos) const {
  uint64_t steps = 0;
  return run(s, pos, 0, steps);
}

std::vector<std::pair<size_t, size_t>> SplitRegex::find_all(std::u32string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    int64_t end = match_at(s, pos);
    if (end > int64_t(pos)) {
      out.emplace_back(pos, size_t(end));
      pos = size_t(end);
    } else {
      ++pos;
    }
  }
  return out;
}

}  // namespace sy
