// Fast CPU kernel primitives (Highway, runtime ISA dispatch) used by the CPU backend
// (cpu_backend.cpp), which splits work into tiles and runs them on the thread pool.
//
// A tile computes C[m][r] = sum_k x_m[k] * w_r[k] for nm token rows x_m (f32, K contiguous) and
// nrows weight rows w_r (f32, bf16 or f16, K contiguous: rows of a row-major [out, in] weight).
// Every output element is reduced in the same fixed order whatever the tile shape, the tile's
// position, the batch it is in or the path taken:
//   lane l of one vector accumulator sums x[k]*w[k] for k = l, l+L, l+2L, ... in increasing k
//   (one FMA per step; the last partial vector is zero-padded), then the L lanes are summed: on
//   AVX-512 targets (L = 16) the rows in full groups of 16 of the tile's row list by one fixed tree
//   for the 16 rows (hsum16_avx512.h), otherwise by the target's horizontal sum. The row list
//   depends only on the shapes (never on the tokens), so this holds for every token.
// So results are bitwise identical for any thread count and any grouping of tokens; they may
// differ between ISA targets (L and FMA availability differ).
//
// Two paths, chosen by nm only:
//   direct (nm <= kDirectMaxTokens, decode): weights are streamed straight from memory and widened
//     to f32 in registers (a memory-bound GEMV: each weight byte is read once per tile);
//   packed (prefill): K is cut into kKC blocks; weight rows are widened (bf16/f16) or copied once per block into
//     an L2-resident f32 panel that is then reused by every token row of the tile; a 4x4
//     register-blocked micro-kernel keeps its vector accumulators in a per-thread buffer between
//     K blocks (exact: vectors are stored and reloaded, not reduced).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/weights.h"

namespace sy::fast {

inline constexpr int kNT = 32;                // weight rows per work item (per matrix)
inline constexpr int kMC = 32;                // token rows per work item
inline constexpr int64_t kKC = 1024;          // K block of the packed path (panel 256 KiB)
inline constexpr int kDirectMaxTokens = 4;    // tiles with at most this many tokens stream weights
inline constexpr int kMaxTileRows = 2 * kNT;  // gate and up rows fused in one tile

struct TileArgs {
  const float* const* xs = nullptr;  // [nm] token rows, each K floats
  int nm = 0;                        // 1..kMC
  const void* const* ws = nullptr;   // [nrows] weight rows, each K elements of wtype
  int nrows = 0;                     // 1..kMaxTileRows
  DType wtype = DType::F32;          // F32, BF16 or F16
  int64_t K = 0;
  float* C = nullptr;                // C[m * ldc + r], m < nm, r < nrows
  int64_t ldc = 0;
};

// Floats of per-thread scratch matmul_tile needs (for the widest compiled target).
size_t tile_scratch_floats();
// Computes one tile (see above). scratch: tile_scratch_floats() floats, owned by the calling thread.
void matmul_tile(const TileArgs& a, float* scratch);

// bf16 compute (bf16_tile.cpp): the same tile with x and the weights rounded to bf16 (round to
// nearest even) and the products summed in f32 by AVX512-BF16 vdpbf16ps where the CPU has it
// (bf16_dot_native()), else by matmul_tile_bf16_scalar (products summed in increasing k). Fixed
// reduction order, so thread-count independent; the two paths differ in summation order.
size_t tile_scratch_floats_bf16();
bool bf16_dot_native();
void matmul_tile_bf16(const TileArgs& a, float* scratch);
void matmul_tile_bf16_scalar(const TileArgs& a);

// out[f] = act(gate[f] + gb[f], up[f] + ub[f]) for f < n (see Activation in weights.h); gate, gb
// and ub may be nullptr where unused. Vectorised for SwiGLU, GptOssSwiGLU and ReluMlp.
void ffn_act(const FfnParams& p, const float* gate, const float* up, const float* gb, const float* ub, float* out,
             int64_t n);

}  // namespace sy::fast
