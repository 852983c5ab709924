// Highway kernels behind train_kernels.h (see there for the contracts). The last partial vector of
// a range is copied into a zero-padded stack buffer and processed as a full vector (padding lanes
// are masked out of sums), so every element goes through the same vector code.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/train_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "kernels/train_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace sy::fast {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr size_t kMaxLanes = 64;

// Lanes summed in double, in lane order.
HWY_INLINE double SumLanesDouble(DF df, VF v) {
  HWY_ALIGN float b[kMaxLanes];
  hn::Store(v, df, b);
  double s = 0;
  for (size_t i = 0; i < hn::Lanes(df); ++i) s += double(b[i]);
  return s;
}

// Calls f(offset, count) per vector: full vectors, then the tail (count < L) once.
template <class F>
HWY_INLINE void ForVectors(int64_t n, F&& f) {
  const int64_t L = int64_t(hn::Lanes(DF()));
  int64_t i = 0;
  for (; i + L <= n; i += L) f(i, L);
  if (i < n) f(i, n - i);
}

HWY_INLINE VF LoadN(DF df, const float* p, int64_t count, float pad) {
  if (count == int64_t(hn::Lanes(df))) return hn::LoadU(df, p);
  HWY_ALIGN float b[kMaxLanes];
  std::fill(b, b + kMaxLanes, pad);
  std::memcpy(b, p, size_t(count) * sizeof(float));
  return hn::Load(df, b);
}

HWY_INLINE void StoreN(DF df, VF v, float* p, int64_t count) {
  if (count == int64_t(hn::Lanes(df))) return hn::StoreU(v, df, p);
  HWY_ALIGN float b[kMaxLanes];
  hn::Store(v, df, b);
  std::memcpy(p, b, size_t(count) * sizeof(float));
}

HWY_INLINE VF ExpCapped(DF df, VF x) { return hn::Exp(df, hn::Min(x, hn::Set(df, 88.0f))); }

float MaxOf(const float* x, int64_t n) {
  const DF df;
  VF m = hn::Set(df, -std::numeric_limits<float>::infinity());
  ForVectors(n, [&](int64_t i, int64_t c) {
    m = hn::Max(m, LoadN(df, x + i, c, -std::numeric_limits<float>::infinity()));
  });
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// sum_i exp(x[i] - shift); with kStore also out[i] = exp(x[i] - shift).
template <bool kStore>
HWY_INLINE double ExpSumT(float* out, const float* x, int64_t n, float shift) {
  const DF df;
  const VF sh = hn::Set(df, shift);
  VF acc = hn::Zero(df);
  ForVectors(n, [&](int64_t i, int64_t c) {
    const VF e = ExpCapped(df, hn::Sub(LoadN(df, x + i, c, 0.0f), sh));
    acc = hn::Add(acc, hn::IfThenElseZero(hn::FirstN(df, size_t(c)), e));
    if constexpr (kStore) StoreN(df, e, out + i, c);
  });
  return SumLanesDouble(df, acc);
}

double ExpSum(const float* x, int64_t n, float shift) { return ExpSumT<false>(nullptr, x, n, shift); }
double ExpStoreSum(float* out, const float* x, int64_t n, float shift) { return ExpSumT<true>(out, x, n, shift); }

void ExpScaleAdd(float* out, const float* x, int64_t n, float shift, float scale) {
  const DF df;
  const VF sh = hn::Set(df, shift), sc = hn::Set(df, scale);
  ForVectors(n, [&](int64_t i, int64_t c) {
    const VF e = ExpCapped(df, hn::Sub(LoadN(df, x + i, c, 0.0f), sh));
    StoreN(df, hn::MulAdd(e, sc, LoadN(df, out + i, c, 0.0f)), out + i, c);
  });
}

void ScaleInplace(float* x, int64_t n, float s) {
  const DF df;
  const VF sv = hn::Set(df, s);
  ForVectors(n, [&](int64_t i, int64_t c) { StoreN(df, hn::Mul(LoadN(df, x + i, c, 0.0f), sv), x + i, c); });
}

HWY_INLINE VF Sigmoid(DF df, VF g) {
  const VF one = hn::Set(df, 1.0f);
  return hn::Div(one, hn::Add(one, ExpCapped(df, hn::Neg(g))));
}

void SwigluFwd(float* h, const float* g, const float* u, int64_t n) {
  const DF df;
  ForVectors(n, [&](int64_t i, int64_t c) {
    const VF gv = LoadN(df, g + i, c, 0.0f);
    StoreN(df, hn::Mul(hn::Mul(gv, Sigmoid(df, gv)), LoadN(df, u + i, c, 0.0f)), h + i, c);
  });
}

void SwigluBwd(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  const DF df;
  const VF one = hn::Set(df, 1.0f);
  ForVectors(n, [&](int64_t i, int64_t c) {
    const VF gv = LoadN(df, g + i, c, 0.0f), uv = LoadN(df, u + i, c, 0.0f), d = LoadN(df, dh + i, c, 0.0f);
    const VF s = Sigmoid(df, gv);
    // dsilu/dg = s (1 + g (1 - s))
    const VF ds = hn::Mul(s, hn::MulAdd(gv, hn::Sub(one, s), one));
    StoreN(df, hn::MulAdd(hn::Mul(d, uv), ds, LoadN(df, dg + i, c, 0.0f)), dg + i, c);
    StoreN(df, hn::MulAdd(hn::Mul(d, gv), s, LoadN(df, du + i, c, 0.0f)), du + i, c);
  });
}

void AdamwUpdate(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2, float step,
                 float bc2_sqrt, float eps) {
  const DF df;
  const VF vdecay = hn::Set(df, decay), vb1 = hn::Set(df, b1), vb2 = hn::Set(df, b2);
  const VF c1 = hn::Set(df, 1.0f - b1), c2 = hn::Set(df, 1.0f - b2), vstep = hn::Set(df, step);
  const VF vinv_bc2 = hn::Set(df, 1.0f / bc2_sqrt), veps = hn::Set(df, eps);
  ForVectors(n, [&](int64_t i, int64_t c) {
    const VF gv = LoadN(df, g + i, c, 0.0f);
    const VF mv = hn::MulAdd(vb1, LoadN(df, m + i, c, 0.0f), hn::Mul(c1, gv));
    const VF vv = hn::MulAdd(vb2, LoadN(df, v + i, c, 0.0f), hn::Mul(hn::Mul(c2, gv), gv));
    const VF den = hn::MulAdd(hn::Sqrt(vv), vinv_bc2, veps);
    const VF pv = hn::Mul(LoadN(df, p + i, c, 0.0f), vdecay);
    StoreN(df, hn::NegMulAdd(vstep, hn::Div(mv, den), pv), p + i, c);
    StoreN(df, mv, m + i, c);
    StoreN(df, vv, v + i, c);
  });
}

// sy::f32_to_bf16 on whole vectors (u32 lanes, then truncated to u16); the tail is scalar (same
// formula).
void ToBf16(uint16_t* dst, const float* src, int64_t n) {
  const hn::ScalableTag<uint32_t> du;
  const hn::RebindToSigned<decltype(du)> di;
  const hn::Rebind<uint16_t, decltype(du)> d16;
  const int64_t L = int64_t(hn::Lanes(du));
  const auto one = hn::Set(du, 1u), half = hn::Set(du, 0x7fffu), quiet = hn::Set(du, 0x40u);
  const auto abs_mask = hn::Set(du, 0x7fffffffu);
  const auto inf = hn::Set(di, 0x7f800000);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto u = hn::BitCast(du, hn::LoadU(DF(), src + i));
    const auto hi = hn::ShiftRight<16>(u);
    const auto rounded = hn::ShiftRight<16>(hn::Add(hn::Add(u, half), hn::And(hi, one)));
    const auto is_nan = hn::RebindMask(du, hn::Gt(hn::BitCast(di, hn::And(u, abs_mask)), inf));
    hn::StoreU(hn::TruncateTo(d16, hn::IfThenElse(is_nan, hn::Or(hi, quiet), rounded)), d16, dst + i);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::fast
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sy::fast {

HWY_EXPORT(MaxOf);
HWY_EXPORT(ExpSum);
HWY_EXPORT(ExpScaleAdd);
HWY_EXPORT(ExpStoreSum);
HWY_EXPORT(ScaleInplace);
HWY_EXPORT(SwigluFwd);
HWY_EXPORT(SwigluBwd);
HWY_EXPORT(AdamwUpdate);
HWY_EXPORT(ToBf16);

float max_of(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(MaxOf)(x, n); }
double exp_sum(const float* x, int64_t n, float shift) { return HWY_DYNAMIC_DISPATCH(ExpSum)(x, n, shift); }
void exp_scale_add(float* out, const float* x, int64_t n, float shift, float scale) {
  HWY_DYNAMIC_DISPATCH(ExpScaleAdd)(out, x, n, shift, scale);
}
double exp_store_sum(float* out, const float* x, int64_t n, float shift) {
  return HWY_DYNAMIC_DISPATCH(ExpStoreSum)(out, x, n, shift);
}
void scale_inplace(float* x, int64_t n, float s) { HWY_DYNAMIC_DISPATCH(ScaleInplace)(x, n, s); }
void swiglu_fwd(float* h, const float* g, const float* u, int64_t n) { HWY_DYNAMIC_DISPATCH(SwigluFwd)(h, g, u, n); }
void swiglu_bwd(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SwigluBwd)(dg, du, dh, g, u, n);
}
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2, float step,
                  float bc2_sqrt, float eps) {
  HWY_DYNAMIC_DISPATCH(AdamwUpdate)(p, g, m, v, n, decay, b1, b2, step, bc2_sqrt, eps);
}

void to_bf16(uint16_t* dst, const float* src, int64_t n) { HWY_DYNAMIC_DISPATCH(ToBf16)(dst, src, n); }

}  // namespace sy::fast
#endif
