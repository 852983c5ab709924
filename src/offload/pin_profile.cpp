#include "offload/pin_profile.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace sy::offload {

std::vector<std::vector<int32_t>> hot_experts(const Trace& tr, const std::vector<uint64_t>& expert_bytes,
                                              const std::vector<int>& n_experts, uint64_t pin_bytes) {
  const size_t L = expert_bytes.size();
  SY_CHECK(n_experts.size() == L, "[offload] hot_experts: ", n_experts.size(), " expert counts for ", L, " layers");
  SY_CHECK(size_t(tr.header.n_layers) == L, "[offload] pin profile ", tr.name, ": the trace has ", tr.header.n_layers,
           " layers, the model ", L, "; record the profile with the same model");
  int moe_layers = 0;
  for (size_t l = 0; l < L; ++l) {
    const uint64_t tb = l < tr.header.expert_bytes.size() ? tr.header.expert_bytes[l] : 0;
    SY_CHECK(tb == expert_bytes[l], "[offload] pin profile ", tr.name, ": layer ", l, " experts have ", tb,
             " bytes in the trace, ", expert_bytes[l], " in the model; record the profile with the same model");
    if (expert_bytes[l] > 0) ++moe_layers;
  }
  std::vector<std::vector<int32_t>> out(L);
  if (moe_layers == 0) return out;
  const uint64_t share = pin_bytes / uint64_t(moe_layers);
  for (size_t l = 0; l < L; ++l) {
    if (expert_bytes[l] == 0) continue;
    std::vector<int64_t> count(size_t(n_experts[l]), 0);
    for (const TraceToken& t : tr.tokens) {
      if (l >= t.experts.size()) continue;
      for (int32_t e : t.experts[l]) {
        SY_CHECK(e >= 0 && e < n_experts[l], "[offload] pin profile ", tr.name, ": layer ", l, " chose expert ", e,
                 ", the model has ", n_experts[l]);
        ++count[size_t(e)];
      }
    }
    std::vector<int32_t> order(count.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return count[size_t(a)] > count[size_t(b)]; });
    const uint64_t fit = share / expert_bytes[l];
    for (int32_t e : order) {
      if (count[size_t(e)] == 0 || out[l].size() >= fit) break;
      out[l].push_back(e);
    }
  }
  return out;
}

}  // namespace sy::offload
