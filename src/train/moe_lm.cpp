#include "train/moe_lm.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "kernels/gemm_bf16.h"
#include "moe/router.h"
#include "train/ops.h"
#include "train/routing_ops.h"

namespace sy::train {

using Vec = std::vector<float>;

// Everything the backward pass needs from the forward pass, per layer.
struct MoELM::Acts {
  struct Layer {
    Vec x_in, ln1, rstd1, q_raw, k_raw, qn, kn, rstd_q, rstd_k, qr, kr, v, att, atty, x_mid, ln2, rstd2;
    Vec logits, scores, bal_p, gates;  // scores: softmax p or sigmoid s; bal_p: balance-loss probs
    Selection sel;
    Dispatch disp;
    Vec xe, eg, eu, eh, ye;          // expert rows [rows, H] / [rows, F]
    Vec sg, su, sh, sy, sgl, sgs;    // shared expert [N, Fs] / [N, H], gate logit / sigmoid [N]
    Vec moe;
  };
  std::vector<Layer> layers;
  Vec x_final, lnf, rstdf, logits;
  std::vector<int64_t> pos;
  // Scratch reused across calls (no allocation or page faults per step): forward temporaries and
  // the backward pass's gradients of activations, zeroed before each use.
  Vec x, o, biased, dlogits, dlnf, dx, dsy, dgl, dln2, dye, dxe, dgates, dscores, dlog, dbal, datty, dqr, dkr, dv, dqn,
      dkn, dq, dk, dln1;
};

namespace {
// v resized to n and set to zero; keeps its capacity, so steady-state calls do not allocate.
Vec& zeroed(Vec& v, size_t n) {
  v.assign(n, 0.0f);
  return v;
}
}  // namespace

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

MoELM::MoELM(MoELMConfig cfg) : cfg_(std::move(cfg)), acts_(std::make_unique<Acts>()) {
  const auto& c = cfg_;
  SY_CHECK(c.vocab > 0 && c.hidden > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 && c.head_dim > 0 &&
               c.n_experts > 0 && c.expert_ffn > 0 && c.shared_ffn >= 0,
           "[train moe_lm] sizes must be positive (vocab ", c.vocab, ", hidden ", c.hidden, ", layers ", c.n_layers,
           ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim, ", experts ", c.n_experts,
           ", expert_ffn ", c.expert_ffn, ")");
  SY_CHECK(c.n_heads % c.n_kv_heads == 0, "[train moe_lm] n_heads ", c.n_heads, " is not a multiple of n_kv_heads ",
           c.n_kv_heads);
  SY_CHECK(c.head_dim % 2 == 0, "[train moe_lm] head_dim ", c.head_dim, " must be even (RoPE)");
  const int E = int(c.n_experts);

  RouterSpec s = RouterSpec::parse(c.router);
  if (s.name == "topk") {
    rk_.kind = RouterKind::Softmax;
    rk_.k = int(s.get_int("k", 2));
    rk_.norm = s.get_bool("norm", true);
    SY_CHECK(rk_.k >= 1 && rk_.k <= E, "[train router topk] k=", rk_.k, " must be in [1, ", E, "]");
  } else if (s.name == "sigmoid") {
    rk_.kind = RouterKind::Sigmoid;
    rk_.k = int(s.get_int("k", 2));
    rk_.norm = s.get_bool("norm", true);
    rk_.scale = s.get_float("scale", 1.0);
    SY_CHECK(s.get_int("groups", 1) == 1 && s.get_int("topk_group", 1) == 1,
             "[train router sigmoid] group-limited routing (groups > 1) is not supported by the trainer");
    SY_CHECK(rk_.k >= 1 && rk_.k <= E, "[train router sigmoid] k=", rk_.k, " must be in [1, ", E, "]");
    SY_CHECK(rk_.scale > 0, "[train router sigmoid] scale=", rk_.scale, " must be greater than 0");
  } else if (s.name == "topp") {
    rk_.kind = RouterKind::TopP;
    rk_.p = s.get_float("p", 0.4);
    rk_.max_k = int(s.get_int("max_k", E));
    SY_CHECK(rk_.p > 0 && rk_.p <= 1, "[train router topp] p=", rk_.p, " must be in (0, 1]");
    SY_CHECK(rk_.max_k >= 1 && rk_.max_k <= E, "[train router topp] max_k=", rk_.max_k, " must be in [1, ", E, "]");
  } else if (s.name == "null") {
    rk_.kind = RouterKind::Null;
    rk_.m = int(s.get_int("m", E));
    rk_.k = int(s.get_int("k", 2));
    rk_.norm = s.get_bool("norm", true);
    SY_CHECK(rk_.m >= 1, "[train router null] m=", rk_.m, " must be at least 1");
    SY_CHECK(rk_.k >= 1 && rk_.k <= E + rk_.m, "[train router null] k=", rk_.k, " must be in [1, ", E + rk_.m, "]");
  } else if (s.name == "hash" || s.name == "random" || s.name == "stochastic" || s.name == "fixed_random") {
    fail("[train moe_lm] router '", s.name,
         "' has no gradient through the gate (its selection ignores the router weights), so it cannot be trained "
         "as published; trainable routers: topk, sigmoid, topp, null");
  } else if (s.name == "expert_choice") {
    fail("[train moe_lm] router 'expert_choice' is not causal (each expert picks tokens from the whole batch), so "
         "it cannot train an autoregressive language model; trainable routers: topk, sigmoid, topp, null");
  } else {
    fail("[train moe_lm] router '", s.name, "' is not supported for training; trainable routers: topk, sigmoid, "
         "topp, null");
  }
  s.finish();

  // Parameter layout.
  const int64_t H = c.hidden, D = c.head_dim, S = n_scores();
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    index_[name] = params_.size();
    params_.push_back({name, shape, off, n, shape.size() > 1});
    off += n;
  };
  add("model.embed_tokens.weight", {c.vocab, H});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = str("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {H});
    // q/k/v_proj stay adjacent (and each expert's gate/up_proj): forward_backward runs them as one
    // stacked product (linear_forward_stacked).
    add(p + "self_attn.q_proj.weight", {c.n_heads * D, H});
    add(p + "self_attn.k_proj.weight", {c.n_kv_heads * D, H});
    add(p + "self_attn.v_proj.weight", {c.n_kv_heads * D, H});
    add(p + "self_attn.o_proj.weight", {H, c.n_heads * D});
    add(p + "self_attn.q_norm.weight", {D});
    add(p + "self_attn.k_norm.weight", {D});
    add(p + "post_attention_layernorm.weight", {H});
    add(p + "mlp.gate.weight", {S, H});
    for (int64_t e = 0; e < c.n_experts; ++e) {
      const std::string q = str(p, "mlp.experts.", e, ".");
      add(q + "gate_proj.weight", {c.expert_ffn, H});
      add(q + "up_proj.weight", {c.expert_ffn, H});
      add(q + "down_proj.weight", {H, c.expert_ffn});
    }
    if (c.shared_ffn > 0) {
      add(p + "mlp.shared_expert.gate_proj.weight", {c.shared_ffn, H});
      add(p + "mlp.shared_expert.up_proj.weight", {c.shared_ffn, H});
      add(p + "mlp.shared_expert.down_proj.weight", {H, c.shared_ffn});
      if (c.shared_gate) add(p + "mlp.shared_expert_gate.weight", {1, H});
    }
  }
  add("model.norm.weight", {H});
  add("lm_head.weight", {c.vocab, H});
  w_.assign(size_t(off), 0.0f);
  g_.assign(size_t(off), 0.0f);
  adam_m_.assign(size_t(off), 0.0f);
  adam_v_.assign(size_t(off), 0.0f);
  bias_.assign(size_t(c.n_layers * c.n_experts), 0.0f);
}

MoELM::~MoELM() = default;

int MoELM::n_scores() const { return int(cfg_.n_experts) + (rk_.kind == RouterKind::Null ? rk_.m : 0); }

const ParamView& MoELM::param(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return params_[it->second];
  fail("[train moe_lm] no parameter named '", name, "'");
}

std::span<float> MoELM::router_bias(int64_t layer) {
  SY_CHECK(layer >= 0 && layer < cfg_.n_layers, "[train moe_lm] layer ", layer, " outside [0, ", cfg_.n_layers, ")");
  return {bias_.data() + layer * cfg_.n_experts, size_t(cfg_.n_experts)};
}

void MoELM::init(uint64_t seed) {
  uint64_t st = seed;
  for (const auto& p : params_) {
    float* w = w_.data() + p.offset;
    if (p.shape.size() == 1) {
      std::fill(w, w + p.numel, 1.0f);
      continue;
    }
    for (int64_t i = 0; i < p.numel; ++i) {
      const double u1 = (double(splitmix(st) >> 11) + 1.0) * 0x1.0p-53, u2 = double(splitmix(st) >> 11) * 0x1.0p-53;
      w[i] = float(0.02 * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
    }
  }
  std::fill(bias_.begin(), bias_.end(), 0.0f);
  std::fill(adam_m_.begin(), adam_m_.end(), 0.0f);
  std::fill(adam_v_.begin(), adam_v_.end(), 0.0f);
}

void MoELM::zero_grad() { std::fill(g_.begin(), g_.end(), 0.0f); }

void MoELM::set_matmul_precision(MatmulPrecision p) {
  SY_CHECK(p != MatmulPrecision::bf16 || fast::gemm_bf16_native(), "[train] bf16 precision: oneDNN has no native bf16 ",
           "matrix product on this CPU (it would use '", fast::gemm_bf16_impl(), "', far slower than f32); use f32");
  precision_ = p;
}

StepStats MoELM::forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t B,
                                  int64_t T, bool backward, float loss_scale,
                                  const std::vector<std::vector<double>>* balance_f) {
  const auto& c = cfg_;
  const int64_t N = B * T, H = c.hidden, D = c.head_dim, Hq = c.n_heads, Hkv = c.n_kv_heads, F = c.expert_ffn,
                Fs = c.shared_ffn, E = c.n_experts, L = c.n_layers, V = c.vocab;
  const int S = n_scores();
  SY_CHECK(B > 0 && T > 0, "[train moe_lm] batch ", B, " x ", T, " is empty");
  SY_CHECK(int64_t(tokens.size()) == N && int64_t(targets.size()) == N, "[train moe_lm] expected ", N,
           " tokens and targets (", B, " x ", T, "), got ", tokens.size(), " and ", targets.size());
  SY_CHECK(!balance_f || int64_t(balance_f->size()) == L, "[train moe_lm] balance_f has ", balance_f->size(),
           " layers, expected ", L);
  const ScopedMatmulPrecision precision(precision_);
  auto W = [&](const std::string& n) { return w_.data() + param(n).offset; };
  auto G = [&](const std::string& n) { return g_.data() + param(n).offset; };
  Acts& a = *acts_;
  a.layers.resize(size_t(L));
  a.pos.resize(size_t(N));
  for (int64_t n = 0; n < N; ++n) a.pos[size_t(n)] = n % T;
  StepStats stats;
  stats.tokens = N;
  stats.load.resize(size_t(L));

  Vec& x = zeroed(a.x, size_t(N * H));
  embedding_forward(x.data(), tokens.data(), W("model.embed_tokens.weight"), N, V, H);
  for (int64_t l = 0; l < L; ++l) {
    auto& A = a.layers[size_t(l)];
    const std::string p = str("model.layers.", l, ".");
    A.x_in = x;
    A.ln1.resize(size_t(N * H));
    A.rstd1.resize(size_t(N));
    rmsnorm_forward(A.ln1.data(), A.rstd1.data(), x.data(), W(p + "input_layernorm.weight"), N, H, c.rms_eps);
    A.q_raw.resize(size_t(N * Hq * D));
    A.k_raw.resize(size_t(N * Hkv * D));
    A.v.resize(size_t(N * Hkv * D));
    {  // q, k, v projections: adjacent in the parameter buffer, one product
      float* outs[3] = {A.q_raw.data(), A.k_raw.data(), A.v.data()};
      const int64_t widths[3] = {Hq * D, Hkv * D, Hkv * D};
      linear_forward_stacked(outs, widths, A.ln1.data(), W(p + "self_attn.q_proj.weight"), N, H);
    }
    A.qn.resize(A.q_raw.size());
    A.kn.resize(A.k_raw.size());
    A.rstd_q.resize(size_t(N * Hq));
    A.rstd_k.resize(size_t(N * Hkv));
    rmsnorm_forward(A.qn.data(), A.rstd_q.data(), A.q_raw.data(), W(p + "self_attn.q_norm.weight"), N * Hq, D,
                    c.rms_eps);
    rmsnorm_forward(A.kn.data(), A.rstd_k.data(), A.k_raw.data(), W(p + "self_attn.k_norm.weight"), N * Hkv, D,
                    c.rms_eps);
    A.qr.resize(A.qn.size());
    A.kr.resize(A.kn.size());
    rope_forward(A.qr.data(), A.qn.data(), a.pos.data(), N, Hq, D, c.rope_theta);
    rope_forward(A.kr.data(), A.kn.data(), a.pos.data(), N, Hkv, D, c.rope_theta);
    A.att.resize(size_t(B * Hq * T * T));
    A.atty.resize(size_t(N * Hq * D));
    attention_forward(A.atty.data(), A.att.data(), A.qr.data(), A.kr.data(), A.v.data(), B, T, Hq, Hkv, D);
    Vec& o = zeroed(a.o, size_t(N * H));
    linear_forward(o.data(), A.atty.data(), W(p + "self_attn.o_proj.weight"), nullptr, N, Hq * D, H);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    A.x_mid = x;
    A.ln2.resize(size_t(N * H));
    A.rstd2.resize(size_t(N));
    rmsnorm_forward(A.ln2.data(), A.rstd2.data(), x.data(), W(p + "post_attention_layernorm.weight"), N, H, c.rms_eps);

    // Router.
    A.logits.resize(size_t(N * S));
    {
      const ScopedMatmulPrecision router_f32(MatmulPrecision::f32);  // routing stays f32 (see header)
      linear_forward(A.logits.data(), A.ln2.data(), W(p + "mlp.gate.weight"), nullptr, N, H, S);
    }
    A.scores.resize(A.logits.size());
    if (rk_.kind == RouterKind::Sigmoid) {
      sigmoid_forward(A.scores.data(), A.logits.data(), N * S);
      Vec& biased = a.biased;
      biased = A.scores;
      const float* b = bias_.data() + l * E;
      for (int64_t t = 0; t < N; ++t)
        for (int i = 0; i < S; ++i) biased[size_t(t * S + i)] += b[i];
      A.sel = select_topk(biased.data(), N, S, rk_.k);
      A.bal_p.resize(A.scores.size());
      normalize_rows_forward(A.bal_p.data(), A.scores.data(), N, S);
    } else {
      softmax_forward(A.scores.data(), A.logits.data(), N, S);
      A.sel = rk_.kind == RouterKind::TopP ? select_topp(A.scores.data(), N, S, rk_.p, rk_.max_k)
                                           : select_topk(A.scores.data(), N, S, rk_.k);
    }
    const bool norm = rk_.kind != RouterKind::TopP && rk_.norm;
    const float eps = rk_.kind == RouterKind::Sigmoid ? 1e-20f : 0.0f;
    const float gscale = rk_.kind == RouterKind::Sigmoid ? float(rk_.scale) : 1.0f;
    A.gates.resize(size_t(A.sel.nnz()));
    gates_forward(A.gates.data(), A.scores.data(), A.sel, norm, eps, gscale);
    stats.load[size_t(l)] = selection_counts(A.sel);
    const float* bal = rk_.kind == RouterKind::Sigmoid ? A.bal_p.data() : A.scores.data();
    std::vector<double> f_own = selection_fraction(A.sel);
    const double* f = balance_f ? (*balance_f)[size_t(l)].data() : f_own.data();
    SY_CHECK(!balance_f || int64_t((*balance_f)[size_t(l)].size()) == S, "[train moe_lm] balance_f[", l, "] has ",
             (*balance_f)[size_t(l)].size(), " values, expected ", S);
    stats.balance += balance_loss(nullptr, bal, N, S, int(E), f, 0.0f) / double(L);
    stats.z += z_loss(nullptr, A.logits.data(), N, S, 0.0f) / double(L);
    if (rk_.kind != RouterKind::Sigmoid) stats.entropy += entropy_loss(nullptr, A.scores.data(), N, S, 0.0f) / double(L);

    // Experts.
    A.disp = make_dispatch(A.sel, int(E));
    const int64_t R = A.disp.rows();
    A.xe.resize(size_t(R * H));
    A.ye.resize(size_t(R * H));
    A.eg.resize(size_t(R * F));
    A.eu.resize(size_t(R * F));
    A.eh.resize(size_t(R * F));
    dispatch_forward(A.xe.data(), A.ln2.data(), A.disp, H);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t r0 = A.disp.expert_offsets[size_t(e)], m = A.disp.expert_offsets[size_t(e) + 1] - r0;
      const std::string q = str(p, "mlp.experts.", e, ".");
      swiglu_ffn_forward(A.ye.data() + r0 * H, {A.eg.data() + r0 * F, A.eu.data() + r0 * F, A.eh.data() + r0 * F},
                         A.xe.data() + r0 * H, W(q + "gate_proj.weight"), W(q + "up_proj.weight"),
                         W(q + "down_proj.weight"), m, H, F);
    }
    A.moe.resize(size_t(N * H));
    combine_forward(A.moe.data(), A.ye.data(), A.gates.data(), A.sel, A.disp, H);
    if (Fs > 0) {
      A.sg.resize(size_t(N * Fs));
      A.su.resize(size_t(N * Fs));
      A.sh.resize(size_t(N * Fs));
      A.sy.resize(size_t(N * H));
      swiglu_ffn_forward(A.sy.data(), {A.sg.data(), A.su.data(), A.sh.data()}, A.ln2.data(),
                         W(p + "mlp.shared_expert.gate_proj.weight"), W(p + "mlp.shared_expert.up_proj.weight"),
                         W(p + "mlp.shared_expert.down_proj.weight"), N, H, Fs);
      A.sgs.assign(size_t(N), 1.0f);
      if (c.shared_gate) {
        A.sgl.resize(size_t(N));
        const ScopedMatmulPrecision gate_f32(MatmulPrecision::f32);
        linear_forward(A.sgl.data(), A.ln2.data(), W(p + "mlp.shared_expert_gate.weight"), nullptr, N, H, 1);
        sigmoid_forward(A.sgs.data(), A.sgl.data(), N);
      }
      for (int64_t t = 0; t < N; ++t)
        for (int64_t h = 0; h < H; ++h) A.moe[size_t(t * H + h)] += A.sgs[size_t(t)] * A.sy[size_t(t * H + h)];
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += A.moe[i];
  }
  a.x_final = x;
  a.lnf.resize(size_t(N * H));
  a.rstdf.resize(size_t(N));
  rmsnorm_forward(a.lnf.data(), a.rstdf.data(), x.data(), W("model.norm.weight"), N, H, c.rms_eps);
  a.logits.resize(size_t(N * V));
  linear_forward(a.logits.data(), a.lnf.data(), W("lm_head.weight"), nullptr, N, H, V);
  Vec& dlogits = a.dlogits;
  if (backward) zeroed(dlogits, a.logits.size());
  stats.ce = cross_entropy(backward ? dlogits.data() : nullptr, a.logits.data(), targets.data(), N, V, loss_scale);
  stats.loss = stats.ce + c.lb_coef * stats.balance + c.z_coef * stats.z + c.entropy_coef * stats.entropy;
  if (!backward) return stats;

  // Backward.
  Vec& dlnf = zeroed(a.dlnf, size_t(N * H));
  Vec& dx = zeroed(a.dx, size_t(N * H));
  linear_backward(dlnf.data(), G("lm_head.weight"), nullptr, dlogits.data(), a.lnf.data(), W("lm_head.weight"), N, H,
                  V);
  rmsnorm_backward(dx.data(), G("model.norm.weight"), dlnf.data(), a.x_final.data(), W("model.norm.weight"),
                   a.rstdf.data(), N, H);
  for (int64_t l = L - 1; l >= 0; --l) {
    auto& A = a.layers[size_t(l)];
    const std::string p = str("model.layers.", l, ".");
    // x_out = x_mid + moe(ln2): dmoe = dx; dx already holds dx_mid's residual part.
    const float* dmoe = dx.data();
    Vec& dln2 = zeroed(a.dln2, size_t(N * H));
    if (Fs > 0) {
      Vec& dsy = zeroed(a.dsy, size_t(N * H));
      for (int64_t t = 0; t < N; ++t)
        for (int64_t h = 0; h < H; ++h) dsy[size_t(t * H + h)] = A.sgs[size_t(t)] * dmoe[t * H + h];
      if (c.shared_gate) {
        Vec& dgl = zeroed(a.dgl, size_t(N));
        for (int64_t t = 0; t < N; ++t) {
          double d = 0;
          for (int64_t h = 0; h < H; ++h) d += double(dmoe[t * H + h]) * A.sy[size_t(t * H + h)];
          dgl[size_t(t)] = float(d) * A.sgs[size_t(t)] * (1.0f - A.sgs[size_t(t)]);
        }
        const ScopedMatmulPrecision gate_f32(MatmulPrecision::f32);
        linear_backward(dln2.data(), G(p + "mlp.shared_expert_gate.weight"), nullptr, dgl.data(), A.ln2.data(),
                        W(p + "mlp.shared_expert_gate.weight"), N, H, 1);
      }
      swiglu_ffn_backward(dln2.data(), G(p + "mlp.shared_expert.gate_proj.weight"),
                          G(p + "mlp.shared_expert.up_proj.weight"), G(p + "mlp.shared_expert.down_proj.weight"),
                          dsy.data(), A.ln2.data(), {A.sg.data(), A.su.data(), A.sh.data()},
                          W(p + "mlp.shared_expert.gate_proj.weight"), W(p + "mlp.shared_expert.up_proj.weight"),
                          W(p + "mlp.shared_expert.down_proj.weight"), N, H, Fs);
    }
    const int64_t R = A.disp.rows();
    Vec& dye = zeroed(a.dye, size_t(R * H));
    Vec& dxe = zeroed(a.dxe, size_t(R * H));
    Vec& dgates = zeroed(a.dgates, A.gates.size());
    combine_backward(dye.data(), dgates.data(), dmoe, A.ye.data(), A.gates.data(), A.sel, A.disp, H);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t r0 = A.disp.expert_offsets[size_t(e)], m = A.disp.expert_offsets[size_t(e) + 1] - r0;
      const std::string q = str(p, "mlp.experts.", e, ".");
      swiglu_ffn_backward(dxe.data() + r0 * H, G(q + "gate_proj.weight"), G(q + "up_proj.weight"),
                          G(q + "down_proj.weight"), dye.data() + r0 * H, A.xe.data() + r0 * H,
                          {A.eg.data() + r0 * F, A.eu.data() + r0 * F, A.eh.data() + r0 * F},
                          W(q + "gate_proj.weight"), W(q + "up_proj.weight"), W(q + "down_proj.weight"), m, H, F);
    }
    dispatch_backward(dln2.data(), dxe.data(), A.sel, A.disp, H);
    // Router: gates, auxiliary losses, scores, logits.
    const bool norm = rk_.kind != RouterKind::TopP && rk_.norm;
    const float eps = rk_.kind == RouterKind::Sigmoid ? 1e-20f : 0.0f;
    const float gscale = rk_.kind == RouterKind::Sigmoid ? float(rk_.scale) : 1.0f;
    Vec& dscores = zeroed(a.dscores, A.scores.size());
    Vec& dlog = zeroed(a.dlog, A.logits.size());
    gates_backward(dscores.data(), dgates.data(), A.scores.data(), A.sel, norm, eps, gscale);
    const float lscale = loss_scale / float(L);
    std::vector<double> f_own = selection_fraction(A.sel);
    const double* f = balance_f ? (*balance_f)[size_t(l)].data() : f_own.data();
    if (rk_.kind == RouterKind::Sigmoid) {
      Vec& dbal = zeroed(a.dbal, A.scores.size());
      balance_loss(dbal.data(), A.bal_p.data(), N, S, int(E), f, c.lb_coef * lscale);
      normalize_rows_backward(dscores.data(), dbal.data(), A.bal_p.data(), A.scores.data(), N, S);
      sigmoid_backward(dlog.data(), dscores.data(), A.scores.data(), N * S);
    } else {
      balance_loss(dscores.data(), A.scores.data(), N, S, int(E), f, c.lb_coef * lscale);
      if (c.entropy_coef != 0) entropy_loss(dscores.data(), A.scores.data(), N, S, c.entropy_coef * lscale);
      softmax_backward(dlog.data(), dscores.data(), A.scores.data(), N, S);
    }
    if (c.z_coef != 0) z_loss(dlog.data(), A.logits.data(), N, S, c.z_coef * lscale);
    {
      const ScopedMatmulPrecision router_f32(MatmulPrecision::f32);
      linear_backward(dln2.data(), G(p + "mlp.gate.weight"), nullptr, dlog.data(), A.ln2.data(),
                      W(p + "mlp.gate.weight"), N, H, S);
    }
    rmsnorm_backward(dx.data(), G(p + "post_attention_layernorm.weight"), dln2.data(), A.x_mid.data(),
                     W(p + "post_attention_layernorm.weight"), A.rstd2.data(), N, H);
    // x_mid = x_in + o_proj(attn): do = dx (dx now holds all of dx_mid).
    Vec& datty = zeroed(a.datty, A.atty.size());
    linear_backward(datty.data(), G(p + "self_attn.o_proj.weight"), nullptr, dx.data(), A.atty.data(),
                    W(p + "self_attn.o_proj.weight"), N, Hq * D, H);
    Vec& dqr = zeroed(a.dqr, A.qr.size());
    Vec& dkr = zeroed(a.dkr, A.kr.size());
    Vec& dv = zeroed(a.dv, A.v.size());
    attention_backward(dqr.data(), dkr.data(), dv.data(), datty.data(), A.qr.data(), A.kr.data(), A.v.data(),
                       A.att.data(), B, T, Hq, Hkv, D);
    Vec& dqn = zeroed(a.dqn, A.qn.size());
    Vec& dkn = zeroed(a.dkn, A.kn.size());
    rope_backward(dqn.data(), dqr.data(), a.pos.data(), N, Hq, D, c.rope_theta);
    rope_backward(dkn.data(), dkr.data(), a.pos.data(), N, Hkv, D, c.rope_theta);
    Vec& dq = zeroed(a.dq, A.q_raw.size());
    Vec& dk = zeroed(a.dk, A.k_raw.size());
    rmsnorm_backward(dq.data(), G(p + "self_attn.q_norm.weight"), dqn.data(), A.q_raw.data(),
                     W(p + "self_attn.q_norm.weight"), A.rstd_q.data(), N * Hq, D);
    rmsnorm_backward(dk.data(), G(p + "self_attn.k_norm.weight"), dkn.data(), A.k_raw.data(),
                     W(p + "self_attn.k_norm.weight"), A.rstd_k.data(), N * Hkv, D);
    Vec& dln1 = zeroed(a.dln1, size_t(N * H));
    {
      const float* douts[3] = {dq.data(), dk.data(), dv.data()};
      const int64_t widths[3] = {Hq * D, Hkv * D, Hkv * D};
      linear_backward_stacked(dln1.data(), G(p + "self_attn.q_proj.weight"), douts, widths, A.ln1.data(),
                              W(p + "self_attn.q_proj.weight"), N, H);
    }
    rmsnorm_backward(dx.data(), G(p + "input_layernorm.weight"), dln1.data(), A.x_in.data(),
                     W(p + "input_layernorm.weight"), A.rstd1.data(), N, H);
  }
  embedding_backward(G("model.embed_tokens.weight"), dx.data(), tokens.data(), N, H);
  return stats;
}

void MoELM::update_router_bias(const std::vector<std::vector<int64_t>>& load) {
  if (rk_.kind != RouterKind::Sigmoid) return;
  SY_CHECK(int64_t(load.size()) == cfg_.n_layers, "[train moe_lm] load has ", load.size(), " layers, expected ",
           cfg_.n_layers);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    SY_CHECK(int64_t(load[size_t(l)].size()) >= cfg_.n_experts, "[train moe_lm] load of layer ", l, " has ",
             load[size_t(l)].size(), " experts, expected ", cfg_.n_experts);
    aux_free_bias_update(bias_.data() + l * cfg_.n_experts, load[size_t(l)].data(), int(cfg_.n_experts),
                         cfg_.bias_update_rate);
  }
}

void MoELM::adamw_step(int64_t t, float lr, float wd, const AdamWParams& hp) {
  for (const auto& p : params_)
    train::adamw_step(w_.data() + p.offset, g_.data() + p.offset, adam_m_.data() + p.offset,
                      adam_v_.data() + p.offset, p.numel, t, lr, p.decay ? wd : 0.0f, hp);
}

std::vector<TensorToWrite> MoELM::tensors() const {
  std::vector<TensorToWrite> out;
  for (const auto& p : params_) out.push_back({p.name, DType::F32, p.shape, w_.data() + p.offset});
  if (rk_.kind == RouterKind::Sigmoid)
    for (int64_t l = 0; l < cfg_.n_layers; ++l)
      out.push_back({str("model.layers.", l, ".mlp.gate.e_score_correction_bias"), DType::F32, {cfg_.n_experts},
                     bias_.data() + l * cfg_.n_experts});
  return out;
}

}  // namespace sy::train
