// Highway kernels behind fast_kernels.h, compiled once per x86 target (SSE4 ... AVX-512) and chosen
// at run time (HWY_DYNAMIC_DISPATCH). See fast_kernels.h for the reduction order they guarantee.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/fast_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#include "core/error.h"
#include "kernels/fast_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace sy::fast {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr size_t kMaxLanes = 64;  // upper bound of Lanes(DF) on every target, for stack buffers

// Weight element types as stored (bit patterns) and their widening to f32.
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

HWY_INLINE VF LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadW(DF df, const Bf16* p) {
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  return hn::PromoteTo(df, hn::LoadU(dbf, reinterpret_cast<const hwy::bfloat16_t*>(p)));
}
HWY_INLINE VF LoadW(DF df, const F16* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}
HWY_INLINE float ScalarW(const float* p) { return *p; }
HWY_INLINE float ScalarW(const Bf16* p) { return bf16_to_f32(p->bits); }
HWY_INLINE float ScalarW(const F16* p) { return f16_to_f32(p->bits); }

// acc[i*NR + j] += x_i[k] * w_j[k] over k in [0, kn), lane-wise (see fast_kernels.h). The last
// partial vector is copied into zero-padded buffers, so no read goes past a row's end.
template <class WT, int MR, int NR>
HWY_INLINE void Kernel(const float* const* xs, const WT* const* ws, int64_t kn, VF* HWY_RESTRICT acc) {
  const DF df;
  const int64_t L = int64_t(hn::Lanes(df));
  const float* x[MR];
  const WT* w[NR];
  for (int i = 0; i < MR; ++i) x[i] = xs[i];
  for (int j = 0; j < NR; ++j) w[j] = ws[j];
  int64_t k = 0;
  for (; k + L <= kn; k += L) {
    VF wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = LoadW(df, w[j] + k);
    for (int i = 0; i < MR; ++i) {
      const VF a = hn::LoadU(df, x[i] + k);
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = hn::MulAdd(a, wv[j], acc[i * NR + j]);
    }
  }
  if (k < kn) {
    HWY_ALIGN float xb[MR][kMaxLanes] = {};
    HWY_ALIGN float wb[NR][kMaxLanes] = {};
    const int64_t rem = kn - k;
    for (int i = 0; i < MR; ++i) std::memcpy(xb[i], x[i] + k, size_t(rem) * sizeof(float));
    for (int j = 0; j < NR; ++j)
      for (int64_t t = 0; t < rem; ++t) wb[j][t] = ScalarW(w[j] + k + t);
    VF wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = hn::Load(df, wb[j]);
    for (int i = 0; i < MR; ++i) {
      const VF a = hn::Load(df, xb[i]);
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = hn::MulAdd(a, wv[j], acc[i * NR + j]);
    }
  }
}

#undef SY_FAST_HSUM16  // this file is compiled once per target: decide again for each
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define SY_FAST_HSUM16 1
#include "kernels/hsum16_avx512.h"
#endif

HWY_INLINE float Reduce(VF v) {
  const DF df;
  return hn::GetLane(hn::SumOfLanes(df, v));
}

// Pads a pointer list to a multiple of `mult` by repeating the last entry (the extra results are
// computed and dropped; each element's arithmetic does not depend on its neighbours).
template <class P>
HWY_INLINE int PadPtrs(const P* src, int n, int mult, P* dst) {
  const int np = (n + mult - 1) / mult * mult;
  for (int i = 0; i < np; ++i) dst[i] = src[std::min(i, n - 1)];
  return np;
}

constexpr int kMR = 4, kNR = 4;
// Panel row stride: kKC + 16 floats, so that the rows a micro-kernel streams are not 4 KiB apart
// (they would share L1 sets; measured ~10-20% faster on Zen4 than stride kKC).
constexpr int64_t kPS = kKC + 16;

// The tile's outputs from per-output vector accumulators Cv[m][r] (row stride kMaxTileRows, L lanes
// each): with 16 lanes (AVX-512), rows in full groups of 16 of the tile's row list are reduced by one
// fixed tree (hsum16_avx512.h), the other rows lane by lane. Both paths below end here, so a
// token's result does not depend on the path (the row list depends only on the shapes).
HWY_INLINE void FinishTile(const TileArgs& a, const float* Cv) {
  const DF df;
  const int64_t L = int64_t(hn::Lanes(df));
  for (int m = 0; m < a.nm; ++m) {
    int r = 0;
#ifdef SY_FAST_HSUM16
    for (; r + 16 <= a.nrows; r += 16)
      _mm512_storeu_ps(a.C + int64_t(m) * a.ldc + r, hsum16_avx512(Cv + (int64_t(m) * kMaxTileRows + r) * L, L));
#endif
    for (; r < a.nrows; ++r)
      a.C[int64_t(m) * a.ldc + r] = Reduce(hn::LoadU(df, Cv + (int64_t(m) * kMaxTileRows + r) * L));
  }
}

// Direct path: full K per micro-tile, weights streamed from memory. (Software prefetch 256 B-1 KiB
// ahead and 4, 12 or 16 rows per pass were measured slower than or equal to 8 rows without
// prefetch, one thread by CPU time, 2026-11-22.) Accumulators go to Cv (the scratch after the
// panel) for FinishTile.
template <class WT, int MR, int NR>
void DirectTile(const TileArgs& a, float* scratch) {
  const DF df;
  const int64_t L = int64_t(hn::Lanes(df));
  float* Cv = scratch + size_t(kMaxTileRows) * size_t(kPS);
  const float* xs[kDirectMaxTokens];
  const WT* ws[kMaxTileRows + 8];
  const int mp = PadPtrs(a.xs, a.nm, MR, xs);
  const int rp = PadPtrs(reinterpret_cast<const WT* const*>(a.ws), a.nrows, NR, ws);
  for (int r0 = 0; r0 < rp; r0 += NR) {
    for (int m0 = 0; m0 < mp; m0 += MR) {
      VF acc[MR * NR];
      for (int i = 0; i < MR * NR; ++i) acc[i] = hn::Zero(df);
      Kernel<WT, MR, NR>(xs + m0, ws + r0, a.K, acc);
      for (int i = 0; i < MR; ++i) {
        if (m0 + i >= a.nm) break;
        for (int j = 0; j < NR; ++j) {
          if (r0 + j < a.nrows) hn::StoreU(acc[i * NR + j], df, Cv + (int64_t(m0 + i) * kMaxTileRows + r0 + j) * L);
        }
      }
    }
  }
  FinishTile(a, Cv);
}


size_t ScratchFloats() {
  const size_t L = hn::Lanes(DF());
  return size_t(kMaxTileRows) * size_t(kPS) + size_t(kMC) * size_t(kMaxTileRows) * L;
}

// Packed path: K blocks; weights widened into panel P[nrows][kPS], accumulators kept as vectors in
// Cv[m][r] between blocks.
template <class WT>
void PackedTile(const TileArgs& a, float* scratch) {
  const DF df;
  const int64_t L = int64_t(hn::Lanes(df));
  float* P = scratch;
  float* Cv = scratch + size_t(kMaxTileRows) * size_t(kPS);
  const float* xs[kMC + kMR];
  const WT* ws[kMaxTileRows + kNR];
  const int mp = PadPtrs(a.xs, a.nm, kMR, xs);
  const int rp = PadPtrs(reinterpret_cast<const WT* const*>(a.ws), a.nrows, kNR, ws);
  for (int64_t k0 = 0; k0 < a.K; k0 += kKC) {
    const int64_t kn = std::min<int64_t>(kKC, a.K - k0);
    const float* wp[kMaxTileRows + kNR];
    // f32 rows are copied too: the padded stride is worth it (see kPS).
    for (int r = 0; r < a.nrows; ++r) {
      float* dst = P + int64_t(r) * kPS;
      const WT* src = ws[r] + k0;
      int64_t k = 0;
      for (; k + L <= kn; k += L) hn::StoreU(LoadW(df, src + k), df, dst + k);
      for (; k < kn; ++k) dst[k] = ScalarW(src + k);
      wp[r] = dst;
    }
    for (int r = a.nrows; r < rp; ++r) wp[r] = wp[a.nrows - 1];
    const float* xo[kMC + kMR];
    for (int m = 0; m < mp; ++m) xo[m] = xs[m] + k0;
    for (int m0 = 0; m0 < mp; m0 += kMR) {
      for (int r0 = 0; r0 < rp; r0 += kNR) {
        VF acc[kMR * kNR];
        for (int i = 0; i < kMR; ++i)
          for (int j = 0; j < kNR; ++j) {
            float* c = Cv + (int64_t(m0 + i) * kMaxTileRows + r0 + j) * L;
            acc[i * kNR + j] = k0 == 0 ? hn::Zero(df) : hn::LoadU(df, c);
          }
        Kernel<float, kMR, kNR>(xo + m0, wp + r0, kn, acc);
        for (int i = 0; i < kMR; ++i)
          for (int j = 0; j < kNR; ++j)
            hn::StoreU(acc[i * kNR + j], df, Cv + (int64_t(m0 + i) * kMaxTileRows + r0 + j) * L);
      }
    }
  }
  FinishTile(a, Cv);
}

template <class WT>
void TileT(const TileArgs& a, float* scratch) {
  if (a.nm == 1) return DirectTile<WT, 1, 8>(a, scratch);
  if (a.nm == 2) return DirectTile<WT, 2, 4>(a, scratch);
  if (a.nm <= kDirectMaxTokens) return DirectTile<WT, 4, 4>(a, scratch);
  PackedTile<WT>(a, scratch);
}

void MatmulTile(const TileArgs& a, float* scratch) {
  switch (a.wtype) {
    case DType::F32: return TileT<float>(a, scratch);
    case DType::BF16: return TileT<Bf16>(a, scratch);
    case DType::F16: return TileT<F16>(a, scratch);
    default: fail("[kernels] weights of dtype ", dtype_name(a.wtype), " are not supported");
  }
}

void FfnAct(const FfnParams& p, const float* gate, const float* up, const float* gb, const float* ub, float* out,
            int64_t n) {
  const DF df;
  const int64_t L = int64_t(hn::Lanes(df));
  const VF zero = hn::Zero(df), one = hn::Set(df, 1.0f), cap = hn::Set(df, 88.0f);
  auto bias = [&](const float* b, int64_t f) { return b ? hn::LoadU(df, b + f) : zero; };
  int64_t f = 0;
  switch (p.act) {
    case Activation::SwiGLU:
      // silu(g) * u = g / (1 + exp(-g)) * u; exp's argument is capped at 88 (hwy's Exp is valid to
      // +104): for g < -88 the result is g * 6e-39, i.e. 0 to f32 precision.
      for (; f + L <= n; f += L) {
        const VF g = hn::Add(hn::LoadU(df, gate + f), bias(gb, f));
        const VF u = hn::Add(hn::LoadU(df, up + f), bias(ub, f));
        const VF e = hn::Exp(df, hn::Min(hn::Neg(g), cap));
        hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), u), df, out + f);
      }
      for (; f < n; ++f) {
        const float g = gate[f] + (gb ? gb[f] : 0.0f), u = up[f] + (ub ? ub[f] : 0.0f);
        out[f] = g / (1.0f + std::exp(std::min(-g, 88.0f))) * u;
      }
      break;
    case Activation::GptOssSwiGLU: {
      const VF lim = hn::Set(df, p.swiglu_limit), nlim = hn::Set(df, -p.swiglu_limit);
      const VF nalpha = hn::Set(df, -p.swiglu_alpha);
      for (; f + L <= n; f += L) {
        const VF g = hn::Min(hn::Add(hn::LoadU(df, gate + f), bias(gb, f)), lim);
        const VF u = hn::Min(hn::Max(hn::Add(hn::LoadU(df, up + f), bias(ub, f)), nlim), lim);
        const VF e = hn::Exp(df, hn::Min(hn::Mul(nalpha, g), cap));
        hn::StoreU(hn::Mul(hn::Add(u, one), hn::Div(g, hn::Add(one, e))), df, out + f);
      }
      for (; f < n; ++f) {
        const float g = std::min(gate[f] + (gb ? gb[f] : 0.0f), p.swiglu_limit);
        const float u = std::clamp(up[f] + (ub ? ub[f] : 0.0f), -p.swiglu_limit, p.swiglu_limit);
        out[f] = (u + 1.0f) * (g / (1.0f + std::exp(std::min(-p.swiglu_alpha * g, 88.0f))));
      }
      break;
    }
    case Activation::ReluMlp:
      for (; f + L <= n; f += L) {
        hn::StoreU(hn::Max(hn::Add(hn::LoadU(df, up + f), bias(ub, f)), zero), df, out + f);
      }
      for (; f < n; ++f) out[f] = std::max(up[f] + (ub ? ub[f] : 0.0f), 0.0f);
      break;
    case Activation::GeluMlp:  // exact (erf) GELU; scalar: std::erf has no Highway counterpart here
      for (; f < n; ++f) {
        const float u = up[f] + (ub ? ub[f] : 0.0f);
        out[f] = 0.5f * u * (1.0f + std::erf(u * 0.70710678118654752f));
      }
      break;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::fast
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sy::fast {

HWY_EXPORT(ScratchFloats);
HWY_EXPORT(MatmulTile);
HWY_EXPORT(FfnAct);

size_t tile_scratch_floats() {
  // At least what the dispatched target needs; the bound for kMaxLanes keeps it target-independent.
  return std::max<size_t>(HWY_DYNAMIC_DISPATCH(ScratchFloats)(),
                          size_t(kMaxTileRows) * size_t(kKC + 16) + size_t(kMC) * size_t(kMaxTileRows) * 64);
}

void matmul_tile(const TileArgs& a, float* scratch) {
  SY_CHECK(a.nm >= 1 && a.nm <= kMC && a.nrows >= 1 && a.nrows <= kMaxTileRows && a.K >= 0,
           "[kernels] bad tile: ", a.nm, " tokens x ", a.nrows, " weight rows");
  if (a.K == 0) {  // empty sums
    for (int m = 0; m < a.nm; ++m) std::fill(a.C + int64_t(m) * a.ldc, a.C + int64_t(m) * a.ldc + a.nrows, 0.0f);
    return;
  }
  HWY_DYNAMIC_DISPATCH(MatmulTile)(a, scratch);
}

void ffn_act(const FfnParams& p, const float* gate, const float* up, const float* gb, const float* ub, float* out,
             int64_t n) {
  HWY_DYNAMIC_DISPATCH(FfnAct)(p, gate, up, gb, ub, out, n);
}

}  // namespace sy::fast
#endif
