// A tiny decoder-only MoE language model for training on the CPU, built from the forward/backward
// ops of train/ops.h and train/routing_ops.h. Qwen3-MoE architecture (HF Qwen3MoeForCausalLM):
//   x = embed_tokens[tokens]                                               [N = B*T, H]
//   per layer:  h = RMSNorm(x; input_layernorm)
//               q = RMSNorm_head(h Wq^T; q_norm), k = RMSNorm_head(h Wk^T; k_norm), v = h Wv^T
//               q, k = RoPE(q, k; position in the sequence)
//               x = x + o_proj( causal GQA attention(q, k, v) )
//               h = RMSNorm(x; post_attention_layernorm)
//               x = x + MoE(h)   (router + SwiGLU experts, optional shared expert, ops below)
//   logits = lm_head( RMSNorm(x; model.norm) );   CE = mean cross-entropy over the targets
// Loss = CE + lb_coef * mean_layers(balance) + z_coef * mean_layers(z) + entropy_coef *
// mean_layers(router entropy) (routing_ops.h gives each formula).
//
// MoE block: logits_r = h W_g^T [N, S]; the router (spec string, as sy::make_router names them):
//   topk:k,norm        p = softmax; top-k of p; w = p (or p / sum top-k)            (Qwen3/Mixtral/OLMoE)
//   sigmoid:k,norm,scale  s = sigmoid; top-k of s + b; w = s (/ (sum + 1e-20)) * scale (DeepSeek-V3);
//                      b = mlp.gate.e_score_correction_bias, not trained, moved by
//                      update_router_bias() (aux-loss-free); balance loss on s / sum s
//   topp:p,max_k       p = softmax; top-p set; w = p (raw)                          (Huang et al. 2024)
//   null:k,m,norm      softmax over E + m columns, top-k, null columns output 0      (AdaMoE)
//   y = sum_sel w_e SwiGLU_e(h)  (+ sigmoid(h w_sg) * SwiGLU_shared(h) if shared_ffn; gate optional)
// Routers without a gradient path or that are not causal (hash, random, expert_choice, ...) are
// refused with a message naming the trainable ones.
//
// Parameters live in one flat f32 buffer with named views (Qwen3-MoE / Qwen2-MoE tensor names):
//   model.embed_tokens.weight [V, H]; model.layers.L.input_layernorm.weight [H];
//   model.layers.L.self_attn.{q,k,v,o}_proj.weight ([Hq*D, H], [Hkv*D, H], [Hkv*D, H], [H, Hq*D]);
//   model.layers.L.self_attn.{q,k}_norm.weight [D]; model.layers.L.post_attention_layernorm.weight [H];
//   model.layers.L.mlp.gate.weight [S, H]; model.layers.L.mlp.experts.E.{gate,up}_proj.weight [F, H],
//   .down_proj.weight [H, F]; model.layers.L.mlp.shared_expert.{gate,up,down}_proj.weight,
//   model.layers.L.mlp.shared_expert_gate.weight [1, H]; model.norm.weight [H]; lm_head.weight [V, H].
// Non-trained buffers: model.layers.L.mlp.gate.e_score_correction_bias [E] (sigmoid router).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "train/ops.h"
#include "train/optim.h"

namespace sy::train {

struct MoELMConfig {
  int64_t vocab = 64;
  int64_t hidden = 32;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 8;
  int64_t n_experts = 4;
  int64_t expert_ffn = 16;
  int64_t shared_ffn = 0;      // 0 = no shared expert
  bool shared_gate = false;    // shared expert scaled by sigmoid(h . w_sg) (Qwen2-MoE)
  std::string router = "topk:k=2,norm=true";
  double rope_theta = 10000.0;
  float rms_eps = 1e-6f;
  float lb_coef = 0.01f;          // Switch balance loss
  float z_coef = 0.0f;            // router z-loss
  float entropy_coef = 0.0f;      // dynamic (entropy) loss, the top-p router's companion
  float bias_update_rate = 1e-3f; // aux-loss-free bias step (sigmoid router)
};

struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // into weights() / grads()
  int64_t numel = 0;
  bool decay = true;   // AdamW weight decay applies (matrices); false for 1-D norm weights
};

// What one forward(+backward) reports. Losses are unscaled (loss_scale only scales gradients).
struct StepStats {
  double loss = 0, ce = 0, balance = 0, z = 0, entropy = 0;  // balance/z/entropy: means over layers
  std::vector<std::vector<int64_t>> load;  // [layer][S] token slots per score column (null incl.)
  int64_t tokens = 0;
};

class MoELM {
 public:
  // Validates the config and the router spec (throws sy::Error naming the field or router).
  explicit MoELM(MoELMConfig cfg);
  ~MoELM();
  MoELM(const MoELM&) = delete;
  MoELM& operator=(const MoELM&) = delete;

  const MoELMConfig& config() const { return cfg_; }
  int n_scores() const;  // router columns S (E, or E + m for null experts)
  const std::vector<ParamView>& params() const { return params_; }
  const ParamView& param(const std::string& name) const;  // throws naming the tensor
  std::span<float> weights() { return w_; }
  std::span<float> grads() { return g_; }
  float* weight(const std::string& name) { return w_.data() + param(name).offset; }
  float* grad(const std::string& name) { return g_.data() + param(name).offset; }
  // e_score_correction_bias of layer l [E] (zeros unless the sigmoid router moved it).
  std::span<float> router_bias(int64_t layer);
  // Training state for checkpoints: AdamW first/second moments [P] and every layer's router bias
  // [n_layers * n_experts], the same layout as weights() / router_bias().
  std::span<float> adam_m() { return adam_m_; }
  std::span<float> adam_v() { return adam_v_; }
  std::span<float> router_biases() { return bias_; }

  // Weights ~ N(0, 0.02) from a seeded generator (splitmix64 + Box-Muller), norm weights 1.
  void init(uint64_t seed);
  void zero_grad();

  // tokens, targets [B*T] (targets < 0 ignored). With backward, gradients of loss * loss_scale are
  // ACCUMULATED into grads() (gradient accumulation: loss_scale = 1 / micro-batches).
  // balance_f: optional per-layer fractions f [S] (global-batch balance, "Demons in the Detail"):
  // f_i = token slots of column i / tokens, over the whole global batch (e.g. StepStats::load summed
  // over all micro-batches of the step from a forward-only pass, backward = false, or over the
  // micro-batches seen so far); default: this micro-batch's own selection fractions. The gradient
  // flows through P only, so summing loss_scale-weighted micro-batch losses with a fixed global f
  // equals the gradient of E * sum_i f_i P_i over the global batch.
  // Linear layers run their products at this precision (ops.h MatmulPrecision; default f32). The
  // router's and the shared-expert gate's products always stay f32 (selective precision, as the
  // Switch Transformer keeps its router in f32: Fedus et al. 2021, section 2.4).
  // bf16 throws when oneDNN has no native bf16 kernel on this CPU (its reference loops are ~100x
  // slower than f32).
  void set_matmul_precision(MatmulPrecision p);
  MatmulPrecision matmul_precision() const { return precision_; }

  StepStats forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t B, int64_t T,
                             bool backward = true, float loss_scale = 1.0f,
                             const std::vector<std::vector<double>>* balance_f = nullptr);

  // Aux-loss-free balancing (sigmoid router only; no-op otherwise): b_i += rate * sign(mean - load_i)
  // per layer, with load from StepStats::load (summed over the micro-batches of a step).
  void update_router_bias(const std::vector<std::vector<int64_t>>& load);

  // AdamW on every parameter (wd only where ParamView::decay), step t >= 1; state kept here.
  void adamw_step(int64_t t, float lr, float wd, const AdamWParams& hp = {});

  // Parameters and buffers as tensors for sy::write_safetensors (views into this object).
  std::vector<TensorToWrite> tensors() const;

 private:
  struct Acts;
  MoELMConfig cfg_;
  MatmulPrecision precision_ = MatmulPrecision::f32;
  struct RouterKind {
    enum Kind { Softmax, Sigmoid, TopP, Null } kind = Softmax;
    int k = 2, max_k = 0, m = 0;
    bool norm = true;
    double scale = 1.0, p = 0.4;
  } rk_;
  std::vector<ParamView> params_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> params_ position
  std::vector<float> w_, g_, adam_m_, adam_v_, bias_;
  std::unique_ptr<Acts> acts_;
};

}  // namespace sy::train
