// Placeholder CPU backend: the naive kernels spread over the thread pool, one task per row.
// To be replaced by the fast kernels (kernels/fast_*.cpp).
#include <vector>

#include "core/threadpool.h"
#include "kernels/backend.h"

namespace sy {
namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void linear(const float* x, int64_t M, const WeightRef& W, const float* bias, float* y) override {
    default_pool().parallel_for(M, [&](int64_t m, int) { naive_backend().linear(x + m * W.cols, 1, W, bias, y + m * W.rows); });
  }
  void grouped_ffn(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p, float* y) override {
    std::vector<std::pair<int, int64_t>> items;
    for (int gi = 0; gi < int(groups.size()); ++gi)
      for (int64_t i = 0; i < groups[gi].n; ++i) items.emplace_back(gi, i);
    default_pool().parallel_for(int64_t(items.size()), [&](int64_t t, int) {
      const FfnGroup& g = groups[items[t].first];
      int64_t i = items[t].second;
      FfnGroup one = g;
      one.rows += i;
      one.dst += i;
      if (one.scale) one.scale += i;
      one.n = 1;
      naive_backend().grouped_ffn(x, H, std::span<const FfnGroup>(&one, 1), p, y);
    });
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend b;
  return b;
}

}  // namespace sy
