#include "train/ops.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/gemm_bf16.h"
#include "kernels/train_kernels.h"

namespace sy::train {
namespace {

// Rows split into fixed blocks so the per-task work is not tiny; the split never affects results
// (each row is computed independently).
template <typename F>
void for_rows(int64_t N, int64_t cost_per_row, F&& fn) {
  const int64_t block = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cost_per_row));
  const int64_t tasks = (N + block - 1) / block;
  if (tasks <= 1) {
    for (int64_t n = 0; n < N; ++n) fn(n);
    return;
  }
  default_pool().parallel_for(tasks, [&](int64_t t, int) {
    const int64_t end = std::min(N, (t + 1) * block);
    for (int64_t n = t * block; n < end; ++n) fn(n);
  });
}

// OpenBLAS runs single-threaded: its own threads would spin against our pool's. Large products are
// instead cut into fixed tiles of C (rows, or columns when there are few rows), each one cblas_sgemm
// on one pool thread. The tiling depends only on the shapes, never on the thread count, and every
// C element is computed by exactly one call, so results are identical for any number of threads.
void blas_single_thread() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Cuts C[M, N] into at most 8 tiles and calls run(by_rows, offset, length) for each on the pool.
// Tiles of at least 8M multiply-adds: enough to balance a few threads while each call stays large
// enough for the library's packing to pay off. Every tile packs the operand it shares with the
// others again (row tiles: all of op(B), [K, N]; column tiles: all of op(A), [M, K]), so the longer
// side of C, which shares the smaller operand, is split when it is long enough; row tiles are
// multiples of row_unit, column tiles multiples of 64. (Measured on the demo model's step: 8%
// faster than at most 16 row-first tiles, 1 and 2 threads.)
template <typename Run>
void for_tiles(int64_t M, int64_t N, int64_t K, int64_t row_unit, Run&& run) {
  constexpr int64_t kMinTileWork = int64_t(1) << 23;
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  const int64_t tiles_wanted = std::clamp<int64_t>(work / kMinTileWork, 1, 8);
  const bool by_rows = M >= N ? M >= row_unit * tiles_wanted : N < 64 * tiles_wanted;
  const int64_t len = by_rows ? M : N, unit = by_rows ? row_unit : 64;
  int64_t tile = (len + tiles_wanted - 1) / tiles_wanted;
  tile = std::max(unit, (tile + unit - 1) / unit * unit);
  const int64_t n_tiles = (len + tile - 1) / tile;
  auto one = [&](int64_t t, int) {
    const int64_t a = t * tile;
    run(by_rows, a, std::min(tile, len - a));
  };
  if (n_tiles == 1)
    one(0, 0);
  else
    default_pool().parallel_for(n_tiles, one);
}

// C[M, N] = alpha op(A) op(B) + beta C, row-major, op(A) [M, K], op(B) [K, N]; T is float (OpenBLAS
// sgemm) or uint16_t (bf16 operands, f32 C: oneDNN, kernels/gemm_bf16.h).
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  constexpr bool kBf16 = std::is_same_v<T, uint16_t>;
  if constexpr (!kBf16) blas_single_thread();
  for_tiles(M, N, K, kBf16 ? 32 : 16, [&](bool by_rows, int64_t a, int64_t n) {
    const T* At = by_rows ? (ta ? A + a : A + a * lda) : A;
    const T* Bt = by_rows ? B : (tb ? B + a * ldb : B + a);
    float* Ct = by_rows ? C + a * ldc : C + a;
    const int64_t m_t = by_rows ? n : M, n_t = by_rows ? N : n;
    if constexpr (kBf16)
      fast::gemm_bf16(ta, tb, m_t, n_t, K, alpha, At, lda, Bt, ldb, beta, Ct, ldc);
    else
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m_t), int(n_t),
                  int(K), alpha, At, int(lda), Bt, int(ldb), beta, Ct, int(ldc));
  });
}

// Elementwise work in fixed chunks of 4096: fn(begin, count) per chunk (chunking never changes
// results).
template <typename F>
void for_chunks(int64_t n, F&& fn) {
  constexpr int64_t kChunk = 4096;
  const int64_t tasks = (n + kChunk - 1) / kChunk;
  auto run = [&](int64_t t, int) {
    const int64_t begin = t * kChunk;
    fn(begin, std::min(n, begin + kChunk) - begin);
  };
  if (tasks <= 1)
    run(0, 0);
  else
    default_pool().parallel_for(tasks, run);
}

std::atomic<MatmulPrecision> g_precision{MatmulPrecision::f32};

// The bf16 image of a row-major [rows, cols] view with leading dimension ld (only the view's span
// is converted; the image keeps ld). buf is the caller's scratch.
const uint16_t* bf16_image(std::vector<uint16_t>& buf, const float* x, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t span = rows == 0 ? 0 : (rows - 1) * ld + cols;
  buf.resize(size_t(span));
  uint16_t* dst = buf.data();
  for_chunks(span, [&](int64_t begin, int64_t count) { fast::to_bf16(dst + begin, x + begin, count); });
  return dst;
}

}  // namespace

void set_matmul_precision(MatmulPrecision p) { g_precision.store(p); }
MatmulPrecision matmul_precision() { return g_precision.load(); }
MatmulPrecision parse_matmul_precision(const std::string& s) {
  if (s == "f32") return MatmulPrecision::f32;
  if (s == "bf16") return MatmulPrecision::bf16;
  fail("[train] precision must be f32 or bf16 (mixed: bf16 matrix products, f32 weights), got '", s, "'");
}

void linear_forward(float* out, const float* inp, const float* W, const float* b, int64_t M, int64_t K, int64_t N) {
  if (M == 0) return;
  if (matmul_precision() == MatmulPrecision::bf16) {
    thread_local std::vector<uint16_t> tl_x, tl_w;
    gemm(false, true, M, N, K, 1.0f, bf16_image(tl_x, inp, M, K, K), K, bf16_image(tl_w, W, N, K, K), K, 0.0f, out,
         N);
  } else {
    gemm(false, true, M, N, K, 1.0f, inp, K, W, K, 0.0f, out, N);
  }
  if (b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) out[m * N + n] += b[n];
}

void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp, const float* W, int64_t M,
                     int64_t K, int64_t N) {
  if (M == 0) return;
  if (matmul_precision() == MatmulPrecision::bf16 && (dinp || dW)) {
    thread_local std::vector<uint16_t> tl_d, tl_w, tl_x;
    const uint16_t* d16 = bf16_image(tl_d, dout, M, N, N);
    if (dinp) gemm(false, false, M, K, N, 1.0f, d16, N, bf16_image(tl_w, W, N, K, K), K, 1.0f, dinp, K);
    if (dW) gemm(true, false, N, K, M, 1.0f, d16, N, bf16_image(tl_x, inp, M, K, K), K, 1.0f, dW, K);
  } else {
    if (dinp)  // dinp[M, K] += dout[M, N] W[N, K]
      gemm(false, false, M, K, N, 1.0f, dout, N, W, K, 1.0f, dinp, K);
    if (dW)  // dW[N, K] += dout^T[N, M] inp[M, K]
      gemm(true, false, N, K, M, 1.0f, dout, N, inp, K, 1.0f, dW, K);
  }
  if (db)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t m = 0; m < M; ++m) s += dout[m * N + n];
      db[n] += float(s);
    }
}

void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t V, int64_t H) {
  for (int64_t n = 0; n < N; ++n) {
    SY_CHECK(tokens[n] >= 0 && tokens[n] < V, "[train embedding] token ", n, " has id ", tokens[n],
             " outside the vocabulary [0, ", V, ")");
    std::copy(table + int64_t(tokens[n]) * H, table + int64_t(tokens[n] + 1) * H, out + n * H);
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t H) {
  for (int64_t n = 0; n < N; ++n) {
    float* d = dtable + int64_t(tokens[n]) * H;
    for (int64_t h = 0; h < H; ++h) d[h] += dout[n * H + h];
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int64_t N, int64_t C, float eps) {
  for_rows(N, C, [&](int64_t n) {
    const float* x = inp + n * C;
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(x[c]) * x[c];
    const float r = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
    rstd[n] = r;
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = x[c] * r * w[c];
  });
}

void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int64_t N, int64_t C) {
  for_rows(N, C, [&](int64_t n) {
    const float* x = inp + n * C;
    const float* d = dout + n * C;
    double dot = 0;  // sum_c g_c xhat_c
    for (int64_t c = 0; c < C; ++c) dot += double(d[c]) * w[c] * x[c] * rstd[n];
    const float mean = float(dot / double(C));
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = x[c] * rstd[n];
      dinp[n * C + c] += rstd[n] * (d[c] * w[c] - xhat * mean);
    }
  });
  if (dw) {  // columns are independent: the sum over rows runs in row order for each column; blocks of
            // 16 columns so each row's read is contiguous
    constexpr int64_t kCols = 16;
    for_rows((C + kCols - 1) / kCols, N * kCols, [&](int64_t cb) {
      const int64_t c0 = cb * kCols, nc = std::min(kCols, C - c0);
      double s[kCols] = {};
      for (int64_t n = 0; n < N; ++n) {
        const float* d = dout + n * C + c0;
        const float* x = inp + n * C + c0;
        for (int64_t j = 0; j < nc; ++j) s[j] += double(d[j]) * x[j] * rstd[n];
      }
      for (int64_t j = 0; j < nc; ++j) dw[c0 + j] += float(s[j]);
    });
  }
}

namespace {
void rope_apply(float* out, const float* inp, const int64_t* pos, int64_t N, int64_t n_heads, int64_t D, double theta,
                double sign, bool accumulate) {
  SY_CHECK(D % 2 == 0, "[train rope] head_dim ", D, " must be even");
  const int64_t half = D / 2;
  // cos/sin per (position, i), computed once per (theta, D) and grown to the largest position seen
  // (the same double-precision values as computing them per row; called from one thread at a time).
  struct Table {
    double theta = 0;
    int64_t D = 0, positions = 0;
    std::vector<float> cos, sin;  // [positions][half]
  };
  thread_local Table tl_tab;
  Table& tab = tl_tab;  // the lambda below runs on pool threads: use this reference, not the thread_local
  int64_t max_pos = -1;
  for (int64_t n = 0; n < N; ++n) {
    SY_CHECK(pos[n] >= 0, "[train rope] position ", pos[n], " of row ", n, " is negative");
    max_pos = std::max(max_pos, pos[n]);
  }
  if (tab.theta != theta || tab.D != D) tab = Table{theta, D, 0, {}, {}};
  if (max_pos >= tab.positions) {
    const int64_t P = max_pos + 1;
    tab.cos.resize(size_t(P * half));
    tab.sin.resize(size_t(P * half));
    for (int64_t p = tab.positions; p < P; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double a = double(p) * std::pow(theta, -2.0 * double(i) / double(D));
        tab.cos[size_t(p * half + i)] = float(std::cos(a));
        tab.sin[size_t(p * half + i)] = float(std::sin(a));
      }
    tab.positions = P;
  }
  const float fsign = float(sign);
  for_rows(N, n_heads * D, [&](int64_t n) {
    for (int64_t i = 0; i < half; ++i) {
      const float c = tab.cos[size_t(pos[n] * half + i)], s = fsign * tab.sin[size_t(pos[n] * half + i)];
      for (int64_t h = 0; h < n_heads; ++h) {
        const float* x = inp + n * n_heads * D + h * D;
        float* o = out + n * n_heads * D + h * D;
        const float x1 = x[i], x2 = x[i + half];
        const float o1 = x1 * c - x2 * s, o2 = x2 * c + x1 * s;
        if (accumulate) {
          o[i] += o1;
          o[i + half] += o2;
        } else {
          o[i] = o1;
          o[i + half] = o2;
        }
      }
    }
  });
}
}  // namespace

void rope_forward(float* out, const float* inp, const int64_t* pos, int64_t N, int64_t n_heads, int64_t D,
                  double theta) {
  rope_apply(out, inp, pos, N, n_heads, D, theta, 1.0, false);
}

void rope_backward(float* dinp, const float* dout, const int64_t* pos, int64_t N, int64_t n_heads, int64_t D,
                   double theta) {
  rope_apply(dinp, dout, pos, N, n_heads, D, theta, -1.0, true);  // rotation by -a is the transpose
}

// Per (sequence, head) the products are small dense GEMMs on strided views of q/k/v (leading
// dimension Hq*D or Hkv*D), each a single-threaded cblas_sgemm; the (sequence, head) pairs run in
// parallel on the pool (backward: the query heads sharing one kv head run in one task, in order,
// because they accumulate into the same dk/dv). Results do not depend on the thread count.

// Query rows in blocks of kQB: block i (rows [i kQB, min(T, (i+1) kQB))) only sees keys [0, end of
// the block), so the products skip the key columns above the diagonal block (about 3/8 of the work
// at T = 256). A's entries past a row's last key are zero, as before.
constexpr int64_t kQB = 64;

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t Hq, int64_t Hkv, int64_t D) {
  SY_CHECK(Hkv > 0 && Hq % Hkv == 0, "[train attention] ", Hq, " query heads are not a multiple of ", Hkv,
           " kv heads");
  blas_single_thread();
  const int64_t rep = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = float(1.0 / std::sqrt(double(D)));
  default_pool().parallel_for(B * Hq, [&](int64_t task, int) {
    const int64_t b = task / Hq, h = task % Hq, kh = h / rep;
    const float* Q = q + b * T * qs + h * D;
    const float* K = k + b * T * ks + kh * D;
    const float* Vh = v + b * T * ks + kh * D;
    float* A = att + (b * Hq + h) * T * T;
    for (int64_t i0 = 0; i0 < T; i0 += kQB) {
      const int64_t nq = std::min(kQB, T - i0), nk = i0 + nq;  // rows [i0, i0+nq), keys [0, nk)
      float* Ai = A + i0 * T;
      // A_i = scale * Q_i K[:nk]^T, then a causal row softmax; O_i = A_i V[:nk]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(nk), int(D), scale, Q + i0 * qs, int(qs), K,
                  int(ks), 0.0f, Ai, int(T));
      for (int64_t r = 0; r < nq; ++r) {
        float* a = Ai + r * T;
        const int64_t n = i0 + r + 1;  // keys this row sees
        const float mx = fast::max_of(a, n);
        const double sum = fast::exp_store_sum(a, a, n, mx);
        fast::scale_inplace(a, n, float(1.0 / sum));
        std::fill(a + n, a + T, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(D), int(nk), 1.0f, Ai, int(T), Vh, int(ks),
                  0.0f, out + b * T * qs + (i0 * qs) + h * D, int(qs));
    }
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* att, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
  blas_single_thread();
  const int64_t rep = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = float(1.0 / std::sqrt(double(D)));
  thread_local std::vector<std::vector<float>> tl_scratch;  // per pool thread, kept between calls
  std::vector<std::vector<float>>& scratch = tl_scratch;
  scratch.resize(size_t(default_pool().size()));
  default_pool().parallel_for(B * Hkv, [&](int64_t task, int thread) {
    const int64_t b = task / Hkv, kh = task % Hkv;
    std::vector<float>& dA = scratch[size_t(thread)];
    dA.resize(size_t(kQB * T));
    const float* K = k + b * T * ks + kh * D;
    const float* Vh = v + b * T * ks + kh * D;
    float* dK = dk + b * T * ks + kh * D;
    float* dV = dv + b * T * ks + kh * D;
    for (int64_t h = kh * rep; h < (kh + 1) * rep; ++h) {
      const float* Q = q + b * T * qs + h * D;
      const float* dO = dout + b * T * qs + h * D;
      float* dQ = dq + b * T * qs + h * D;
      const float* A = att + (b * Hq + h) * T * T;
      for (int64_t i0 = 0; i0 < T; i0 += kQB) {
        const int64_t nq = std::min(kQB, T - i0), nk = i0 + nq;
        const float* Ai = A + i0 * T;
        // dV[:nk] += A_i^T dO_i;  dA_i = dO_i V[:nk]^T
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(D), int(nq), 1.0f, Ai, int(T), dO + i0 * qs,
                    int(qs), 1.0f, dV, int(ks));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(nk), int(D), 1.0f, dO + i0 * qs, int(qs), Vh,
                    int(ks), 0.0f, dA.data(), int(nk));
        // dS = scale * A * (dA - rowsum(A * dA)), zero past the row's last key (A is 0 there)
        for (int64_t r = 0; r < nq; ++r) {
          const float* a = Ai + r * T;
          float* d = dA.data() + r * nk;
          const int64_t n = i0 + r + 1;
          double dot = 0;
          for (int64_t j = 0; j < n; ++j) dot += double(a[j]) * d[j];
          for (int64_t j = 0; j < n; ++j) d[j] = scale * a[j] * (d[j] - float(dot));
          std::fill(d + n, d + nk, 0.0f);
        }
        // dQ_i += dS_i K[:nk];  dK[:nk] += dS_i^T Q_i
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(D), int(nk), 1.0f, dA.data(), int(nk), K,
                    int(ks), 1.0f, dQ + i0 * qs, int(qs));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(D), int(nq), 1.0f, dA.data(), int(nk),
                    Q + i0 * qs, int(qs), 1.0f, dK, int(ks));
      }
    }
  });
}

void swiglu_forward(float* h, const float* g, const float* u, int64_t n) {
  for_chunks(n, [&](int64_t i, int64_t c) { fast::swiglu_fwd(h + i, g + i, u + i, c); });
}

void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  for_chunks(n, [&](int64_t i, int64_t c) { fast::swiglu_bwd(dg + i, du + i, dh + i, g + i, u + i, c); });
}

namespace {
// The stacked weight's row count (sum of the widths), after checking one width per part.
int64_t stacked_total(size_t parts, std::span<const int64_t> widths) {
  SY_CHECK(parts == widths.size() && parts > 0, "[train linear_stacked] ", parts, " parts for ", widths.size(),
           " widths");
  int64_t total = 0;
  for (int64_t w : widths) total += w;
  return total;
}
}  // namespace

void linear_forward_stacked(std::span<float* const> outs, std::span<const int64_t> widths, const float* inp,
                            const float* W, int64_t M, int64_t K) {
  const int64_t NT = stacked_total(outs.size(), widths);
  if (M == 0) return;
  thread_local std::vector<float> tl_cat;
  std::vector<float>& cat = tl_cat;  // [M, NT]
  cat.resize(size_t(M * NT));
  linear_forward(cat.data(), inp, W, nullptr, M, K, NT);
  for_rows(M, NT, [&](int64_t m) {
    int64_t c0 = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      std::copy(cat.data() + m * NT + c0, cat.data() + m * NT + c0 + widths[i], outs[i] + m * widths[i]);
      c0 += widths[i];
    }
  });
}

void linear_backward_stacked(float* dinp, float* dW, std::span<const float* const> douts,
                             std::span<const int64_t> widths, const float* inp, const float* W, int64_t M, int64_t K) {
  const int64_t NT = stacked_total(douts.size(), widths);
  if (M == 0) return;
  thread_local std::vector<float> tl_cat;
  std::vector<float>& cat = tl_cat;  // [M, NT]
  cat.resize(size_t(M * NT));
  for_rows(M, NT, [&](int64_t m) {
    int64_t c0 = 0;
    for (size_t i = 0; i < douts.size(); ++i) {
      std::copy(douts[i] + m * widths[i], douts[i] + (m + 1) * widths[i], cat.data() + m * NT + c0);
      c0 += widths[i];
    }
  });
  linear_backward(dinp, dW, nullptr, cat.data(), inp, W, M, K, NT);
}

// Gate and up projections as one stacked product when Wu directly follows Wg in memory (and, for
// the backward, dWu follows dWg), as the expert views of MoELM's flat parameter buffer do.
void swiglu_ffn_forward(float* y, FfnSaved s, const float* x, const float* Wg, const float* Wu, const float* Wd,
                        int64_t M, int64_t H, int64_t F) {
  if (M == 0) return;
  if (Wu == Wg + F * H) {
    float* outs[2] = {s.g, s.u};
    const int64_t widths[2] = {F, F};
    linear_forward_stacked(outs, widths, x, Wg, M, H);
  } else {
    linear_forward(s.g, x, Wg, nullptr, M, H, F);
    linear_forward(s.u, x, Wu, nullptr, M, H, F);
  }
  swiglu_forward(s.h, s.g, s.u, M * F);
  linear_forward(y, s.h, Wd, nullptr, M, F, H);
}

void swiglu_ffn_backward(float* dx, float* dWg, float* dWu, float* dWd, const float* dy, const float* x,
                         const FfnSaved s, const float* Wg, const float* Wu, const float* Wd, int64_t M, int64_t H,
                         int64_t F) {
  if (M == 0) return;
  thread_local std::vector<float> tl_dh, tl_dg, tl_du;  // reused: no allocation per call
  std::vector<float>&dh = tl_dh, &dg = tl_dg, &du = tl_du;
  dh.assign(size_t(M * F), 0.0f);
  dg.assign(size_t(M * F), 0.0f);
  du.assign(size_t(M * F), 0.0f);
  linear_backward(dh.data(), dWd, nullptr, dy, s.h, Wd, M, F, H);
  swiglu_backward(dg.data(), du.data(), dh.data(), s.g, s.u, M * F);
  if (Wu == Wg + F * H && dWu == dWg + F * H) {
    const float* douts[2] = {dg.data(), du.data()};
    const int64_t widths[2] = {F, F};
    linear_backward_stacked(dx, dWg, douts, widths, x, Wg, M, H);
  } else {
    linear_backward(dx, dWg, nullptr, dg.data(), x, Wg, M, H, F);
    linear_backward(dx, dWu, nullptr, du.data(), x, Wu, M, H, F);
  }
}

void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C) {
  for_rows(N, C, [&](int64_t n) {
    const float* l = logits + n * C;
    const float mx = *std::max_element(l, l + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(double(l[c]) - mx);
    for (int64_t c = 0; c < C; ++c) probs[n * C + c] = float(std::exp(double(l[c]) - mx) / sum);
  });
}

void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C) {
  for_rows(N, C, [&](int64_t n) {
    const float* p = probs + n * C;
    const float* dp = dprobs + n * C;
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(p[c]) * dp[c];
    for (int64_t c = 0; c < C; ++c) dlogits[n * C + c] += p[c] * (dp[c] - float(dot));
  });
}

void sigmoid_forward(float* s, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) s[i] = float(1.0 / (1.0 + std::exp(-double(x[i]))));
}

void sigmoid_backward(float* dx, const float* ds, const float* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] += ds[i] * s[i] * (1.0f - s[i]);
}

double cross_entropy(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V, float dloss) {
  int64_t valid = 0;
  for (int64_t n = 0; n < N; ++n) {
    SY_CHECK(targets[n] < V, "[train cross_entropy] target ", n, " is ", targets[n], ", outside [0, ", V, ")");
    valid += targets[n] >= 0;
  }
  if (valid == 0) return 0.0;
  std::vector<double> row_loss(size_t(N), 0.0);
  const float inv = dloss / float(valid);
  for_rows(N, V, [&](int64_t n) {
    if (targets[n] < 0) return;
    const float* l = logits + n * V;
    const float mx = fast::max_of(l, V);
    const double lse = double(mx) + std::log(fast::exp_sum(l, V, mx));
    row_loss[size_t(n)] = lse - double(l[targets[n]]);
    if (dlogits) {  // softmax = exp(l - lse), shifted by mx first so the f32 difference stays exact-ish
      fast::exp_scale_add(dlogits + n * V, l, V, mx, float(std::exp(double(mx) - lse)) * inv);
      dlogits[n * V + targets[n]] -= inv;
    }
  });
  double total = 0;
  for (double r : row_loss) total += r;
  return total / double(valid);
}

}  // namespace sy::train
