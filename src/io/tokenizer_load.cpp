// tokenizer.json / tokenizer_config.json parsing with errors that name the file and the field.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/tokenizer_impl.h"
#include "io/tokenizer_unicode.h"

namespace sy {

namespace {

using json = nlohmann::json;

constexpr int64_t kMaxId = 1 << 24;  // refuse absurd ids instead of allocating for them

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer: case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "a value of another kind";
  }
}

// Field access that names the file and the dotted path of the field in its errors.
struct Doc {
  std::string file;

  [[noreturn]] void bad(const std::string& path, const std::string& why) const {
    fail("[tokenizer] ", file, ": field '", path, "' ", why);
  }
  const json& field(const json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) bad(path, str("is ", type_name(obj), ", expected an object"));
    auto it = obj.find(key);
    if (it == obj.end()) fail("[tokenizer] ", file, ": missing field '", join(path, key), "'");
    return *it;
  }
  const json* opt(const json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) bad(path, str("is ", type_name(obj), ", expected an object"));
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  static std::string join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }
  std::string string(const json& v, const std::string& path) const {
    if (!v.is_string()) bad(path, str("is ", type_name(v), ", expected a string"));
    return v.get<std::string>();
  }
  bool boolean(const json& v, const std::string& path) const {
    if (!v.is_boolean()) bad(path, str("is ", type_name(v), ", expected a boolean"));
    return v.get<bool>();
  }
  bool bool_or(const json& obj, const std::string& path, const char* key, bool def) const {
    const json* v = opt(obj, path, key);
    return v ? boolean(*v, join(path, key)) : def;
  }
  int32_t id(const json& v, const std::string& path) const {
    if (!v.is_number_integer()) bad(path, str("is ", type_name(v), ", expected an integer token id"));
    int64_t x = v.is_number_unsigned() ? int64_t(std::min<uint64_t>(v.get<uint64_t>(), uint64_t(kMaxId)))
                                       : v.get<int64_t>();
    if (x < 0 || x >= kMaxId) bad(path, str("= ", x, " is out of range [0, ", kMaxId, ")"));
    return int32_t(x);
  }
  const json& array(const json& v, const std::string& path) const {
    if (!v.is_array()) bad(path, str("is ", type_name(v), ", expected an array"));
    return v;
  }
  std::string type(const json& obj, const std::string& path) const {
    return string(field(obj, path, "type"), join(path, "type"));
  }
  [[noreturn]] void unsupported(const std::string& path, const std::string& value, const char* expected) const {
    bad(path, str("= \"", value, "\" is not supported (expected ", expected, ")"));
  }
};

json parse_json(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("[tokenizer] ", file, ": not valid JSON: ", e.what());
  }
}

// Bytes that a token string stands for under the ByteLevel decoder: the byte of each char when all
// chars are byte chars, else the string's own UTF-8 (the rule of the Rust ByteLevel decoder).
bool byte_level_bytes(const std::string& token, std::string& out) {
  const auto& bl = ByteLevelTable::get();
  out.clear();
  std::u32string cps = uni::decode_utf8(token, nullptr, "token");
  for (char32_t c : cps) {
    if (c >= 512 || bl.cp_to_byte[c] < 0) {
      out = token;
      return false;
    }
    out.push_back(char(bl.cp_to_byte[c]));
  }
  return true;
}

void set_token(Tokenizer::Impl& t, int32_t id, const std::string& token) {
  if (size_t(id) >= t.id_to_token.size()) {
    t.id_to_token.resize(size_t(id) + 1);
    t.id_to_bytes.resize(size_t(id) + 1);
    t.id_special.resize(size_t(id) + 1);
  }
  t.id_to_token[size_t(id)] = token;
  t.token_to_id[token] = id;
}

void load_model(Tokenizer::Impl& t, const Doc& d, const json& root) {
  const json& m = d.field(root, "", "model");
  std::string type = d.type(m, "model");
  if (type != "BPE") d.unsupported("model.type", type, "\"BPE\"");
  if (d.bool_or(m, "model", "byte_fallback", false)) d.bad("model.byte_fallback", "= true is not supported");
  if (const json* v = d.opt(m, "model", "dropout")) d.bad("model.dropout", str("= ", v->dump(), " is not supported (expected null)"));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = d.opt(m, "model", key);
    if (v && d.string(*v, Doc::join("model", key)) != "")
      d.bad(Doc::join("model", key), str("= ", v->dump(), " is not supported (expected \"\" or null)"));
  }
  t.ignore_merges = d.bool_or(m, "model", "ignore_merges", false);

  const json& vocab = d.field(m, "model", "vocab");
  if (!vocab.is_object()) d.bad("model.vocab", str("is ", type_name(vocab), ", expected an object"));
  std::string bytes;
  std::vector<uint8_t> seen;
  t.token_to_id.reserve(vocab.size() + 1024);
  t.bytes_to_id.reserve(vocab.size());
  t.id_to_token.reserve(vocab.size() + 1024);
  t.id_to_bytes.reserve(vocab.size() + 1024);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    auto path = [&] { return "model.vocab[\"" + it.key() + "\"]"; };  // built only for errors
    const json& v = it.value();
    int32_t id = v.is_number_integer() && v.is_number_unsigned() && v.get<uint64_t>() < uint64_t(kMaxId)
                     ? int32_t(v.get<uint64_t>())
                     : d.id(v, path());
    if (size_t(id) >= seen.size()) seen.resize(size_t(id) + 1);
    if (seen[size_t(id)]) d.bad(path(), str("= ", id, " is also the id of \"", t.id_to_token[size_t(id)], "\""));
    seen[size_t(id)] = 1;
    bool byte_level;
    try {
      byte_level = byte_level_bytes(it.key(), bytes);
    } catch (const Error&) {
      d.bad(path(), "is not valid UTF-8");
    }
    set_token(t, id, it.key());
    if (byte_level) t.bytes_to_id[bytes] = id;
    t.id_to_bytes[size_t(id)] = bytes;
  }
  const auto& bl = ByteLevelTable::get();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    uni::append_utf8(ch, bl.byte_to_cp[b]);
    auto it = t.token_to_id.find(ch);
    if (it == t.token_to_id.end())
      d.bad("model.vocab", str("has no token for byte 0x", "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15],
                               " (\"", ch, "\"): not a byte-level BPE vocabulary"));
    t.byte_id[b] = it->second;
  }

  const json& merges = d.array(d.field(m, "model", "merges"), "model.merges");
  t.merges.reserve(merges.size() * 2);
  std::string a, b;
  for (size_t i = 0; i < merges.size(); ++i) {
    auto path = [&] { return str("model.merges[", i, "]"); };  // built only for errors
    const json& e = merges[i];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        d.bad(path(), str("= \"", s, "\" is not two tokens separated by one space"));
      a.assign(s, 0, sp);
      b.assign(s, sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get_ref<const std::string&>();
      b = e[1].get_ref<const std::string&>();
    } else {
      d.bad(path(), str("is ", type_name(e), (e.is_array() ? " (not two strings)" : ""), ", expected \"A B\" or [\"A\", \"B\"]"));
    }
    auto ia = t.token_to_id.find(a), ib = t.token_to_id.find(b), iab = t.token_to_id.find(a + b);
    if (ia == t.token_to_id.end()) d.bad(path(), str("names \"", a, "\", which is not in model.vocab"));
    if (ib == t.token_to_id.end()) d.bad(path(), str("names \"", b, "\", which is not in model.vocab"));
    if (iab == t.token_to_id.end()) d.bad(path(), str("merges into \"", a + b, "\", which is not in model.vocab"));
    t.merges[(uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second)] = {int32_t(i), iab->second};
  }
}

void load_normalizer(Tokenizer::Impl& t, const Doc& d, const json& n, const std::string& path) {
  if (n.is_null()) return;
  std::string type = d.type(n, path);
  if (type == "NFC") {
    t.nfc = true;
  } else if (type == "Sequence") {
    const json& list = d.array(d.field(n, path, "normalizers"), path + ".normalizers");
    for (size_t i = 0; i < list.size(); ++i) load_normalizer(t, d, list[i], str(path, ".normalizers[", i, "]"));
  } else {
    d.unsupported(path + ".type", type, "null, \"NFC\" or a \"Sequence\" of those");
  }
}

const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void load_pre_tokenizer(Tokenizer::Impl& t, const Doc& d, const json& p, const std::string& path) {
  std::string type = d.type(p, path);
  if (type == "Sequence") {
    const json& list = d.array(d.field(p, path, "pretokenizers"), path + ".pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) load_pre_tokenizer(t, d, list[i], str(path, ".pretokenizers[", i, "]"));
    return;
  }
  bool after_byte_level = !t.pre.empty() && !t.pre.back().split;
  if (after_byte_level) d.bad(path, "follows the ByteLevel pre-tokenizer (ByteLevel must come last)");
  if (type == "Split") {
    const json& pat = d.field(p, path, "pattern");
    const json* re = d.opt(pat, path + ".pattern", "Regex");
    if (!re) d.bad(path + ".pattern", "has no \"Regex\" (only Regex patterns are supported)");
    std::string behavior = d.string(d.field(p, path, "behavior"), path + ".behavior");
    if (behavior != "Isolated") d.unsupported(path + ".behavior", behavior, "\"Isolated\"");
    if (d.bool_or(p, path, "invert", false)) d.bad(path + ".invert", "= true is not supported");
    Tokenizer::Impl::PreStep step;
    step.split = std::make_unique<SplitRegex>(d.string(*re, path + ".pattern.Regex"),
                                              str(d.file, ": field '", path, ".pattern.Regex'"));
    t.pre.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    Tokenizer::Impl::PreStep step;
    step.add_prefix_space = d.bool_or(p, path, "add_prefix_space", true);
    bool use_regex = d.bool_or(p, path, "use_regex", true);
    t.pre.push_back(std::move(step));
    if (use_regex) {  // ByteLevel's own GPT-2 split runs after the prefix space is added
      Tokenizer::Impl::PreStep split;
      split.split = std::make_unique<SplitRegex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
      t.pre.push_back(std::move(split));
      Tokenizer::Impl::PreStep end;  // marks ByteLevel as last
      t.pre.push_back(std::move(end));
    }
  } else {
    d.unsupported(path + ".type", type, "\"Split\", \"ByteLevel\" or a \"Sequence\" of those");
  }
}

void load_post_processor(Tokenizer::Impl& t, const Doc& d, const json& p, const std::string& path) {
  if (p.is_null()) return;
  std::string type = d.type(p, path);
  if (type == "ByteLevel") return;  // changes offsets only, never ids
  if (type == "Sequence") {
    const json& list = d.array(d.field(p, path, "processors"), path + ".processors");
    for (size_t i = 0; i < list.size(); ++i) load_post_processor(t, d, list[i], str(path, ".processors[", i, "]"));
    return;
  }
  if (type != "TemplateProcessing")
    d.unsupported(path + ".type", type, "null, \"ByteLevel\", \"TemplateProcessing\" or a \"Sequence\" of those");
  if (t.has_template) d.bad(path, "is a second TemplateProcessing");
  t.has_template = true;
  const json& single = d.array(d.field(p, path, "single"), path + ".single");
  const json& specials = d.field(p, path, "special_tokens");
  for (size_t i = 0; i < single.size(); ++i) {
    std::string ip = str(path, ".single[", i, "]");
    if (const json* seq = d.opt(single[i], ip, "Sequence")) {
      std::string which = d.string(d.field(*seq, ip + ".Sequence", "id"), ip + ".Sequence.id");
      if (which != "A") d.unsupported(ip + ".Sequence.id", which, "\"A\"");
      t.template_single.push_back(-1);
    } else if (const json* sp = d.opt(single[i], ip, "SpecialToken")) {
      std::string name = d.string(d.field(*sp, ip + ".SpecialToken", "id"), ip + ".SpecialToken.id");
      std::string sp_path = path + ".special_tokens[\"" + name + "\"]";
      if (!specials.is_object() || !specials.contains(name)) d.bad(sp_path, "is missing");
      const json& ids = d.array(d.field(specials[name], sp_path, "ids"), sp_path + ".ids");
      for (size_t k = 0; k < ids.size(); ++k) {
        int32_t id = d.id(ids[k], str(sp_path, ".ids[", k, "]"));
        if (size_t(id) >= t.id_to_token.size()) d.bad(str(sp_path, ".ids[", k, "]"), str("= ", id, " is not a token id"));
        t.template_single.push_back(id);
      }
    } else {
      d.bad(ip, "is neither a Sequence nor a SpecialToken");
    }
  }
}

void load_added_tokens(Tokenizer::Impl& t, const Doc& d, const json& root) {
  const json* list = d.opt(root, "", "added_tokens");
  if (!list) return;
  d.array(*list, "added_tokens");
  for (size_t i = 0; i < list->size(); ++i) {
    std::string path = str("added_tokens[", i, "]");
    const json& a = (*list)[i];
    Tokenizer::Impl::Added add;
    add.id = d.id(d.field(a, path, "id"), path + ".id");
    add.content = d.string(d.field(a, path, "content"), path + ".content");
    if (add.content.empty()) d.bad(path + ".content", "is empty");
    try {
      uni::decode_utf8(add.content, nullptr, "token");
    } catch (const Error&) {
      d.bad(path + ".content", "is not valid UTF-8");
    }
    if (d.bool_or(a, path, "single_word", false)) d.bad(path + ".single_word", "= true is not supported");
    add.lstrip = d.bool_or(a, path, "lstrip", false);
    add.rstrip = d.bool_or(a, path, "rstrip", false);
    add.special = d.bool_or(a, path, "special", false);
    add.normalized = d.bool_or(a, path, "normalized", !add.special);
    set_token(t, add.id, add.content);
    std::string bytes;
    byte_level_bytes(add.content, bytes);
    t.id_to_bytes[size_t(add.id)] = bytes;
    t.id_special[size_t(add.id)] = add.special;
    t.added.push_back(std::move(add));
  }
  for (uint32_t k = 0; k < t.added.size(); ++k) t.added_by_byte[uint8_t(t.added[k].content[0])].push_back(k);
  for (auto& v : t.added_by_byte)
    std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
      return t.added[a].content.size() > t.added[b].content.size();
    });
}

// bos_token / eos_token of tokenizer_config.json: a string, {"content": ...}, or null.
int32_t config_token(const Tokenizer::Impl& t, const Doc& d, const json& cfg, const char* key) {
  const json* v = d.opt(cfg, "", key);
  if (!v) return -1;
  std::string name = v->is_object() ? d.string(d.field(*v, key, "content"), str(key, ".content")) : d.string(*v, key);
  auto it = t.token_to_id.find(name);
  if (it == t.token_to_id.end()) d.bad(key, str("= \"", name, "\" is not a token of the vocabulary"));
  return it->second;
}

}  // namespace

void load_tokenizer_json(Tokenizer::Impl& t, std::string_view text, std::string_view config_text) {
  Doc d{t.source};
  json root = parse_json(text, t.source);
  if (!root.is_object()) fail("[tokenizer] ", t.source, ": expected a JSON object at the top level, got ", type_name(root));
  load_model(t, d, root);
  load_added_tokens(t, d, root);
  if (const json* n = d.opt(root, "", "normalizer")) load_normalizer(t, d, *n, "normalizer");
  const json* pre = d.opt(root, "", "pre_tokenizer");
  if (!pre) d.bad("pre_tokenizer", "is missing or null: byte-level BPE needs a ByteLevel pre-tokenizer");
  load_pre_tokenizer(t, d, *pre, "pre_tokenizer");
  if (t.pre.empty() || t.pre.back().split) d.bad("pre_tokenizer", "has no ByteLevel step (byte-level BPE needs one, last)");
  t.pre.erase(std::remove_if(t.pre.begin(), t.pre.end(),
                             [](const auto& s) { return !s.split && !s.add_prefix_space; }),
              t.pre.end());
  if (const json* p = d.opt(root, "", "post_processor")) load_post_processor(t, d, *p, "post_processor");
  const json* dec = d.opt(root, "", "decoder");
  if (!dec) d.bad("decoder", "is missing or null (expected a ByteLevel decoder)");
  std::string dtype = d.type(*dec, "decoder");
  if (dtype != "ByteLevel") d.unsupported("decoder.type", dtype, "\"ByteLevel\"");
  if (!config_text.empty()) {
    std::string cfg_name = t.source;
    size_t slash = cfg_name.find_last_of('/');
    cfg_name = (slash == std::string::npos ? std::string() : cfg_name.substr(0, slash + 1)) + "tokenizer_config.json";
    Doc c{cfg_name};
    json cfg = parse_json(config_text, cfg_name);
    if (!cfg.is_object()) fail("[tokenizer] ", cfg_name, ": expected a JSON object at the top level");
    t.bos = config_token(t, c, cfg, "bos_token");
    t.eos = config_token(t, c, cfg, "eos_token");
  }
}

}  // namespace sy
