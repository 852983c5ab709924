// The fast CPU backend: work is cut into (group, token block, output-row block) items that the
// persistent thread pool's threads claim from an atomic counter; each item is one tile of
// fast_kernels.h. Item boundaries depend only on the shapes, never on the thread count, and no
// reduction is split across items, so results are bitwise identical for any number of threads.
//
// grouped_ffn runs in two parallel phases:
//   1. per (expert, token block of <= kMC, F block of kNT): gate and up rows in one tile (one pass
//      over x for both), activation applied in the epilogue -> act[group][token][F] (f32 scratch);
//   2. per (expert, token block, H block of kNT): down projection of act, epilogue
//      y[dst] = scale * (down act + down_bias).
// Decode (1 token per expert) then streams each active expert's weights once, rows split across
// threads; prefill widens each weight block once per token block and reuses it for all its tokens.
//
// Two instances: cpu_backend() computes in f32 (fast::matmul_tile); cpu_bf16_backend() runs
// grouped_ffn's matmuls with activations and weights rounded to bf16, summed in f32
// (fast::matmul_tile_bf16, vdpbf16ps), an opt-in precision class like PyTorch's bf16 matmuls; its
// prefill-sized groups with bf16 weights take oneDNN's bf16 matmul instead (ffn_bf16_dnnl.h).
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "kernels/fast_kernels.h"
#include "kernels/ffn_bf16_dnnl.h"

namespace sy {
namespace {

using fast::kMaxTileRows;
using fast::kMC;
using fast::kNT;

const void* row_ptr(const WeightRef& W, int64_t r) {
  return static_cast<const char*>(W.data) + size_t(r) * size_t(W.cols) * dtype_size(W.dtype);
}

void check_weight(const WeightRef& W, const char* what, int64_t g, int64_t rows, int64_t cols) {
  SY_CHECK(!W.empty(), "[cpu backend] group ", g, ": ", what, " weight is missing");
  SY_CHECK(W.dtype == DType::F32 || W.dtype == DType::BF16 || W.dtype == DType::F16, "[cpu backend] group ", g, ": ",
           what, " weight has dtype ", dtype_name(W.dtype), ", expected f32, bf16 or f16");
  SY_CHECK(W.rows == rows && W.cols == cols, "[cpu backend] group ", g, ": ", what, " weight is [", W.rows, ", ",
           W.cols, "], expected [", rows, ", ", cols, "]");
}

// Per-thread scratch: the tile's own scratch, then a C tile [kMC][kMaxTileRows].
struct Scratch {
  float* tile;
  float* c;
};
Scratch thread_scratch() {
  static const size_t tile = std::max(fast::tile_scratch_floats(), fast::tile_scratch_floats_bf16());
  thread_local std::vector<float> buf;
  if (buf.empty()) buf.resize(tile + size_t(kMC) * kMaxTileRows);
  return {buf.data(), buf.data() + tile};
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs one tile: rows [r0, r0+nr) of each weight in ws (1 or 2 matrices, same K) against the
// token rows xs, into C (ldc kMaxTileRows): C[m][w*nr + r]. bf16: bf16 compute.
void run_tile(const float* const* xs, int nm, const WeightRef* const* ws, int nw, int64_t r0, int nr, float* C,
              float* scratch, bool bf16) {
  const void* rows[kMaxTileRows];
  auto call = [&](int first, int count) {
    fast::TileArgs a;
    a.xs = xs;
    a.nm = nm;
    int n = 0;
    for (int w = first; w < first + count; ++w)
      for (int r = 0; r < nr; ++r) rows[n++] = row_ptr(*ws[w], r0 + r);
    a.ws = rows;
    a.nrows = n;
    a.wtype = ws[first]->dtype;
    a.K = ws[first]->cols;
    a.C = C + first * nr;
    a.ldc = kMaxTileRows;
    if (bf16)
      fast::matmul_tile_bf16(a, scratch);
    else
      fast::matmul_tile(a, scratch);
  };
  if (nw == 2 && ws[0]->dtype != ws[1]->dtype) {
    call(0, 1);
    call(1, 1);
  } else {
    call(0, nw);
  }
}

// Below this many multiply-adds a call runs on the calling thread: waking the pool costs more.
constexpr int64_t kMinParallelMacs = int64_t(1) << 18;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(bool bf16) : bf16_(bf16) {}
  const char* name() const override { return bf16_ ? "cpu-bf16" : "cpu"; }

  void linear(const float* x, int64_t M, const WeightRef& W, const float* bias, float* y) override {
    SY_CHECK(M >= 0, "[cpu backend] linear: negative row count ", M);
    if (M == 0 || W.rows == 0) return;
    check_weight(W, "linear", 0, W.rows, W.cols);
    const int64_t N = W.rows, K = W.cols;
    const int64_t nrt = ceil_div(N, kNT);
    const WeightRef* ws[1] = {&W};
    default_pool().parallel_for(ceil_div(M, kMC) * nrt, M * N * K, kMinParallelMacs, [&](int64_t t, int) {
      const int64_t m0 = t / nrt * kMC, r0 = t % nrt * kNT;
      const int nm = int(std::min<int64_t>(kMC, M - m0)), nr = int(std::min<int64_t>(kNT, N - r0));
      Scratch s = thread_scratch();
      const float* xs[kMC];
      for (int i = 0; i < nm; ++i) xs[i] = x + (m0 + i) * K;
      run_tile(xs, nm, ws, 1, r0, nr, s.c, s.tile, false);  // linear stays f32 (see backend.h)
      for (int i = 0; i < nm; ++i) {
        float* yr = y + (m0 + i) * N + r0;
        const float* c = s.c + int64_t(i) * kMaxTileRows;
        for (int r = 0; r < nr; ++r) yr[r] = bias ? c[r] + bias[r0 + r] : c[r];
      }
    });
  }

  void grouped_ffn(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p,
                   float* y) override {
    if (!bf16_) return grouped_ffn_tiles(x, H, groups, p, y);
    // bf16 compute: prefill-sized groups with bf16 weights go to oneDNN (ffn_bf16_dnnl.h), the
    // rest (decode, f32/f16 weights) to the tiles.
    check_groups(H, groups, p);  // before partitioning, so errors name the caller's group index
    auto eligible = [&](const FfnGroup& g) { return fast::ffn_dnnl_eligible(g, p); };
    if (std::none_of(groups.begin(), groups.end(), eligible)) return grouped_ffn_tiles(x, H, groups, p, y);  // decode
    thread_local std::vector<FfnGroup> tl_big, tl_small;
    std::vector<FfnGroup>&big = tl_big, &small = tl_small;
    big.clear();
    small.clear();
    for (const FfnGroup& g : groups) (eligible(g) ? big : small).push_back(g);
    fast::grouped_ffn_dnnl(x, H, big, p, y);
    grouped_ffn_tiles(x, H, small, p, y);
  }

 private:
  static void check_group(int64_t H, const FfnGroup& gr, int64_t g, bool gated) {
    SY_CHECK(gr.n >= 0, "[cpu backend] group ", g, ": negative token count ", gr.n);
    if (gr.n == 0) return;
    SY_CHECK(gr.rows && gr.dst, "[cpu backend] group ", g, ": rows or dst is null");
    const FfnWeights& w = gr.weights;
    SY_CHECK(!w.up.empty(), "[cpu backend] group ", g, ": up weight is missing");
    const int64_t F = w.up.rows;
    check_weight(w.up, "up", g, F, H);
    if (gated) check_weight(w.gate, "gate", g, F, H);
    check_weight(w.down, "down", g, H, F);
  }
  static void check_groups(int64_t H, std::span<const FfnGroup> groups, const FfnParams& p) {
    const bool gated = is_gated(p.act);
    for (size_t g = 0; g < groups.size(); ++g) check_group(H, groups[g], int64_t(g), gated);
  }

  void grouped_ffn_tiles(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p, float* y) {
    const bool gated = is_gated(p.act);
    const int64_t G = int64_t(groups.size());
    // Reused between calls (no allocation per decode step once warm). The lambdas below run on the
    // pool's threads, so they must use these references, never the thread_local names.
    thread_local std::vector<int64_t> tl_act_off;
    thread_local std::vector<Item> tl_up_items, tl_down_items;
    std::vector<int64_t>& act_off = tl_act_off;
    std::vector<Item>& up_items = tl_up_items;
    std::vector<Item>& down_items = tl_down_items;
    act_off.assign(size_t(G) + 1, 0);
    up_items.clear();
    down_items.clear();
    for (int64_t g = 0; g < G; ++g) {
      const FfnGroup& gr = groups[size_t(g)];
      check_group(H, gr, g, gated);
      act_off[size_t(g) + 1] = act_off[size_t(g)];
      if (gr.n == 0) continue;
      const int64_t F = gr.weights.up.rows;
      act_off[size_t(g) + 1] += gr.n * F;
      // Token blocks innermost: items that follow each other read the same weight rows (from L3).
      for (int64_t r0 = 0; r0 < F; r0 += kNT)
        for (int64_t m0 = 0; m0 < gr.n; m0 += kMC) up_items.push_back({g, m0, r0});
      for (int64_t r0 = 0; r0 < H; r0 += kNT)
        for (int64_t m0 = 0; m0 < gr.n; m0 += kMC) down_items.push_back({g, m0, r0});
    }
    thread_local std::vector<float> act_buf;
    if (act_buf.size() < size_t(act_off.back())) act_buf.resize(size_t(act_off.back()));
    float* act = act_buf.data();
    ThreadPool& pool = default_pool();

    const int64_t macs = act_off.back() * H * (gated ? 3 : 2);
    pool.parallel_for(int64_t(up_items.size()), macs, kMinParallelMacs, [&](int64_t t, int) {
      const Item it = up_items[size_t(t)];
      const FfnGroup& gr = groups[size_t(it.g)];
      const FfnWeights& w = gr.weights;
      const int64_t F = w.up.rows;
      const int nm = int(std::min<int64_t>(kMC, gr.n - it.m0)), nr = int(std::min<int64_t>(kNT, F - it.r0));
      Scratch s = thread_scratch();
      const float* xs[kMC];
      for (int i = 0; i < nm; ++i) xs[i] = x + int64_t(gr.rows[it.m0 + i]) * H;
      const WeightRef* ws[2] = {gated ? &w.gate : &w.up, &w.up};
      run_tile(xs, nm, ws, gated ? 2 : 1, it.r0, nr, s.c, s.tile, bf16_);
      for (int i = 0; i < nm; ++i) {
        const float* c = s.c + int64_t(i) * kMaxTileRows;
        float* out = act + act_off[size_t(it.g)] + (it.m0 + i) * F + it.r0;
        const float* gb = gated && w.gate_bias ? w.gate_bias + it.r0 : nullptr;
        const float* ub = w.up_bias ? w.up_bias + it.r0 : nullptr;
        if (gated) {
          fast::ffn_act(p, c, c + nr, gb, ub, out, nr);
        } else {
          fast::ffn_act(p, nullptr, c, nullptr, ub, out, nr);
        }
      }
    });

    pool.parallel_for(int64_t(down_items.size()), macs, kMinParallelMacs, [&](int64_t t, int) {
      const Item it = down_items[size_t(t)];
      const FfnGroup& gr = groups[size_t(it.g)];
      const FfnWeights& w = gr.weights;
      const int64_t F = w.up.rows;
      const int nm = int(std::min<int64_t>(kMC, gr.n - it.m0)), nr = int(std::min<int64_t>(kNT, H - it.r0));
      Scratch s = thread_scratch();
      const float* xs[kMC];
      for (int i = 0; i < nm; ++i) xs[i] = act + act_off[size_t(it.g)] + (it.m0 + i) * F;
      const WeightRef* ws[1] = {&w.down};
      run_tile(xs, nm, ws, 1, it.r0, nr, s.c, s.tile, bf16_);
      for (int i = 0; i < nm; ++i) {
        const float* c = s.c + int64_t(i) * kMaxTileRows;
        const float sc = gr.scale ? gr.scale[it.m0 + i] : 1.0f;
        float* yr = y + int64_t(gr.dst[it.m0 + i]) * H + it.r0;
        const float* bd = w.down_bias ? w.down_bias + it.r0 : nullptr;
        for (int r = 0; r < nr; ++r) yr[r] = sc * (bd ? c[r] + bd[r] : c[r]);
      }
    });
  }

  struct Item {
    int64_t g, m0, r0;
  };
  bool bf16_;
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend b(false);
  return b;
}

Backend& cpu_bf16_backend() {
  static CpuBackend b(true);
  return b;
}

}  // namespace sy
