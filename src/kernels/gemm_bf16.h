// bf16 x bf16 -> f32 matrix products for mixed-precision training (src/train/ops.cpp), through
// oneDNN's matmul primitive (Debian's libdnnl, the library PyTorch's CPU autocast uses). On CPUs
// with AVX512-BF16 oneDNN picks its brgemm kernels (`vdpbf16ps`: two bf16 products per f32 lane,
// summed in f32), about twice OpenBLAS's sgemm per core on the training shapes (bench/RESULTS.md).
//
//   C[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C     (row-major; op = transpose when ta / tb)
//
// A, B are bf16 bit patterns (uint16_t, as sy::f32_to_bf16 makes them), C is f32; beta is 0 or 1.
// Products of two bf16 values are exact in f32, so the only rounding after the operands' is the
// f32 summation, in an order oneDNN fixes per call shape: for a given (shapes, strides) call the
// result is the same on every run and thread.
//
// Each call runs on the calling thread only (oneDNN's OpenMP pool is held at one thread for it):
// callers split C into tiles across sy::default_pool(), as the f32 products do with OpenBLAS.
// oneDNN compiles a kernel per shape (~0.5 ms), so primitives are cached by shape; to keep the
// number of shapes small when M or K follow token counts (an expert's rows), M and K are cut into a
// multiple of 32 plus a remainder that is zero-padded to 32 in scratch (zeros add nothing).
#pragma once
#include <cstdint>
#include <string>

namespace sy::fast {

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The implementation oneDNN picks for bf16 products on this CPU (e.g. "brg:avx512_core_bf16");
// "ref:any" means no native kernel (orders of magnitude slower).
std::string gemm_bf16_impl();
// Whether that implementation is a native one (not oneDNN's reference loops).
bool gemm_bf16_native();

}  // namespace sy::fast
