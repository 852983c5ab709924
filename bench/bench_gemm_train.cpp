// Micro benchmark of the training products on one thread (Google Benchmark): OpenBLAS sgemm (the f32
// training path) against the oneDNN bf16 products of mixed precision (kernels/gemm_bf16.h), on the
// demo model's shapes (bench train --preset demo: 2048 tokens, hidden 256, vocab 8192, experts of
// 512 with about 512 rows each): forward x W^T, backward dx = dy W and dW = dy^T x.
//   build-X/bench_gemm_train --benchmark_min_time=1
// Counter GFLOP (shown as GFLOP/s) = 2 M N K per product; compare with `bench train`'s bf16 dot
// and FMA peaks (per core: half of the 2-thread figures on this machine).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm_bf16.h"

namespace sy {
namespace {

struct Shape {
  bool ta, tb;
  int64_t M, N, K;
};
// op(A) [M, K], op(B) [K, N] (row-major storage, transposed when ta / tb).
const Shape kShapes[] = {
    {false, true, 2048, 8192, 256},  // LM head forward: x W^T
    {false, false, 2048, 256, 8192}, // LM head dx = dlogits W
    {true, false, 8192, 256, 2048},  // LM head dW = dlogits^T x
    {false, true, 512, 1024, 256},   // expert gate+up forward
    {false, false, 512, 256, 1024},  // expert gate+up dx
    {true, false, 1024, 256, 512},   // expert gate+up dW
    {false, true, 527, 256, 512},    // expert down forward, rows not a multiple of 32
};

template <typename T>
struct Operands {
  std::vector<T> A, B;
  std::vector<float> C;
  explicit Operands(const Shape& s) : A(size_t(s.M * s.K)), B(size_t(s.K * s.N)), C(size_t(s.M * s.N)) {
    for (size_t i = 0; i < A.size(); ++i) set(A[i], float(int64_t(i * 7919 % 1000) - 500) * 1e-3f);
    for (size_t i = 0; i < B.size(); ++i) set(B[i], float(int64_t(i * 104729 % 1000) - 500) * 1e-3f);
  }
  static void set(float& d, float v) { d = v; }
  static void set(uint16_t& d, float v) { d = f32_to_bf16(v); }
};

void count(benchmark::State& st, const Shape& s) {
  st.counters["GFLOP"] = benchmark::Counter(2e-9 * double(s.M) * double(s.N) * double(s.K) * double(st.iterations()),
                                            benchmark::Counter::kIsRate);
}

void BM_Sgemm(benchmark::State& st) {
  openblas_set_num_threads(1);
  const Shape& s = kShapes[st.range(0)];
  Operands<float> o(s);
  for (auto _ : st)
    cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, int(s.M), int(s.N),
                int(s.K), 1.0f, o.A.data(), int(s.ta ? s.M : s.K), o.B.data(), int(s.tb ? s.K : s.N), 0.0f,
                o.C.data(), int(s.N));
  count(st, s);
}

void BM_GemmBf16(benchmark::State& st) {
  const Shape& s = kShapes[st.range(0)];
  Operands<uint16_t> o(s);
  for (auto _ : st)
    fast::gemm_bf16(s.ta, s.tb, s.M, s.N, s.K, 1.0f, o.A.data(), s.ta ? s.M : s.K, o.B.data(), s.tb ? s.K : s.N, 0.0f,
                    o.C.data(), s.N);
  count(st, s);
  st.SetLabel(fast::gemm_bf16_impl());
}

BENCHMARK(BM_Sgemm)->DenseRange(0, 6)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemmBf16)->DenseRange(0, 6)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sy

BENCHMARK_MAIN();
