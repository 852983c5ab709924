// Random weight matrices and vectors for the kernel tests (test_kernels, test_bf16_compute).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/weights.h"

namespace sy::test {

// A weight matrix stored in `dt`, with its stored values as f32 (after rounding to dt).
struct Mat {
  DType dt;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  std::vector<float> vals;
  WeightRef ref() const { return {bytes.data(), dt, rows, cols}; }
};

inline Mat make_mat(std::mt19937& rng, DType dt, int64_t rows, int64_t cols, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  Mat m{dt, rows, cols, {}, {}};
  std::vector<float> v(size_t(rows * cols));
  for (float& f : v) f = u(rng);
  m.bytes.resize(v.size() * dtype_size(dt) + 1);  // +1: never empty (data() non-null)
  from_f32(dt, v.data(), m.bytes.data(), v.size());
  m.vals.resize(v.size());
  to_f32(dt, m.bytes.data(), m.vals.data(), v.size());
  return m;
}

inline std::vector<float> rand_vec(std::mt19937& rng, size_t n, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

}  // namespace sy::test
