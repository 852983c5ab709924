// OlmoeForCausalLM (HF transformers models/olmoe): Llama-style decoder whose q_norm / k_norm are
// RMSNorms over the whole q / k projection (weights [heads*head_dim], [kv_heads*head_dim]) applied
// before splitting into heads; optional clip_qkv clamps q, k, v after the norms; every layer is
// MoE with softmax top-k routing renormalised iff norm_topk_prob; experts' width is
// intermediate_size. Experts: mlp.experts.E.{gate,up,down}_proj.
#include "core/error.h"
#include "model/arch.h"
#include "model/archs/archs.h"

namespace sy {
namespace {

ModelConfig parse(const JsonConfig& j) {
  ModelConfig c;
  parse_common_config(j, c);
  c.rms_eps = j.get_float("rms_norm_eps", 1e-5);
  c.qk_norm = QKNorm::Full;
  c.qkv_bias = c.o_bias = j.get_bool("attention_bias", false);
  c.clip_qkv = j.get_float("clip_qkv", 0.0);
  if (c.clip_qkv < 0) j.bad("clip_qkv", "must be positive or null");
  const int64_t E = j.get_int("num_experts");
  const int64_t k = j.get_int("num_experts_per_tok");
  const bool norm = j.get_bool("norm_topk_prob", false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerSpec s;
    s.moe = true;
    s.n_experts = E;
    s.expert_ffn = j.get_int("intermediate_size");
    s.router = str("topk:k=", k, ",norm=", norm ? "true" : "false");
    c.layers.push_back(s);
  }
  return c;
}

LayerTensorNames names(const ModelConfig&, int l) {
  LayerTensorNames n = llama_attention_names(l);
  const std::string p = "model.layers." + std::to_string(l) + ".";
  n.q_norm = p + "self_attn.q_norm.weight";
  n.k_norm = p + "self_attn.k_norm.weight";
  n.router = p + "mlp.gate.weight";
  n.expert_prefix = p + "mlp.experts.";
  n.expert_gate = "gate_proj", n.expert_up = "up_proj", n.expert_down = "down_proj";
  return n;
}

}  // namespace

void register_olmoe() {
  register_architecture({"OlmoeForCausalLM", "OLMoE: q/k RMSNorm over the full projection, softmax top-k",
                         parse, {}, names});
}

}  // namespace sy
