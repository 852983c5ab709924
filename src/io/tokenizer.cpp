#include "io/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include "core/error.h"
#include "io/tokenizer_impl.h"
#include "io/tokenizer_unicode.h"

namespace sy {

ByteLevelTable::ByteLevelTable() {
  cp_to_byte.fill(-1);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
    byte_to_cp[b] = cp;
    cp_to_byte[cp] = int16_t(b);
  }
}

const ByteLevelTable& ByteLevelTable::get() {
  static const ByteLevelTable t;
  return t;
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SY_CHECK(f, "[tokenizer] ", path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  SY_CHECK(!f.bad(), "[tokenizer] ", path, ": read error");
  return ss.str();
}

// One piece of text on its way through encode: plain text, or an added token already matched.
struct Section {
  std::string text;
  int32_t added = -1;
};

// Cuts the added tokens with the given `normalized` flag out of the plain sections (leftmost-longest).
void split_added(const Tokenizer::Impl& t, std::vector<Section>& sections, bool normalized) {
  bool any = false;
  for (const auto& a : t.added) any |= a.normalized == normalized;
  if (!any) return;
  std::vector<Section> out;
  for (auto& sec : sections) {
    if (sec.added >= 0) {
      out.push_back(std::move(sec));
      continue;
    }
    const std::string& s = sec.text;
    size_t start = 0;  // start of the pending plain text
    size_t i = 0;
    while (i < s.size()) {
      const Tokenizer::Impl::Added* hit = nullptr;
      for (uint32_t k : t.added_by_byte[uint8_t(s[i])]) {
        const auto& a = t.added[k];
        if (a.normalized == normalized && s.compare(i, a.content.size(), a.content) == 0) {
          hit = &a;
          break;
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip) {  // swallow whitespace before the token (back to the pending text's start)
        while (b > start) {
          size_t p = b - 1;
          while (p > start && (uint8_t(s[p]) & 0xC0) == 0x80) --p;
          char32_t cp = uni::decode_utf8(std::string_view(s).substr(p, b - p))[0];
          if (!uni::is_white_space(cp)) break;
          b = p;
        }
      }
      if (hit->rstrip) {
        while (e < s.size()) {
          size_t q = e + 1;
          while (q < s.size() && (uint8_t(s[q]) & 0xC0) == 0x80) ++q;
          char32_t cp = uni::decode_utf8(std::string_view(s).substr(e, q - e))[0];
          if (!uni::is_white_space(cp)) break;
          e = q;
        }
      }
      if (b > start) out.push_back({s.substr(start, b - start), -1});
      out.push_back({"", hit->id});
      start = i = e;
    }
    if (start < s.size()) out.push_back({s.substr(start), -1});
  }
  sections = std::move(out);
}

}  // namespace

// BPE of one pre-tokenized piece (raw bytes): merges lowest rank first, leftmost first on ties
// (the order of the Rust implementation's priority queue).
void Tokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (piece.size() < 256) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(std::string(piece));
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  auto whole = ignore_merges ? bytes_to_id.find(std::string(piece)) : bytes_to_id.end();
  if (whole != bytes_to_id.end()) {
    ids.push_back(whole->second);
  } else {
    size_t n = piece.size();
    std::vector<int32_t> sym(n);
    std::vector<int32_t> next(n), prev(n);
    for (size_t i = 0; i < n; ++i) {
      sym[i] = byte_id[uint8_t(piece[i])];
      next[i] = i + 1 < n ? int32_t(i + 1) : -1;
      prev[i] = int32_t(i) - 1;
    }
    struct Cand {
      int32_t rank, pos, left, right;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto consider = [&](int32_t pos) {
      if (pos < 0 || next[pos] < 0) return;
      auto it = merges.find((uint64_t(uint32_t(sym[pos])) << 32) | uint32_t(sym[next[pos]]));
      if (it != merges.end()) heap.push({it->second.first, pos, sym[pos], sym[next[pos]]});
    };
    for (size_t i = 0; i + 1 < n; ++i) consider(int32_t(i));
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      int32_t r = next[c.pos];
      if (sym[c.pos] != c.left || r < 0 || sym[r] != c.right) continue;  // stale
      sym[c.pos] = merges.at((uint64_t(uint32_t(c.left)) << 32) | uint32_t(c.right)).second;
      sym[r] = -1;
      next[c.pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = c.pos;
      consider(prev[c.pos]);
      consider(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = next[i]) ids.push_back(sym[i]);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (piece.size() < 256) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() > 500000) cache.clear();
    cache.emplace(std::string(piece), std::move(ids));
  }
}

// Normalized text without added tokens: pre-tokenize, then BPE each piece.
void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::string> pieces{std::string(text)};
  for (const PreStep& step : pre) {
    std::vector<std::string> next;
    for (std::string& p : pieces) {
      if (!step.split) {
        if (step.add_prefix_space && (p.empty() || p[0] != ' ')) p.insert(p.begin(), ' ');
        next.push_back(std::move(p));
        continue;
      }
      std::vector<uint32_t> off;
      std::u32string cps = uni::decode_utf8(p, &off);
      size_t last = 0;
      for (auto [b, e] : step.split->find_all(cps)) {
        if (b > last) next.push_back(p.substr(off[last], off[b] - off[last]));
        next.push_back(p.substr(off[b], off[e] - off[b]));
        last = e;
      }
      if (last < cps.size()) next.push_back(p.substr(off[last]));
    }
    pieces = std::move(next);
  }
  for (const std::string& p : pieces) bpe(p, out);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "tokenizer.json").string();
  SY_CHECK(fs::exists(file, ec), "[tokenizer] ", file, ": no such file");
  std::string json = read_file(file);
  std::string config_path = (fs::path(file).parent_path() / "tokenizer_config.json").string();
  std::string config = fs::exists(config_path, ec) ? read_file(config_path) : std::string();
  auto impl = std::make_unique<Impl>();
  impl->source = file;
  load_tokenizer_json(*impl, json, config);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& name, std::string_view config_json) {
  auto impl = std::make_unique<Impl>();
  impl->source = name;
  load_tokenizer_json(*impl, json, config_json);
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& t = *impl_;
  uni::decode_utf8(text, nullptr, "text to encode");  // validates: throws naming the byte offset
  std::vector<Section> sections{{std::string(text), -1}};
  split_added(t, sections, false);
  if (t.nfc)
    for (auto& s : sections)
      if (s.added < 0) s.text = uni::nfc(s.text);
  split_added(t, sections, true);
  std::vector<int32_t> ids;
  for (const auto& s : sections) {
    if (s.added >= 0) ids.push_back(s.added);
    else if (!s.text.empty()) t.encode_plain(s.text, ids);
  }
  if (!add_special || !t.has_template) return ids;
  std::vector<int32_t> out;
  for (int32_t x : t.template_single) {
    if (x < 0) out.insert(out.end(), ids.begin(), ids.end());
    else out.push_back(x);
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  SY_CHECK(id >= 0 && id < vocab_size(), "[tokenizer] ", impl_->source, ": token id ", id,
           " out of range [0, ", vocab_size(), ")");
  return impl_->id_to_bytes[size_t(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    SY_CHECK(id >= 0 && id < vocab_size(), "[tokenizer] ", impl_->source, ": token id ", id,
             " out of range [0, ", vocab_size(), ")");
    if (skip_special && impl_->id_special[size_t(id)]) continue;
    bytes += impl_->id_to_bytes[size_t(id)];
  }
  return uni::utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::find(std::string_view token) const {
  auto it = impl_->token_to_id.find(std::string(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

int32_t Tokenizer::token_id(std::string_view token) const {
  auto id = find(token);
  SY_CHECK(id.has_value(), "[tokenizer] ", impl_->source, ": no token '", token, "'");
  return *id;
}

const std::string& Tokenizer::token_string(int32_t id) const {
  SY_CHECK(id >= 0 && id < vocab_size(), "[tokenizer] ", impl_->source, ": token id ", id,
           " out of range [0, ", vocab_size(), ")");
  return impl_->id_to_token[size_t(id)];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->id_special[size_t(id)];
}
int32_t Tokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
const std::string& Tokenizer::source() const { return impl_->source; }

std::string StreamDecoder::put(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) return {};
  pending_ += tok_->token_bytes(id);
  std::string out;
  for (;;) {
    bool incomplete = false;
    size_t ok = uni::valid_utf8_prefix(pending_, &incomplete);
    out.append(pending_, 0, ok);
    pending_.erase(0, ok);
    if (pending_.empty() || incomplete) return out;  // a truncated sequence waits for more bytes
    // An invalid subpart that no later byte can repair: one U+FFFD now, as decode() would.
    bool truncated = false;
    pending_.erase(0, uni::utf8_maximal_subpart(pending_, 0, &truncated));
    out += "\xEF\xBF\xBD";
  }
}

std::string StreamDecoder::finish() {
  std::string out = uni::utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace sy
