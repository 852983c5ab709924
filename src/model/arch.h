// The architecture registry: the config.json "architectures"[0] name -> how to read its config and
// where its tensors are. One file per architecture in src/model/archs/, registered in
// archs/builtin.cpp. Everything an architecture decides is data (ModelConfig + TensorNames); the
// shared transformer (model.cpp) has no architecture branches.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace sy {

// Checkpoint tensor names of one decoder layer. An empty name means the layer has no such tensor.
// Expert e's weights are expert_prefix + e + "." + expert_{gate,up,down} + ".weight".
struct LayerTensorNames {
  std::string attn_norm, ffn_norm;        // [H] RMSNorm weights before attention / FFN
  std::string q, k, v, o;                 // projection weights (biases: same name, ".bias")
  std::string q_norm, k_norm;             // QKNorm weights
  std::string dense_gate, dense_up, dense_down;  // dense FFN layers
  std::string router;                     // [E, H] gate
  std::string expert_prefix;              // "model.layers.3.mlp.experts."
  std::string expert_gate, expert_up, expert_down;  // "gate_proj" / "w1" ...
  std::string shared_gate, shared_up, shared_down;  // shared expert
  std::string shared_expert_gate;         // [1, H] sigmoid gate of the shared expert
  std::string expert(int64_t e, const std::string& which) const {
    return expert_prefix + std::to_string(e) + "." + which + ".weight";
  }
};

struct ModelTensorNames {
  std::string embed = "model.embed_tokens.weight";  // [vocab, H]
  std::string final_norm = "model.norm.weight";      // [H]
  std::string lm_head = "lm_head.weight";            // [vocab, H]; unused when tied
};

struct Architecture {
  std::string name;     // "Qwen3MoeForCausalLM"
  std::string summary;  // one line for `switchyard info` / errors
  // Fills every ModelConfig field from config.json (including per-layer specs and the default
  // router spec). Throws naming the file and field.
  std::function<ModelConfig(const JsonConfig&)> parse;
  ModelTensorNames names;
  std::function<LayerTensorNames(const ModelConfig&, int layer)> layer_names;
};

void register_architecture(Architecture a);
const std::vector<Architecture>& architecture_registry();
// Throws "[model] FILE: unknown architecture 'X' (known: A, B, ...)".
const Architecture& find_architecture(const std::string& name, const std::string& source);

// Reads DIR/config.json: the architecture named by "architectures"[0], its parsed and validated
// ModelConfig.
ModelConfig load_model_config(const std::string& dir, const Architecture** arch_out = nullptr);

// Helpers for architecture files.
// Qwen-style sparse layer choice (HF Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer): layer l is MoE
// iff l not in mlp_only_layers, num_experts > 0 and (l + 1) % decoder_sparse_step == 0.
bool qwen_layer_is_sparse(int64_t layer, int64_t n_experts, int64_t sparse_step, const std::vector<int64_t>& mlp_only);
// Standard Llama-style attention/norm names under "model.layers.N." (q_proj.. o_proj, norms).
LayerTensorNames llama_attention_names(int layer);

}  // namespace sy
