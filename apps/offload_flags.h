// Expert offloading flags shared by `generate` and `perplexity`:
//   --expert-budget SIZE|PCT   bytes ("2GiB", "512MiB", "64KiB", "1.5GB", "1000000") or a percentage
//                              of all routed experts' bytes ("25%"); absent = no offloading
//   --cache-policy lru|lfu|predictive   (default predictive)
//   --io-threads N                      the cache's background readers (default 2)
//   --trace FILE                        routing trace (offload/trace.h), read by `switchyard trace analyze`
//   --pin-profile TRACE [--pin-fraction F]  keep the experts TRACE used most resident (F of the budget)
//   --direct-io                         read experts with O_DIRECT (falls back to buffered pread, said)
//   --budget-split global|per-layer     one budget for all layers (default), or each layer a share
//                                       in proportion to its experts' bytes
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"

namespace sy::cli {

struct OffloadFlags {
  std::string budget, policy = "predictive", trace, pin_profile, budget_split = "global";
  double pin_fraction = 0.5;
  int io_threads = 2;
  bool direct_io = false;
};

void add_offload_flags(CLI::App* cmd, OffloadFlags& f);
// Fills the LoadOptions fields; throws sy::Error on a malformed size or policy.
void apply_offload_flags(const OffloadFlags& f, LoadOptions& lo);

// "2GiB" -> 2^31 bytes (KiB/MiB/GiB/TiB powers of 1024, KB/MB/GB/TB powers of 1000, B or no unit:
// bytes, case-insensitive); "25%" -> fraction 0.25 (returned in *fraction, bytes = 0).
struct BudgetSpec {
  uint64_t bytes = 0;
  double fraction = 0;
};
BudgetSpec parse_budget(const std::string& s);

}  // namespace sy::cli
