// Expert specialisation by data label (src/moe/label_stats.h) against the float64 PyTorch reference
// tests/reference/gen_label_stats.py; plus the bookkeeping of LabelRouting and bad input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "golden.h"
#include "moe/label_stats.h"

namespace sy {
namespace {

TEST(LabelStats, MutualInformationMatchesTorch) {
  for (const auto& path : test::golden_cases("label_stats")) {
    SafeTensors st(path);
    const auto& t = st.get("c");
    ASSERT_EQ(t.shape.size(), 2u) << path;
    const auto vals = st.to_f32("c");
    std::vector<std::vector<double>> c(size_t(t.shape[0]), std::vector<double>(size_t(t.shape[1])));
    for (size_t g = 0; g < c.size(); ++g)
      for (size_t e = 0; e < c[g].size(); ++e) c[g][e] = vals[g * c[g].size() + e];
    const double mi = std::stod(test::meta(st, "mi_bits")), h = std::stod(test::meta(st, "h_bits"));
    EXPECT_NEAR(mutual_information_bits(c), mi, 1e-12) << path;
    EXPECT_NEAR(label_entropy_bits(c), h, 1e-12) << path;
  }
}

TEST(LabelStats, LayerSummary) {
  LabelRouting r(2, 4, {"news", "fiction"});
  const std::vector<int64_t> a{6, 0, 0, 0}, b{0, 0, 3, 3};
  r.add(0, 0, a, 3);  // 3 tokens, 2 slots each
  r.add(0, 1, b, 3);
  const auto s = specialisation(r, 0);
  EXPECT_NEAR(s.mi_bits, 1.0, 1e-12);  // the expert determines the label; H(G) = 1 bit
  EXPECT_NEAR(s.nmi, 1.0, 1e-12);
  EXPECT_NEAR(s.experts_per_token, 2.0, 1e-12);
  EXPECT_NEAR(s.load_max_over_mean, 6.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.load_fraction[0], 0.5, 1e-12);
  const auto empty = specialisation(r, 1);
  EXPECT_EQ(empty.mi_bits, 0.0);
  EXPECT_EQ(empty.experts_per_token, 0.0);
}

TEST(LabelStats, BadInput) {
  LabelRouting r(1, 3, {"a"});
  const std::vector<int64_t> two{1, 2};
  EXPECT_THROW(r.add(0, 0, two, 1), Error);
  const std::vector<int64_t> three{1, 2, 3};
  EXPECT_THROW(r.add(1, 0, three, 1), Error);
  EXPECT_THROW(r.add(0, 1, three, 1), Error);
  EXPECT_THROW(mutual_information_bits({{1, 2}, {3}}), Error);
  EXPECT_THROW(mutual_information_bits({{1, -2}}), Error);
}

}  // namespace
}  // namespace sy
