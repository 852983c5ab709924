// The `switchyard` command line: one file per subcommand, each adding itself to the CLI11 app.
// Library code throws sy::Error; main() reports it and exits non-zero.
#pragma once
#include <CLI/CLI.hpp>

namespace sy::cli {

// Options every subcommand shares (declared once here, parsed by main).
struct GlobalOptions {
  int threads = 0;  // 0: all cores
};
GlobalOptions& globals();

void add_demo(CLI::App& app);
void add_bench(CLI::App& app);
void add_bench_model(CLI::App* bench);  // `bench model` (cmd_bench_model.cpp), called by add_bench
void add_bench_offload(CLI::App* bench);  // `bench offload` (cmd_bench_offload.cpp), called by add_bench
void add_bench_train(CLI::App* bench);  // `bench train` (cmd_bench_train.cpp), called by add_bench
void add_routers(CLI::App& app);
void add_info(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_generate(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_tokenizer(CLI::App& app);  // `tokenizer train` (cmd_tokenizer.cpp)
void add_trace(CLI::App& app);
void add_route(CLI::App& app);
void add_train(CLI::App& app);

}  // namespace sy::cli
