// Qwen3MoeForCausalLM (HF transformers models/qwen3_moe): Llama-style decoder with RMSNorm q_norm /
// k_norm over each head (head_dim) before RoPE, an explicit head_dim, optional attention_bias,
// sparse layers chosen by decoder_sparse_step / mlp_only_layers, softmax top-k routing
// renormalised iff norm_topk_prob. Experts: mlp.experts.E.{gate,up,down}_proj.
// Switchyard extensions (written by `switchyard train`; HF transformers ignores them):
//   "switchyard_router": router spec used instead of the top-k default (sigmoid, top-p, null experts;
//     their tensors: mlp.gate.e_score_correction_bias, extra mlp.gate.weight rows for null experts);
//   "shared_expert_intermediate_size" > 0: a shared expert mlp.shared_expert.{gate,up,down}_proj, scaled
//     by sigmoid(mlp.shared_expert_gate) when "switchyard_shared_expert_gate" is true (Qwen2-MoE names).
#include "core/error.h"
#include "model/arch.h"
#include "model/archs/archs.h"

namespace sy {
namespace {

ModelConfig parse(const JsonConfig& j) {
  ModelConfig c;
  parse_common_config(j, c);
  c.qk_norm = QKNorm::PerHead;
  c.qkv_bias = c.o_bias = j.get_bool("attention_bias", false);
  if (j.get_bool("use_sliding_window", false)) j.bad("use_sliding_window", "true is not supported");
  const int64_t E = j.get_int("num_experts", 0);
  const int64_t k = j.get_int("num_experts_per_tok", 1);
  const int64_t step = j.get_int("decoder_sparse_step", 1);
  if (step < 1) j.bad("decoder_sparse_step", "must be at least 1");
  const auto mlp_only = j.get_int_list("mlp_only_layers");
  const bool norm = j.get_bool("norm_topk_prob", false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerSpec s;
    if (qwen_layer_is_sparse(l, E, step, mlp_only)) {
      s.moe = true;
      s.n_experts = E;
      s.expert_ffn = j.get_int("moe_intermediate_size");
      s.router = j.get_str("switchyard_router", str("topk:k=", k, ",norm=", norm ? "true" : "false"));
      s.shared_ffn = j.get_int("shared_expert_intermediate_size", 0);
      if (s.shared_ffn < 0) j.bad("shared_expert_intermediate_size", "must not be negative");
      s.shared_gate = s.shared_ffn > 0 && j.get_bool("switchyard_shared_expert_gate", false);
    } else {
      s.ffn = j.get_int("intermediate_size");
    }
    c.layers.push_back(s);
  }
  return c;
}

LayerTensorNames names(const ModelConfig& c, int l) {
  LayerTensorNames n = llama_attention_names(l);
  const std::string p = "model.layers." + std::to_string(l) + ".";
  n.q_norm = p + "self_attn.q_norm.weight";
  n.k_norm = p + "self_attn.k_norm.weight";
  if (c.layers[size_t(l)].moe) {
    n.router = p + "mlp.gate.weight";
    n.expert_prefix = p + "mlp.experts.";
    n.expert_gate = "gate_proj", n.expert_up = "up_proj", n.expert_down = "down_proj";
    n.shared_gate = p + "mlp.shared_expert.gate_proj.weight";
    n.shared_up = p + "mlp.shared_expert.up_proj.weight";
    n.shared_down = p + "mlp.shared_expert.down_proj.weight";
    n.shared_expert_gate = p + "mlp.shared_expert_gate.weight";
  } else {
    n.dense_gate = p + "mlp.gate_proj.weight";
    n.dense_up = p + "mlp.up_proj.weight";
    n.dense_down = p + "mlp.down_proj.weight";
  }
  return n;
}

}  // namespace

void register_qwen3_moe() {
  register_architecture({"Qwen3MoeForCausalLM", "Qwen3-MoE: per-head q/k RMSNorm, softmax top-k (norm_topk_prob)",
                         parse, {}, names});
}

}  // namespace sy
