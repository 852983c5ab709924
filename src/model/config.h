// ModelConfig: everything the shared transformer code needs to know about a checkpoint, filled from
// a Hugging Face config.json by the checkpoint's architecture (src/model/archs/<arch>.cpp). The
// shared code reads only this data; no architecture names appear in it.
//
// Field names in comments are the Hugging Face config.json keys they come from.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/weights.h"

namespace sy {

// RoPE frequency scaling (HF modeling_rope_utils.py, ROPE_INIT_FUNCTIONS):
//   None:    inv_freq_i = theta^(-2i/d)
//   Linear:  positions divided by `factor`
//   Dynamic: NTK: theta' = theta * (factor*L/max_pos - (factor-1))^(d/(d-2)) when the sequence
//            length L exceeds max_position_embeddings, recomputed per forward call as HF's
//            dynamic_rope_update does (keys already cached keep their rotation)
//   Yarn:    inv_freq blends interpolation (1/factor) and extrapolation with a linear ramp between
//            the correction dims of beta_fast / beta_slow; cos and sin are scaled by attention_factor
enum class RopeScaling : uint8_t { None, Linear, Dynamic, Yarn };
const char* rope_scaling_name(RopeScaling s);

struct RopeConfig {
  double theta = 10000.0;       // rope_theta
  RopeScaling scaling = RopeScaling::None;
  double factor = 1.0;          // rope_scaling.factor
  int64_t original_max_pos = 0; // rope_scaling.original_max_position_embeddings (yarn), else max_pos
  double beta_fast = 32.0, beta_slow = 1.0;  // yarn
  double attention_factor = 1.0;             // yarn: multiplies cos and sin
  bool truncate = true;                      // yarn: floor/ceil the correction range
};

// Where the q/k normalisation sits (applied right after the projection, before RoPE):
//   PerHead: RMSNorm over each head's head_dim slice, weight [head_dim] (Qwen3-MoE q_norm/k_norm)
//   Full:    RMSNorm over the whole projection, weight [heads*head_dim] (OLMoE q_norm/k_norm)
enum class QKNorm : uint8_t { None, PerHead, Full };

// One decoder layer's feed-forward block.
struct LayerSpec {
  bool moe = false;
  int64_t ffn = 0;            // dense layers: intermediate width
  int64_t n_experts = 0;      // MoE: routed experts E
  int64_t expert_ffn = 0;     // MoE: each expert's width F
  std::string router;         // MoE: default router spec, e.g. "topk:k=8,norm=true"
  int64_t shared_ffn = 0;     // MoE: shared expert width (0 = none)
  bool shared_gate = false;   // MoE: shared expert scaled by sigmoid(w_sg x) (Qwen2-MoE)
};

struct ModelConfig {
  std::string architecture;   // architectures[0], e.g. "Qwen3MoeForCausalLM"
  std::string source;         // path of config.json (for error messages)
  int64_t vocab = 0;          // vocab_size
  int64_t hidden = 0;         // hidden_size
  int64_t n_layers = 0;       // num_hidden_layers
  int64_t n_heads = 0;        // num_attention_heads
  int64_t n_kv_heads = 0;     // num_key_value_heads (GQA)
  int64_t head_dim = 0;       // head_dim, default hidden_size / num_attention_heads
  int64_t max_pos = 0;        // max_position_embeddings
  RopeConfig rope;
  double rms_eps = 1e-6;      // rms_norm_eps
  QKNorm qk_norm = QKNorm::None;
  bool qkv_bias = false;      // biases on q/k/v projections (Qwen2-MoE; attention_bias elsewhere)
  bool o_bias = false;        // bias on o_proj (attention_bias)
  double clip_qkv = 0;        // clamp q, k, v to [-c, c] after the q/k norm (OLMoE clip_qkv); 0 = off
  int64_t sliding_window = 0; // key j visible from query i iff i - j < window; 0 = full causal
  bool tie_embeddings = false;  // tie_word_embeddings: lm_head = embed_tokens
  FfnParams ffn;              // activation of every FFN (hidden_act)
  std::vector<LayerSpec> layers;
  int32_t bos_id = -1;        // bos_token_id (-1 = none)
  std::vector<int32_t> eos_ids;  // eos_token_id (int or list)
  std::string torch_dtype;    // informational

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Throws naming `source` and the field when the numbers do not fit together.
  void validate() const;
};

// A config.json with typed getters whose errors name the file and the field:
//   "[config] /m/config.json: field 'num_experts' must be an integer, got "8""
class JsonConfig {
 public:
  static JsonConfig load(const std::string& path);
  JsonConfig(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return j_; }
  bool has(const std::string& key) const;  // present and not null
  int64_t get_int(const std::string& key) const;  // required
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_str(const std::string& key, const std::string& def) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;  // missing/null = empty
  [[noreturn]] void bad(const std::string& key, const std::string& what) const;

 private:
  nlohmann::json j_;
  std::string path_;
};

// Fields every architecture here shares with the Llama family: vocab_size, hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, max_position_embeddings,
// rope_theta, rope_scaling, rms_norm_eps, tie_word_embeddings, hidden_act, bos/eos_token_id,
// torch_dtype. Architectures call this, then fill their own fields.
void parse_common_config(const JsonConfig& j, ModelConfig& c);
RopeConfig parse_rope(const JsonConfig& j, int64_t max_pos);

}  // namespace sy
