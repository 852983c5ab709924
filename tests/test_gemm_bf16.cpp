// The oneDNN bf16 products (src/kernels/gemm_bf16.h) against a naive double-precision oracle on the
// same bf16 operands: every transpose combination, alpha, beta 0 and 1, leading dimensions wider
// than the rows, and M / K on both sides of the 32-multiples the call plan cuts at (remainders,
// K < 32, M < 32). Also the f32 -> bf16 rounding against sy::f32_to_bf16 (ties, NaN, inf,
// subnormals), bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm_bf16.h"
#include "kernels/train_kernels.h"

namespace sy::fast {
namespace {

std::vector<uint16_t> rand_bf16(int64_t n, uint64_t seed) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = f32_to_bf16(float(int64_t(seed >> 40) % 20001 - 10000) / 5000.0f);
  }
  return v;
}

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
};

void check(const Case& c) {
  SCOPED_TRACE(testing::Message() << "ta " << c.ta << " tb " << c.tb << " M " << c.M << " N " << c.N << " K " << c.K
                                  << " alpha " << c.alpha << " beta " << c.beta);
  // Stored shapes: A [M, K] or [K, M] (ta), B [K, N] or [N, K] (tb); leading dims padded by 3.
  const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 3, ldc = c.N + 5;
  const auto A = rand_bf16((c.ta ? c.K : c.M) * lda, 11 + uint64_t(c.M));
  const auto B = rand_bf16((c.tb ? c.N : c.K) * ldb, 23 + uint64_t(c.K));
  std::vector<float> C(size_t(c.M * ldc));
  for (size_t i = 0; i < C.size(); ++i) C[i] = float(int64_t(i % 13) - 6) * 0.25f;
  const std::vector<float> C0 = C;
  gemm_bf16(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.N; ++n) {
      double want = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = bf16_to_f32(c.ta ? A[size_t(k * lda + m)] : A[size_t(m * lda + k)]);
        const double b = bf16_to_f32(c.tb ? B[size_t(n * ldb + k)] : B[size_t(k * ldb + n)]);
        want += a * b;
        mag += std::fabs(a * b);
      }
      want = c.alpha * want + c.beta * C0[size_t(m * ldc + n)];
      // f32 summation of K exact products: |error| <= ~K 2^-24 sum |a b|.
      const double tol = 1e-6 * std::fabs(c.alpha) * mag * std::max<double>(1.0, double(c.K) / 16) + 1e-6;
      ASSERT_NEAR(C[size_t(m * ldc + n)], want, tol) << "at " << m << ", " << n;
    }
    for (int64_t n = c.N; n < ldc; ++n) ASSERT_EQ(C[size_t(m * ldc + n)], C0[size_t(m * ldc + n)]) << "padding";
  }
}

TEST(GemmBf16, MatchesOracleAcrossShapes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {1, 31, 32, 45, 96, 130})
        for (int64_t K : {7, 32, 77, 256})
          for (float beta : {0.0f, 1.0f}) check({ta, tb, M, 40, K, 1.0f, beta});
}

TEST(GemmBf16, AlphaAndWideShapes) {
  check({false, true, 200, 300, 64, 0.5f, 0.0f});
  check({false, true, 64, 129, 33, -2.0f, 1.0f});
  check({true, false, 300, 64, 517, 1.0f, 1.0f});
  check({false, false, 517, 17, 1024, 1.0f, 0.0f});
}

TEST(GemmBf16, EmptyShapes) {
  std::vector<float> C(6, 3.0f);
  const uint16_t dummy[1] = {0};
  gemm_bf16(false, false, 2, 3, 0, 1.0f, dummy, 1, dummy, 3, 1.0f, C.data(), 3);
  EXPECT_EQ(C, std::vector<float>(6, 3.0f));  // K = 0, beta 1: C unchanged
  gemm_bf16(false, false, 2, 3, 0, 1.0f, dummy, 1, dummy, 3, 0.0f, C.data(), 3);
  EXPECT_EQ(C, std::vector<float>(6, 0.0f));  // K = 0, beta 0: zeros
  gemm_bf16(false, false, 0, 3, 4, 1.0f, dummy, 4, dummy, 3, 0.0f, C.data(), 3);
  EXPECT_THROW(gemm_bf16(false, false, 2, 3, 4, 1.0f, dummy, 4, dummy, 3, 0.5f, C.data(), 3), std::exception);
}

TEST(GemmBf16, NativeKernelReported) {
  // Informational: the implementation oneDNN picks (a reference one is slow but still correct).
  const std::string impl = gemm_bf16_impl();
  EXPECT_FALSE(impl.empty());
  std::printf("oneDNN bf16 matmul: %s\n", impl.c_str());
}

TEST(GemmBf16, ToBf16MatchesScalarRounding) {
  std::vector<float> x;
  for (uint32_t u : {0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f817fffu, 0x7f7fffffu, 0x7f800000u,
                     0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc00001u, 0x00000001u, 0x807fffffu, 0x00008000u,
                     0x80000000u, 0x00000000u}) {
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  uint64_t s = 5;
  for (int i = 0; i < 1003; ++i) {  // not a multiple of the vector length: the scalar tail too
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t u = uint32_t(s >> 32);
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  std::vector<uint16_t> got(x.size());
  to_bf16(got.data(), x.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(x[i])) << i;
}

}  // namespace
}  // namespace sy::fast
