#include "offload/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sy::offload {

namespace {

constexpr int kMaxLayers = 1024;
constexpr int kMaxExperts = 65536;

using json = nlohmann::json;

struct LineCtx {
  const std::string& name;
  size_t line;
};

template <typename... A>
[[noreturn]] void bad(const LineCtx& c, A&&... a) {
  fail("[trace] ", c.name, " line ", c.line, ": ", std::forward<A>(a)...);
}

int64_t get_int(const LineCtx& c, const json& j, const char* what, int64_t lo, int64_t hi) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    if (v > uint64_t(hi)) bad(c, what, " = ", v, " is out of range [", lo, ", ", hi, "]");
    if (int64_t(v) < lo) bad(c, what, " = ", v, " is out of range [", lo, ", ", hi, "]");
    return int64_t(v);
  }
  if (!j.is_number_integer()) bad(c, what, " must be an integer, got ", j.type_name());
  int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) bad(c, what, " = ", v, " is out of range [", lo, ", ", hi, "]");
  return v;
}

const json& field(const LineCtx& c, const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) bad(c, "missing field \"", key, "\"");
  return *it;
}

std::vector<int32_t> get_experts(const LineCtx& c, const json& j, int n_experts, const char* what) {
  if (!j.is_array()) bad(c, what, " must be an array of expert ids, got ", j.type_name());
  if (j.size() > size_t(n_experts)) bad(c, what, " lists ", j.size(), " experts, the model has ", n_experts);
  std::vector<int32_t> out;
  out.reserve(j.size());
  for (const auto& v : j) out.push_back(int32_t(get_int(c, v, "expert id", 0, n_experts - 1)));
  std::vector<int32_t> s = out;
  std::sort(s.begin(), s.end());
  if (std::adjacent_find(s.begin(), s.end()) != s.end())
    bad(c, what, " lists expert ", *std::adjacent_find(s.begin(), s.end()), " twice");
  return out;
}

TraceHeader parse_header(const LineCtx& c, const json& j) {
  if (!j.is_object()) bad(c, "the header must be a JSON object");
  const json& fmt = field(c, j, "format");
  if (!fmt.is_string() || fmt.get<std::string>() != "switchyard-trace")
    bad(c, "not a switchyard trace (format must be \"switchyard-trace\")");
  int64_t version = get_int(c, field(c, j, "version"), "version", 0, std::numeric_limits<int32_t>::max());
  if (version != 1) bad(c, "unsupported trace version ", version, " (this build reads version 1)");
  TraceHeader h;
  h.n_layers = int(get_int(c, field(c, j, "n_layers"), "n_layers", 1, kMaxLayers));
  h.n_experts = int(get_int(c, field(c, j, "n_experts"), "n_experts", 1, kMaxExperts));
  const json& eb = field(c, j, "expert_bytes");
  if (!eb.is_array() || eb.size() != size_t(h.n_layers))
    bad(c, "expert_bytes must be an array of n_layers (", h.n_layers, ") byte counts");
  for (const auto& v : eb)
    h.expert_bytes.push_back(uint64_t(get_int(c, v, "expert_bytes", 0, std::numeric_limits<int64_t>::max())));
  if (auto it = j.find("top_k"); it != j.end()) h.top_k = int(get_int(c, *it, "top_k", 0, h.n_experts));
  if (auto it = j.find("model"); it != j.end()) {
    if (!it->is_string()) bad(c, "model must be a string");
    h.model = it->get<std::string>();
  }
  return h;
}

TraceToken parse_token(const LineCtx& c, const json& j, const TraceHeader& h) {
  if (!j.is_object()) bad(c, "a token line must be a JSON object");
  TraceToken t;
  t.pos = get_int(c, field(c, j, "pos"), "pos", 0, std::numeric_limits<int64_t>::max());
  if (auto it = j.find("seq"); it != j.end())
    t.seq = int32_t(get_int(c, *it, "seq", 0, std::numeric_limits<int32_t>::max()));
  t.experts.resize(size_t(h.n_layers));
  t.weights.resize(size_t(h.n_layers));
  t.recorded.assign(size_t(h.n_layers), false);
  const json& r = field(c, j, "r");
  if (!r.is_array()) bad(c, "\"r\" must be an array of [layer, experts, weights]");
  for (const auto& rec : r) {
    if (!rec.is_array() || rec.size() != 3) bad(c, "each \"r\" entry must be [layer, [experts], [weights]]");
    int l = int(get_int(c, rec[0], "layer", 0, h.n_layers - 1));
    if (t.recorded[size_t(l)]) bad(c, "layer ", l, " is recorded twice");
    t.recorded[size_t(l)] = true;
    t.experts[size_t(l)] = get_experts(c, rec[1], h.n_experts, "experts");
    const json& w = rec[2];
    if (!w.is_array() || w.size() != t.experts[size_t(l)].size())
      bad(c, "layer ", l, ": weights must be an array with one weight per expert (",
          t.experts[size_t(l)].size(), ")");
    for (const auto& v : w) {
      if (!v.is_number()) bad(c, "layer ", l, ": a weight is not a number");
      double d = v.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > double(std::numeric_limits<float>::max()))
        bad(c, "layer ", l, ": weight ", d, " is not a finite float");
      t.weights[size_t(l)].push_back(float(d));
    }
  }
  if (auto it = j.find("p"); it != j.end()) {
    if (!it->is_array()) bad(c, "\"p\" must be an array of [from, to, experts]");
    for (const auto& p : *it) {
      if (!p.is_array() || p.size() != 3) bad(c, "each \"p\" entry must be [from, to, [experts]]");
      TracePrediction pr;
      pr.from = int(get_int(c, p[0], "prediction layer 'from'", 0, h.n_layers - 1));
      pr.to = int(get_int(c, p[1], "prediction layer 'to'", 0, h.n_layers - 1));
      if (pr.to <= pr.from) bad(c, "a prediction must target a later layer (from ", pr.from, ", to ", pr.to, ")");
      pr.experts = get_experts(c, p[2], h.n_experts, "predicted experts");
      t.predictions.push_back(std::move(pr));
    }
  }
  return t;
}

void write_all(std::FILE* f, const std::string& s, const std::string& path) {
  if (!s.empty() && std::fwrite(s.data(), 1, s.size(), f) != s.size())
    fail("[trace] ", path, ": write failed: ", std::strerror(errno));
}

void append_list(std::string& out, std::span<const int32_t> v) {
  out += '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(v[i]);
  }
  out += ']';
}

}  // namespace

bool Trace::has_predictions() const {
  for (const auto& t : tokens)
    if (!t.predictions.empty()) return true;
  return false;
}

int Trace::max_active() const {
  size_t m = 0;
  for (const auto& t : tokens)
    for (const auto& e : t.experts) m = std::max(m, e.size());
  return int(m);
}

Trace parse_trace(std::string_view text, const std::string& name) {
  Trace tr;
  tr.name = name;
  size_t start = 0, line = 0;
  SY_CHECK(!text.empty(), "[trace] ", name, ": empty file (no header line)");
  while (start < text.size()) {
    ++line;
    size_t end = text.find('\n', start);
    LineCtx c{name, line};
    if (end == std::string_view::npos) bad(c, "the last line has no newline: the trace is truncated");
    std::string_view s = text.substr(start, end - start);
    start = end + 1;
    if (s.empty()) bad(c, "empty line");
    json j = json::parse(s, nullptr, false);
    if (j.is_discarded()) bad(c, "not valid JSON");
    if (line == 1)
      tr.header = parse_header(c, j);
    else
      tr.tokens.push_back(parse_token(c, j, tr.header));
  }
  return tr;
}

Trace read_trace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SY_CHECK(in, "[trace] cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  SY_CHECK(!in.bad(), "[trace] ", path, ": read error");
  return parse_trace(ss.str(), path);
}

// ---- writer ----

TraceWriter::TraceWriter(const std::string& path, TraceHeader header)
    : path_(path), tmp_(path + ".tmp"), header_(std::move(header)) {
  SY_CHECK(header_.n_layers >= 1 && header_.n_layers <= kMaxLayers, "[trace] ", path, ": n_layers ",
           header_.n_layers, " out of range [1, ", kMaxLayers, "]");
  SY_CHECK(header_.n_experts >= 1 && header_.n_experts <= kMaxExperts, "[trace] ", path, ": n_experts ",
           header_.n_experts, " out of range [1, ", kMaxExperts, "]");
  SY_CHECK(header_.expert_bytes.size() == size_t(header_.n_layers), "[trace] ", path, ": expert_bytes has ",
           header_.expert_bytes.size(), " entries, expected n_layers = ", header_.n_layers);
  f_ = std::fopen(tmp_.c_str(), "wb");
  SY_CHECK(f_, "[trace] cannot create ", tmp_, ": ", std::strerror(errno));
  json h = {{"format", "switchyard-trace"}, {"version", 1},          {"n_layers", header_.n_layers},
            {"n_experts", header_.n_experts}, {"expert_bytes", header_.expert_bytes},
            {"top_k", header_.top_k},         {"model", header_.model}};
  write_all(f_, h.dump() + "\n", tmp_);
}

TraceWriter::~TraceWriter() {
  try {
    close();
  } catch (...) {
    // A destructor must not throw; close() reports errors to callers who ask.
  }
  if (f_) std::fclose(f_);
}

void TraceWriter::begin_token(int64_t pos, int32_t seq) {
  SY_CHECK(f_, "[trace] ", path_, ": writer is closed");
  SY_CHECK(pos >= 0 && seq >= 0, "[trace] ", path_, ": negative position ", pos, " or sequence ", seq);
  TraceToken t;
  t.pos = pos;
  t.seq = seq;
  t.experts.resize(size_t(header_.n_layers));
  t.weights.resize(size_t(header_.n_layers));
  t.recorded.assign(size_t(header_.n_layers), false);
  pending_.push_back(std::move(t));
}

TraceToken& TraceWriter::token_back(int64_t from_end, const char* what) {
  SY_CHECK(from_end >= 0 && from_end < int64_t(pending_.size()), "[trace] ", path_, ": ", what,
           " needs ", from_end + 1, " begun tokens, ", pending_.size(), " are pending (call begin_token first)");
  return pending_[pending_.size() - 1 - size_t(from_end)];
}

void TraceWriter::check_layer(int layer, const char* what) const {
  SY_CHECK(layer >= 0 && layer < header_.n_layers, "[trace] ", path_, ": ", what, " layer ", layer,
           " out of range [0, ", header_.n_layers, ")");
}

void TraceWriter::check_experts(std::span<const int32_t> experts, const char* what) const {
  for (int32_t e : experts)
    SY_CHECK(e >= 0 && e < header_.n_experts, "[trace] ", path_, ": ", what, " expert ", e, " out of range [0, ",
             header_.n_experts, ")");
}

void TraceWriter::record(int layer, std::span<const int32_t> experts, std::span<const float> weights) {
  check_layer(layer, "record:");
  check_experts(experts, "record:");
  SY_CHECK(experts.size() == weights.size(), "[trace] ", path_, ": record: ", experts.size(), " experts but ",
           weights.size(), " weights");
  for (float w : weights) SY_CHECK(std::isfinite(w), "[trace] ", path_, ": record: weight ", w, " is not finite");
  TraceToken& t = token_back(0, "record");
  SY_CHECK(!t.recorded[size_t(layer)], "[trace] ", path_, ": layer ", layer, " recorded twice for one token");
  t.recorded[size_t(layer)] = true;
  t.experts[size_t(layer)].assign(experts.begin(), experts.end());
  t.weights[size_t(layer)].assign(weights.begin(), weights.end());
}

void TraceWriter::predict(int from, int to, std::span<const int32_t> experts) {
  check_layer(from, "predict:");
  check_layer(to, "predict:");
  SY_CHECK(to > from, "[trace] ", path_, ": predict: target layer ", to, " is not after layer ", from);
  check_experts(experts, "predict:");
  token_back(0, "predict").predictions.push_back({from, to, {experts.begin(), experts.end()}});
}

void TraceWriter::record_batch(int layer, const Routing& r) {
  check_layer(layer, "record_batch:");
  for (int64_t t = 0; t < r.n_tokens; ++t) {
    TraceToken& tok = token_back(r.n_tokens - 1 - t, "record_batch");
    size_t b = size_t(r.offsets[size_t(t)]), e = size_t(r.offsets[size_t(t) + 1]);
    std::span<const int32_t> ex(r.expert.data() + b, e - b);
    std::span<const float> w(r.weight.data() + b, e - b);
    check_experts(ex, "record_batch:");
    SY_CHECK(!tok.recorded[size_t(layer)], "[trace] ", path_, ": layer ", layer, " recorded twice for one token");
    tok.recorded[size_t(layer)] = true;
    tok.experts[size_t(layer)].assign(ex.begin(), ex.end());
    tok.weights[size_t(layer)].assign(w.begin(), w.end());
  }
}

void TraceWriter::predict_batch(int from, int to, const std::vector<std::vector<int32_t>>& per_token) {
  check_layer(from, "predict_batch:");
  check_layer(to, "predict_batch:");
  SY_CHECK(to > from, "[trace] ", path_, ": predict_batch: target layer ", to, " is not after layer ", from);
  const int64_t T = int64_t(per_token.size());
  for (int64_t t = 0; t < T; ++t) {
    check_experts(per_token[size_t(t)], "predict_batch:");
    token_back(T - 1 - t, "predict_batch").predictions.push_back({from, to, per_token[size_t(t)]});
  }
}

void TraceWriter::flush() {
  SY_CHECK(f_, "[trace] ", path_, ": writer is closed");
  std::string out;
  for (const auto& t : pending_) {
    out += "{\"pos\":" + std::to_string(t.pos) + ",\"seq\":" + std::to_string(t.seq) + ",\"r\":[";
    bool first = true;
    char buf[32];
    for (int l = 0; l < header_.n_layers; ++l) {
      if (!t.recorded[size_t(l)]) continue;
      if (!first) out += ',';
      first = false;
      out += '[' + std::to_string(l) + ',';
      append_list(out, t.experts[size_t(l)]);
      out += ",[";
      for (size_t i = 0; i < t.weights[size_t(l)].size(); ++i) {
        std::snprintf(buf, sizeof buf, "%s%.9g", i ? "," : "", double(t.weights[size_t(l)][i]));
        out += buf;
      }
      out += "]]";
    }
    out += ']';
    if (!t.predictions.empty()) {
      out += ",\"p\":[";
      for (size_t i = 0; i < t.predictions.size(); ++i) {
        const auto& p = t.predictions[i];
        out += (i ? ",[" : "[") + std::to_string(p.from) + ',' + std::to_string(p.to) + ',';
        append_list(out, p.experts);
        out += ']';
      }
      out += ']';
    }
    out += "}\n";
  }
  write_all(f_, out, tmp_);
  SY_CHECK(std::fflush(f_) == 0, "[trace] ", tmp_, ": write failed: ", std::strerror(errno));
  written_ += int64_t(pending_.size());
  pending_.clear();
}

void TraceWriter::close() {
  if (!f_) return;
  flush();
  SY_CHECK(::fsync(fileno(f_)) == 0, "[trace] ", tmp_, ": fsync failed: ", std::strerror(errno));
  std::FILE* f = f_;
  f_ = nullptr;
  SY_CHECK(std::fclose(f) == 0, "[trace] ", tmp_, ": close failed: ", std::strerror(errno));
  SY_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, "[trace] cannot rename ", tmp_, " to ", path_, ": ",
           std::strerror(errno));
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sy::offload
