// Peak measurements (see peak.h). The vector loops are compiled per ISA with target attributes and
// chosen at run time, since the CLI is built for baseline x86-64.
#include "peak.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace sy::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Runs fn(thread) on n threads released together; returns seconds from the release until the last
// thread finished (the aggregate rate is total work / this).
template <class Fn>
double run_together(int n, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<Clock::time_point> end(static_cast<size_t>(n));
  Clock::time_point start;
  auto body = [&](int t) {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    fn(t);
    end[size_t(t)] = Clock::now();
  };
  std::vector<std::thread> th;
  for (int t = 1; t < n; ++t) th.emplace_back(body, t);
  while (ready.load() < n - 1) std::this_thread::yield();
  start = Clock::now();
  go.store(true, std::memory_order_release);
  ready.fetch_add(1);
  fn(0);
  end[0] = Clock::now();
  for (auto& t : th) t.join();
  return std::chrono::duration<double>(*std::max_element(end.begin(), end.end()) - start).count();
}

volatile float g_sink;  // keeps the loops' results alive

float sum_scalar(const float* p, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

float fma_scalar(int64_t iters) {
  float a0 = 1, a1 = 2, a2 = 3, a3 = 4;
  const float m = 0.999999f, b = 1e-6f;
  for (int64_t i = 0; i < iters; ++i) {
    a0 = a0 * m + b;
    a1 = a1 * m + b;
    a2 = a2 * m + b;
    a3 = a3 * m + b;
  }
  return a0 + a1 + a2 + a3;
}

#if defined(__x86_64__)
// Horizontal sum through memory (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized).
__attribute__((target("avx512f"))) float hsum512(__m512 v) {
  alignas(64) float r[16];
  _mm512_store_ps(r, v);
  float s = 0;
  for (float x : r) s += x;
  return s;
}

// Sums S independent streams, each a contiguous run of `per` floats (per: a multiple of 64; p
// 64-byte aligned): every iteration loads four cache lines of each stream into 8 independent
// accumulators, so that many misses are in flight (one stream alone may not saturate DRAM).
template <int S>
__attribute__((target("avx512f"))) float sum_avx512_streams(const float* p, size_t per) {
  __m512 a[8];
  for (auto& v : a) v = _mm512_setzero_ps();
  for (size_t i = 0; i < per; i += 64) {
    for (int s = 0; s < S; ++s) {
      const float* q = p + size_t(s) * per + i;
      a[(2 * s) & 7] = _mm512_add_ps(a[(2 * s) & 7], _mm512_load_ps(q));
      a[(2 * s + 1) & 7] = _mm512_add_ps(a[(2 * s + 1) & 7], _mm512_load_ps(q + 16));
      a[(2 * s + 2) & 7] = _mm512_add_ps(a[(2 * s + 2) & 7], _mm512_load_ps(q + 32));
      a[(2 * s + 3) & 7] = _mm512_add_ps(a[(2 * s + 3) & 7], _mm512_load_ps(q + 48));
    }
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  return hsum512(a[0]);
}

// n: a multiple of 64 * streams floats.
float sum_avx512(const float* p, size_t n, int streams) {
  switch (streams) {
    case 1: return sum_avx512_streams<1>(p, n);
    case 2: return sum_avx512_streams<2>(p, n / 2);
    case 4: return sum_avx512_streams<4>(p, n / 4);
    default: return sum_avx512_streams<8>(p, n / 8);
  }
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  for (size_t i = 0; i + 64 <= n; i += 64)
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  alignas(32) float r[8];
  _mm256_store_ps(r, a[0]);
  return r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[6] + r[7];
}

// 16 independent accumulators: enough to cover FMA latency x issue width on current cores.
constexpr int kAcc512 = 16;
__attribute__((target("avx512f"))) float fma_avx512(int64_t iters) {
  __m512 a[kAcc512];
  for (int j = 0; j < kAcc512; ++j) a[j] = _mm512_set1_ps(float(j));
  const __m512 m = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc512; ++j) a[j] = _mm512_fmadd_ps(a[j], m, b);
  for (int j = 1; j < kAcc512; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  return hsum512(a[0]);
}

constexpr int kAcc256 = 12;  // 16 ymm registers: 12 accumulators + 2 constants
__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  __m256 a[kAcc256];
  for (int j = 0; j < kAcc256; ++j) a[j] = _mm256_set1_ps(float(j));
  const __m256 m = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc256; ++j) a[j] = _mm256_fmadd_ps(a[j], m, b);
  for (int j = 1; j < kAcc256; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  alignas(32) float r[8];
  _mm256_store_ps(r, a[0]);
  return r[0] + r[7];
}

// vdpbf16ps: each lane adds two bf16 products (32 pairs = 64 flop per instruction).
__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_avx512(int64_t iters) {
  __m512 a[kAcc512];
  for (int j = 0; j < kAcc512; ++j) a[j] = _mm512_set1_ps(float(j));
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  const __m512bh y = (__m512bh)_mm512_set1_epi16(0x2f80);  // 2^-32
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc512; ++j) a[j] = _mm512_dpbf16_ps(a[j], x, y);
  for (int j = 1; j < kAcc512; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  return hsum512(a[0]);
}

bool has_avx512() { return __builtin_cpu_supports("avx512f"); }
bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_bf16() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"); }
#endif

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;
// align: a power of two; buffers of 2 MiB alignment are also offered to transparent huge pages
// (fewer TLB misses while streaming; a no-op where THP is off).
Buffer alloc_floats(size_t n, size_t align = 64) {
  const size_t bytes = (n * sizeof(float) + align - 1) / align * align;
  auto* p = static_cast<float*>(std::aligned_alloc(align, bytes));
  SY_CHECK(p, "[bench peak] cannot allocate ", n * sizeof(float), " bytes");
  if (align >= (size_t(2) << 20)) madvise(p, bytes, MADV_HUGEPAGE);
  return Buffer(p);
}

struct ReadResult {
  double gbps = 0;
  int streams = 1;
};

// Streaming read of `bytes` split across `threads` (each its own contiguous slice, read as 1, 2, 4
// or 8 interleaved streams with AVX-512); the best over stream counts and `passes` passes each.
ReadResult measure_read(int threads, size_t bytes, int passes, const std::string& isa) {
  size_t n = bytes / sizeof(float);
  const size_t per = n / size_t(threads) / 512 * 512;  // a multiple of 64 floats x 8 streams
  SY_CHECK(per > 0, "[bench peak] buffer too small");
  n = per * size_t(threads);
  Buffer buf = alloc_floats(n, size_t(2) << 20);
  // Each thread first touches the slice it will read.
  run_together(threads, [&](int t) { std::fill(buf.get() + per * size_t(t), buf.get() + per * size_t(t + 1), 1.0f); });
  std::vector<int> stream_counts = {1};
#if defined(__x86_64__)
  if (isa == "avx512") stream_counts = {1, 2, 4, 8};
#endif
  ReadResult best;
  for (int streams : stream_counts) {
    auto sum = [&](const float* p, size_t m) {
#if defined(__x86_64__)
      if (isa == "avx512") return sum_avx512(p, m, streams);
      if (isa == "avx2") return sum_avx2(p, m);
#endif
      return sum_scalar(p, m);
    };
    for (int pass = 0; pass < passes; ++pass) {
      std::vector<float> part(static_cast<size_t>(threads));
      double s = run_together(threads, [&](int t) { part[size_t(t)] = sum(buf.get() + per * size_t(t), per); });
      g_sink = part[0];
      const double gbps = double(n * sizeof(float)) / s / 1e9;
      if (gbps > best.gbps) best = {gbps, streams};
    }
  }
  return best;
}

double measure_fma_loop(int threads, int64_t iters, int passes, const std::string& isa) {
  double flop_per_iter = 8;  // scalar: 4 FMAs
#if defined(__x86_64__)
  if (isa == "avx512") flop_per_iter = 2.0 * 16 * kAcc512;
  if (isa == "avx2") flop_per_iter = 2.0 * 8 * kAcc256;
#endif
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    double s = run_together(threads, [&](int) {
#if defined(__x86_64__)
      if (isa == "avx512") {
        g_sink = fma_avx512(iters);
        return;
      }
      if (isa == "avx2") {
        g_sink = fma_avx2(iters);
        return;
      }
#endif
      g_sink = fma_scalar(iters);
    });
    best = std::max(best, flop_per_iter * double(iters) * threads / s / 1e9);
  }
  return best;
}

double measure_bf16_dot(int threads, int64_t iters, int passes) {
#if defined(__x86_64__)
  if (!has_bf16()) return 0;
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    double s = run_together(threads, [&](int) { g_sink = bf16_dot_avx512(iters); });
    best = std::max(best, 64.0 * kAcc512 * double(iters) * threads / s / 1e9);
  }
  return best;
#else
  (void)threads, (void)iters, (void)passes;
  return 0;
#endif
}

double measure_sgemm(int threads, int n, int passes) {
  openblas_set_num_threads(threads);
  const size_t nn = size_t(n) * size_t(n);
  Buffer a = alloc_floats(nn), b = alloc_floats(nn), c = alloc_floats(nn);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t i = 0; i < nn; ++i) {
    a[i] = u(rng);
    b[i] = u(rng);
  }
  auto once = [&] {
    auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.get(), n, b.get(), n, 0.0f, c.get(), n);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  once();  // warmup: OpenBLAS starts its threads and buffers
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) best = std::max(best, 2.0 * double(n) * n * n / once() / 1e9);
  g_sink = c[0];
  return best;
}

}  // namespace

std::string MachinePeaks::summary() const {
  return str("memory read ", int(read_gbps * 10) / 10.0, " GB/s (", read_streams, " streams/thread; 1 thread ", int(read_gbps_1t * 10) / 10.0,
             "); FMA peak ", int(fma_gflops), " GFLOP/s (OpenBLAS sgemm ", int(sgemm_gflops), ", ", isa,
             " FMA loop ", int(fma_loop_gflops), "); bf16 dot ", int(bf16_dot_gflops), " GFLOP/s; ", threads,
             " threads; OpenBLAS core ", openblas_core);
}

MachinePeaks measure_peaks(int threads, bool quick) {
  SY_CHECK(threads >= 1, "[bench peak] threads must be at least 1, got ", threads);
  MachinePeaks p;
  p.threads = threads;
  p.isa = "scalar";
#if defined(__x86_64__)
  if (has_avx512())
    p.isa = "avx512";
  else if (has_avx2())
    p.isa = "avx2";
#endif
  const char* core = openblas_get_corename();
  p.openblas_core = core ? core : "?";
  const size_t read_bytes = quick ? (size_t(128) << 20) : (size_t(1) << 30);
  const ReadResult all = measure_read(threads, read_bytes, quick ? 1 : 4, p.isa);
  p.read_gbps = all.gbps;
  p.read_streams = all.streams;
  p.read_gbps_1t = threads == 1 ? p.read_gbps : measure_read(1, read_bytes, quick ? 1 : 3, p.isa).gbps;
  const int64_t iters = quick ? 2'000'000 : 40'000'000;
  p.fma_loop_gflops = measure_fma_loop(threads, iters, quick ? 2 : 3, p.isa);
  p.bf16_dot_gflops = measure_bf16_dot(threads, iters, quick ? 2 : 3);
  p.sgemm_gflops = measure_sgemm(threads, quick ? 768 : 4096, quick ? 2 : 3);
  p.fma_gflops = std::max(p.sgemm_gflops, p.fma_loop_gflops);
  return p;
}

}  // namespace sy::cli
