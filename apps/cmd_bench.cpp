// `switchyard bench`: benchmarks. (Placeholder until the kernel work lands: `bench moe`.)
#include "commands.h"
#include "core/error.h"

namespace sy::cli {

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "benchmarks against PyTorch in the same run");
  cmd->require_subcommand(1);
  auto* moe = cmd->add_subcommand("moe", "MoE layer vs PyTorch eager baselines");
  moe->callback([] { fail("[bench] bench moe is not implemented yet"); });
}

}  // namespace sy::cli
