// `switchyard demo --layer`: pushes one batch through a random MoE layer under every registered
// routing function and prints the routing statistics. (`switchyard demo` without --layer runs the
// demo model: apps/cmd_demo_model.cpp.)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "commands.h"
#include "demo.h"
#include "core/threadpool.h"
#include "moe/moe_layer.h"

namespace sy::cli {
namespace {

std::vector<float> random_matrix(std::mt19937& rng, int64_t rows, int64_t cols, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> m(size_t(rows * cols));
  for (auto& v : m) v = nd(rng);
  return m;
}

}  // namespace

void run_layer_demo(const DemoOptions& o) {
  std::mt19937 rng(uint32_t(o.seed));
  const int64_t H = o.hidden, F = o.ffn, E = o.experts, T = o.tokens;
  auto x = random_matrix(rng, T, H, 1.0f);
  std::vector<std::vector<float>> store;
  std::vector<FfnWeights> experts;
  for (int64_t e = 0; e < E; ++e) {
    store.push_back(random_matrix(rng, F, H, 1.0f / std::sqrt(float(H))));
    store.push_back(random_matrix(rng, F, H, 1.0f / std::sqrt(float(H))));
    store.push_back(random_matrix(rng, H, F, 1.0f / std::sqrt(float(F))));
    FfnWeights w;
    w.gate = {store[store.size() - 3].data(), DType::F32, F, H};
    w.up = {store[store.size() - 2].data(), DType::F32, F, H};
    w.down = {store[store.size() - 1].data(), DType::F32, H, F};
    experts.push_back(w);
  }
  auto expert_store = std::make_shared<InMemoryExperts>(experts);
  std::vector<int32_t> token_ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) token_ids[size_t(t)] = int32_t(rng() % 1000);

  std::vector<std::string> specs = o.routers;
  if (specs.empty())
    for (const auto& info : router_registry()) specs.push_back(info.example);

  for (const auto& spec : specs) make_router(spec, int(E));  // reject bad specs before any output
  std::printf("Switchyard demo: one batch of %lld tokens through a random MoE layer (hidden %lld, %lld experts of "
              "width %lld, SwiGLU, f32), %d threads\n\n",
              (long long)T, (long long)H, (long long)E, (long long)F, default_pool().size());
  std::printf("%-56s %8s %5s %5s %8s %6s %7s %7s %8s %7s %8s\n", "router", "exp/tok", "min", "max", "load", "cv",
              "dropped", "entropy", "lb_loss", "z_loss", "ms");
  std::vector<float> out(size_t(T * H));
  for (const auto& spec : specs) {
    auto router = make_router(spec, int(E));
    int S = router->num_scores(int(E));
    auto gate = random_matrix(rng, S, H, 1.0f / std::sqrt(float(H)));
    MoEWeights w;
    w.router = {gate.data(), DType::F32, S, H};
    w.experts = expert_store;
    MoELayer layer({H, E, F, {}}, w, std::move(router));
    MoEForwardInfo info;
    RouteInput ctx;
    ctx.token_ids = token_ids.data();
    auto t0 = std::chrono::steady_clock::now();
    layer.forward(x.data(), T, out.data(), ctx, &info);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto& s = info.stats;
    std::printf("%-56s %8.2f %5d %5d %8.2f %6.2f %7lld %7.3f %8.4f %7.3f %8.2f\n", layer.router().spec().c_str(),
                s.experts_per_token_mean, s.experts_per_token_min, s.experts_per_token_max, s.load_max_over_mean,
                s.load_cv, (long long)s.dropped, s.entropy, s.lb_loss, s.z_loss, ms);
    std::printf("%-56s tokens per expert:", "");
    for (auto c : s.tokens_per_expert) std::printf(" %lld", (long long)c);
    std::printf("\n");
  }
  std::printf("\nload = max/mean tokens per expert (1.00 is perfect balance); lb_loss = E*sum f_i*P_i (Switch); "
              "z_loss = mean logsumexp^2 (ST-MoE).\nTry: switchyard demo --layer --router 'topp:p=0.4'   "
              "(switchyard routers lists all)\n");
}

void add_demo(CLI::App& app) {
  static DemoOptions o;
  auto* cmd = app.add_subcommand("demo", "the main job: generate text with the demo MoE model (models/brown-moe) and show "
                                 "its routing; --layer: a random MoE layer under every router");
  cmd->add_option("-m,--model", o.model, "model directory (default: models/brown-moe, found from here or the binary)");
  cmd->add_option("-p,--prompt", o.prompt, "prompt text");
  cmd->add_option("-n,--n-predict", o.n_predict, "tokens to generate")->check(CLI::Range(1, 4096));
  cmd->add_option("--seed", o.seed, "random seed (sampling; --layer: weights and tokens)");
  cmd->add_flag("--layer", o.layer, "instead: one batch through a random MoE layer under every router");
  cmd->add_option("--tokens", o.tokens, "--layer: tokens in the batch")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--hidden", o.hidden, "--layer: hidden size")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--experts", o.experts, "--layer: routed experts")->check(CLI::Range(int64_t(1), int64_t(4096)));
  cmd->add_option("--ffn", o.ffn, "--layer: expert width")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("-r,--router", o.routers, "--layer: router spec(s) to run instead of every router's example");
  cmd->callback([] {
    if (o.layer)
      run_layer_demo(o);
    else
      run_model_demo(o);
  });
}

}  // namespace sy::cli
