// `switchyard bench moe`: times our MoE layer against two PyTorch eager baselines in one run
// (issue #2), on Qwen3-30B-A3B layer shapes (hidden 2048, 128 experts of width 768, top-8) and
// Mixtral-8x7B layer shapes (hidden 4096, 8 experts of width 14336, top-2), at 1 token (decode) and
// 512 tokens (prefill), with f32 and bf16 expert weights.
//
// Per (model, weight dtype): random weights from a seed (uniform, variance 1/H for the router,
// gate and up, 1/F for down; x has variance 1) are written once to a temporary safetensors file
// (tmpfs when it has room). Both sides memory-map that file, so they read identical bytes from
// identical pages. Per token count: our layer is timed (steady_clock, one warmup, then repeats
// until the time budget is spent, median), then bench/moe_torch.py (one process for the whole run,
// see its header) times the Hugging Face loop over experts and the dense masked computation, and
// writes the loop's output computed in f32: our output must match it (max |ours - ref| / max |ref|)
// on every token whose expert set is the same (near-ties in the router may flip; at most 1% of the
// tokens may) or the command fails.
//
// Reported per case:
//   bytes  = distinct experts touched x 3 H F x sizeof(weight) + router E H x 4 + x and y T H x 4 each
//   flops  = assignments x 2 x 3 H F + router 2 T H E
//   gbps   = bytes / ours, bandwidth_fraction = gbps / measured streaming read bandwidth
//   gflops = flops / ours, flops_fraction = gflops / measured f32 FMA peak (apps/peak.h); for bf16
//            compute (--compute, cpu_bf16_backend) / the measured bf16 dot (vdpbf16ps) peak
// Each case runs in f32 compute and, with --compute both (default) on bf16 weights, also in bf16
// compute (the expert FFNs' activations and weights rounded to bf16, as torch's bf16 run does):
// one row each, both checked against the same f32 reference (bf16 tolerance for bf16 compute).
//   speedup = min(torch loop, torch dense) / ours
// Targets (issue #2): prefill speedup >= 3; decode bandwidth_fraction >= 0.7.
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "io/safetensors.h"
#include "moe/moe_layer.h"
#include "peak.h"
#include "subprocess.h"

namespace sy::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;


struct BenchOptions {
  std::vector<std::string> cases;  // substrings of "model/tokens/dtype"; empty = all
  int repeats = 50;                // most timed repeats per measurement
  double budget_s = 3.0;           // time budget per measurement (after one warmup)
  bool no_torch = false, quick = false, as_json = false;
  std::string compute = "both";  // f32 or bf16 compute only; both: f32, plus bf16 on the bf16-weight cases
  uint64_t seed = 1;
  std::string python = SY_PYTHON;
  std::string torch_script = std::string(SY_SOURCE_DIR) + "/bench/moe_torch.py";
  std::string tmp_dir;  // default: /dev/shm when it has room, else the system temp directory
};

struct Shape {
  std::string name;
  int64_t H, E, F, k;
};

// --- weights ------------------------------------------------------------------------------------

// n values uniform in [-sqrt(3) sd, sqrt(3) sd] (variance sd^2) stored as `dt`; deterministic for
// (seed, stream) whatever the thread count: chunk c draws from its own generator.
void fill_random(void* dst, DType dt, size_t n, float sd, uint64_t seed, uint64_t stream) {
  constexpr size_t kChunk = size_t(1) << 14;
  const float a = sd * std::sqrt(3.0f);
  const size_t chunks = (n + kChunk - 1) / kChunk;
  default_pool().parallel_for(int64_t(chunks), [&](int64_t c, int) {
    uint64_t s = seed * 0x2545F4914F6CDD1Dull ^ (stream << 40) ^ uint64_t(c);
    size_t b = size_t(c) * kChunk, m = std::min(kChunk, n - b);
    float buf[kChunk];
    for (size_t i = 0; i < m; ++i) buf[i] = (float(splitmix64(s) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * a;
    from_f32(dt, buf, static_cast<uint8_t*>(dst) + b * dtype_size(dt), m);
  });
}

// Writes x [Tmax, H], router [E, H] (f32) and stacked gate/up [E, F, H], down [E, H, F] (dt) to path.
void write_weights(const std::string& path, const Shape& s, DType dt, int64_t tmax, uint64_t seed) {
  const size_t ne = size_t(s.E * s.F * s.H), es = dtype_size(dt);
  std::vector<float> x(size_t(tmax * s.H)), router(size_t(s.E * s.H));
  std::unique_ptr<uint8_t[]> gate(new uint8_t[ne * es]), up(new uint8_t[ne * es]), down(new uint8_t[ne * es]);
  const float sh = 1.0f / std::sqrt(float(s.H)), sf = 1.0f / std::sqrt(float(s.F));
  fill_random(x.data(), DType::F32, x.size(), 1.0f, seed, 1);
  fill_random(router.data(), DType::F32, router.size(), sh, seed, 2);
  fill_random(gate.get(), dt, ne, sh, seed, 3);
  fill_random(up.get(), dt, ne, sh, seed, 4);
  fill_random(down.get(), dt, ne, sf, seed, 5);
  write_safetensors(path,
                    {{"x", DType::F32, {tmax, s.H}, x.data()},
                     {"router", DType::F32, {s.E, s.H}, router.data()},
                     {"gate", dt, {s.E, s.F, s.H}, gate.get()},
                     {"up", dt, {s.E, s.F, s.H}, up.get()},
                     {"down", dt, {s.E, s.H, s.F}, down.get()}},
                    {{"k", std::to_string(s.k)}, {"norm", "true"}, {"model", s.name}});
}

// --- timing -------------------------------------------------------------------------------------

struct Timing {
  double ms = 0;
  int repeats = 0;
};

// One warmup call, then repeats until the budget is spent (at least 1, at most max_repeats).
Timing time_median(const std::function<void()>& fn, double budget_s, int max_repeats) {
  auto secs = [](Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); };
  auto t0 = Clock::now();
  fn();
  double warm = secs(t0);
  std::vector<double> t;
  auto start = Clock::now();
  while (int(t.size()) < max_repeats) {
    auto a = Clock::now();
    fn();
    t.push_back(secs(a));
    if (secs(start) + std::max(warm, t.back()) > budget_s) break;
  }
  std::sort(t.begin(), t.end());
  size_t n = t.size();
  double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return {med * 1e3, int(n)};
}

// --- the PyTorch helper -------------------------------------------------------------------------

class TorchBaselines {
 public:
  TorchBaselines(const BenchOptions& o, int threads)
      : child_({o.python, o.torch_script, "--threads", std::to_string(threads)}, kOpenblasVars) {
    hello_ = read_json("its start-up line");
  }
  const json& hello() const { return hello_; }
  json run(const json& request) {
    child_.write_line(request.dump());
    json r = read_json("its answer to " + request.value("label", std::string("?")));
    SY_CHECK(!r.contains("error"), "[bench] PyTorch baseline failed on ", request.value("label", std::string("?")),
             ": ", r["error"].get<std::string>());
    return r;
  }

 private:
  json read_json(const std::string& what) { return child_.read_json_line("bench", what); }
  ChildProcess child_;
  json hello_;
};

// --- one case -----------------------------------------------------------------------------------

struct Check {
  double max_rel_err = 0;
  int64_t routing_mismatch = 0;
  bool pass = false;
};

Check compare(const std::vector<float>& ours, const Routing& r, const std::string& out_path, const Shape& s,
              int64_t T, double tol) {
  SafeTensors st(out_path);
  std::vector<float> ref = st.to_f32("y_ref");
  SY_CHECK(int64_t(ref.size()) == T * s.H, "[bench] ", out_path, ": y_ref has ", ref.size(), " values, expected ",
           T * s.H);
  const TensorInfo& ti = st.get("topk", {T, s.k});
  SY_CHECK(ti.dtype == DType::I32, "[bench] ", out_path, ": topk must be i32");
  const auto* topk = reinterpret_cast<const int32_t*>(ti.data);
  Check c;
  double scale = 0, worst = 0;
  for (float v : ref) scale = std::max(scale, double(std::fabs(v)));
  scale = std::max(scale, 1e-30);
  for (int64_t t = 0; t < T; ++t) {
    std::set<int32_t> a(r.expert.begin() + r.offsets[size_t(t)], r.expert.begin() + r.offsets[size_t(t) + 1]);
    std::set<int32_t> b(topk + t * s.k, topk + (t + 1) * s.k);
    if (a != b) {
      c.routing_mismatch++;
      continue;
    }
    for (int64_t h = 0; h < s.H; ++h) {
      double d = std::fabs(double(ours[size_t(t * s.H + h)]) - double(ref[size_t(t * s.H + h)]));
      if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
    }
  }
  c.max_rel_err = worst / scale;
  c.pass = c.max_rel_err <= tol && c.routing_mismatch <= T / 100;
  return c;
}

// One row per backend in `backends` (f32 compute, and bf16 compute where asked): each is timed and
// checked against the same PyTorch run (the baselines are timed once per case).
std::vector<json> run_case(const BenchOptions& o, const Shape& s, DType dt, int64_t T, const SafeTensors& w,
                           const std::string& weights_path, const MachinePeaks& peaks, TorchBaselines* torch,
                           const std::vector<Backend*>& backends) {
  const std::string label = str(s.name, "/", T, "/", dtype_name(dt));
  std::vector<FfnWeights> experts(size_t(s.E));
  const auto& g = w.get("gate", {s.E, s.F, s.H});
  const auto& u = w.get("up", {s.E, s.F, s.H});
  const auto& d = w.get("down", {s.E, s.H, s.F});
  const size_t eb = size_t(s.F * s.H) * dtype_size(dt);
  for (int64_t e = 0; e < s.E; ++e) {
    experts[size_t(e)].gate = {g.data + size_t(e) * eb, dt, s.F, s.H};
    experts[size_t(e)].up = {u.data + size_t(e) * eb, dt, s.F, s.H};
    experts[size_t(e)].down = {d.data + size_t(e) * eb, dt, s.H, s.F};
  }
  MoEWeights mw;
  mw.router = {w.get("router", {s.E, s.H}).data, DType::F32, s.E, s.H};
  mw.experts = std::make_shared<InMemoryExperts>(std::move(experts));
  MoELayer layer({s.H, s.E, s.F, {}}, mw, make_router(str("topk:k=", s.k, ",norm=true"), int(s.E)));
  const float* x = reinterpret_cast<const float*>(w.get("x").data);
  std::vector<float> out(size_t(T * s.H));
  RouteInput ctx;
  ctx.decode = T == 1;

  std::vector<json> rows;
  std::vector<MoEForwardInfo> infos(backends.size());
  std::vector<std::vector<float>> outs;
  for (size_t b = 0; b < backends.size(); ++b) {
    Backend& be = *backends[b];
    MoEForwardInfo& info = infos[b];
    layer.forward(x, T, out.data(), ctx, &info, be);  // untimed: the routing and the output to check
    outs.push_back(out);
    Timing t = time_median([&] { layer.forward(x, T, out.data(), ctx, nullptr, be); }, o.budget_s, o.repeats);

    std::set<int32_t> touched(info.routing.expert.begin(), info.routing.expert.end());
    const int64_t nnz = info.routing.nnz();
    const double bytes = double(touched.size()) * 3.0 * double(s.H * s.F) * double(dtype_size(dt)) +
                         double(s.E * s.H) * 4.0 + 2.0 * double(T * s.H) * 4.0;
    const double flops = double(nnz) * 6.0 * double(s.H * s.F) + 2.0 * double(T * s.H * s.E);
    const double sec = t.ms * 1e-3;
    const bool bf16c = &be == &cpu_bf16_backend();
    // Fractions of the peak of the same precision class: bf16 compute against the bf16 dot peak.
    const double peak_flops = bf16c && peaks.bf16_dot_gflops > 0 ? peaks.bf16_dot_gflops : peaks.fma_gflops;
    json j = {{"case", s.name}, {"label", label}, {"phase", T == 1 ? "decode" : "prefill"},
              {"tokens", T}, {"weight_dtype", std::string(dtype_name(dt))}, {"compute", bf16c ? "bf16" : "f32"},
              {"hidden", s.H}, {"experts", s.E}, {"expert_ffn", s.F}, {"top_k", s.k}, {"threads", peaks.threads},
              {"backend", be.name()}, {"ours_ms", t.ms}, {"ours_repeats", t.repeats},
              {"experts_touched", touched.size()}, {"bytes", bytes}, {"flops", flops},
              {"gbps", bytes / sec / 1e9}, {"bandwidth_fraction", bytes / sec / 1e9 / peaks.read_gbps},
              {"gflops", flops / sec / 1e9}, {"flops_fraction", flops / sec / 1e9 / peak_flops},
              {"peak_read_gbps", peaks.read_gbps}, {"peak_fma_gflops", peaks.fma_gflops},
              {"peak_flops_gflops", peak_flops},
              {"torch_loop_ms", nullptr}, {"torch_dense_ms", nullptr}, {"speedup", nullptr}};
    j["target"] = T == 1 ? "bandwidth_fraction >= 0.7" : "speedup >= 3";
    if (!torch) {
      j["check"] = "skipped (--no-torch)";
      j["target_met"] = T == 1 ? json(j["bandwidth_fraction"].get<double>() >= 0.7) : json(nullptr);
    }
    rows.push_back(j);
  }
  if (!torch) return rows;
  const std::string out_path = weights_path + str(".out", T, ".safetensors");
  json req = {{"weights", weights_path}, {"out", out_path}, {"tokens", T}, {"label", label},
              {"budget_s", o.budget_s}, {"max_repeats", o.repeats}};
  json r = torch->run(req);
  for (size_t b = 0; b < rows.size(); ++b) {
    json& j = rows[b];
    // bf16 compute rounds x and the FFN's activations to bf16: the bf16-weights tolerance covers it.
    const double tol = dt == DType::F32 && j["compute"] == "f32" ? 1e-4 : 2e-2;
    Check c = compare(outs[b], infos[b].routing, out_path, s, T, tol);
    for (const char* k : {"torch_loop_ms", "torch_loop_repeats", "torch_dense_ms", "torch_dense_repeats",
                          "torch_dense_vs_loop_rel_err"})
      if (r.contains(k)) j[k] = r[k];
    double loop = r["torch_loop_ms"].get<double>(), dense = r["torch_dense_ms"].get<double>();
    j["torch_best"] = loop <= dense ? "loop" : "dense";
    j["speedup"] = std::min(loop, dense) / j["ours_ms"].get<double>();
    j["max_rel_err"] = c.max_rel_err;
    j["tolerance"] = tol;
    j["routing_mismatch_tokens"] = c.routing_mismatch;
    j["check"] = c.pass ? "pass" : "FAIL";
    j["target_met"] = T == 1 ? j["bandwidth_fraction"].get<double>() >= 0.7 : j["speedup"].get<double>() >= 3.0;
  }
  std::filesystem::remove(out_path);
  return rows;
}

// --- output -------------------------------------------------------------------------------------

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void print_row_header() {
  std::printf("%-16s %6s %5s %4s %9s %9s %9s %8s %7s %5s %8s %6s %9s %5s  %s\n", "case", "tokens", "dtype", "comp", "ours ms",
              "loop ms", "dense ms", "speedup", "GB/s", "%bw", "GFLOP/s", "%peak", "rel err", "check", "target");
}

void print_row(const json& j) {
  auto num = [&](const char* k, const char* f) {
    return j.contains(k) && j[k].is_number() ? fmt(f, j[k].get<double>()) : std::string("-");
  };
  std::string target = j["target"].get<std::string>();
  std::string met = j["target_met"].is_boolean() ? (j["target_met"].get<bool>() ? "met" : "MISSED") : "n/a";
  std::printf("%-16s %6lld %5s %4s %9s %9s %9s %8s %7s %5s %8s %6s %9s %5s  %s %s\n", j["case"].get<std::string>().c_str(),
              (long long)j["tokens"].get<int64_t>(), j["weight_dtype"].get<std::string>().c_str(),
              j["compute"].get<std::string>().c_str(),
              num("ours_ms", "%.3f").c_str(), num("torch_loop_ms", "%.3f").c_str(), num("torch_dense_ms", "%.3f").c_str(),
              (num("speedup", "%.2f") + (j["speedup"].is_number() ? "x" : "")).c_str(), num("gbps", "%.1f").c_str(),
              fmt("%.0f%%", 100 * j["bandwidth_fraction"].get<double>()).c_str(), num("gflops", "%.1f").c_str(),
              fmt("%.0f%%", 100 * j["flops_fraction"].get<double>()).c_str(), num("max_rel_err", "%.1e").c_str(),
              j["check"].get<std::string>().substr(0, 5).c_str(), target.c_str(), met.c_str());
  std::fflush(stdout);
}

void run_bench_moe(const BenchOptions& o) {
  reexec_without(kOpenblasVars);  // OpenBLAS reads them when it loads: our sgemm peak must not see them
  const int threads = default_pool().size();
  std::vector<Shape> shapes = o.quick ? std::vector<Shape>{{"qwen3-quick", 256, 16, 96, 4}, {"mixtral-quick", 256, 4, 512, 2}}
                                      : std::vector<Shape>{{"qwen3-30b-a3b", 2048, 128, 768, 8},
                                                           {"mixtral-8x7b", 4096, 8, 14336, 2}};
  const std::vector<int64_t> tokens = o.quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 512};
  auto selected = [&](const std::string& label) {
    if (o.cases.empty()) return true;
    for (const auto& c : o.cases)
      if (label.find(c) != std::string::npos) return true;
    return false;
  };
  FILE* info = o.as_json ? stderr : stdout;  // with --json, stdout carries only the case objects
  std::fprintf(info, "switchyard bench moe: %d threads, backend %s, load average %s\n", threads,
               default_backend().name(), load_average().c_str());
  MachinePeaks peaks = measure_peaks(threads, o.quick);
  std::fprintf(info, "machine: %s\n", peaks.summary().c_str());
  std::unique_ptr<TorchBaselines> torch;
  if (!o.no_torch) {
    torch = std::make_unique<TorchBaselines>(o, threads);
    const json& h = torch->hello();
    std::fprintf(info, "torch %s: %d threads, BLAS %s, OpenBLAS core %s, libs %s\n",
                 h.value("torch", std::string("?")).c_str(), h.value("threads", 0),
                 h.value("openblas_config", std::string("?")).c_str(), h.value("openblas_core", std::string("?")).c_str(),
                 h.value("blas_libs", json::array()).dump().c_str());
  }
  if (!o.as_json) print_row_header();
  std::vector<std::string> failed;
  for (const auto& s : shapes)
    for (DType dt : {DType::F32, DType::BF16}) {
      std::vector<int64_t> ts;
      for (int64_t T : tokens)
        if (selected(str(s.name, "/", T, "/", dtype_name(dt)))) ts.push_back(T);
      if (ts.empty()) continue;
      const int64_t tmax = *std::max_element(ts.begin(), ts.end());
      const size_t need = size_t(3 * s.E * s.F * s.H) * dtype_size(dt) + size_t((tmax + s.E) * s.H) * 4 + (1 << 20);
      const std::string path =
          pick_tmp_dir(o.tmp_dir, need) + str("/sy_bench_moe_", ::getpid(), "_", s.name, "_", dtype_name(dt), ".safetensors");
      struct Remove {
        std::string p;
        ~Remove() { std::filesystem::remove(p); }
      } cleanup{path};
      write_weights(path, s, dt, tmax, o.seed);
      SafeTensors w(path);
      for (int64_t T : ts) {
        std::vector<Backend*> backends;
        if (o.compute != "bf16") backends.push_back(&default_backend());
        if (o.compute == "bf16" || (o.compute == "both" && dt == DType::BF16))
          backends.push_back(&cpu_bf16_backend());
        for (const json& j : run_case(o, s, dt, T, w, path, peaks, torch.get(), backends)) {
          if (j["check"] == "FAIL")
            failed.push_back(j["label"].get<std::string>() + " compute " + j["compute"].get<std::string>());
          if (o.as_json) {
            std::printf("%s\n", j.dump().c_str());
            std::fflush(stdout);
          } else {
            print_row(j);
          }
        }
      }
    }
  if (torch) torch.reset();
  std::fprintf(info, "load average at the end: %s\n", load_average().c_str());
  if (!o.as_json)
    std::printf("comp = our compute precision (bf16: activations rounded to bf16, vdpbf16ps; torch runs bf16-weight "
                "cases in bf16); speedup = faster PyTorch baseline / ours; %%bw of the measured read bandwidth, %%peak "
                "of the measured f32 FMA peak (bf16 dot peak for comp bf16); rel err = max |ours - torch loop (f32 "
                "compute)| / max |torch loop|\n");
  SY_CHECK(failed.empty(), "[bench] our output does not match the PyTorch loop for ", failed.size(),
           " case(s), first ", failed.empty() ? "" : failed[0]);
}

}  // namespace

void add_bench(CLI::App& app) {
  static BenchOptions o;
  auto* cmd = app.add_subcommand("bench", "benchmarks against PyTorch in the same run");
  cmd->require_subcommand(1);
  auto* moe = cmd->add_subcommand("moe", "MoE layer vs PyTorch eager baselines (HF loop over experts, dense masked)");
  moe->add_option("--cases", o.cases, "run only cases whose MODEL/TOKENS/DTYPE contains one of these (e.g. qwen3, /512/, mixtral-8x7b/1/bf16)");
  moe->add_option("--repeats", o.repeats, "most timed repeats per measurement (after one warmup)")
      ->check(CLI::Range(1, 100000));
  moe->add_option("--budget", o.budget_s, "seconds per measurement before repeats stop (at least one repeat)")
      ->check(CLI::Range(0.0, 3600.0));
  moe->add_flag("--no-torch", o.no_torch, "time our layer only (no PyTorch baselines, no correctness check)");
  moe->add_option("--compute", o.compute,
                  "f32 (f32 compute), bf16 (bf16 compute: activations rounded to bf16, vdpbf16ps; oneDNN for prefill), or both "
                  "(f32 on every case, plus bf16 compute on the bf16-weight cases; default)")
      ->check(CLI::IsMember({"f32", "bf16", "both"}));
  moe->add_flag("--quick", o.quick, "small shapes for smoke tests");
  moe->add_flag("--json", o.as_json, "one JSON object per case on stdout (machine and torch info go to stderr)");
  moe->add_option("--seed", o.seed, "seed of the random weights and inputs");
  moe->add_option("--python", o.python, "python with torch for the baselines");
  moe->add_option("--torch-script", o.torch_script, "the PyTorch baselines script");
  moe->add_option("--tmp-dir", o.tmp_dir, "where the shared weights file goes (default /dev/shm if it has room)");
  moe->callback([moe] {
    if (o.quick && moe->count("--budget") == 0) o.budget_s = 0.1;
    run_bench_moe(o);
  });
  add_bench_model(cmd);
  add_bench_offload(cmd);
  add_bench_train(cmd);
}

}  // namespace sy::cli
