// Router, dispatch/combine and balancing-loss ops for training (forward/backward pairs; backward
// accumulates, see train/ops.h). Formulas and sources: ../shared/ROUTING.md.
//
// A router's training path is:  logits = W_g x  ->  scores (softmax or sigmoid, train/ops.h)
//   -> selection (piecewise constant, no gradient: top-k on the scores, on scores + bias for the
//      DeepSeek-V3 aux-free bias, or top-p)  -> gates w (gradient flows through the selected score
//      values only)  -> dispatch (gather token rows by expert) -> experts -> combine (weighted
//      scatter-add).
// Null experts (AdaMoE) are score columns >= E: they may be selected (and count in the gate
// normalisation and the balance loss) but are never dispatched: their output is 0.
#pragma once
#include <cstdint>
#include <vector>

namespace sy::train {

// The experts chosen per token, in CSR form: token t uses entries [offsets[t], offsets[t+1]) of
// `col` (score columns, null experts included, in rank order).
struct Selection {
  int64_t n_tokens = 0;
  int n_scores = 0;
  std::vector<int32_t> offsets;  // [n_tokens + 1]
  std::vector<int32_t> col;      // [nnz]
  int64_t nnz() const { return offsets.empty() ? 0 : offsets.back(); }
};

// Top-k of rank[N, S] per row; ties go to the lower column (as sy::routing::topk_indices).
Selection select_topk(const float* rank, int64_t N, int S, int k);
// Top-p (Huang et al. 2024): sort probs descending, keep experts up to AND including the first at
// which the cumulative sum (double) exceeds `threshold`; at most max_k.
Selection select_topp(const float* probs, int64_t N, int S, double threshold, int max_k);

// Gates: w[nnz] for the selected entries of scores[N, S]:
//   w_j = scale * s_j                              (norm = false)
//   w_j = scale * s_j / (sum_{i in S_t} s_i + eps) (norm = true; Mixtral/Qwen eps 0, DeepSeek-V3 1e-20)
// Backward: ds_j += scale dw_j / Z - scale (sum_i dw_i s_i) / Z^2 for every j in S_t (norm), else
// ds_j += scale dw_j. Unselected scores get no gradient.
void gates_forward(float* w, const float* scores, const Selection& sel, bool norm, float eps, float scale);
void gates_backward(float* dscores, const float* dw, const float* scores, const Selection& sel, bool norm, float eps,
                    float scale);

// Row normalisation p = s / sum_c s (DeepSeek-V3's normalised sigmoid affinities for the balance
// loss). Backward: ds_c += (dp_c - sum_c' dp_c' p_c') / sum_c s.
void normalize_rows_forward(float* p, const float* s, int64_t N, int64_t C);
void normalize_rows_backward(float* ds, const float* dp, const float* p, const float* s, int64_t N, int64_t C);

// Token rows grouped by real expert (columns >= n_experts are null experts and get no row).
struct Dispatch {
  int n_experts = 0;
  std::vector<int32_t> expert_offsets;  // [E + 1]: expert e owns rows [off[e], off[e+1])
  std::vector<int32_t> token;           // [rows] source token of each row (ascending within an expert)
  std::vector<int32_t> slot;            // [rows] the Selection entry of each row
  std::vector<int32_t> row_of_slot;     // [nnz] row of each Selection entry, -1 for null experts
  int64_t rows() const { return int64_t(token.size()); }
};
Dispatch make_dispatch(const Selection& sel, int n_experts);

// xe[rows, H] = x[token[r], :].  Backward: dx[t] += sum of its rows' dxe (in Selection order).
void dispatch_forward(float* xe, const float* x, const Dispatch& d, int64_t H);
void dispatch_backward(float* dx, const float* dxe, const Selection& sel, const Dispatch& d, int64_t H);
// y[t, :] = sum_{j in S_t, real} w_j * ye[row_of_slot[j], :]   (y [N, H] overwritten)
// Backward: dye[row] += w_j dy[t];  dw_j += dy[t] . ye[row]  (0 for null experts).
void combine_forward(float* y, const float* ye, const float* w, const Selection& sel, const Dispatch& d, int64_t H);
void combine_backward(float* dye, float* dw, const float* dy, const float* ye, const float* w, const Selection& sel,
                      const Dispatch& d, int64_t H);

// Token slots per score column (null experts included) and their fraction f_i = count_i / N.
std::vector<int64_t> selection_counts(const Selection& sel);
std::vector<double> selection_fraction(const Selection& sel);

// Switch load-balancing loss (Fedus et al. 2021; HF load_balancing_loss_func), probs [N, S],
// f [S] = fraction of token slots per column (per micro-batch, or accumulated over the global
// batch as in "Demons in the Detail", Qiu et al. 2025), constant:
//   P_i = mean_t p_t,i;  L = E * (sum_{i<E} f_i P_i + [m > 0] mean_{i>=E} f_i * mean_{i>=E} P_i)
// (the m = S - E null columns are one averaged bucket, AdaMoE). Gradient through P only:
//   dp_t,i += coef * E * f_i / N (i < E);  coef * E * mean_null(f) / (m N) (i >= E). Returns L.
double balance_loss(float* dprobs, const float* probs, int64_t N, int S, int E, const double* f, float coef);
// Router z-loss (ST-MoE, Zoph et al. 2022): L = mean_t (logsumexp_i l_t,i)^2;
//   dl_t,i += coef * 2 lse_t softmax(l_t)_i / N. Returns L.
double z_loss(float* dlogits, const float* logits, int64_t N, int S, float coef);
// Dynamic (entropy) loss of top-p routing (Huang et al. 2024): L = mean_t -sum_i p log p;
//   dp_t,i += coef * -(log p_t,i + 1) / N. Returns L.
double entropy_loss(float* dprobs, const float* probs, int64_t N, int S, float coef);

// DeepSeek auxiliary-loss-free balancing (Wang et al. 2024; DeepSeek-V3): after a step,
// b_i += rate * sign(mean_j load_j - load_i) (sign(0) = 0). No gradient; b only affects selection.
void aux_free_bias_update(float* bias, const int64_t* load, int E, float rate);

}  // namespace sy::train
