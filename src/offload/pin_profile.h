// Hot experts from a recorded routing profile (a trace, offload/trace.h), to keep resident with
// ExpertCache::pin() (`--pin-profile TRACE.jsonl --pin-fraction F`).
//
// Every MoE layer gets an equal share of pin_bytes: share = pin_bytes / (layers with routed
// experts). Within a layer, experts are ranked by how many of the trace's tokens chose them at that
// layer (ties: lower id first), and taken in that order while their bytes fit in the share; an
// expert the trace never chose is never pinned.
#pragma once
#include <cstdint>
#include <vector>

#include "offload/trace.h"

namespace sy::offload {

// expert_bytes[l] / n_experts[l]: the model's routed expert size and count per layer (0 for a
// layer without routed experts). Throws when the trace does not match the model (layer count,
// expert count, expert sizes), naming the trace and the field.
std::vector<std::vector<int32_t>> hot_experts(const Trace& tr, const std::vector<uint64_t>& expert_bytes,
                                              const std::vector<int>& n_experts, uint64_t pin_bytes);

}  // namespace sy::offload
