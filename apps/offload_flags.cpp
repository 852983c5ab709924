#include "offload_flags.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "offload/policy.h"

namespace sy::cli {

BudgetSpec parse_budget(const std::string& s) {
  auto bad = [&](const char* why) {
    fail("[offload] --expert-budget '", s, "': ", why, " (expected bytes like 2GiB, 512MiB, 1000000, or a percentage "
         "of the experts' bytes like 25%)");
  };
  if (s.empty()) bad("empty");
  const char* begin = s.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(v) || std::isspace(static_cast<unsigned char>(s[0]))) bad("no number");
  std::string unit(end);
  for (char& ch : unit) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  BudgetSpec b;
  if (unit == "%") {
    if (!(v > 0 && v <= 100)) bad("a percentage must be in (0, 100]");
    b.fraction = v / 100.0;
    return b;
  }
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "kib" || unit == "k") mult = 1024.0;
  else if (unit == "mib" || unit == "m") mult = 1024.0 * 1024;
  else if (unit == "gib" || unit == "g") mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib" || unit == "t") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") mult = 1e3;
  else if (unit == "mb") mult = 1e6;
  else if (unit == "gb") mult = 1e9;
  else if (unit == "tb") mult = 1e12;
  else bad("unknown unit");
  const double bytes = std::floor(v * mult);
  if (!(bytes >= 1) || bytes > 9.0e18) bad("must be at least 1 byte");
  b.bytes = uint64_t(bytes);
  return b;
}

void add_offload_flags(CLI::App* cmd, OffloadFlags& f) {
  cmd->add_option("--expert-budget", f.budget,
                  "offload routed experts into a cache of this size: bytes (2GiB, 512MiB) or a percentage of all "
                  "experts' bytes (25%); read from the checkpoint on demand and prefetched");
  cmd->add_option("--cache-policy", f.policy, "expert cache policy with --expert-budget: lru, lfu, predictive")
      ->check(CLI::IsMember({"lru", "lfu", "predictive"}));
  cmd->add_option("--io-threads", f.io_threads, "expert cache I/O threads")->check(CLI::Range(1, 64));
  cmd->add_option("--trace", f.trace, "write every token's routing to FILE (switchyard trace analyze FILE)");
  cmd->add_option("--pin-profile", f.pin_profile,
                  "with --expert-budget: keep the experts this recorded trace (--trace) used most resident");
  cmd->add_option("--pin-fraction", f.pin_fraction, "share of the budget for --pin-profile's experts, split per layer")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--direct-io", f.direct_io, "read experts with O_DIRECT, bypassing the page cache");
  cmd->add_option("--budget-split", f.budget_split,
                  "with --expert-budget: one budget for all layers (global), or each layer a share in proportion to "
                  "its experts' bytes (per-layer)")
      ->check(CLI::IsMember({"global", "per-layer"}));
}

void apply_offload_flags(const OffloadFlags& f, LoadOptions& lo) {
  lo.cache_policy = offload::parse_policy(f.policy);
  lo.io_threads = f.io_threads;
  lo.trace_path = f.trace;
  lo.pin_profile = f.pin_profile;
  lo.pin_fraction = f.pin_fraction;
  lo.direct_io = f.direct_io;
  SY_CHECK(f.budget_split == "global" || f.budget_split == "per-layer", "[offload] --budget-split '", f.budget_split,
           "': expected global or per-layer");
  lo.expert_budget_per_layer = f.budget_split == "per-layer";
  if (!f.budget.empty()) {
    BudgetSpec b = parse_budget(f.budget);
    lo.expert_budget_bytes = size_t(b.bytes);
    lo.expert_budget_fraction = b.fraction;
  }
}

}  // namespace sy::cli
