#include "train/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/threadpool.h"
#include "io/tokenizer_impl.h"  // ByteLevelTable: the one bytes_to_unicode table
#include "io/tokenizer_regex.h"
#include "io/tokenizer_unicode.h"

namespace sy::train {
namespace {

using WordCounts = std::unordered_map<std::string, int64_t>;

inline uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
inline int32_t left_of(uint64_t k) { return int32_t(k >> 32); }
inline int32_t right_of(uint64_t k) { return int32_t(k & 0xffffffffu); }

// Pieces of one text (no special tokens inside) by the Split regex, as Tokenizer::encode cuts
// them: matches and the gaps between them.
void count_pieces(std::string_view text, const SplitRegex& re, WordCounts& out, const std::string& what) {
  std::vector<uint32_t> off;
  std::u32string cps = uni::decode_utf8(text, &off, what);
  size_t last = 0;
  auto add = [&](size_t b, size_t e) { ++out[std::string(text.substr(off[b], off[e] - off[b]))]; };
  for (auto [b, e] : re.find_all(cps)) {
    if (b > last) add(last, b);
    add(b, e);
    last = e;
  }
  if (last < cps.size()) add(last, cps.size());
}

// Cuts `text` at the special tokens (leftmost, longest first) and counts the pieces in between.
void count_text(std::string_view text, const std::vector<std::string>& specials, const SplitRegex& re,
                WordCounts& out, const std::string& what) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos, len = 0;
    for (const auto& s : specials) {
      size_t f = text.find(s, pos);
      if (f < best || (f == best && f != std::string_view::npos && s.size() > len)) {
        best = f;
        len = s.size();
      }
    }
    const size_t end = best == std::string_view::npos ? text.size() : best;
    if (end > pos) count_pieces(text.substr(pos, end - pos), re, out, what);
    if (best == std::string_view::npos) break;
    pos = best + len;
  }
}

struct HeapEntry {
  int64_t count;
  uint64_t pair;
};
// std::priority_queue's top is the greatest: highest count, then the smallest (left, right).
struct HeapLess {
  bool operator()(const HeapEntry& a, const HeapEntry& b) const {
    return a.count != b.count ? a.count < b.count : a.pair > b.pair;
  }
};

// Replaces every (a, b) in w by c, left to right without overlap.
void merge_word(const std::vector<int32_t>& w, int32_t a, int32_t b, int32_t c, std::vector<int32_t>& out) {
  out.clear();
  for (size_t i = 0; i < w.size(); ++i) {
    if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
      out.push_back(c);
      ++i;
    } else {
      out.push_back(w[i]);
    }
  }
}

}  // namespace

std::string byte_level_string(std::string_view bytes) {
  const ByteLevelTable& t = ByteLevelTable::get();
  std::string s;
  for (unsigned char b : bytes) uni::append_utf8(s, t.byte_to_cp[b]);
  return s;
}

BpeModel train_bpe(const std::vector<std::string_view>& texts, const BpeOptions& opt) {
  const int64_t n_special = int64_t(opt.special_tokens.size());
  SY_CHECK(opt.vocab_size >= 256 + n_special, "[bpe] vocab size ", opt.vocab_size, " is too small: it needs at least 256 (bytes) + ",
           n_special, " (special tokens) = ", 256 + n_special);
  SY_CHECK(opt.vocab_size <= (int64_t(1) << 30), "[bpe] vocab size ", opt.vocab_size, " is too large");
  SY_CHECK(opt.min_frequency >= 1, "[bpe] min frequency ", opt.min_frequency, " must be >= 1");
  std::set<std::string> seen;
  for (const auto& s : opt.special_tokens) {
    SY_CHECK(!s.empty(), "[bpe] empty special token");
    SY_CHECK(seen.insert(s).second, "[bpe] special token ", s, " given twice");
  }

  // 1. Word counts, one map per task (texts are split into chunks), merged in chunk order.
  SplitRegex re(kQwenSplitPattern, "bpe pre-tokenizer");
  ThreadPool& pool = default_pool();
  const int64_t n_tasks = std::min<int64_t>(int64_t(texts.size()), 4 * int64_t(pool.size()));
  std::vector<WordCounts> partial(size_t(std::max<int64_t>(n_tasks, 1)));
  pool.parallel_for(n_tasks, [&](int64_t task, int) {
    for (size_t i = size_t(task); i < texts.size(); i += size_t(n_tasks))
      count_text(texts[i], opt.special_tokens, re, partial[size_t(task)], str("training text ", i));
  });
  WordCounts counts = std::move(partial[0]);
  for (size_t t = 1; t < partial.size(); ++t)
    for (auto& [w, c] : partial[t]) counts[w] += c;
  partial.clear();

  BpeModel m;
  m.special_tokens = opt.special_tokens;
  std::vector<std::string> words_sorted;
  words_sorted.reserve(counts.size());
  for (const auto& [w, c] : counts) {
    words_sorted.push_back(w);
    m.words += c;
  }
  std::sort(words_sorted.begin(), words_sorted.end());
  m.unique_words = int64_t(words_sorted.size());
  SY_CHECK(m.words > 0, "[bpe] no training text (", texts.size(), " texts, all empty or special tokens only)");

  // 2. Byte vocabulary in GPT-2 order: sorting the bytes by their bytes_to_unicode code point gives it.
  const ByteLevelTable& table = ByteLevelTable::get();
  std::vector<int> order(256);
  for (int b = 0; b < 256; ++b) order[size_t(b)] = b;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return table.byte_to_cp[size_t(x)] < table.byte_to_cp[size_t(y)]; });
  std::array<int32_t, 256> byte_id{};
  std::unordered_map<std::string, int32_t> id_of;
  for (int i = 0; i < 256; ++i) {
    byte_id[size_t(order[size_t(i)])] = i;
    m.token_bytes.push_back(std::string(1, char(order[size_t(i)])));
    id_of[m.token_bytes.back()] = i;
  }

  std::vector<std::vector<int32_t>> words(words_sorted.size());
  std::vector<int64_t> wcount(words_sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that (may) hold it
  for (size_t w = 0; w < words_sorted.size(); ++w) {
    wcount[w] = counts[words_sorted[w]];
    for (unsigned char ch : words_sorted[w]) words[w].push_back(byte_id[ch]);
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = key(words[w][i], words[w][i + 1]);
      pair_count[k] += wcount[w];
      where[k].push_back(int32_t(w));
    }
  }
  counts.clear();
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapLess> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  // 3. Merges.
  const int64_t target = opt.vocab_size - n_special;
  const int64_t max_merges = target - 256;
  std::unordered_map<uint64_t, int64_t> delta;
  std::vector<int32_t> merged;
  m.stopped = "vocab_size";
  while (int64_t(m.token_bytes.size()) < target) {
    HeapEntry top{0, 0};
    bool found = false;
    while (!heap.empty()) {
      top = heap.top();
      heap.pop();
      auto it = pair_count.find(top.pair);
      if (it != pair_count.end() && it->second == top.count) {
        found = true;
        break;
      }
    }
    if (!found) {
      m.stopped = "no pairs";
      break;
    }
    if (top.count < opt.min_frequency) {
      m.stopped = "min_frequency";
      break;
    }
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    std::string bytes = m.token_bytes[size_t(a)] + m.token_bytes[size_t(b)];
    auto [it, is_new] = id_of.emplace(bytes, int32_t(m.token_bytes.size()));
    const int32_t c = it->second;
    if (is_new) m.token_bytes.push_back(std::move(bytes));
    m.merges.push_back({a, b});
    m.merge_result.push_back(c);
    m.merge_count.push_back(top.count);

    std::vector<int32_t> ws = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    delta.clear();
    for (int32_t w : ws) {
      std::vector<int32_t>& sym = words[size_t(w)];
      merge_word(sym, a, b, c, merged);
      if (merged.size() == sym.size()) continue;  // stale entry: the pair left this word earlier
      const int64_t n = wcount[size_t(w)];
      for (size_t i = 0; i + 1 < sym.size(); ++i) delta[key(sym[i], sym[i + 1])] -= n;
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const uint64_t k = key(merged[i], merged[i + 1]);
        delta[k] += n;
        if (merged[i] == c || merged[i + 1] == c) where[k].push_back(w);
      }
      sym.swap(merged);
    }
    // Apply in key order so that the heap (and so nothing else) sees a hash-order-free sequence.
    std::vector<std::pair<uint64_t, int64_t>> changes;
    for (const auto& [k, d] : delta)
      if (d != 0) changes.push_back({k, d});
    std::sort(changes.begin(), changes.end());
    for (const auto& [k, d] : changes) {
      int64_t& pc = pair_count[k];
      pc += d;
      if (pc > 0) {
        heap.push({pc, k});
      } else {
        pair_count.erase(k);
        where.erase(k);
      }
    }
    if (opt.progress && (m.merges.size() % 256 == 0)) opt.progress(int64_t(m.merges.size()), max_merges);
  }
  if (opt.progress) opt.progress(int64_t(m.merges.size()), max_merges);
  return m;
}

BpeModel train_bpe(const std::vector<Document>& docs, const BpeOptions& opt) {
  std::vector<std::string_view> texts;
  texts.reserve(docs.size());
  for (const auto& d : docs) texts.push_back(d.text);
  return train_bpe(texts, opt);
}

std::string tokenizer_json(const BpeModel& m) {
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  std::vector<std::string> names;
  names.reserve(m.token_bytes.size());
  for (size_t i = 0; i < m.token_bytes.size(); ++i) {
    names.push_back(byte_level_string(m.token_bytes[i]));
    vocab[names.back()] = int64_t(i);
  }
  ojson merges = ojson::array();
  for (const auto& [a, b] : m.merges) merges.push_back(ojson::array({names[size_t(a)], names[size_t(b)]}));
  ojson added = ojson::array();
  for (size_t i = 0; i < m.special_tokens.size(); ++i)
    added.push_back({{"id", int64_t(m.token_bytes.size() + i)},
                     {"content", m.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  auto byte_level = [] {
    return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  };
  ojson j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", ojson::array({ojson{{"type", "Split"},
                                              {"pattern", {{"Regex", std::string(kQwenSplitPattern)}}},
                                              {"behavior", "Isolated"},
                                              {"invert", false}},
                                        byte_level()})}}},
      {"post_processor", byte_level()},
      {"decoder", byte_level()},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return j.dump(1) + "\n";
}

std::string tokenizer_config_json(const BpeModel& m) {
  using ojson = nlohmann::ordered_json;
  ojson decoder = ojson::object();
  for (size_t i = 0; i < m.special_tokens.size(); ++i)
    decoder[std::to_string(m.token_bytes.size() + i)] = {{"content", m.special_tokens[i]}, {"lstrip", false},
                                                         {"normalized", false},           {"rstrip", false},
                                                         {"single_word", false},          {"special", true}};
  const ojson eos = m.special_tokens.empty() ? ojson(nullptr) : ojson(m.special_tokens[0]);
  ojson j = {{"tokenizer_class", "Qwen2Tokenizer"},
             {"add_bos_token", false},
             {"add_prefix_space", false},
             {"bos_token", nullptr},
             {"eos_token", eos},
             {"pad_token", eos},
             {"unk_token", nullptr},
             {"errors", "replace"},
             {"clean_up_tokenization_spaces", false},
             {"model_max_length", 131072},
             {"added_tokens_decoder", decoder}};
  return j.dump(2) + "\n";
}

}  // namespace sy::train
