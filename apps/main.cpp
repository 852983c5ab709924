#include <cstdio>
#include <exception>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"

namespace sy::cli {
GlobalOptions& globals() {
  static GlobalOptions g;
  return g;
}
}  // namespace sy::cli

int main(int argc, char** argv) {
  CLI::App app{"switchyard: a Mixture-of-Experts engine (routing, inference, training, offloading)"};
  app.require_subcommand(0, 1);
  app.add_option("-t,--threads", sy::cli::globals().threads, "worker threads (default: all cores; never more than cores)")
      ->check(CLI::NonNegativeNumber);
  sy::cli::add_demo(app);
  sy::cli::add_bench(app);
  sy::cli::add_routers(app);
  sy::cli::add_info(app);
  sy::cli::add_perplexity(app);
  sy::cli::add_generate(app);
  sy::cli::add_tokenize(app);
  sy::cli::add_tokenizer(app);
  sy::cli::add_trace(app);
  sy::cli::add_route(app);
  sy::cli::add_train(app);
  app.parse_complete_callback([] { sy::set_default_threads(sy::cli::globals().threads); });
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::fputs(app.help().c_str(), stdout);
      return 0;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sy::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
