// Prefill-sized bf16-compute expert FFNs through oneDNN (see ffn_bf16_dnnl.h).
#include "kernels/ffn_bf16_dnnl.h"

#include <algorithm>
#include <vector>

#include "core/threadpool.h"
#include "kernels/fast_kernels.h"
#include "kernels/gemm_bf16.h"
#include "kernels/train_kernels.h"

namespace sy::fast {
namespace {

// Weight rows per item (measured on Mixtral's prefill shapes: 256 ~8% faster than 128, same as 512).
constexpr int64_t kRowBlock = 256;

const uint16_t* rows_bf16(const WeightRef& W, int64_t r0) {
  return static_cast<const uint16_t*>(W.data) + r0 * W.cols;
}

struct Item {
  int64_t g, r0;
};

}  // namespace

bool ffn_dnnl_eligible(const FfnGroup& g, const FfnParams& p) {
  const bool gated = is_gated(p.act);
  const FfnWeights& w = g.weights;
  return g.n >= kDnnlMinTokens && w.up.dtype == DType::BF16 && w.down.dtype == DType::BF16 &&
         (!gated || w.gate.dtype == DType::BF16) && gemm_bf16_native();
}

void grouped_ffn_dnnl(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p, float* y) {
  const bool gated = is_gated(p.act);
  const int64_t G = int64_t(groups.size());
  // Scratch reused between calls; the lambdas run on pool threads, so they use these references.
  thread_local std::vector<int64_t> tl_x_off, tl_act_off;
  thread_local std::vector<uint16_t> tl_xb, tl_actb;
  thread_local std::vector<Item> tl_up, tl_down;
  std::vector<int64_t>&x_off = tl_x_off, &act_off = tl_act_off;
  std::vector<uint16_t>&xb = tl_xb, &actb = tl_actb;
  std::vector<Item>&up_items = tl_up, &down_items = tl_down;
  x_off.assign(size_t(G) + 1, 0);
  act_off.assign(size_t(G) + 1, 0);
  up_items.clear();
  down_items.clear();
  for (int64_t g = 0; g < G; ++g) {
    const FfnGroup& gr = groups[size_t(g)];
    const int64_t F = gr.weights.up.rows;
    x_off[size_t(g) + 1] = x_off[size_t(g)] + gr.n * H;
    act_off[size_t(g) + 1] = act_off[size_t(g)] + gr.n * F;
    for (int64_t r0 = 0; r0 < F; r0 += kRowBlock) up_items.push_back({g, r0});
    for (int64_t r0 = 0; r0 < H; r0 += kRowBlock) down_items.push_back({g, r0});
  }
  xb.resize(size_t(x_off.back()));
  actb.resize(size_t(act_off.back()));
  ThreadPool& pool = default_pool();

  // 0. token rows -> bf16, one task per group
  pool.parallel_for(G, [&](int64_t g, int) {
    const FfnGroup& gr = groups[size_t(g)];
    for (int64_t i = 0; i < gr.n; ++i)
      to_bf16(xb.data() + x_off[size_t(g)] + i * H, x + int64_t(gr.rows[i]) * H, H);
  });

  // 1. gate/up blocks, activation, rounded to bf16
  pool.parallel_for(int64_t(up_items.size()), [&](int64_t t, int) {
    const Item it = up_items[size_t(t)];
    const FfnGroup& gr = groups[size_t(it.g)];
    const FfnWeights& w = gr.weights;
    const int64_t n = gr.n, F = w.up.rows, nr = std::min(kRowBlock, F - it.r0);
    thread_local std::vector<float> tl_c;
    std::vector<float>& c = tl_c;  // [gate n x nr][up n x nr][one activated row]
    c.resize(size_t(2 * n * nr + nr));
    float *cg = c.data(), *cu = c.data() + n * nr, *row = c.data() + 2 * n * nr;
    const uint16_t* xg = xb.data() + x_off[size_t(it.g)];
    if (gated) gemm_bf16(false, true, n, nr, H, 1.0f, xg, H, rows_bf16(w.gate, it.r0), H, 0.0f, cg, nr);
    gemm_bf16(false, true, n, nr, H, 1.0f, xg, H, rows_bf16(w.up, it.r0), H, 0.0f, cu, nr);
    const float* gb = gated && w.gate_bias ? w.gate_bias + it.r0 : nullptr;
    const float* ub = w.up_bias ? w.up_bias + it.r0 : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      if (gated)
        ffn_act(p, cg + i * nr, cu + i * nr, gb, ub, row, nr);
      else
        ffn_act(p, nullptr, cu + i * nr, nullptr, ub, row, nr);
      to_bf16(actb.data() + act_off[size_t(it.g)] + i * F + it.r0, row, nr);
    }
  });

  // 2. down blocks, scale and bias, into y
  pool.parallel_for(int64_t(down_items.size()), [&](int64_t t, int) {
    const Item it = down_items[size_t(t)];
    const FfnGroup& gr = groups[size_t(it.g)];
    const FfnWeights& w = gr.weights;
    const int64_t n = gr.n, F = w.up.rows, nr = std::min(kRowBlock, H - it.r0);
    thread_local std::vector<float> tl_c;
    std::vector<float>& c = tl_c;
    c.resize(size_t(n * nr));
    gemm_bf16(false, true, n, nr, F, 1.0f, actb.data() + act_off[size_t(it.g)], F, rows_bf16(w.down, it.r0), F, 0.0f,
              c.data(), nr);
    const float* bd = w.down_bias ? w.down_bias + it.r0 : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const float sc = gr.scale ? gr.scale[i] : 1.0f;
      float* yr = y + int64_t(gr.dst[i]) * H + it.r0;
      const float* ci = c.data() + i * nr;
      for (int64_t r = 0; r < nr; ++r) yr[r] = sc * (bd ? ci[r] + bd[r] : ci[r]);
    }
  });
}

}  // namespace sy::fast
