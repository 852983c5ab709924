// `switchyard info -m DIR`: what a checkpoint is and what running it costs: architecture, layer
// structure, parameters (total and active per token), dtypes, bytes of weights and KV cache.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "model/model.h"

namespace sy::cli {
namespace {

struct InfoOptions {
  std::string dir, router;
  int experts_per_token = 0;
  bool json = false;
};

std::string human(double v, const char* unit, double base = 1000) {
  const char* p[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (v >= base && i < 4) v /= base, ++i;
  char buf[64];
  std::snprintf(buf, sizeof buf, i ? "%.2f %s%s" : "%.0f %s%s", v, p[i], unit);
  return buf;
}

void run_info(const InfoOptions& o) {
  LoadOptions lo;
  lo.router = o.router;
  lo.experts_per_token = o.experts_per_token;
  auto m = Model::load(o.dir, lo);
  const ModelConfig& c = m->config();
  const ModelSummary s = m->summary();
  const auto specs = m->router_specs();
  std::string router;
  int64_t E = 0, F = 0, shared = 0;
  for (size_t l = 0; l < c.layers.size(); ++l)
    if (c.layers[l].moe) {
      router = specs[l], E = c.layers[l].n_experts, F = c.layers[l].expert_ffn, shared = c.layers[l].shared_ffn;
      break;
    }
  if (o.json) {
    nlohmann::json j = {{"dir", o.dir},
                        {"architecture", c.architecture},
                        {"layers", c.n_layers},
                        {"moe_layers", s.n_moe_layers},
                        {"dense_layers", s.n_dense_layers},
                        {"hidden", c.hidden},
                        {"heads", c.n_heads},
                        {"kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"vocab", c.vocab},
                        {"experts", E},
                        {"expert_ffn", F},
                        {"shared_expert_ffn", shared},
                        {"router", router},
                        {"rope_theta", c.rope.theta},
                        {"rope_scaling", rope_scaling_name(c.rope.scaling)},
                        {"tied_embeddings", c.tie_embeddings},
                        {"params_total", s.params_total},
                        {"params_active", s.params_active},
                        {"params_by_dtype", s.params_by_dtype},
                        {"weight_bytes", s.weight_bytes},
                        {"kv_bytes_per_token", s.kv_bytes_per_token}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model         %s\n", o.dir.c_str());
  std::printf("architecture  %s  (%s)\n", c.architecture.c_str(), m->architecture().summary.c_str());
  std::printf("layers        %lld  (%d MoE, %d dense); hidden %lld; heads %lld, kv heads %lld, head dim %lld; vocab %lld\n",
              (long long)c.n_layers, s.n_moe_layers, s.n_dense_layers, (long long)c.hidden, (long long)c.n_heads,
              (long long)c.n_kv_heads, (long long)c.head_dim, (long long)c.vocab);
  if (E > 0) {
    std::printf("experts       %lld per MoE layer, width %lld", (long long)E, (long long)F);
    if (shared > 0) std::printf(", shared expert width %lld", (long long)shared);
    std::printf("; router %s\n", router.c_str());
  }
  std::printf("rope          theta %g, scaling %s", c.rope.theta, rope_scaling_name(c.rope.scaling));
  if (c.rope.scaling != RopeScaling::None) std::printf(" (factor %g)", c.rope.factor);
  std::printf("; max positions %lld%s\n", (long long)c.max_pos, c.tie_embeddings ? "; tied embeddings" : "");
  std::printf("parameters    %s total, %s active per token (%lld / %lld)\n", human(double(s.params_total), "").c_str(),
              human(double(s.params_active), "").c_str(), (long long)s.params_total, (long long)s.params_active);
  std::printf("dtypes       ");
  for (const auto& [d, n] : s.params_by_dtype) std::printf(" %s: %lld params;", d.c_str(), (long long)n);
  std::printf("\n");
  std::printf("bytes         weights %s (memory-mapped); KV cache %s per token (f32)\n",
              human(double(s.weight_bytes), "B", 1024).c_str(), human(double(s.kv_bytes_per_token), "B", 1024).c_str());
}

}  // namespace

void add_info(CLI::App& app) {
  static InfoOptions o;
  auto* cmd = app.add_subcommand("info", "describe a Hugging Face MoE checkpoint: architecture, parameters, bytes");
  cmd->add_option("-m,--model", o.dir, "checkpoint directory (config.json + *.safetensors)")->required();
  cmd->add_option("--router", o.router, "router spec to count active parameters with");
  cmd->add_option("--experts-per-token", o.experts_per_token, "experts per token (replaces k)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o.json, "print JSON");
  cmd->callback([] { run_info(o); });
}

}  // namespace sy::cli
