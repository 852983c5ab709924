// Routing statistics computed from every MoE call, and the values of the balancing losses.
//   load-balancing loss (Switch, Fedus et al. 2021; HF load_balancing_loss_func):
//     f_i = (token slots that selected i) / T, P_i = mean_t p_t,i,  L = E * sum_i f_i P_i.
//     With null experts (AdaMoE) the m null columns are one bucket: f and P are their means.
//   router z-loss (ST-MoE, Zoph et al. 2022): mean_t (logsumexp_i logits_t,i)^2.
//   entropy: mean_t of -sum_i p_t,i log p_t,i (nats) over the router probabilities.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "moe/router.h"

namespace sy {

struct RoutingStats {
  int64_t n_tokens = 0;
  int n_experts = 0;
  std::vector<int64_t> tokens_per_expert;  // assignments after capacity dropping
  int64_t dropped = 0;
  double experts_per_token_mean = 0;
  int experts_per_token_max = 0;
  int experts_per_token_min = 0;
  double load_max_over_mean = 0;  // max_i load_i / mean_i load_i (1 = perfectly balanced)
  double load_cv = 0;             // std / mean of the per-expert load
  double entropy = 0;             // nats; 0 when the router has no probabilities
  double lb_loss = 0;             // 0 when the router has no probabilities
  double z_loss = 0;              // 0 when the router ignores logits

  // Adds another batch's statistics (token-weighted means; loads summed).
  void merge(const RoutingStats& o);
  std::string summary() const;  // one line
};

// logits: [n_tokens, r.n_scores] or nullptr. n_real = number of real experts (null columns are the
// rest of n_scores).
RoutingStats compute_routing_stats(const Routing& r, const float* logits);

}  // namespace sy
