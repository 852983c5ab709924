// `switchyard bench train` (issue #4): training tokens/s of our MoELM (src/train/moe_lm.h) against
// the same model trained by PyTorch (bench/train_torch.py) in the same run, with the same threads,
// the same initial weights and the same token batches.
//
// Model: the tiny Qwen3-MoE LM of MoELM with the softmax top-k router and renormalised gates
// (router "topk:k=K,norm=true"), Switch balance loss (lb_coef 0.01, mean over layers), no z-loss.
// Presets (every size can be overridden by a flag):
//   tiny   vocab 256,  hidden 64,  2 layers, 4 heads / 2 KV heads of 16, 4 experts x 64,  top-2, T 32,  B 2
//   small  vocab 2048, hidden 128, 2 layers, 4 heads / 2 KV heads of 32, 8 experts x 256, top-2, T 128, B 8
//   demo   vocab 8192, hidden 256, 4 layers, 4 heads / 2 KV heads of 64, 8 experts x 512, top-2, T 256, B 8
//          (the demo model's size, issue #4)
//
// Protocol: MoELM::init(seed) draws the initial weights; they, the token batches
// ([check + timed steps, B, T + 1] uniform ids from splitmix64(seed), inputs [:, :T], targets
// [:, 1:]) and the configuration (metadata) go to one temporary safetensors file (tmpfs when it has
// room) that the PyTorch helper loads by tensor name. One step, on both sides: zero the gradients,
// forward + backward, clip the global gradient norm to max_norm (torch.nn.utils.clip_grad_norm_),
// AdamW (lr 1e-3, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only). The first
// --check-steps steps (3) are untimed; their losses (each before its update) must agree:
// max |ours - torch| / |torch| <= --tolerance (1e-4), or the command fails after printing. The
// next --steps steps are timed one by one (steady_clock / time.perf_counter, step as above).
//   tokens/s = B * T * timed steps / sum of the timed steps' seconds (also the median step)
//   flop per token = 6 * active matmul parameters (q, k, v, o projections, router, top-k experts
//                    x 3 H F, LM head; not the embedding, a lookup) + attention 6 * L * Hq * D *
//                    (T + 1) (causal q k^T and a v: mean (T + 1) / 2 keys, forward 2 x 2 flop per
//                    key and dim, backward twice the forward)
//   GFLOP/s = flop per token * tokens/s, also as a fraction of the machine's f32 FMA peak
//             (apps/peak.h, measured with the same threads)
// Threads: -t N (default all cores) sizes our pool (the train ops run OpenBLAS single-threaded and
// tile products over the pool). PyTorch gets the same N threads, split at its best: torch has two
// thread pools (its OpenMP intra-op threads and OpenBLAS's own threads inside each matmul), and on
// this machine giving both N threads oversubscribes the cores (measured 2x slower than 1 thread at
// N = 2). So, unless --torch-threads same, the helper runs once per split (omp N / blas N, omp N /
// blas 1, omp 1 / blas N), every run must pass the loss check, and the fastest is the baseline
// ("torch"; all runs are in "torch_runs"). --torch-amp adds the same splits under bf16 autocast
// (mixed precision, a different precision class: reported as "torch_amp", not the baseline).
// --precision bf16 runs our linear layers' products in bf16 mixed precision (train/ops.h
// MatmulPrecision); the baseline is then PyTorch's fastest bf16-autocast split (the same precision
// class), the f32 runs are reported beside it ("torch_f32"), and the loss check compares with the
// autocast runs at 1e-3 (both sides round operands to bf16; autocast also rounds every product's
// output to bf16, we keep them f32).
// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from both processes (kOpenblasVars: they slow
// down this machine's OpenBLAS).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "io/safetensors.h"
#include "peak.h"
#include "subprocess.h"
#include "train/moe_lm.h"
#include "train/optim.h"

namespace sy::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, experts = 0, expert_ffn = 0,
          top_k = 0, seq = 0, batch = 0;
};

struct BenchTrainOptions {
  std::string preset = "small";
  Shape over;  // 0 = the preset's
  int steps = 10, check_steps = 3;
  double lr = 1e-3, wd = 0.1, max_norm = 1.0, tolerance = -1;  // < 0: 1e-4 (f32) or 1e-3 (bf16)
  uint64_t seed = 1;
  bool no_torch = false, no_peaks = false, quick_peaks = false, as_json = false, torch_amp = false;
  std::string torch_threads = "best";
  std::string precision = "f32";
  std::string python = SY_PYTHON;
  std::string torch_script = std::string(SY_SOURCE_DIR) + "/bench/train_torch.py";
  std::string tmp_dir;
};

Shape preset_shape(const std::string& name) {
  if (name == "tiny") return {256, 64, 2, 4, 2, 16, 4, 64, 2, 32, 2};
  if (name == "small") return {2048, 128, 2, 4, 2, 32, 8, 256, 2, 128, 8};
  if (name == "demo") return {8192, 256, 4, 4, 2, 64, 8, 512, 2, 256, 8};
  fail("[bench train] --preset must be tiny, small or demo, got '", name, "'");
}

Shape resolve(const BenchTrainOptions& o) {
  Shape s = preset_shape(o.preset);
  auto pick = [](int64_t& dst, int64_t v) {
    if (v > 0) dst = v;
  };
  pick(s.vocab, o.over.vocab);
  pick(s.hidden, o.over.hidden);
  pick(s.layers, o.over.layers);
  pick(s.heads, o.over.heads);
  pick(s.kv_heads, o.over.kv_heads);
  pick(s.head_dim, o.over.head_dim);
  pick(s.experts, o.over.experts);
  pick(s.expert_ffn, o.over.expert_ffn);
  pick(s.top_k, o.over.top_k);
  pick(s.seq, o.over.seq);
  pick(s.batch, o.over.batch);
  return s;
}

train::MoELMConfig model_config(const Shape& s) {
  train::MoELMConfig c;
  c.vocab = s.vocab;
  c.hidden = s.hidden;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.n_experts = s.experts;
  c.expert_ffn = s.expert_ffn;
  c.router = str("topk:k=", s.top_k, ",norm=true");
  c.lb_coef = 0.01f;
  c.z_coef = 0.0f;
  c.entropy_coef = 0.0f;
  return c;
}

// Matmul parameters one token uses (forward), see the header.
int64_t active_params(const Shape& s) {
  const int64_t H = s.hidden, qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  const int64_t per_layer = 2 * H * qd + 2 * H * kvd + s.experts * H + s.top_k * 3 * H * s.expert_ffn;
  return s.layers * per_layer + s.vocab * H;
}

double flop_per_token(const Shape& s) {
  return 6.0 * double(active_params(s)) + 6.0 * double(s.layers * s.heads * s.head_dim) * double(s.seq + 1);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Side {
  std::vector<double> losses, step_s;
};

json side_json(const Side& r, int64_t tokens_per_step, double fpt, double peak) {
  double total = 0;
  for (double t : r.step_s) total += t;
  const double tps = total > 0 ? double(tokens_per_step) * double(r.step_s.size()) / total : 0;
  json j = {{"losses", r.losses}, {"step_s", r.step_s}, {"median_step_s", median(r.step_s)},
            {"tokens_per_s", tps}, {"median_tokens_per_s", double(tokens_per_step) / median(r.step_s)},
            {"gflops", fpt * tps / 1e9}};
  if (peak > 0) j["peak_fraction"] = fpt * tps / 1e9 / peak;
  return j;
}

// Removes the shared file however the command ends.
struct FileGuard {
  std::string path;
  ~FileGuard() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};

void print_table(const json& j) {
  const json& ours = j["ours"];
  const json* torch = j.contains("torch") ? &j["torch"] : nullptr;
  std::printf("\n%-26s %14s %14s %10s\n", "", "ours", "torch", "ours/torch");
  auto row = [&](const char* label, const char* key, const char* f, bool higher_better, double scale = 1) {
    const double a = scale * ours[key].get<double>();
    std::string b = "-", ratio = "-";
    if (torch) {
      const double t = scale * (*torch)[key].get<double>();
      b = fmt(f, t);
      if (a > 0 && t > 0) ratio = fmt("%.2fx", higher_better ? a / t : t / a);
    }
    std::printf("%-26s %14s %14s %10s\n", label, fmt(f, a).c_str(), b.c_str(), ratio.c_str());
  };
  row("tokens/s (mean)", "tokens_per_s", "%.0f", true);
  row("tokens/s (median step)", "median_tokens_per_s", "%.0f", true);
  row("median step ms", "median_step_s", "%.2f", false, 1e3);
  row("GFLOP/s", "gflops", "%.2f", true);
  if (ours.contains("peak_fraction"))
    std::printf("%-26s %13.1f%% %13s\n", "of the FMA peak", 100 * ours["peak_fraction"].get<double>(),
                torch ? fmt("%.1f%%", 100 * (*torch)["peak_fraction"].get<double>()).c_str() : "-");
  std::printf("(ours/torch: ratio of tokens/s and GFLOP/s; torch / ours for step time)\n");
  if (torch) {
    const bool bf16 = j.value("precision", std::string("f32")) == "bf16";
    std::printf("ours: %s products; torch: the fastest %s run (%d OpenMP / %d OpenBLAS threads) of:",
                bf16 ? "bf16 mixed-precision" : "f32", bf16 ? "bf16 autocast" : "f32", (*torch)["threads"].get<int>(),
                (*torch)["blas_threads"].get<int>());
    for (const auto& r : j["torch_runs"])
      std::printf(" [%s omp %d blas %d: %.0f tok/s]", r["amp"].get<bool>() ? "bf16 autocast" : "f32",
                  r["threads"].get<int>(), r["blas_threads"].get<int>(), r["tokens_per_s"].get<double>());
    std::printf("\n");
    if (j.contains("torch_f32"))
      std::printf("torch f32 (not the baseline): best %.0f tokens/s; ours/that %.2fx\n",
                  j["torch_f32"]["tokens_per_s"].get<double>(), j["speedup_vs_f32"].get<double>());
    if (j.contains("torch_amp"))
      std::printf("torch bf16 autocast (mixed precision, not the baseline): best %.0f tokens/s; ours/that %.2fx\n",
                  j["torch_amp"]["tokens_per_s"].get<double>(), j["speedup_vs_amp"].get<double>());
    std::printf("loss check (first %d steps, same weights and batches): ", j["check_steps"].get<int>());
    const auto& lo = ours["losses"];
    const auto& lt = (*torch)["losses"];
    for (int s = 0; s < j["check_steps"].get<int>(); ++s)
      std::printf("%s%.6f vs %.6f", s ? ", " : "", lo[size_t(s)].get<double>(), lt[size_t(s)].get<double>());
    std::printf("; max rel diff %.2e (tolerance %.0e): %s\n", j["loss_max_rel_diff"].get<double>(),
                j["tolerance"].get<double>(), j["loss_check"].get<std::string>().c_str());
  }
}

void run_bench_train(const BenchTrainOptions& o) {
  reexec_without(kOpenblasVars);  // OpenBLAS reads them when it loads
  const Shape s = resolve(o);
  const int threads = default_pool().size();
  SY_CHECK(s.top_k <= s.experts, "[bench train] --top-k ", s.top_k, " exceeds --experts ", s.experts);
  SY_CHECK(o.check_steps >= 1, "[bench train] --check-steps must be at least 1");
  FILE* info = o.as_json ? stderr : stdout;
  const int64_t B = s.batch, T = s.seq, N = B * T, total_steps = o.check_steps + o.steps;
  const double fpt = flop_per_token(s);
  json j = {{"bench", "train"}, {"preset", o.preset}, {"vocab", s.vocab}, {"hidden", s.hidden}, {"layers", s.layers},
            {"heads", s.heads}, {"kv_heads", s.kv_heads}, {"head_dim", s.head_dim}, {"experts", s.experts},
            {"expert_ffn", s.expert_ffn}, {"top_k", s.top_k}, {"seq", T}, {"batch", B}, {"tokens_per_step", N},
            {"check_steps", o.check_steps}, {"timed_steps", o.steps}, {"seed", o.seed}, {"threads", threads},
            {"lr", o.lr}, {"weight_decay", o.wd}, {"max_norm", o.max_norm}, {"active_params", active_params(s)},
            {"flop_per_token", fpt}, {"load_average_start", load_average()}};

  train::MoELM model(model_config(s));
  model.init(o.seed);
  const bool bf16 = o.precision == "bf16";
  model.set_matmul_precision(train::parse_matmul_precision(o.precision));
  const double tolerance = o.tolerance >= 0 ? o.tolerance : bf16 ? 1e-3 : 1e-4;
  j["precision"] = o.precision;
  j["params"] = int64_t(model.weights().size());
  std::fprintf(info, "switchyard bench train: preset %s, vocab %lld, hidden %lld, %lld layers, %lld/%lld heads of %lld, "
               "%lld experts x %lld top-%lld, B %lld x T %lld, %lld params (%lld active matmul), %d threads, load "
               "average %s\n", o.preset.c_str(), (long long)s.vocab, (long long)s.hidden, (long long)s.layers,
               (long long)s.heads, (long long)s.kv_heads, (long long)s.head_dim, (long long)s.experts,
               (long long)s.expert_ffn, (long long)s.top_k, (long long)B, (long long)T,
               (long long)model.weights().size(), (long long)active_params(s), threads, load_average().c_str());

  // The token batches [steps, B, T + 1].
  std::vector<int32_t> tokens(static_cast<size_t>(total_steps * B * (T + 1)));
  uint64_t rs = o.seed * 0x2545F4914F6CDD1Dull + 11;
  for (auto& t : tokens) t = int32_t(splitmix64(rs) % uint64_t(s.vocab));

  // The shared file: initial weights, batches, configuration.
  FileGuard file;
  if (!o.no_torch) {
    const size_t need = model.weights().size() * sizeof(float) + tokens.size() * sizeof(int32_t) + (size_t(1) << 20);
    file.path = pick_tmp_dir(o.tmp_dir, need, "bench train") + str("/sy_bench_train_", ::getpid(), ".safetensors");
    std::vector<TensorToWrite> ts = model.tensors();
    ts.push_back({"bench.tokens", DType::I32, {total_steps, B, T + 1}, tokens.data()});
    const auto& c = model.config();
    std::map<std::string, std::string> meta = {
        {"vocab", str(s.vocab)}, {"hidden", str(s.hidden)}, {"n_layers", str(s.layers)}, {"n_heads", str(s.heads)},
        {"n_kv_heads", str(s.kv_heads)}, {"head_dim", str(s.head_dim)}, {"n_experts", str(s.experts)},
        {"expert_ffn", str(s.expert_ffn)}, {"top_k", str(s.top_k)}, {"rope_theta", fmt("%.17g", c.rope_theta)},
        {"rms_eps", fmt("%.9g", c.rms_eps)}, {"lb_coef", fmt("%.9g", c.lb_coef)}, {"lr", fmt("%.17g", o.lr)},
        {"wd", fmt("%.17g", o.wd)}, {"beta1", "0.9"}, {"beta2", "0.95"}, {"eps", "1e-8"},
        {"max_norm", fmt("%.17g", o.max_norm)}, {"check_steps", str(o.check_steps)}};
    write_safetensors(file.path, ts, meta);
  }

  MachinePeaks pk;
  if (!o.no_peaks) {
    pk = measure_peaks(threads, o.quick_peaks);
    std::fprintf(info, "machine: %s\n", pk.summary().c_str());
    j["machine"] = {{"fma_gflops", pk.fma_gflops}, {"read_gbps", pk.read_gbps}, {"summary", pk.summary()}};
  }

  // --- ours ---
  Side ours;
  const train::AdamWParams hp{0.9f, 0.95f, 1e-8f};
  auto g = model.grads();
  for (int64_t st = 0; st < total_steps; ++st) {
    const int32_t* b = tokens.data() + st * B * (T + 1);
    std::vector<int32_t> in(static_cast<size_t>(N)), tg(static_cast<size_t>(N));
    for (int64_t r = 0; r < B; ++r)
      for (int64_t t = 0; t < T; ++t) {
        in[size_t(r * T + t)] = b[r * (T + 1) + t];
        tg[size_t(r * T + t)] = b[r * (T + 1) + t + 1];
      }
    const auto t0 = Clock::now();
    model.zero_grad();
    const train::StepStats stats = model.forward_backward(in, tg, B, T);
    train::clip_grad_norm(g.data(), int64_t(g.size()), o.max_norm);
    model.adamw_step(st + 1, float(o.lr), float(o.wd), hp);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    ours.losses.push_back(stats.loss);
    if (st >= o.check_steps) ours.step_s.push_back(dt);
  }
  j["ours"] = side_json(ours, N, fpt, pk.fma_gflops);
  std::fprintf(info, "ours: %.0f tokens/s\n", j["ours"]["tokens_per_s"].get<double>());

  // --- PyTorch: one helper run per thread split (and precision), see the header ---
  bool check_ok = true;
  if (!o.no_torch) {
    struct Split {
      int omp, blas;
      bool amp;
    };
    std::vector<Split> splits = {{threads, threads, false}};
    if (o.torch_threads == "best" && threads > 1) {
      splits.push_back({threads, 1, false});
      splits.push_back({1, threads, false});
    }
    if (o.torch_amp || bf16) {
      const size_t n = splits.size();
      for (size_t i = 0; i < n; ++i) splits.push_back({splits[i].omp, splits[i].blas, true});
    }
    json runs = json::array();
    // The baseline is PyTorch in our precision class: f32, or bf16 autocast for --precision bf16.
    json best, best_other;
    double worst = 0;
    for (const Split& sp : splits) {
      std::vector<std::string> args = {o.python,    o.torch_script,          "--init",
                                       file.path,   "--threads",             std::to_string(sp.omp),
                                       "--blas-threads", std::to_string(sp.blas)};
      if (sp.amp) args.push_back("--amp");
      ChildProcess child(args, kOpenblasVars);
      const json h = child.read_json_line("bench train", "its start-up line");
      const json r = child.read_json_line("bench train", "its result");
      SY_CHECK(!r.contains("error"), "[bench train] the PyTorch helper failed: ", r["error"].get<std::string>());
      const int status = child.finish();
      SY_CHECK(status == 0, "[bench train] the PyTorch helper exited with status ", status);
      Side t;
      t.losses = r.at("losses").get<std::vector<double>>();
      t.step_s = r.at("step_s").get<std::vector<double>>();
      SY_CHECK(int64_t(t.losses.size()) == total_steps && int64_t(t.step_s.size()) == o.steps,
               "[bench train] the PyTorch helper reported ", t.losses.size(), " losses and ", t.step_s.size(),
               " timed steps, expected ", total_steps, " and ", o.steps);
      json tj = side_json(t, N, fpt, pk.fma_gflops);
      tj["version"] = h.value("torch", std::string("?"));
      tj["threads"] = sp.omp;
      tj["blas_threads"] = sp.blas;
      tj["amp"] = sp.amp;
      tj["mem"] = r.value("mem", json::object());
      double d_max = 0;
      for (int st = 0; st < o.check_steps; ++st) {
        const double d = std::fabs(ours.losses[size_t(st)] - t.losses[size_t(st)]) / std::fabs(t.losses[size_t(st)]);
        d_max = std::isnan(d) ? INFINITY : std::max(d_max, d);
      }
      tj["loss_max_rel_diff"] = d_max;
      tj["first_loss_rel_diff"] = std::fabs(ours.losses[0] - t.losses[0]) / std::fabs(t.losses[0]);
      std::fprintf(info, "torch %s, %s: %d OpenMP threads, %d OpenBLAS threads (core %s): %.0f tokens/s\n",
                   h.value("torch", std::string("?")).c_str(), sp.amp ? "bf16 autocast" : "f32", sp.omp, sp.blas,
                   h.value("openblas_core", std::string("?")).c_str(), tj["tokens_per_s"].get<double>());
      runs.push_back({{"threads", sp.omp}, {"blas_threads", sp.blas}, {"amp", sp.amp},
                      {"tokens_per_s", tj["tokens_per_s"]}, {"median_tokens_per_s", tj["median_tokens_per_s"]},
                      {"loss_max_rel_diff", d_max}});
      json& slot = sp.amp == bf16 ? best : best_other;
      if (sp.amp == bf16) worst = std::max(worst, d_max);
      if (slot.is_null() || tj["tokens_per_s"].get<double>() > slot["tokens_per_s"].get<double>()) slot = tj;
    }
    j["torch"] = best;
    j["torch_runs"] = runs;
    check_ok = worst <= tolerance;
    j["loss_max_rel_diff"] = worst;
    j["first_loss_rel_diff"] = best["first_loss_rel_diff"];
    j["tolerance"] = tolerance;
    j["loss_check"] = check_ok ? "pass" : "FAIL";
    j["speedup"] = j["ours"]["tokens_per_s"].get<double>() / best["tokens_per_s"].get<double>();
    if (!best_other.is_null()) {
      j[bf16 ? "torch_f32" : "torch_amp"] = best_other;
      j[bf16 ? "speedup_vs_f32" : "speedup_vs_amp"] =
          j["ours"]["tokens_per_s"].get<double>() / best_other["tokens_per_s"].get<double>();
    }
  }
  j["load_average_end"] = load_average();
  if (o.as_json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    print_table(j);
    std::printf("load average at the start: %s, at the end: %s\n", j["load_average_start"].get<std::string>().c_str(),
                j["load_average_end"].get<std::string>().c_str());
  }
  std::fflush(stdout);
  SY_CHECK(check_ok, "[bench train] our losses of the first ", o.check_steps, " steps differ from PyTorch's by ",
           j["loss_max_rel_diff"].get<double>(), " (relative), more than --tolerance ", tolerance);
}

}  // namespace

void add_bench_train(CLI::App* bench) {
  static BenchTrainOptions o;
  auto* cmd = bench->add_subcommand("train", "training tokens/s of our MoE LM vs the same model in PyTorch (same "
                                             "weights, batches, threads), with a loss check");
  cmd->add_option("--preset", o.preset, "model and batch size: tiny, small (default) or demo (the demo model's size)");
  cmd->add_option("--vocab", o.over.vocab, "vocabulary (overrides the preset)")->check(CLI::Range(2, 1 << 24));
  cmd->add_option("--hidden", o.over.hidden, "hidden size")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--layers", o.over.layers, "decoder layers")->check(CLI::Range(1, 1000));
  cmd->add_option("--heads", o.over.heads, "attention heads")->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-heads", o.over.kv_heads, "key/value heads")->check(CLI::Range(1, 1024));
  cmd->add_option("--head-dim", o.over.head_dim, "head dimension (even)")->check(CLI::Range(2, 4096));
  cmd->add_option("--experts", o.over.experts, "experts per layer")->check(CLI::Range(1, 4096));
  cmd->add_option("--expert-ffn", o.over.expert_ffn, "expert width")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--top-k", o.over.top_k, "experts per token")->check(CLI::Range(1, 4096));
  cmd->add_option("--seq", o.over.seq, "sequence length T")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--batch", o.over.batch, "sequences per step B")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--steps", o.steps, "timed steps (default 10)")->check(CLI::Range(1, 100000));
  cmd->add_option("--check-steps", o.check_steps, "untimed first steps whose losses must agree (default 3)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--tolerance", o.tolerance,
                  "largest relative loss difference of the checked steps (default 1e-4; 1e-3 with --precision bf16)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--lr", o.lr, "AdamW learning rate (default 1e-3)")->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--seed", o.seed, "seed of the initial weights and the token batches");
  cmd->add_flag("--no-torch", o.no_torch, "time our model only (no PyTorch, no loss check)");
  cmd->add_flag("--no-peaks", o.no_peaks, "skip measuring the machine's FMA peak");
  cmd->add_flag("--quick-peaks", o.quick_peaks, "a short, rougher peak measurement");
  cmd->add_flag("--json", o.as_json, "one JSON object on stdout (progress on stderr)");
  cmd->add_option("--torch-threads", o.torch_threads,
                  "best (default): try splitting the threads between torch's OpenMP and OpenBLAS pools and keep the "
                  "fastest f32 run; same: both pools get all threads")
      ->check(CLI::IsMember({"best", "same"}));
  cmd->add_option("--precision", o.precision,
                  "our linear layers' products: f32 (default; baseline PyTorch f32) or bf16 (mixed precision; "
                  "baseline PyTorch bf16 autocast, f32 reported beside it)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_flag("--torch-amp", o.torch_amp,
                "also time PyTorch under bf16 autocast (mixed precision; reported beside the f32 baseline)");
  cmd->add_option("--python", o.python, "python with torch");
  cmd->add_option("--torch-script", o.torch_script, "the PyTorch training script (default bench/train_torch.py)");
  cmd->add_option("--tmp-dir", o.tmp_dir, "where the shared weights file goes (default /dev/shm if it has room)");
  cmd->callback([] { run_bench_train(o); });
}

}  // namespace sy::cli
