// bf16 compute tiles (fast_kernels.h, matmul_tile_bf16): both operands rounded to bf16 (round to
// nearest even), products summed in f32 with AVX512-BF16 `vdpbf16ps` (Intel SDM, VDPBF16PS: each
// f32 lane adds the two products of its bf16 pair, a[2l]*b[2l] + a[2l+1]*b[2l+1]; inputs and
// outputs denormals flushed). Highway 1.0 (Debian 12) has no bf16 dot op that lowers to vdpbf16ps,
// so this file uses intrinsics behind a target attribute, chosen at run time; CPUs without
// AVX512-BF16 take a scalar fallback with the same rounding of the operands (slow; the mode is opt-in).
//
// Reduction order (fixed, so results do not depend on threads or tiling): lane l of one 16-lane f32
// accumulator takes the pairs k = 2l, 2l+1 (+32, +64, ... in increasing k; the tail zero-padded),
// the 16 lanes are then summed: for output rows in full groups of 16 (the row's position in the
// tile's groups of 16 decides) by the fixed tree of hsum16, for the rest in lane order. Tiles are
// cut at fixed row offsets (multiples of 16 within the tile), so this too is independent of the
// thread count. The fallback sums the products in increasing k.
//
// Layout per K block (kKB bf16 elements): the tile's token rows are rounded into xb[nm][kKB];
// bf16 weight rows are read in place (tail loads masked), f32/f16 rows are rounded into a panel
// wb[nrows][kPB]; a 4x4 (prefill) or 1x8 / 2x4 (decode) register block of accumulators is kept
// in Cv[m][r][16] between K blocks.
#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "kernels/fast_kernels.h"

namespace sy::fast {
namespace {

constexpr int64_t kKB = 1024;      // K block in bf16 elements (multiple of 32)
constexpr int64_t kPB = kKB + 32;  // panel row stride: rows not 4 KiB apart (L1 set aliasing)
constexpr int kLanes = 16;         // f32 lanes of one 512-bit accumulator

// Scratch layout in floats (uint16 arrays packed two per float).
constexpr size_t kXbFloats = size_t(kMC) * size_t(kKB) / 2;
constexpr size_t kWbFloats = size_t(kMaxTileRows) * size_t(kPB) / 2;
constexpr size_t kCvFloats = size_t(kMC) * size_t(kMaxTileRows) * kLanes;

float weight_at(const TileArgs& a, int r, int64_t k) {
  switch (a.wtype) {
    case DType::F32: return static_cast<const float*>(a.ws[r])[k];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(a.ws[r])[k]);
    default: return f16_to_f32(static_cast<const uint16_t*>(a.ws[r])[k]);
  }
}

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

}  // namespace

void matmul_tile_bf16_scalar(const TileArgs& a) {
  for (int m = 0; m < a.nm; ++m)
    for (int r = 0; r < a.nrows; ++r) {
      float s = 0;
      for (int64_t k = 0; k < a.K; ++k) s += round_bf16(a.xs[m][k]) * round_bf16(weight_at(a, r, k));
      a.C[int64_t(m) * a.ldc + r] = s;
    }
}

namespace {

#if defined(__x86_64__)
#define SY_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define SY_HSUM16_ATTR SY_BF16_TARGET
#include "kernels/hsum16_avx512.h"

// f32 -> bf16 (round to nearest even) of n values, zero-padded up to `padded`.
SY_BF16_TARGET void round_row(const float* src, int64_t n, int64_t padded, uint16_t* dst) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + k)));
  for (; k < n; ++k) dst[k] = f32_to_bf16(src[k]);
  for (; k < padded; ++k) dst[k] = 0;
}
SY_BF16_TARGET void round_row_f16(const uint16_t* src, int64_t n, int64_t padded, uint16_t* dst) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k));
    const __m512 v = _mm512_maskz_cvtph_ps(__mmask16(0xffff), h);  // maskz: GCC 12 warns on the plain form
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), (__m256i)_mm512_cvtneps_pbh(v));
  }
  for (; k < n; ++k) dst[k] = f32_to_bf16(f16_to_f32(src[k]));
  for (; k < padded; ++k) dst[k] = 0;
}

SY_BF16_TARGET inline __m512bh load_bh(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
SY_BF16_TARGET inline __m512bh load_bh_tail(const uint16_t* p, int64_t n) {
  return (__m512bh)_mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << n) - 1), p);
}

// acc[i*NR + j] += x_i . w_j over [0, kn): x rows zero-padded to a multiple of 32; w rows end at kn
// (the tail is loaded masked).
template <int MR, int NR>
SY_BF16_TARGET inline void dp_block(const uint16_t* const* x, const uint16_t* const* w, int64_t kn, __m512* acc) {
  int64_t k = 0;
  for (; k + 32 <= kn; k += 32) {
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_bh(w[j] + k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = load_bh(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm512_dpbf16_ps(acc[i * NR + j], xv, wv[j]);
    }
  }
  if (k < kn) {
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_bh_tail(w[j] + k, kn - k);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = load_bh(x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm512_dpbf16_ps(acc[i * NR + j], xv, wv[j]);
    }
  }
}

SY_BF16_TARGET inline float hsum(__m512 v) {
  alignas(64) float l[kLanes];
  _mm512_store_ps(l, v);
  float s = 0;
  for (float f : l) s += f;
  return s;
}

template <int MR, int NR>
SY_BF16_TARGET void tile_blocked(const TileArgs& a, float* scratch) {
  uint16_t* xb = reinterpret_cast<uint16_t*>(scratch);
  uint16_t* wb = reinterpret_cast<uint16_t*>(scratch + kXbFloats);
  float* Cv = scratch + kXbFloats + kWbFloats;
  const bool direct_w = a.wtype == DType::BF16;
  // Pad the token and row counts to the register block by repeating the last one (extra results
  // are computed and dropped).
  const int mp = (a.nm + MR - 1) / MR * MR, rp = (a.nrows + NR - 1) / NR * NR;
  for (int64_t k0 = 0; k0 < a.K; k0 += kKB) {
    const int64_t kn = std::min<int64_t>(kKB, a.K - k0), kpad = (kn + 31) / 32 * 32;
    const uint16_t* xp[kMC + 4];
    for (int m = 0; m < a.nm; ++m) {
      round_row(a.xs[m] + k0, kn, kpad, xb + int64_t(m) * kKB);
      xp[m] = xb + int64_t(m) * kKB;
    }
    for (int m = a.nm; m < mp; ++m) xp[m] = xp[a.nm - 1];
    const uint16_t* wp[kMaxTileRows + 8];
    for (int r = 0; r < a.nrows; ++r) {
      if (direct_w) {
        wp[r] = static_cast<const uint16_t*>(a.ws[r]) + k0;
        continue;
      }
      uint16_t* dst = wb + int64_t(r) * kPB;
      if (a.wtype == DType::F32)
        round_row(static_cast<const float*>(a.ws[r]) + k0, kn, kpad, dst);
      else
        round_row_f16(static_cast<const uint16_t*>(a.ws[r]) + k0, kn, kpad, dst);
      wp[r] = dst;
    }
    for (int r = a.nrows; r < rp; ++r) wp[r] = wp[a.nrows - 1];
    for (int r0 = 0; r0 < rp; r0 += NR) {
      for (int m0 = 0; m0 < mp; m0 += MR) {
        __m512 acc[MR * NR];
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NR; ++j)
            acc[i * NR + j] = k0 == 0 ? _mm512_setzero_ps()
                                      : _mm512_loadu_ps(Cv + (int64_t(m0 + i) * kMaxTileRows + r0 + j) * kLanes);
        dp_block<MR, NR>(xp + m0, wp + r0, kn, acc);
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NR; ++j)
            _mm512_storeu_ps(Cv + (int64_t(m0 + i) * kMaxTileRows + r0 + j) * kLanes, acc[i * NR + j]);
      }
    }
  }
  for (int m = 0; m < a.nm; ++m) {
    const float* cm = Cv + int64_t(m) * kMaxTileRows * kLanes;
    int r = 0;
    for (; r + 16 <= a.nrows; r += 16) _mm512_storeu_ps(a.C + int64_t(m) * a.ldc + r, hsum16_avx512(cm + r * kLanes, kLanes));
    for (; r < a.nrows; ++r) a.C[int64_t(m) * a.ldc + r] = hsum(_mm512_loadu_ps(cm + r * kLanes));
  }
}

bool has_avx512_bf16() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return ok;
}
#endif

}  // namespace

size_t tile_scratch_floats_bf16() { return kXbFloats + kWbFloats + kCvFloats; }

bool bf16_dot_native() {
#if defined(__x86_64__)
  return has_avx512_bf16();
#else
  return false;
#endif
}

void matmul_tile_bf16(const TileArgs& a, float* scratch) {
  SY_CHECK(a.nm >= 1 && a.nm <= kMC && a.nrows >= 1 && a.nrows <= kMaxTileRows && a.K >= 0,
           "[kernels] bad bf16 tile: ", a.nm, " tokens x ", a.nrows, " weight rows");
  SY_CHECK(a.wtype == DType::F32 || a.wtype == DType::BF16 || a.wtype == DType::F16, "[kernels] weights of dtype ",
           dtype_name(a.wtype), " are not supported");
  if (a.K == 0) {
    for (int m = 0; m < a.nm; ++m) std::fill(a.C + int64_t(m) * a.ldc, a.C + int64_t(m) * a.ldc + a.nrows, 0.0f);
    return;
  }
#if defined(__x86_64__)
  static const bool native = bf16_dot_native();
  if (native) {
    if (a.nm == 1) return tile_blocked<1, 8>(a, scratch);
    if (a.nm == 2) return tile_blocked<2, 4>(a, scratch);
    return tile_blocked<4, 4>(a, scratch);
  }
#endif
  (void)scratch;
  matmul_tile_bf16_scalar(a);
}

}  // namespace sy::fast
