// `switchyard bench model` (issue #3): prompt and decode tokens/s and resident memory of our Model
// on a random checkpoint with Qwen3-30B-A3B widths (hidden 2048, 32 heads, 4 KV heads, head_dim 128,
// 128 experts of width 768, top-8, norm_topk_prob, vocab 151936) and 4 layers, against the PyTorch
// reference (bench/model_torch.py) on the same checkpoint and prompt in the same run.
//
// Checkpoint: bench/make_checkpoint.py writes it once (HF layout, bf16 or f32, from a seed) into
// CACHE/sy_bench_model_<preset>_L<layers>_V<vocab>_<dtype>_s<seed> (CACHE = --cache-dir, default the
// system temp directory); later runs reuse it. Both sides memory-map it.
//
// Protocol, per side: load; a cold run and then a warm run of the same generation: the prompt
// (P pseudo-random ids from the seed) in one forward gives the first greedy token, then D decode
// forwards of one token give D more (D + 1 tokens). prompt tok/s = P / prompt time, decode tok/s =
// D / decode time (steady_clock / perf_counter, forward + argmax). The cold run pays the page faults
// of first touching the mapped weights; the warm run is the headline.
//
// Memory (ours): VmRSS, VmHWM, RssAnon, RssFile, RssShmem from /proc/self/status before load,
// after load, after the cold run, after the warm run. "Touched" counts the bytes the generation
// needs, as stored: the embedding rows of the distinct ids fed in, every layer's attention
// projections, norms and router, the distinct experts the router chose in each layer (over the
// whole generation), the final norm and LM head, and the f32 KV cache (P + D positions).
// resident growth = VmRSS after the warm run - VmRSS before load; the report gives its ratio to
// touched (close to 1 when untouched experts stay on disk / in the page cache, unmapped).
// decode GB/s = bytes one decode step reads (dense weights + k experts per layer + LM head + KV
// cache at the mean length) x decode tok/s, also as a fraction of the measured streaming read
// bandwidth (apps/peak.h, measured after our memory readings: its buffers would raise VmHWM).
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "peak.h"
#include "subprocess.h"

namespace sy::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;


struct BenchModelOptions {
  int prompt_tokens = 128, decode_tokens = 32, layers = 4;
  int64_t vocab = 0;  // 0 = the preset's
  std::string dtype = "bf16", torch_compute = "auto";
  uint64_t seed = 1;
  bool no_torch = false, quick = false, as_json = false, no_peaks = false, require_agreement = false;
  std::string python = SY_PYTHON;
  std::string source_dir = SY_SOURCE_DIR;
  std::string torch_script, cache_dir;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Mem {
  int64_t rss = 0, hwm = 0, anon = 0, file = 0, shmem = 0;  // bytes
};

Mem read_mem() {
  std::ifstream f("/proc/self/status");
  Mem m;
  std::string key;
  int64_t kb = 0;
  std::string line;
  while (std::getline(f, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    key = line.substr(0, colon);
    kb = std::atoll(line.c_str() + colon + 1);
    if (key == "VmRSS") m.rss = kb * 1024;
    else if (key == "VmHWM") m.hwm = kb * 1024;
    else if (key == "RssAnon") m.anon = kb * 1024;
    else if (key == "RssFile") m.file = kb * 1024;
    else if (key == "RssShmem") m.shmem = kb * 1024;
  }
  return m;
}

json mem_json(const Mem& m) {
  return {{"VmRSS", m.rss}, {"VmHWM", m.hwm}, {"RssAnon", m.anon}, {"RssFile", m.file}, {"RssShmem", m.shmem}};
}

// The preset's numbers needed before the checkpoint exists (bench/make_checkpoint.py PRESETS).
struct Preset {
  std::string name;
  int64_t vocab, H, heads, kv_heads, head_dim, E, F, k;
};

Preset preset(const BenchModelOptions& o) {
  Preset p = o.quick ? Preset{"quick", 1024, 128, 4, 2, 32, 16, 64, 4}
                     : Preset{"qwen3-30b-a3b", 151936, 2048, 32, 4, 128, 128, 768, 8};
  if (o.vocab > 0) p.vocab = o.vocab;
  return p;
}

int64_t checkpoint_bytes(const Preset& p, int layers, size_t es) {
  const int64_t per_layer = (2 * p.heads * p.head_dim + 2 * p.kv_heads * p.head_dim) * p.H + p.E * p.H +
                            3 * p.E * p.H * p.F + 2 * p.H + 2 * p.head_dim;
  return (2 * p.vocab * p.H + p.H + layers * per_layer) * int64_t(es);
}

// Returns the checkpoint directory, writing it first (bench/make_checkpoint.py) when absent.
std::string ensure_checkpoint(const BenchModelOptions& o, const Preset& p, json& info) {
  namespace fs = std::filesystem;
  const std::string base = o.cache_dir.empty() ? fs::temp_directory_path().string() : o.cache_dir;
  SY_CHECK(fs::is_directory(base), "[bench model] --cache-dir ", base, " is not a directory");
  const std::string dir = str(base, "/sy_bench_model_", p.name, "_L", o.layers, "_V", p.vocab, "_", o.dtype, "_s", o.seed);
  info["checkpoint"] = dir;
  if (fs::exists(dir + "/config.json") && fs::exists(dir + "/model.safetensors")) {
    info["checkpoint_cached"] = true;
    return dir;
  }
  const int64_t need = checkpoint_bytes(p, o.layers, o.dtype == "bf16" ? 2 : 4);
  struct statvfs v;
  SY_CHECK(::statvfs(base.c_str(), &v) == 0, "[bench model] cannot stat ", base);
  const int64_t avail = int64_t(v.f_bavail) * int64_t(v.f_frsize);
  SY_CHECK(avail > need + (int64_t(1) << 28), "[bench model] ", base, " has ", avail >> 20,
           " MiB free; the checkpoint needs ", need >> 20, " MiB (use --cache-dir or --vocab)");
  std::fprintf(stderr, "bench model: writing the random checkpoint (%.2f GB) to %s\n", double(need) / 1e9, dir.c_str());
  const std::string script = o.source_dir + "/bench/make_checkpoint.py";
  auto t0 = Clock::now();
  ChildProcess child({o.python, script, "--out", dir, "--preset", p.name, "--layers", std::to_string(o.layers), "--vocab",
                      std::to_string(p.vocab), "--dtype", o.dtype, "--seed", std::to_string(o.seed)},
                     {});
  std::string line, last;
  while (child.read_line(line))
    if (!line.empty()) last = line;
  const int status = child.finish();
  SY_CHECK(status == 0 && fs::exists(dir + "/model.safetensors"), "[bench model] ", script, " failed (exit status ",
           status, "; its messages are above)");
  info["checkpoint_cached"] = false;
  info["checkpoint_write_s"] = seconds_since(t0);
  return dir;
}

struct RunResult {
  std::vector<int32_t> tokens;  // D + 1 greedy tokens
  double prompt_s = 0, decode_s = 0;
  Mem mem;  // after the run
};

int32_t argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());  // first of equal maxima, as torch
}

RunResult run_ours(Model& m, const std::vector<int32_t>& prompt, int D, ForwardStats* stats) {
  KVCache cache = m.make_cache(int64_t(prompt.size()) + D);
  std::vector<float> logits(static_cast<size_t>(m.config().vocab));
  RunResult r;
  auto t0 = Clock::now();
  m.forward(prompt, cache, logits.data(), false, stats);
  r.tokens.push_back(argmax(logits));
  r.prompt_s = seconds_since(t0);
  t0 = Clock::now();
  for (int i = 0; i < D; ++i) {
    const int32_t one[1] = {r.tokens.back()};
    m.forward(one, cache, logits.data(), false, stats);
    r.tokens.push_back(argmax(logits));
  }
  r.decode_s = seconds_since(t0);
  r.mem = read_mem();
  return r;
}

json run_json(const RunResult& r, int P, int D) {
  return {{"prompt_s", r.prompt_s}, {"decode_s", r.decode_s}, {"prompt_tok_s", P / r.prompt_s},
          {"decode_tok_s", D > 0 ? D / r.decode_s : 0.0}, {"tokens", r.tokens}};
}

// The PyTorch reference helper (bench/model_torch.py): one process, JSON lines.
class TorchReference {
 public:
  TorchReference(const BenchModelOptions& o, int threads)
      : child_({o.python, o.torch_script, "--threads", std::to_string(threads)}, kOpenblasVars) {
    hello_ = read("its start-up line");
  }
  const json& hello() const { return hello_; }
  json run(const json& req, const std::string& what) {
    child_.write_line(req.dump());
    json r = read(what);
    SY_CHECK(!r.contains("error"), "[bench model] PyTorch reference failed on the ", what, ": ",
             r["error"].get<std::string>());
    return r;
  }

 private:
  json read(const std::string& what) { return child_.read_json_line("bench model", what); }
  ChildProcess child_;
  json hello_;
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

double mib(int64_t b) { return double(b) / double(1 << 20); }

void print_table(const json& j) {
  const json& ours = j["ours"];
  const json* torch = j.contains("torch") ? &j["torch"] : nullptr;
  std::printf("\n%-30s %12s %12s %12s\n", "", "ours", "torch", "ours better");
  auto row = [&](const char* label, const json& a, const json* b, const char* f, bool higher_better) {
    std::string rb = b && b->is_number() ? fmt(f, b->get<double>()) : "-";
    std::string ratio = "-";
    if (b && b->is_number() && b->get<double>() > 0 && a.get<double>() > 0)
      ratio = fmt("%.2fx", higher_better ? a.get<double>() / b->get<double>() : b->get<double>() / a.get<double>());
    std::printf("%-30s %12s %12s %12s\n", label, fmt(f, a.get<double>()).c_str(), rb.c_str(), ratio.c_str());
  };
  auto at = [&](const char* run, const char* key) -> const json* { return torch ? &(*torch)[run][key] : nullptr; };
  const std::string P = std::to_string(j["prompt_tokens"].get<int>()), D = std::to_string(j["decode_tokens"].get<int>());
  row(("prompt tok/s (P=" + P + ", warm)").c_str(), ours["warm"]["prompt_tok_s"], at("warm", "prompt_tok_s"), "%.2f", true);
  row(("decode tok/s (D=" + D + ", warm)").c_str(), ours["warm"]["decode_tok_s"], at("warm", "decode_tok_s"), "%.2f", true);
  row("prompt tok/s (cold)", ours["cold"]["prompt_tok_s"], at("cold", "prompt_tok_s"), "%.2f", true);
  row("decode tok/s (cold)", ours["cold"]["decode_tok_s"], at("cold", "decode_tok_s"), "%.2f", true);
  row("load s", ours["load_s"], torch ? &(*torch)["load_s"] : nullptr, "%.3f", false);
  json rss = mib(ours["mem"]["after_warm"]["VmRSS"].get<int64_t>());
  json hwm = mib(ours["mem"]["after_warm"]["VmHWM"].get<int64_t>());
  json trss, thwm;
  if (torch) {
    trss = mib((*torch)["mem"]["VmRSS"].get<int64_t>());
    thwm = mib((*torch)["mem"]["VmHWM"].get<int64_t>());
  }
  row("VmRSS after runs MiB", rss, torch ? &trss : nullptr, "%.0f", false);
  row("VmHWM (peak) MiB", hwm, torch ? &thwm : nullptr, "%.0f", false);
  std::printf("(ours better = ours / torch for tok/s, torch / ours for seconds and MiB)\n");
  if (torch)
    std::printf("torch resident growth (VmRSS after runs - at start) %.0f MiB, compute dtype %s\n",
                mib((*torch)["mem"]["VmRSS"].get<int64_t>() - (*torch)["mem_at_start"]["VmRSS"].get<int64_t>()),
                (*torch)["compute_dtype"].get<std::string>().c_str());
  if (torch)
    std::printf("greedy tokens: %d of %d agree (first difference at %s)\n", j["agree_tokens"].get<int>(),
                j["compared_tokens"].get<int>(),
                j["first_difference"].is_null() ? "none" : std::to_string(j["first_difference"].get<int>()).c_str());
  const json& m = j["memory"];
  std::printf("memory (ours): touched %.0f MiB = embedding rows %.1f + attention/norms %.1f + routers %.1f + "
              "experts %.0f (%s distinct per layer of %lld) + LM head %.0f + KV cache %.1f; checkpoint %.0f MiB\n",
              mib(m["touched_bytes"].get<int64_t>()), mib(m["embedding_rows_bytes"].get<int64_t>()),
              mib(m["attention_norm_bytes"].get<int64_t>()), mib(m["router_bytes"].get<int64_t>()),
              mib(m["expert_bytes"].get<int64_t>()), m["experts_touched_per_layer"].dump().c_str(),
              (long long)j["experts"].get<int64_t>(), mib(m["lm_head_bytes"].get<int64_t>()),
              mib(m["kv_cache_bytes"].get<int64_t>()), mib(m["checkpoint_bytes"].get<int64_t>()));
  std::printf("  resident growth (VmRSS after runs - before load) %.0f MiB = %.3f x touched; RssFile %.0f MiB, "
              "RssAnon growth %.0f MiB; VmRSS before load %.0f, after load %.0f, after cold run %.0f MiB\n",
              mib(m["resident_growth_bytes"].get<int64_t>()), m["resident_over_touched"].get<double>(),
              mib(ours["mem"]["after_warm"]["RssFile"].get<int64_t>() + ours["mem"]["after_warm"]["RssShmem"].get<int64_t>()),
              mib(ours["mem"]["after_warm"]["RssAnon"].get<int64_t>() - ours["mem"]["before_load"]["RssAnon"].get<int64_t>()),
              mib(ours["mem"]["before_load"]["VmRSS"].get<int64_t>()), mib(ours["mem"]["after_load"]["VmRSS"].get<int64_t>()),
              mib(ours["mem"]["after_cold"]["VmRSS"].get<int64_t>()));
  std::printf("decode reads %.1f MiB per token: %.2f GB/s", mib(j["decode_bytes_per_token"].get<int64_t>()),
              ours["decode_gbps"].get<double>());
  if (ours.contains("decode_bandwidth_fraction"))
    std::printf(" = %.0f%% of the measured read bandwidth (%.1f GB/s)", 100 * ours["decode_bandwidth_fraction"].get<double>(),
                j["machine"]["read_gbps"].get<double>());
  std::printf("\n");
  std::fflush(stdout);
}

void run_bench_model(BenchModelOptions& o) {
  reexec_without(kOpenblasVars);  // OpenBLAS reads them when it loads
  SY_CHECK(o.dtype == "bf16" || o.dtype == "f32", "[bench model] --dtype must be bf16 or f32, got ", o.dtype);
  SY_CHECK(o.torch_compute == "auto" || o.torch_compute == "f32", "[bench model] --torch-compute must be auto or f32");
  if (o.torch_script.empty()) o.torch_script = o.source_dir + "/bench/model_torch.py";
  const int threads = default_pool().size();
  const Preset p = preset(o);
  const int P = o.prompt_tokens, D = o.decode_tokens;
  FILE* info = o.as_json ? stderr : stdout;
  json j = {{"bench", "model"}, {"preset", p.name}, {"layers", o.layers}, {"vocab", p.vocab}, {"hidden", p.H},
            {"heads", p.heads}, {"kv_heads", p.kv_heads}, {"head_dim", p.head_dim}, {"experts", p.E},
            {"expert_ffn", p.F}, {"top_k", p.k}, {"weight_dtype", o.dtype}, {"prompt_tokens", P},
            {"decode_tokens", D}, {"seed", o.seed}, {"threads", threads}, {"backend", default_backend().name()},
            {"load_average_start", load_average()}};
  std::fprintf(info, "switchyard bench model: %s widths, %d layers, vocab %lld, %s weights, P=%d D=%d, %d threads, "
               "backend %s, load average %s\n", p.name.c_str(), o.layers, (long long)p.vocab, o.dtype.c_str(), P, D,
               threads, default_backend().name(), load_average().c_str());
  const std::string dir = ensure_checkpoint(o, p, j);
  std::fprintf(info, "checkpoint: %s (%s)\n", dir.c_str(),
               j["checkpoint_cached"].get<bool>() ? "cached" : fmt("written in %.1f s", j["checkpoint_write_s"].get<double>()).c_str());

  // The prompt: P pseudo-random ids from the seed.
  std::vector<int32_t> prompt(static_cast<size_t>(P));
  uint64_t s = o.seed * 0x2545F4914F6CDD1Dull + 7;
  for (auto& id : prompt) id = int32_t(splitmix64(s) % uint64_t(p.vocab));
  j["prompt"] = prompt;

  // --- ours ---
  json ours;
  const Mem before = read_mem();
  auto t0 = Clock::now();
  auto model = Model::load(dir, LoadOptions{"", 0, o.dtype});
  ours["load_s"] = seconds_since(t0);
  const Mem after_load = read_mem();
  const ModelConfig& c = model->config();
  SY_CHECK(c.hidden == p.H && c.vocab == p.vocab && c.n_layers == o.layers, "[bench model] ", dir,
           ": config.json does not have the expected shape (remove the directory to rewrite it)");
  ForwardStats stats;
  RunResult cold = run_ours(*model, prompt, D, &stats);
  RunResult warm = run_ours(*model, prompt, D, nullptr);
  ours["cold"] = run_json(cold, P, D);
  ours["warm"] = run_json(warm, P, D);
  ours["cold_warm_tokens_equal"] = cold.tokens == warm.tokens;
  ours["mem"] = {{"before_load", mem_json(before)}, {"after_load", mem_json(after_load)},
                 {"after_cold", mem_json(cold.mem)}, {"after_warm", mem_json(warm.mem)}};

  // --- bytes touched (as stored) and read per decode step ---
  const int64_t es = o.dtype == "bf16" ? 2 : 4, H = c.hidden, L = c.n_layers;
  std::set<int32_t> ids(prompt.begin(), prompt.end());
  ids.insert(cold.tokens.begin(), cold.tokens.end() - 1);  // fed back as decode inputs
  const int64_t attn = L * ((2 * c.q_dim() + 2 * c.kv_dim()) * H + 2 * H + 2 * c.head_dim) * es;
  const int64_t router = L * p.E * H * es, expert = 3 * H * p.F * es;
  int64_t experts_bytes = 0;
  std::vector<int64_t> touched_per_layer;
  for (const auto& ls : stats.layers) {
    const int64_t n = std::count_if(ls.tokens_per_expert.begin(), ls.tokens_per_expert.end(), [](int64_t x) { return x > 0; });
    touched_per_layer.push_back(n);
    experts_bytes += n * expert;
  }
  const int64_t embed = int64_t(ids.size()) * H * es, lm_head = c.vocab * H * es + H * es;
  const int64_t kv = 2 * L * (int64_t(P) + D) * c.kv_dim() * int64_t(sizeof(float));
  const int64_t touched = embed + attn + router + experts_bytes + lm_head + kv;
  const int64_t growth = warm.mem.rss - before.rss;
  j["memory"] = {{"embedding_rows_bytes", embed}, {"distinct_ids", ids.size()}, {"attention_norm_bytes", attn},
                 {"router_bytes", router}, {"expert_bytes", experts_bytes},
                 {"experts_touched_per_layer", touched_per_layer}, {"lm_head_bytes", lm_head}, {"kv_cache_bytes", kv},
                 {"touched_bytes", touched}, {"checkpoint_bytes", model->summary().weight_bytes},
                 {"resident_growth_bytes", growth}, {"resident_over_touched", double(growth) / double(touched)}};
  const int64_t per_token = attn + router + L * p.k * expert + lm_head + H * es +
                            2 * L * (int64_t(P) + D / 2) * c.kv_dim() * int64_t(sizeof(float));
  j["decode_bytes_per_token"] = per_token;
  ours["decode_gbps"] = D > 0 ? double(per_token) * D / warm.decode_s / 1e9 : 0.0;
  model.reset();

  if (!o.no_peaks) {  // after the memory readings: the bandwidth buffer would raise VmHWM
    MachinePeaks pk = measure_peaks(threads, o.quick);
    std::fprintf(info, "machine: %s\n", pk.summary().c_str());
    j["machine"] = {{"read_gbps", pk.read_gbps}, {"fma_gflops", pk.fma_gflops}, {"summary", pk.summary()}};
    ours["decode_bandwidth_fraction"] = ours["decode_gbps"].get<double>() / pk.read_gbps;
  }
  j["ours"] = ours;

  // --- PyTorch ---
  if (!o.no_torch) {
    TorchReference torch(o, threads);
    const json& h = torch.hello();
    std::fprintf(info, "torch %s: %d threads, BLAS %s, OpenBLAS core %s\n", h.value("torch", std::string("?")).c_str(),
                 h.value("threads", 0), h.value("openblas_config", std::string("?")).c_str(),
                 h.value("openblas_core", std::string("?")).c_str());
    json req = {{"dir", dir}, {"prompt", prompt}, {"decode", D}, {"compute", o.torch_compute}};
    json rc = torch.run(req, "cold run"), rw = torch.run(req, "warm run");
    json t;
    t["load_s"] = rc["load_s"];
    t["compute_dtype"] = rc["compute_dtype"];
    t["cold"] = {{"prompt_s", rc["prompt_s"]}, {"decode_s", rc["decode_s"]},
                 {"prompt_tok_s", P / rc["prompt_s"].get<double>()},
                 {"decode_tok_s", D > 0 ? D / rc["decode_s"].get<double>() : 0.0}, {"tokens", rc["tokens"]}};
    t["warm"] = {{"prompt_s", rw["prompt_s"]}, {"decode_s", rw["decode_s"]},
                 {"prompt_tok_s", P / rw["prompt_s"].get<double>()},
                 {"decode_tok_s", D > 0 ? D / rw["decode_s"].get<double>() : 0.0}, {"tokens", rw["tokens"]}};
    t["mem"] = rw["mem"];
    t["mem_after_load"] = rc.value("mem_after_load", json(nullptr));
    t["mem_at_start"] = h.value("mem_at_start", json::object({{"VmRSS", 0}}));
    t["version"] = h.value("torch", std::string("?"));
    j["torch"] = t;
    const auto ref = rw["tokens"].get<std::vector<int32_t>>();
    int agree = 0;
    json first = nullptr;
    for (size_t i = 0; i < warm.tokens.size(); ++i) {
      if (i < ref.size() && ref[i] == warm.tokens[i]) {
        ++agree;
      } else if (first.is_null()) {
        first = int(i);
      }
    }
    j["agree_tokens"] = agree;
    j["compared_tokens"] = int(warm.tokens.size());
    j["first_difference"] = first;
    j["speedup_prompt"] = ours["warm"]["prompt_tok_s"].get<double>() / t["warm"]["prompt_tok_s"].get<double>();
    if (D > 0) j["speedup_decode"] = ours["warm"]["decode_tok_s"].get<double>() / t["warm"]["decode_tok_s"].get<double>();
  }
  j["load_average_end"] = load_average();
  if (o.as_json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    print_table(j);
    std::printf("load average at the end: %s\n", j["load_average_end"].get<std::string>().c_str());
  }
  std::fflush(stdout);
  SY_CHECK(!o.require_agreement || o.no_torch || j["first_difference"].is_null(), "[bench model] greedy tokens differ from "
           "the PyTorch reference at position ", j["first_difference"].dump(), " (--require-agreement)");
}

}  // namespace

void add_bench_model(CLI::App* bench) {
  static BenchModelOptions o;
  auto* cmd = bench->add_subcommand("model", "a random Qwen3-30B-A3B-width checkpoint (4 layers): prompt/decode tok/s "
                                             "and resident memory vs the PyTorch reference");
  cmd->add_option("--prompt-tokens", o.prompt_tokens, "prompt length P (default 128; --quick: 32)")->check(CLI::Range(1, 100000));
  cmd->add_option("--decode-tokens", o.decode_tokens, "greedy decode steps D (default 32; --quick: 8)")->check(CLI::Range(0, 100000));
  cmd->add_option("--dtype", o.dtype, "weight dtype of the checkpoint: bf16 (default) or f32");
  cmd->add_option("--layers", o.layers, "decoder layers (default 4)")->check(CLI::Range(1, 1000));
  cmd->add_option("--vocab", o.vocab, "vocab size (default 151936, Qwen3's; --quick 1024), smaller if memory demands")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 24));
  cmd->add_option("--seed", o.seed, "seed of the weights and the prompt");
  cmd->add_flag("--no-torch", o.no_torch, "time our model only");
  cmd->add_flag("--quick", o.quick, "a small shape (hidden 128, 16 experts of 64, top-4, vocab 1024) for smoke tests");
  cmd->add_flag("--json", o.as_json, "one JSON object on stdout (progress on stderr)");
  cmd->add_flag("--no-peaks", o.no_peaks, "skip measuring the machine's read bandwidth");
  cmd->add_flag("--require-agreement", o.require_agreement, "fail when the greedy tokens differ from PyTorch's");
  cmd->add_option("--torch-compute", o.torch_compute, "PyTorch compute dtype: auto (the weights', as HF torch_dtype) or f32");
  cmd->add_option("--cache-dir", o.cache_dir, "where the random checkpoint is kept (default: the system temp directory)");
  cmd->add_option("--python", o.python, "python with torch");
  cmd->add_option("--torch-script", o.torch_script, "the PyTorch reference script (default bench/model_torch.py)");
  cmd->callback([cmd] {
    if (o.quick && cmd->count("--prompt-tokens") == 0) o.prompt_tokens = 32;
    if (o.quick && cmd->count("--decode-tokens") == 0) o.decode_tokens = 8;
    run_bench_model(o);
  });
}

}  // namespace sy::cli
