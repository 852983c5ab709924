// hsum16_avx512: the lane sums of 16 AVX-512 f32 accumulators at once, shared by the kernels that
// keep one 16-lane accumulator per output (bf16_tile.cpp, fast_kernels.cpp's AVX-512 targets).
// The includer includes <immintrin.h> and <cstdint> first (at global scope) and includes this where
// AVX-512 code may be compiled: inside a Highway AVX-512 target namespace, or after defining
// SY_HSUM16_ATTR as a target attribute. No include guard: each target namespace gets its own copy.
#ifndef SY_HSUM16_ATTR
#define SY_HSUM16_ATTR
#endif

// The lane sums of 16 accumulators at once: lane j of the result = sum of v[j]'s 16 lanes, by a
// fixed tree (pairs within 128-bit chunks, then pairs of 64-bit halves, then across chunks):
// 45 instructions for 16 sums instead of 16 stores and 240 scalar adds.
SY_HSUM16_ATTR inline __m512 hsum16_avx512(const float* v0, int64_t stride) {
  // maskz forms with a full mask: GCC 12 warns (-Wmaybe-uninitialized) on the plain ones
  const __mmask16 kAll = 0xffff;
  __m512 s[8], u[4], w[2];
  for (int i = 0; i < 8; ++i) {
    const __m512 a = _mm512_loadu_ps(v0 + (2 * i) * stride), b = _mm512_loadu_ps(v0 + (2 * i + 1) * stride);
    // per 128-bit chunk: a0+a2 b0+b2 a1+a3 b1+b3
    s[i] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(kAll, a, b), _mm512_maskz_unpackhi_ps(kAll, a, b));
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(s[2 * i]), b = _mm512_castps_pd(s[2 * i + 1]);
    // per chunk: the chunk's 4-lane sums of the 4 vectors
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_maskz_unpacklo_pd(__mmask8(0xff), a, b)),
                         _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(__mmask8(0xff), a, b)));
  }
  for (int i = 0; i < 2; ++i)  // chunks summed pairwise, then again
    w[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_maskz_shuffle_f32x4(kAll, u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_maskz_shuffle_f32x4(kAll, w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
}
