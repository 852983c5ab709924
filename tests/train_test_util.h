// Helpers shared by the training tests (tests/test_train*.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "golden.h"
#include "io/safetensors.h"

namespace sy::test {

// Relative error against autograd: max |got - want| <= tol * max |want| (no floor of 1: gradients
// are often small). Names the worst element.
inline void expect_rel(const float* got, const std::vector<float>& want, const std::string& what, double tol = 1e-4) {
  double scale = 0, worst = 0;
  size_t wi = 0;
  for (float w : want) scale = std::max(scale, double(std::fabs(w)));
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= worst)) {
      worst = std::isnan(d) ? INFINITY : d;
      wi = i;
    }
  }
  EXPECT_LE(worst, tol * std::max(scale, 1e-30))
      << what << ": max abs error " << worst << " at " << wi << " (got " << (want.empty() ? 0 : got[wi]) << ", want "
      << (want.empty() ? 0 : want[wi]) << "), max |want| " << scale;
}
inline void expect_rel(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                       double tol = 1e-4) {
  ASSERT_EQ(got.size(), want.size()) << what;
  expect_rel(got.data(), want, what, tol);
}

inline std::vector<int32_t> ints(const SafeTensors& st, const std::string& name) {
  const TensorInfo& t = st.get(name);
  std::vector<int32_t> out(size_t(t.numel()));
  if (t.dtype == DType::I32) {
    std::memcpy(out.data(), t.data, t.nbytes);
  } else {
    EXPECT_EQ(t.dtype, DType::I64) << name;
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + 8 * i, 8);
      out[i] = int32_t(v);
    }
  }
  return out;
}
inline std::vector<int64_t> longs(const SafeTensors& st, const std::string& name) {
  std::vector<int32_t> v = ints(st, name);
  return {v.begin(), v.end()};
}
inline double scalar(const SafeTensors& st, const std::string& name) { return st.to_f32(name).at(0); }

}  // namespace sy::test
