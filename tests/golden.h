// Helpers for tests that compare against reference data made at test time by the PyTorch
// generators in tests/reference/gen_*.py (CTest runs them first; SY_GOLDEN_DIR points at their
// output). Each case is one safetensors file with inputs, expected outputs and __metadata__.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace sy::test {

inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Files of one generator, sorted. Fails the test (not skips) when the data is missing.
inline std::vector<std::string> golden_cases(const std::string& generator) {
  std::string dir = env_or_empty("SY_GOLDEN_DIR");
  std::vector<std::string> out;
  if (dir.empty()) {
    ADD_FAILURE() << "SY_GOLDEN_DIR is not set: run the tests through ctest";
    return out;
  }
  std::filesystem::path p = std::filesystem::path(dir) / generator;
  if (!std::filesystem::is_directory(p)) {
    ADD_FAILURE() << "no reference data in " << p << " (did reference.gen_" << generator << " run?)";
    return out;
  }
  for (const auto& e : std::filesystem::directory_iterator(p))
    if (e.path().extension() == ".safetensors") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  if (out.empty()) ADD_FAILURE() << "no cases in " << p;
  return out;
}

inline std::string meta(const SafeTensors& st, const std::string& key) {
  auto it = st.metadata().find(key);
  if (it == st.metadata().end()) {
    ADD_FAILURE() << st.path() << ": no metadata '" << key << "'";
    return "";
  }
  return it->second;
}

// max |a - b| <= tol * max(1, max |b|): the error relative to the output's scale.
inline void expect_close(const float* a, const float* b, size_t n, double tol, const std::string& what) {
  double scale = 1.0, worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, double(std::fabs(b[i])));
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= worst)) {  // catches NaN
      worst = std::isnan(d) ? INFINITY : d;
      worst_i = i;
    }
  }
  EXPECT_LE(worst, tol * scale) << what << ": max abs error " << worst << " at " << worst_i << " (got "
                                << (n ? a[worst_i] : 0) << ", want " << (n ? b[worst_i] : 0) << "), scale " << scale;
}

inline void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  expect_close(a.data(), b.data(), a.size(), tol, what);
}

}  // namespace sy::test
