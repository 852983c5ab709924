#include "model/arch.h"

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "model/archs/archs.h"

namespace sy {
namespace {

std::vector<Architecture>& registry_storage() {
  static std::vector<Architecture> r;
  return r;
}

void ensure_builtin() {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_architectures(); });
}

}  // namespace

void register_architecture(Architecture a) {
  auto& r = registry_storage();
  for (auto& x : r)
    if (x.name == a.name) {
      x = std::move(a);
      return;
    }
  r.push_back(std::move(a));
}

const std::vector<Architecture>& architecture_registry() {
  ensure_builtin();
  return registry_storage();
}

const Architecture& find_architecture(const std::string& name, const std::string& source) {
  std::string known;
  for (const auto& a : architecture_registry()) {
    if (a.name == name) return a;
    known += (known.empty() ? "" : ", ") + a.name;
  }
  fail("[model] ", source, ": unknown architecture '", name, "' (known: ", known, ")");
}

ModelConfig load_model_config(const std::string& dir, const Architecture** arch_out) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  SY_CHECK(std::filesystem::is_directory(dir), "[model] ", dir, " is not a directory");
  SY_CHECK(std::filesystem::exists(path), "[model] ", dir, " has no config.json");
  JsonConfig j = JsonConfig::load(path);
  std::string name;
  const auto& js = j.json();
  if (js.contains("architectures") && js.at("architectures").is_array() && !js.at("architectures").empty() &&
      js.at("architectures")[0].is_string()) {
    name = js.at("architectures")[0].get<std::string>();
  } else {
    j.bad("architectures", "must be a non-empty list of architecture names");
  }
  const Architecture& a = find_architecture(name, path);
  ModelConfig c = a.parse(j);
  c.architecture = a.name;
  c.source = path;
  c.validate();
  if (arch_out) *arch_out = &a;
  return c;
}

bool qwen_layer_is_sparse(int64_t layer, int64_t n_experts, int64_t sparse_step, const std::vector<int64_t>& mlp_only) {
  if (std::find(mlp_only.begin(), mlp_only.end(), layer) != mlp_only.end()) return false;
  return n_experts > 0 && sparse_step > 0 && (layer + 1) % sparse_step == 0;
}

LayerTensorNames llama_attention_names(int layer) {
  LayerTensorNames n;
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  n.attn_norm = p + "input_layernorm.weight";
  n.ffn_norm = p + "post_attention_layernorm.weight";
  n.q = p + "self_attn.q_proj.weight";
  n.k = p + "self_attn.k_proj.weight";
  n.v = p + "self_attn.v_proj.weight";
  n.o = p + "self_attn.o_proj.weight";
  return n;
}

}  // namespace sy
