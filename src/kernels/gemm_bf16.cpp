// oneDNN matmul behind gemm_bf16.h (see there for the contract).
//
// Call plan for C[M, N] with M = Mm + Mr, K = Km + Kr (Mm, Km multiples of 32; Mr, Kr < 32):
//   1. C[0:Mm]  = alpha op(A)[0:Mm, 0:Km] op(B)[0:Km] + beta C          (operands in place)
//   2. C[0:Mm] += alpha op(A)[0:Mm, Km:K] op(B)[Km:K]                    (both zero-padded to 32)
//   3. rows Mm..M: op(A)[Mm:M] zero-padded to 32 rows, steps 1-2 into a 32-row scratch,
//      then C[Mm:M] = scratch + beta C[Mm:M].
// Every call shape is a multiple of 32 in M and K, so the primitive cache stays small while token
// counts vary; the plan depends only on the shapes, never on the thread.
#include "kernels/gemm_bf16.h"

#include <omp.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace sy::fast {
namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

constexpr int64_t kQ = 32;  // M and K are called in multiples of this

struct Key {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  bool operator==(const Key& o) const {
    return std::tie(ta, tb, M, N, K, lda, ldb, ldc, alpha, beta) ==
           std::tie(o.ta, o.tb, o.M, o.N, o.K, o.lda, o.ldb, o.ldc, o.alpha, o.beta);
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = size_t(k.ta) | size_t(k.tb) << 1;
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) h = h * 1000003u ^ size_t(v);
    uint32_t a, b;
    std::memcpy(&a, &k.alpha, 4);
    std::memcpy(&b, &k.beta, 4);
    return h * 31u ^ a ^ (size_t(b) << 7);
  }
};

struct Prim {
  dnnl::memory::desc a, b, c;
  dnnl::matmul prim;
  size_t scratch_bytes = 0;
  std::string impl;
};

// Never destroyed: pool threads' streams (thread_local, below) may outlive static destruction.
dnnl::engine& engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

// oneDNN runs its kernels on OpenMP threads; each of our calls is one tile on one pool thread.
void one_omp_thread() {
  thread_local const bool once = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)once;
}

std::shared_ptr<const Prim> make_prim(const Key& k) {
  one_omp_thread();
  Prim p;
  p.a = dnnl::memory::desc({k.M, k.K}, dt::bf16, k.ta ? dims{1, k.lda} : dims{k.lda, 1});
  p.b = dnnl::memory::desc({k.K, k.N}, dt::bf16, k.tb ? dims{1, k.ldb} : dims{k.ldb, 1});
  p.c = dnnl::memory::desc({k.M, k.N}, dt::f32, dims{k.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(k.beta);
    attr.set_post_ops(po);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, p.b, p.c), attr, engine());
    p.scratch_bytes = pd.scratchpad_desc().get_size();
    p.impl = pd.impl_info_str();
    p.prim = dnnl::matmul(pd);
  } catch (const dnnl::error& e) {
    fail("[gemm_bf16] oneDNN matmul ", k.M, "x", k.N, "x", k.K, " (ta ", k.ta, ", tb ", k.tb, "): ", e.what());
  }
  return std::make_shared<const Prim>(std::move(p));
}

std::shared_ptr<const Prim> get_prim(const Key& k) {
  static std::mutex mu;
  static std::unordered_map<Key, std::shared_ptr<const Prim>, KeyHash> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(k);
    if (it != cache.end()) return it->second;
  }
  auto p = make_prim(k);  // outside the lock: compiling takes ~0.5 ms
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= 4096) cache.clear();  // bound memory on pathological shape streams
  return cache.emplace(k, std::move(p)).first->second;
}

// One primitive call: every dimension as given (the caller has made M and K multiples of 32).
void call(const Key& k, const uint16_t* A, const uint16_t* B, float* C) {
  const auto p = get_prim(k);
  one_omp_thread();
  thread_local std::vector<uint8_t> scratch;
  thread_local dnnl::stream stream(engine());
  if (scratch.size() < p->scratch_bytes) scratch.resize(p->scratch_bytes);
  dnnl::memory am(p->a, engine(), const_cast<uint16_t*>(A));
  dnnl::memory bm(p->b, engine(), const_cast<uint16_t*>(B));
  dnnl::memory cm(p->c, engine(), C);
  dnnl::memory sm(dnnl::memory::desc({int64_t(p->scratch_bytes)}, dt::u8, dims{1}), engine(), scratch.data());
  p->prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}});
}

int64_t round_up(int64_t x) { return (x + kQ - 1) / kQ * kQ; }

// Copies op(X)[r0:r0+nr, c0:c0+nc] (op = transpose when t) into dst [rows_pad, cols_pad], zeros
// elsewhere. X is row-major with leading dimension ld.
void copy_padded(uint16_t* dst, int64_t rows_pad, int64_t cols_pad, const uint16_t* X, int64_t ld, bool t, int64_t r0,
                 int64_t nr, int64_t c0, int64_t nc) {
  std::memset(dst, 0, size_t(rows_pad * cols_pad) * sizeof(uint16_t));
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) dst[i * cols_pad + j] = t ? X[(c0 + j) * ld + r0 + i] : X[(r0 + i) * ld + c0 + j];
}

}  // namespace

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  SY_CHECK(beta == 0.0f || beta == 1.0f, "[gemm_bf16] beta must be 0 or 1, got ", beta);
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == 0.0f)
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, size_t(N) * sizeof(float));
    return;
  }
  const int64_t Mm = M / kQ * kQ, Mr = M - Mm, Km = K / kQ * kQ, Kr = K - Km;
  thread_local std::vector<uint16_t> a_pad, b_pad, a_rows;
  thread_local std::vector<float> c_rows;
  // op(B)[Km:K] zero-padded to 32 rows, shared by the main rows and the remainder rows.
  if (Kr) {
    b_pad.resize(size_t(kQ * N));
    copy_padded(b_pad.data(), kQ, N, B, ldb, tb, Km, Kr, 0, N);
  }
  if (Mm) {
    if (Km) call({ta, tb, Mm, N, Km, lda, ldb, ldc, alpha, beta}, A, B, C);
    if (Kr) {
      a_pad.resize(size_t(Mm * kQ));
      copy_padded(a_pad.data(), Mm, kQ, A, lda, ta, 0, Mm, Km, Kr);
      call({false, false, Mm, N, kQ, kQ, N, ldc, alpha, Km ? 1.0f : beta}, a_pad.data(), b_pad.data(), C);
    }
  }
  if (Mr) {
    const int64_t Kp = round_up(K);
    a_rows.resize(size_t(kQ * Kp));
    copy_padded(a_rows.data(), kQ, Kp, A, lda, ta, Mm, Mr, 0, K);
    c_rows.resize(size_t(kQ * N));
    if (Km) call({false, tb, kQ, N, Km, Kp, ldb, N, alpha, 0.0f}, a_rows.data(), B, c_rows.data());
    if (Kr)
      call({false, false, kQ, N, kQ, Kp, N, N, alpha, Km ? 1.0f : 0.0f}, a_rows.data() + Km, b_pad.data(),
           c_rows.data());
    for (int64_t i = 0; i < Mr; ++i) {
      float* c = C + (Mm + i) * ldc;
      const float* s = c_rows.data() + i * N;
      if (beta == 0.0f)
        std::memcpy(c, s, size_t(N) * sizeof(float));
      else
        for (int64_t j = 0; j < N; ++j) c[j] += s[j];
    }
  }
}

std::string gemm_bf16_impl() {
  static const std::string impl = get_prim({false, true, 64, 64, 64, 64, 64, 64, 1.0f, 0.0f})->impl;
  return impl;
}

bool gemm_bf16_native() {
  static const bool native = gemm_bf16_impl().rfind("ref", 0) != 0;
  return native;
}

}  // namespace sy::fast
