// MixtralForCausalLM (HF transformers models/mixtral, MixtralSparseMoeBlock): Llama-style decoder,
// every layer MoE with softmax top-k always renormalised over the chosen k; experts w1 (gate),
// w3 (up), w2 (down) under block_sparse_moe; optional sliding_window attention.
#include "core/error.h"
#include "model/arch.h"
#include "model/archs/archs.h"

namespace sy {
namespace {

ModelConfig parse(const JsonConfig& j) {
  ModelConfig c;
  parse_common_config(j, c);
  c.rms_eps = j.get_float("rms_norm_eps", 1e-5);
  c.sliding_window = j.get_int("sliding_window", 0);
  if (c.sliding_window < 0) j.bad("sliding_window", "must be positive or null");
  const int64_t E = j.get_int("num_local_experts");
  const int64_t k = j.get_int("num_experts_per_tok");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerSpec s;
    s.moe = true;
    s.n_experts = E;
    s.expert_ffn = j.get_int("intermediate_size");
    s.router = str("topk:k=", k, ",norm=true");
    c.layers.push_back(s);
  }
  return c;
}

LayerTensorNames names(const ModelConfig&, int l) {
  LayerTensorNames n = llama_attention_names(l);
  const std::string p = "model.layers." + std::to_string(l) + ".";
  n.router = p + "block_sparse_moe.gate.weight";
  n.expert_prefix = p + "block_sparse_moe.experts.";
  n.expert_gate = "w1", n.expert_up = "w3", n.expert_down = "w2";
  return n;
}

}  // namespace

void register_mixtral() {
  register_architecture({"MixtralForCausalLM", "Mixtral: softmax top-k always renormalised, optional sliding window",
                         parse, {}, names});
}

}  // namespace sy
