// The bf16-compute expert FFN (cpu_bf16_backend().grouped_ffn) for prefill-sized groups with bf16
// weights, through oneDNN's bf16 matmul (kernels/gemm_bf16.h) instead of the vdpbf16ps tiles: same
// precision class (token rows and activations rounded to bf16, weights read as they are, products
// summed in f32, activation functions in f32), with the weights read in place.
//
//   0. each group's token rows x[rows[i]] -> bf16, [n, H] (once per group, not per weight block)
//   1. per (group, block of kRowBlock gate/up rows): C = x_b W^T for gate and up ([n, nr] each),
//      act = ffn_act(gate, up) + biases, rounded to bf16 into act_b [n, F]
//   2. per (group, block of kRowBlock down rows): C = act_b Wd^T, y[dst[i]] = scale_i (C + bias)
// Items are cut by the shapes only and each output element comes from one call, so results do not
// depend on the thread count. They do differ in summation order from the tile path, so a token's
// output can change in the last bits with its group's size crossing kMinTokens.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/backend.h"

namespace sy::fast {

// Groups of at least this many tokens take this path. Below it the tiles win or tie: Qwen3-30B's
// prefill (about 32 tokens per expert) was slower with 16 or 32 here, Mixtral's (about 128) is ~1.5x
// faster than the tiles (bench/RESULTS.md).
constexpr int64_t kDnnlMinTokens = 64;

// Whether group g can take this path: n >= kDnnlMinTokens, every weight bf16, oneDNN native.
bool ffn_dnnl_eligible(const FfnGroup& g, const FfnParams& p);

// grouped_ffn for eligible groups only (shapes already checked by the caller).
void grouped_ffn_dnnl(const float* x, int64_t H, std::span<const FfnGroup> groups, const FfnParams& p, float* y);

}  // namespace sy::fast
