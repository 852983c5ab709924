#include "model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace sy {

const char* rope_scaling_name(RopeScaling s) {
  switch (s) {
    case RopeScaling::None: return "none";
    case RopeScaling::Linear: return "linear";
    case RopeScaling::Dynamic: return "dynamic";
    case RopeScaling::Yarn: return "yarn";
  }
  return "?";
}

JsonConfig JsonConfig::load(const std::string& path) {
  std::ifstream f(path);
  SY_CHECK(f.good(), "[config] cannot open ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  SY_CHECK(!j.is_discarded(), "[config] ", path, ": not valid JSON");
  SY_CHECK(j.is_object(), "[config] ", path, ": expected a JSON object");
  return JsonConfig(std::move(j), path);
}

void JsonConfig::bad(const std::string& key, const std::string& what) const {
  fail("[config] ", path_, ": field '", key, "' ", what);
}

bool JsonConfig::has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

int64_t JsonConfig::get_int(const std::string& key) const {
  if (!has(key)) bad(key, "is missing");
  const auto& v = j_.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
  bad(key, "must be an integer, got " + v.dump());
}

int64_t JsonConfig::get_int(const std::string& key, int64_t def) const { return has(key) ? get_int(key) : def; }

double JsonConfig::get_float(const std::string& key) const {
  if (!has(key)) bad(key, "is missing");
  const auto& v = j_.at(key);
  if (!v.is_number()) bad(key, "must be a number, got " + v.dump());
  return v.get<double>();
}

double JsonConfig::get_float(const std::string& key, double def) const { return has(key) ? get_float(key) : def; }

bool JsonConfig::get_bool(const std::string& key, bool def) const {
  if (!has(key)) return def;
  const auto& v = j_.at(key);
  if (!v.is_boolean()) bad(key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string JsonConfig::get_str(const std::string& key, const std::string& def) const {
  if (!has(key)) return def;
  const auto& v = j_.at(key);
  if (!v.is_string()) bad(key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

std::vector<int64_t> JsonConfig::get_int_list(const std::string& key) const {
  std::vector<int64_t> out;
  if (!has(key)) return out;
  const auto& v = j_.at(key);
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (!v.is_array()) bad(key, "must be an integer or a list of integers, got " + v.dump());
  for (const auto& e : v) {
    if (!e.is_number_integer()) bad(key, "must hold integers, got " + e.dump());
    out.push_back(e.get<int64_t>());
  }
  return out;
}

RopeConfig parse_rope(const JsonConfig& j, int64_t max_pos) {
  RopeConfig r;
  r.theta = j.get_float("rope_theta", 10000.0);
  if (!(r.theta > 1.0)) j.bad("rope_theta", str("must be > 1, got ", r.theta));
  r.original_max_pos = max_pos;
  if (!j.has("rope_scaling")) return r;
  const auto& rs = j.json().at("rope_scaling");
  if (!rs.is_object()) j.bad("rope_scaling", "must be an object or null, got " + rs.dump());
  JsonConfig s(rs, j.path());
  // transformers reads "rope_type", older configs use "type".
  std::string type = s.get_str("rope_type", s.get_str("type", "default"));
  auto field = [&](const std::string& k) { return "rope_scaling." + k; };
  if (type == "default") return r;
  if (s.has("factor")) r.factor = s.get_float("factor");
  if (type == "linear") {
    r.scaling = RopeScaling::Linear;
  } else if (type == "dynamic") {
    r.scaling = RopeScaling::Dynamic;
  } else if (type == "yarn") {
    r.scaling = RopeScaling::Yarn;
    r.original_max_pos = s.get_int("original_max_position_embeddings", max_pos);
    r.beta_fast = s.get_float("beta_fast", 32.0);
    r.beta_slow = s.get_float("beta_slow", 1.0);
    r.truncate = s.get_bool("truncate", true);
    // HF _compute_yarn_parameters: the default attention factor is 0.1*ln(factor)+1 (mscale).
    auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    if (s.has("attention_factor")) {
      r.attention_factor = s.get_float("attention_factor");
    } else if (s.has("mscale") && s.has("mscale_all_dim")) {
      r.attention_factor = mscale(r.factor, s.get_float("mscale")) / mscale(r.factor, s.get_float("mscale_all_dim"));
    } else {
      r.attention_factor = mscale(r.factor, 1.0);
    }
    if (!(r.original_max_pos > 0)) j.bad(field("original_max_position_embeddings"), "must be positive");
  } else {
    j.bad(field("rope_type"), "'" + type + "' is not supported (supported: default, linear, dynamic, yarn)");
  }
  if (!(r.factor >= 1.0)) j.bad(field("factor"), str("must be >= 1, got ", r.factor));
  return r;
}

void parse_common_config(const JsonConfig& j, ModelConfig& c) {
  c.source = j.path();
  c.vocab = j.get_int("vocab_size");
  c.hidden = j.get_int("hidden_size");
  c.n_layers = j.get_int("num_hidden_layers");
  c.n_heads = j.get_int("num_attention_heads");
  c.n_kv_heads = j.get_int("num_key_value_heads", c.n_heads);
  if (c.n_heads <= 0) j.bad("num_attention_heads", "must be positive");
  c.head_dim = j.get_int("head_dim", c.hidden / c.n_heads);
  c.max_pos = j.get_int("max_position_embeddings", 4096);
  c.rope = parse_rope(j, c.max_pos);
  c.rms_eps = j.get_float("rms_norm_eps", 1e-6);
  c.tie_embeddings = j.get_bool("tie_word_embeddings", false);
  std::string act = j.get_str("hidden_act", "silu");
  if (act != "silu" && act != "swish") j.bad("hidden_act", "'" + act + "' is not supported (supported: silu)");
  c.ffn.act = Activation::SwiGLU;
  c.bos_id = int32_t(j.get_int("bos_token_id", -1));
  for (int64_t e : j.get_int_list("eos_token_id")) c.eos_ids.push_back(int32_t(e));
  c.torch_dtype = j.get_str("torch_dtype", "");
}

void ModelConfig::validate() const {
  auto bad = [&](const std::string& field, auto... what) { fail("[config] ", source, ": field '", field, "' ", what...); };
  if (vocab <= 0) bad("vocab_size", "must be positive, got ", vocab);
  if (hidden <= 0) bad("hidden_size", "must be positive, got ", hidden);
  if (n_layers <= 0) bad("num_hidden_layers", "must be positive, got ", n_layers);
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0)
    bad("num_key_value_heads", "(", n_kv_heads, ") must divide num_attention_heads (", n_heads, ")");
  if (head_dim <= 0 || head_dim % 2 != 0) bad("head_dim", "must be positive and even for RoPE, got ", head_dim);
  if (!(rms_eps > 0)) bad("rms_norm_eps", "must be positive, got ", rms_eps);
  if (sliding_window < 0) bad("sliding_window", "must be positive, got ", sliding_window);
  if (int64_t(layers.size()) != n_layers) bad("num_hidden_layers", "is ", n_layers, " but ", layers.size(), " layers were described");
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerSpec& s = layers[l];
    if (s.moe) {
      if (s.n_experts <= 0) bad("num_experts", "must be positive (layer ", l, ")");
      if (s.expert_ffn <= 0) bad("moe_intermediate_size", "must be positive (layer ", l, ")");
      if (s.shared_ffn < 0) bad("shared_expert_intermediate_size", "must not be negative");
    } else if (s.ffn <= 0) {
      bad("intermediate_size", "must be positive (dense layer ", l, ")");
    }
  }
  for (int32_t e : eos_ids)
    if (e < 0 || e >= vocab) bad("eos_token_id", e, " is outside the vocabulary (", vocab, ")");
}

}  // namespace sy
