// `switchyard routers`: lists every routing function with its parameters.
#include <cstdio>

#include "commands.h"
#include "moe/router.h"

namespace sy::cli {

void add_routers(CLI::App& app) {
  auto* cmd = app.add_subcommand("routers", "list the routing functions and their spec parameters");
  cmd->callback([] {
    std::printf("Routers (select with a spec string NAME:key=value,... e.g. topk:k=2,norm=true):\n%s",
                router_help().c_str());
  });
}

}  // namespace sy::cli
