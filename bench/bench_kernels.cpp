// Micro benchmarks of the CPU backend's kernels (Google Benchmark): the expert FFN at decode and
// prefill shapes of Qwen3-30B-A3B (H=2048, F=768, 128 experts, top-8) and Mixtral-8x7B (H=4096,
// F=14336, 8 experts, top-2), the router linear, and a plain streaming read as the bandwidth yardstick.
// Decode rotates over more experts than the L3 holds so each weight byte comes from DRAM.
//   build-X/bench_kernels --benchmark_filter=Decode --benchmark_min_time=2
// Counters (shown as X/s): GB = weight bytes read (each active expert once), GFLOP = 2*slots*H*F*3.
#include <benchmark/benchmark.h>

#include <atomic>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/threadpool.h"
#include "kernels/backend.h"

namespace sy {
namespace {

// Weights filled with small values (|w| < 0.02) of the given dtype; contents do not matter for speed.
struct Experts {
  int64_t H, F, E;
  DType dt;
  std::vector<uint8_t> bytes;
  std::vector<FfnWeights> w;
  Experts(int64_t h, int64_t f, int64_t e, DType t) : H(h), F(f), E(e), dt(t) {
    const size_t per = size_t(H) * size_t(F) * dtype_size(dt);
    bytes.resize(per * 3 * size_t(E));
    std::vector<float> src(1 << 16);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-0.02f, 0.02f);
    for (float& v : src) v = u(rng);
    std::vector<uint8_t> pat(src.size() * dtype_size(dt));
    from_f32(dt, src.data(), pat.data(), src.size());
    default_pool().parallel_for(int64_t(bytes.size() / pat.size()) + 1, [&](int64_t t, int) {
      size_t off = size_t(t) * pat.size();
      if (off < bytes.size()) std::memcpy(bytes.data() + off, pat.data(), std::min(pat.size(), bytes.size() - off));
    });
    for (int64_t e = 0; e < E; ++e) {
      const uint8_t* b = bytes.data() + per * 3 * size_t(e);
      FfnWeights fw;
      fw.gate = {b, dt, F, H};
      fw.up = {b + per, dt, F, H};
      fw.down = {b + 2 * per, dt, H, F};
      w.push_back(fw);
    }
  }
  size_t expert_bytes() const { return size_t(H) * size_t(F) * dtype_size(dt) * 3; }
};

Experts& experts(int64_t H, int64_t F, int64_t E, DType dt) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::unique_ptr<Experts>> cache;
  auto& p = cache[{H, F, E, int(dt)}];
  if (!p) {
    cache.clear();  // one model's weights at a time
    auto& q = cache[{H, F, E, int(dt)}];
    q = std::make_unique<Experts>(H, F, E, dt);
    return *q;
  }
  return *p;
}

const DType kDt[] = {DType::F32, DType::BF16, DType::F16};

// args: model (0 Qwen3, 1 Mixtral), dtype index, tokens (total routed tokens = tokens * topk).
void BM_Ffn(benchmark::State& state) {
  const bool mixtral = state.range(0) == 1;
  const DType dt = kDt[state.range(1)];
  const int64_t T = state.range(2);
  const int64_t H = mixtral ? 4096 : 2048, F = mixtral ? 14336 : 768, E = mixtral ? 8 : 128, K = mixtral ? 2 : 8;
  // Decode: rotate over enough experts that a pass does not fit the 32 MiB L3.
  const int64_t pool_e = T == 1 ? (mixtral ? (dt == DType::F32 ? 2 : 4) : 48) : E;
  Experts& ex = experts(H, F, pool_e, dt);
  const int64_t per_group = T * K / E > 0 ? T * K / E : 1;
  const int64_t G = T * K / per_group;
  std::vector<float> x(size_t(T * H), 0.5f), y(size_t(G * per_group * H));
  std::vector<int32_t> rows(size_t(G * per_group)), dst(rows.size());
  std::vector<float> scale(rows.size(), 0.25f);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int32_t(i % size_t(T)), dst[i] = int32_t(i);
  std::vector<FfnGroup> groups(static_cast<size_t>(G));
  int64_t next = 0;
  FfnParams p;
  for (auto _ : state) {
    for (int64_t g = 0; g < G; ++g) {
      FfnGroup& gr = groups[size_t(g)];
      gr.weights = ex.w[size_t(next++ % pool_e)];
      gr.rows = rows.data() + g * per_group;
      gr.dst = dst.data() + g * per_group;
      gr.scale = scale.data() + g * per_group;
      gr.n = per_group;
    }
    cpu_backend().grouped_ffn(x.data(), H, groups, p, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = double(ex.expert_bytes()) * double(G);
  const double flops = 2.0 * double(G * per_group) * double(H) * double(F) * 3.0;
  state.counters["GB"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(mixtral ? "mixtral " : "qwen3 ") + std::string(dtype_name(dt)) + " groups=" +
                 std::to_string(G) + "x" + std::to_string(per_group));
}
BENCHMARK(BM_Ffn)
    ->ArgNames({"mixtral", "dtype", "tokens"})
    ->Args({0, 1, 1})->Args({0, 2, 1})->Args({0, 0, 1})
    ->Args({1, 1, 1})->Args({1, 0, 1})
    ->Args({0, 1, 512})->Args({0, 0, 512})
    ->Args({1, 1, 512})->Args({1, 0, 512})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// Router linear: [T, 2048] x [128, 2048]^T, f32.
void BM_RouterLinear(benchmark::State& state) {
  const int64_t T = state.range(0), H = 2048, N = 128;
  std::vector<float> x(size_t(T * H), 0.5f), w(size_t(N * H), 0.01f), y(size_t(T * N));
  WeightRef W{w.data(), DType::F32, N, H};
  for (auto _ : state) {
    cpu_backend().linear(x.data(), T, W, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP"] =
      benchmark::Counter(2.0 * double(T * N * H) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_RouterLinear)->Arg(1)->Arg(512)->UseRealTime();

// Streaming read of 1 GiB with every pool thread (sum of floats, 64 KiB chunks claimed atomically).
void BM_StreamRead(benchmark::State& state) {
  static std::vector<float> buf(size_t(1) << 28, 1.0f);
  const int64_t chunk = 1 << 14, n = int64_t(buf.size()) / chunk;
  std::vector<uint64_t> part(static_cast<size_t>(n));
  for (auto _ : state) {
    default_pool().parallel_for(n, [&](int64_t t, int) {
      const uint64_t* p = reinterpret_cast<const uint64_t*>(buf.data() + t * chunk);
      uint64_t s = 0;
      for (int64_t i = 0; i < chunk / 2; ++i) s += p[i];  // integer sum: vectorised by the compiler
      part[size_t(t)] = s;
    });
    benchmark::DoNotOptimize(part.data());
  }
  state.counters["GB"] =
      benchmark::Counter(double(buf.size()) * 4 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_StreamRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace sy

BENCHMARK_MAIN();
