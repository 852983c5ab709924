// `switchyard bench offload` (issue #5): expert offloading against plain mmap under the same memory
// limit, on a checkpoint whose routed experts exceed the budget.
//
// Checkpoint: --model DIR (a real one), or a random one with Qwen3-30B-A3B widths (hidden 2048,
// 128 experts of width 768, top-8) and few layers (default 3, vocab 32768: about 3.9 GB in bf16),
// written once by bench/make_checkpoint.py into WORK/sy_bench_model_<preset>_L<l>_V<v>_<dtype>_s<seed>
// (the same name `bench model` uses; WORK = --work, default the system temp directory).
//
// Runs: for every budget (default 25% and 50% of all routed experts' bytes; "2k" = twice the
// active experts of every layer) and mode (one sequence; --parallel N sequences decoded together
// with Model::forward_batch), one run per policy (lru, lfu, predictive: the offload cache with that
// budget; --budget-split per-layer: each layer its share, offload/expert_cache.h) and one
// plain-mmap run (no cache: experts are read through the page cache). Each run is
// a child process (this program, `bench offload --worker SPEC`): it loads the model, prefills
// P-token pseudo-random prompts (one per sequence), then decodes D greedy tokens per sequence, and
// prints one JSON line. decode tok/s = sequences x D / decode time. Every run must produce the same
// greedy tokens (checked: the arithmetic does not depend on where the weights come from).
//
// Memory limit: each child runs in its own cgroup-v1 memory group (a child of this process's
// memory group: /sys/fs/cgroup/memory/<ours>/sy_bench_offload_PID_N) with memory.limit_in_bytes = (all weights - routed experts) + budget +
// --slack (default 256 MiB, for the KV caches, activations, the process). Page cache and mapped
// file pages count against that limit, so the mmap run holds at most as many expert bytes in memory
// as the cache run may. Where a group cannot be created (not root, no cgroup v1), the runs are NOT
// limited and the report says so. Before each run the checkpoint's pages are dropped from the page
// cache (posix_fadvise DONTNEED), so every run starts cold.
//
// Trace analysis: the predictive single-sequence run at the first budget records a routing trace
// (WORK/sy_bench_offload_PID.trace.jsonl, with predictions); it is replayed per layer (each layer a
// cache of C experts) under lru, lfu, predictive and Belady's MIN at the per-layer capacity of
// every budget and at 2x the active experts (offload/trace_analysis.h, as `switchyard trace
// analyze` does).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "core/error.h"
#include "model/model.h"
#include "offload/trace_analysis.h"
#include "offload_flags.h"
#include "subprocess.h"

namespace sy::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct BenchOffloadOptions {
  std::string model_dir, work_dir, worker, dtype = "bf16", budget_split = "global";
  std::string python = SY_PYTHON, source_dir = SY_SOURCE_DIR;
  int layers = 3, prompt_tokens = 32, decode_tokens = 32, parallel = 4, io_threads = 2;
  int64_t vocab = 32768;
  uint64_t seed = 1;
  std::vector<std::string> budgets = {"25%", "50%"};
  std::vector<std::string> policies = {"lru", "lfu", "predictive"};
  int64_t slack_mib = 256;
  bool no_cgroup = false, no_mmap = false, as_json = false, quick = false, direct_io = false;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t proc_field(const char* file, const std::string& key) {  // "key: N" (kB for /proc/self/status)
  std::ifstream f(file);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + key.size());
  return -1;
}

std::vector<int32_t> prompt_ids(uint64_t seed, int seq, int n, int64_t vocab) {
  uint64_t s = seed * 1000003u + uint64_t(seq);
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;  // Knuth's MMIX LCG
    ids.push_back(int32_t(3 + (s >> 33) % uint64_t(vocab - 3)));
  }
  return ids;
}

// ---- the child: one measured run -------------------------------------------------------------

void run_worker(const std::string& spec_text) {
  const json spec = json::parse(spec_text);
  const std::string cg = spec.value("cgroup", "");
  if (!cg.empty()) {  // join the memory group before anything is loaded
    std::ofstream f(cg + "/cgroup.procs");
    f << ::getpid() << "\n";
    f.flush();
    SY_CHECK(f.good(), "[bench offload] cannot join the memory cgroup ", cg);
  }
  LoadOptions lo;
  const bool offload = spec.at("mode") == "offload";
  if (offload) {
    lo.expert_budget_bytes = spec.at("budget_bytes").get<size_t>();
    lo.cache_policy = offload::parse_policy(spec.at("policy").get<std::string>());
    lo.io_threads = spec.at("io_threads").get<int>();
    lo.direct_io = spec.at("direct_io").get<bool>();
    lo.expert_budget_per_layer = spec.value("per_layer", false);
  }
  lo.trace_path = spec.value("trace", "");
  auto t0 = Clock::now();
  auto m = Model::load(spec.at("dir").get<std::string>(), lo);
  const double load_s = seconds_since(t0);
  const int n = spec.at("sequences"), P = spec.at("P"), D = spec.at("D");
  const uint64_t seed = spec.at("seed");
  const int64_t V = m->config().vocab;
  std::vector<KVCache> kv;
  std::vector<KVCache*> ptrs;
  std::vector<int32_t> next(static_cast<size_t>(n));
  std::vector<float> logits(size_t(n) * size_t(V));
  auto argmax = [&](const float* x) { return int32_t(std::max_element(x, x + V) - x); };
  t0 = Clock::now();
  for (int s = 0; s < n; ++s) {
    kv.push_back(m->make_cache(P + D));
    m->forward(prompt_ids(seed, s, P, V), kv.back(), logits.data(), false);
    next[size_t(s)] = argmax(logits.data());
  }
  const double prompt_s = seconds_since(t0);
  for (auto& k : kv) ptrs.push_back(&k);
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(n));
  for (int s = 0; s < n; ++s) tokens[size_t(s)].push_back(next[size_t(s)]);
  const offload::CacheStats after_prompt = offload ? *m->expert_cache_stats() : offload::CacheStats{};
  t0 = Clock::now();
  for (int step = 0; step < D; ++step) {
    if (n == 1)
      m->forward(std::span<const int32_t>(next.data(), 1), kv[0], logits.data(), false);
    else
      m->forward_batch(next, ptrs, logits.data());
    for (int s = 0; s < n; ++s) {
      next[size_t(s)] = argmax(logits.data() + int64_t(s) * V);
      tokens[size_t(s)].push_back(next[size_t(s)]);
    }
  }
  const double decode_s = seconds_since(t0);
  m->close_trace();
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  json out = {{"load_s", load_s}, {"prompt_s", prompt_s}, {"decode_s", decode_s},
              {"decode_tok_s", double(n) * D / decode_s}, {"tokens", tokens},
              {"disk_read_bytes", proc_field("/proc/self/io", "read_bytes: ")},
              {"major_faults", int64_t(ru.ru_majflt)}, {"vm_hwm_kib", proc_field("/proc/self/status", "VmHWM:")}};
  if (offload) {
    const offload::CacheStats c = *m->expert_cache_stats();
    const int64_t acq = c.acquires - after_prompt.acquires, hits = c.hits - after_prompt.hits;
    out["cache"] = {{"hit_rate", c.hit_rate()}, {"decode_hit_rate", acq ? double(hits) / double(acq) : 0.0},
                    {"bytes_read", c.bytes_read}, {"decode_bytes_read", c.bytes_read - after_prompt.bytes_read},
                    {"stall_s", c.stall_seconds}, {"decode_stall_s", c.stall_seconds - after_prompt.stall_seconds},
                    {"loads", c.loads}, {"evictions", c.evictions}, {"overflow_loads", c.overflow_loads},
                    {"peak_resident_bytes", c.peak_resident_bytes}, {"io", m->expert_cache()->io_note()}};
  }
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
}

// ---- the parent ------------------------------------------------------------------------------

std::string ensure_random_checkpoint(const BenchOffloadOptions& o) {
  const std::string base = o.work_dir.empty() ? fs::temp_directory_path().string() : o.work_dir;
  SY_CHECK(fs::is_directory(base), "[bench offload] --work ", base, " is not a directory");
  const std::string preset = o.quick ? "quick" : "qwen3-30b-a3b";
  const int64_t vocab = o.quick ? 1024 : o.vocab;
  const std::string dir = str(base, "/sy_bench_model_", preset, "_L", o.layers, "_V", vocab, "_", o.dtype, "_s", o.seed);
  if (fs::exists(dir + "/config.json") && fs::exists(dir + "/model.safetensors")) return dir;
  std::fprintf(stderr, "bench offload: writing the random checkpoint to %s\n", dir.c_str());
  const std::string script = o.source_dir + "/bench/make_checkpoint.py";
  ChildProcess child({o.python, script, "--out", dir, "--preset", preset, "--layers", std::to_string(o.layers), "--vocab",
                      std::to_string(vocab), "--dtype", o.dtype, "--seed", std::to_string(o.seed)},
                     {});
  std::string line;
  while (child.read_line(line)) {
  }
  const int status = child.finish();
  SY_CHECK(status == 0 && fs::exists(dir + "/model.safetensors"), "[bench offload] ", script,
           " failed (exit status ", status, "; its messages are above)");
  return dir;
}

// Drops the checkpoint's pages from the page cache (clean, unmapped pages: after the last run).
void drop_page_cache(const std::string& dir) {
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() != ".safetensors") continue;
    int fd = ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Our own cgroup-v1 memory group (from /proc/self/cgroup), under which the runs' groups are made.
std::string own_memory_cgroup() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a != std::string::npos && b != std::string::npos && line.substr(a + 1, b - a - 1) == "memory")
      return "/sys/fs/cgroup/memory" + (line.substr(b + 1) == "/" ? std::string() : line.substr(b + 1));
  }
  return "/sys/fs/cgroup/memory";
}

// A cgroup-v1 memory group with a limit (a child of ours), removed by the destructor; ok() false
// when unavailable.
class MemoryGroup {
 public:
  MemoryGroup(const std::string& name, int64_t limit) : path_(own_memory_cgroup() + "/" + name) {
    std::error_code ec;
    if (!fs::create_directory(path_, ec)) {
      why_ = str("cannot create ", path_, ": ", ec ? ec.message() : "exists");
      path_.clear();
      return;
    }
    std::ofstream f(path_ + "/memory.limit_in_bytes");
    f << limit << "\n";
    f.flush();
    if (!f.good() || read("memory.limit_in_bytes") < limit - 4096) {
      why_ = "cannot set memory.limit_in_bytes in " + path_;
      remove();
    }
  }
  ~MemoryGroup() { remove(); }
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  const std::string& why() const { return why_; }
  int64_t read(const char* file) const {
    std::ifstream f(path_ + "/" + file);
    int64_t v = -1;
    f >> v;
    return v;
  }
  int64_t oom_kills() const { return proc_field((path_ + "/memory.oom_control").c_str(), "oom_kill "); }

 private:
  void remove() {
    if (path_.empty()) return;
    for (int i = 0; i < 50 && ::rmdir(path_.c_str()) != 0; ++i) ::usleep(20000);  // the child is gone by now
    path_.clear();
  }
  std::string path_, why_;
};

struct RunSpec {
  std::string label, mode, policy;
  size_t budget = 0;
  int sequences = 1;
  int64_t limit = 0;
  std::string trace;
};

json run_child(const BenchOffloadOptions& o, const std::string& dir, const RunSpec& r, int index, std::string& cg_note) {
  json spec = {{"dir", dir},         {"mode", r.mode},           {"policy", r.policy}, {"budget_bytes", r.budget},
               {"io_threads", o.io_threads}, {"direct_io", o.direct_io}, {"sequences", r.sequences},
               {"per_layer", o.budget_split == "per-layer"},
               {"P", o.prompt_tokens}, {"D", o.decode_tokens}, {"seed", o.seed}, {"trace", r.trace}};
  drop_page_cache(dir);
  std::unique_ptr<MemoryGroup> group;
  if (!o.no_cgroup) {
    group = std::make_unique<MemoryGroup>(str("sy_bench_offload_", ::getpid(), "_", index), r.limit);
    if (group->ok())
      spec["cgroup"] = group->path();
    else
      cg_note = group->why();
  }
  std::vector<std::string> argv = {"/proc/self/exe"};
  if (globals().threads > 0) argv.insert(argv.end(), {"--threads", std::to_string(globals().threads)});
  argv.insert(argv.end(), {"bench", "offload", "--worker", spec.dump()});
  json out;
  {
    ChildProcess child(argv, {});
    std::string line;
    while (child.read_line(line))
      if (!line.empty() && line[0] == '{') out = json::parse(line);
    const int status = child.finish();
    if (out.is_null()) out = {{"failed", str("exit status ", status)}};
  }
  if (group && group->ok()) {
    out["cgroup_limit"] = r.limit;
    out["cgroup_max_usage"] = group->read("memory.max_usage_in_bytes");
    out["cgroup_failcnt"] = group->read("memory.failcnt");
    out["cgroup_oom_kills"] = group->oom_kills();
  }
  return out;
}

std::string mib(double bytes) { return str(int64_t(bytes / (1024.0 * 1024.0) + 0.5)); }

void run_bench_offload(const BenchOffloadOptions& o) {
  const std::string dir = o.model_dir.empty() ? ensure_random_checkpoint(o) : o.model_dir;
  // The model's sizes (mapped, nothing read but the headers and norms).
  auto probe = Model::load(dir);
  const uint64_t experts = probe->routed_expert_bytes();
  SY_CHECK(experts > 0, "[bench offload] ", dir, " has no routed experts");
  const int64_t dense = probe->summary().weight_bytes - int64_t(experts);
  int moe_layers = 0, k = 0, E = 0;
  for (const auto& spec : probe->router_specs()) {
    if (spec.empty()) continue;
    ++moe_layers;
    k = std::max<int>(k, int(RouterSpec::parse(spec).get_int("k", 0)));
  }
  for (const auto& s : probe->config().layers)
    if (s.moe) E = std::max<int>(E, int(s.n_experts));
  const uint64_t expert_bytes = experts / uint64_t(moe_layers) / uint64_t(E);
  probe.reset();
  const std::string load = load_average();
  std::fprintf(stderr, "bench offload: %s: %d MoE layers x %d experts (top-%d) of %s MiB = %s MiB of experts, "
               "%s MiB other weights; load average %s\n", dir.c_str(), moe_layers, E, k, mib(double(expert_bytes)).c_str(),
               mib(double(experts)).c_str(), mib(double(dense)).c_str(), load.c_str());

  std::vector<std::pair<std::string, size_t>> budgets;
  for (const auto& b : o.budgets) {
    if (b == "2k") {
      budgets.push_back({"2k", size_t(2 * k * moe_layers) * expert_bytes});
      continue;
    }
    BudgetSpec bs = parse_budget(b);
    budgets.push_back({b, bs.bytes ? size_t(bs.bytes) : size_t(double(experts) * bs.fraction)});
  }
  const std::string trace = (fs::path(o.work_dir.empty() ? fs::temp_directory_path().string() : o.work_dir) /
                             str("sy_bench_offload_", ::getpid(), ".trace.jsonl")).string();
  json report = {{"checkpoint", dir}, {"expert_bytes", experts}, {"other_weight_bytes", dense},
                 {"load_average", load}, {"budget_split", o.budget_split}, {"runs", json::array()}};
  if (o.budget_split != "global") std::fprintf(stderr, "bench offload: cache budgets split per layer\n");
  std::string cg_note;
  std::vector<std::vector<int32_t>> ref_tokens[2];
  int index = 0;
  std::printf("%-7s %-10s %-11s %9s %8s %7s %7s %9s %9s %8s %9s %9s\n", "budget", "mode", "policy", "decode/s", "vs mmap",
              "hit%", "dhit%", "cache MiB", "disk MiB", "stall s", "limit MiB", "max MiB");
  for (const auto& [bname, bbytes] : budgets) {
    for (int mode = 0; mode < (o.parallel > 1 ? 2 : 1); ++mode) {
      const int seqs = mode == 0 ? 1 : o.parallel;
      const std::string mname = mode == 0 ? "single" : str("parallel", seqs);
      std::vector<RunSpec> runs;
      const int64_t limit = dense + int64_t(bbytes) + o.slack_mib * 1024 * 1024;
      if (!o.no_mmap) runs.push_back({bname, "mmap", "mmap", bbytes, seqs, limit, ""});
      for (const auto& p : o.policies) {
        const bool rec = mode == 0 && p == "predictive" && &bname == &budgets[0].first;
        runs.push_back({bname, "offload", p, bbytes, seqs, limit, rec ? trace : ""});
      }
      double mmap_tps = 0;
      for (const RunSpec& r : runs) {
        json out = run_child(o, dir, r, index++, cg_note);
        out["budget"] = bname;
        out["budget_bytes"] = bbytes;
        out["mode"] = mname;
        out["policy"] = r.policy;
        if (out.contains("tokens")) {
          auto toks = out["tokens"].get<std::vector<std::vector<int32_t>>>();
          auto& ref = ref_tokens[mode];
          if (ref.empty()) ref = toks;
          out["tokens_agree"] = toks == ref;
          out.erase("tokens");
        }
        const double tps = out.value("decode_tok_s", 0.0);
        if (r.mode == "mmap") mmap_tps = tps;
        const json c = out.value("cache", json::object());
        std::printf("%-7s %-10s %-11s %9.2f %8s %7s %7s %9s %9s %8s %9s %9s%s\n", bname.c_str(), mname.c_str(),
                    r.policy.c_str(), tps, mmap_tps > 0 && r.mode != "mmap" ? str(tps / mmap_tps).substr(0, 5).c_str() : "-",
                    c.empty() ? "-" : str(int(100 * c.value("hit_rate", 0.0) + 0.5)).c_str(),
                    c.empty() ? "-" : str(int(100 * c.value("decode_hit_rate", 0.0) + 0.5)).c_str(),
                    c.empty() ? "-" : mib(c.value("bytes_read", 0.0)).c_str(), mib(out.value("disk_read_bytes", 0.0)).c_str(),
                    c.empty() ? "-" : str(c.value("stall_s", 0.0)).substr(0, 6).c_str(),
                    out.contains("cgroup_limit") ? mib(double(limit)).c_str() : "none",
                    out.contains("cgroup_max_usage") ? mib(out.value("cgroup_max_usage", 0.0)).c_str() : "-",
                    out.contains("failed") ? (" FAILED: " + out.value("failed", std::string())).c_str()
                    : out.value("tokens_agree", true) ? ""
                                                      : " TOKENS DIFFER");
        std::fflush(stdout);
        report["runs"].push_back(out);
      }
    }
  }
  std::printf("memory limit: %s\n", cg_note.empty() && !o.no_cgroup
                                        ? "cgroup v1 memory.limit_in_bytes per run = other weights + budget + slack "
                                          "(page cache and mapped pages count)"
                                        : ("NOT ENFORCED (" + (o.no_cgroup ? std::string("--no-cgroup") : cg_note) +
                                           "); page cache dropped before each run only").c_str());
  report["memory_limit"] = cg_note.empty() && !o.no_cgroup ? "cgroup-v1" : "none: " + cg_note;

  // Replays of the recorded trace: per-layer caches of C experts.
  if (fs::exists(trace)) {
    const offload::Trace tr = offload::read_trace(trace);
    std::vector<std::pair<std::string, int>> caps;
    for (const auto& [bname, bbytes] : budgets)
      caps.push_back({bname, int(bbytes / expert_bytes / size_t(moe_layers))});
    caps.push_back({"2x active", 2 * k});
    std::printf("\ntrace replay (%zu tokens, per-layer caches; hit rates in %%):\n%-10s %8s %7s %7s %11s %7s %13s\n",
                tr.tokens.size(), "cache", "experts", "lru", "lfu", "predictive", "belady", "pred - belady");
    json rep = json::array();
    for (const auto& [cname, cap] : caps) {
      if (cap < tr.max_active()) continue;
      double hr[4];
      const offload::PolicyKind pk[3] = {offload::PolicyKind::LRU, offload::PolicyKind::LFU,
                                         offload::PolicyKind::Predictive};
      for (int i = 0; i < 3; ++i) hr[i] = offload::replay_policy(tr, pk[i], cap, offload::CacheScope::PerLayer).hit_rate();
      hr[3] = offload::replay_belady(tr, cap, offload::CacheScope::PerLayer).hit_rate();
      std::printf("%-10s %8d %7.1f %7.1f %11.1f %7.1f %13.1f\n", cname.c_str(), cap, 100 * hr[0], 100 * hr[1],
                  100 * hr[2], 100 * hr[3], 100 * (hr[2] - hr[3]));
      rep.push_back({{"cache", cname}, {"experts_per_layer", cap}, {"lru", hr[0]}, {"lfu", hr[1]}, {"predictive", hr[2]},
                     {"belady", hr[3]}});
    }
    for (const auto& a : offload::predictor_accuracy(tr))
      std::printf("predictor distance %d: recall %.1f%%, precision %.1f%%\n", a.distance, 100 * a.recall(),
                  100 * a.precision());
    report["trace_replay"] = rep;
    report["trace"] = trace;
    std::printf("trace: %s (switchyard trace analyze %s)\n", trace.c_str(), trace.c_str());
  }
  if (o.as_json) std::printf("%s\n", report.dump().c_str());
}

}  // namespace

void add_bench_offload(CLI::App* bench) {
  static BenchOffloadOptions o;
  auto* cmd = bench->add_subcommand("offload", "expert offloading (lru, lfu, predictive; single and batched decode) "
                                               "vs plain mmap under the same cgroup memory limit");
  cmd->add_option("--model", o.model_dir, "a real checkpoint directory (default: a random Qwen3-30B-A3B-width one)");
  cmd->add_option("--work", o.work_dir, "where the random checkpoint and the trace go (default: system temp dir)");
  cmd->add_option("--layers", o.layers, "layers of the random checkpoint")->check(CLI::Range(1, 64));
  cmd->add_option("--vocab", o.vocab, "vocabulary of the random checkpoint")->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--seed", o.seed, "checkpoint and prompt seed");
  cmd->add_option("--prompt-tokens", o.prompt_tokens, "prompt length per sequence")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--decode-tokens", o.decode_tokens, "greedy tokens per sequence")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--parallel", o.parallel, "sequences decoded together in the batched mode (1: skip it)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--budgets", o.budgets, "expert budgets: 25%, 512MiB, or 2k (twice the active experts per layer)")
      ->delimiter(',');
  cmd->add_option("--policies", o.policies, "cache policies")->delimiter(',')->check(CLI::IsMember({"lru", "lfu", "predictive"}));
  cmd->add_option("--io-threads", o.io_threads, "cache I/O threads")->check(CLI::Range(1, 64));
  cmd->add_option("--slack-mib", o.slack_mib, "memory limit above weights + budget (KV cache, activations, process)")
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_flag("--direct-io", o.direct_io, "the cache reads with O_DIRECT");
  cmd->add_option("--budget-split", o.budget_split, "the cache runs' budget: global, or per-layer shares")
      ->check(CLI::IsMember({"global", "per-layer"}));
  cmd->add_flag("--no-cgroup", o.no_cgroup, "do not limit memory with a cgroup");
  cmd->add_flag("--no-mmap", o.no_mmap, "skip the plain-mmap runs");
  cmd->add_flag("--quick", o.quick, "a tiny random checkpoint (smoke test)");
  cmd->add_flag("--json", o.as_json, "also print the whole report as one JSON line");
  cmd->add_option("--python", o.python, "python with torch, for bench/make_checkpoint.py");
  cmd->add_option("--source-dir", o.source_dir, "the repository (bench/make_checkpoint.py)");
  cmd->add_option("--worker", o.worker, "internal: run one measurement described by this JSON")->group("");
  cmd->callback([] {
    if (!o.worker.empty())
      run_worker(o.worker);
    else
      run_bench_offload(o);
  });
}

}  // namespace sy::cli
