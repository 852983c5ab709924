// Properties every router must have, on random logits (the exact values are checked against
// PyTorch in test_routers_golden.cpp): valid CSR, unique experts, finite non-negative weights with
// the documented sums, capacities respected, minimal top-p sets, determinism, batch-split
// invariance of the hash routers, and bad parameters rejected with the parameter named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "moe/router.h"

namespace sy {
namespace {

enum class Sum { One, AtMostOne, Scale, AtMostScale, Free };

struct Variant {
  std::string spec;
  Sum sum;
  double scale = 1.0;
};

// Every registry example must be listed here with the sum of a token's weights it guarantees.
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {
      {"topk:k=2,norm=true", Sum::One},
      {"topk:k=3,norm=false", Sum::AtMostOne},
      {"topk_logits:k=2", Sum::One},
      {"sigmoid:k=2,groups=4,topk_group=2,scale=2.5", Sum::Scale, 2.5},
      {"sigmoid:k=3,norm=false", Sum::Free},
      {"sigmoid:k=4,groups=2,topk_group=1", Sum::One},
      {"grouped:k=2,groups=4,topk_group=2", Sum::AtMostOne},
      {"grouped:k=3,norm=true", Sum::One},
      {"grouped:k=1,norm=true,scale=2", Sum::AtMostScale, 2.0},
      {"topp:p=0.4", Sum::AtMostOne},
      {"topp:p=1", Sum::AtMostOne},
      {"topp:p=1e-06", Sum::AtMostOne},
      {"topp:p=0.9,max_k=3", Sum::AtMostOne},
      {"null:k=3,m=4", Sum::AtMostOne},
      {"null:k=4,m=8,norm=false", Sum::AtMostOne},
      {"expert_choice:cf=1", Sum::AtMostOne},
      {"expert_choice:cf=2.5", Sum::AtMostOne},
      {"capacity:k=1,cf=1.25", Sum::AtMostOne},
      {"capacity:k=2,cf=1,norm=true", Sum::AtMostOne},
      {"random:k=2,seed=0", Sum::One},
      {"random:k=3,seed=5", Sum::One},
      {"hash:k=1,seed=0", Sum::One},
      {"hash:k=2,seed=9", Sum::One},
      {"relu:eps=1e-06", Sum::Free},
      {"relu:eps=0.1", Sum::Free},
  };
  return v;
}

struct Batch {
  int64_t T;
  int S;
  std::vector<float> logits;
  std::vector<int32_t> ids;
  std::vector<int64_t> pos;
};

Batch random_batch(int64_t T, int S, uint32_t seed, float scale = 2.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  Batch b{T, S, std::vector<float>(size_t(T) * S), std::vector<int32_t>(size_t(T)), std::vector<int64_t>(size_t(T))};
  for (auto& x : b.logits) x = nd(rng);
  for (int64_t t = 0; t < T; ++t) {
    b.ids[size_t(t)] = int32_t(rng() % 97);
    b.pos[size_t(t)] = t;
  }
  return b;
}

Routing route(const Router& r, const Batch& b, int E, int64_t first = 0, int64_t count = -1) {
  if (count < 0) count = b.T - first;
  RouteInput in;
  in.logits = b.logits.data() + first * b.S;
  in.n_tokens = count;
  in.n_scores = b.S;
  in.token_ids = b.ids.data() + first;
  in.positions = b.pos.data() + first;
  Routing out;
  r.route(in, E, out);
  return out;
}

double token_sum(const Routing& r, int64_t t) {
  double s = 0;
  for (int32_t j = r.offsets[size_t(t)]; j < r.offsets[size_t(t) + 1]; ++j) s += r.weight[size_t(j)];
  return s;
}

void check_valid(const Routing& r, int64_t T, int E, const Variant& v) {
  ASSERT_EQ(r.n_tokens, T);
  ASSERT_EQ(int64_t(r.offsets.size()), T + 1);
  ASSERT_EQ(r.offsets[0], 0);
  ASSERT_EQ(r.expert.size(), r.weight.size());
  ASSERT_EQ(size_t(r.nnz()), r.expert.size());
  for (int64_t t = 0; t < T; ++t) {
    ASSERT_LE(r.offsets[size_t(t)], r.offsets[size_t(t) + 1]);
    std::vector<int32_t> seen;
    for (int32_t j = r.offsets[size_t(t)]; j < r.offsets[size_t(t) + 1]; ++j) {
      const int32_t e = r.expert[size_t(j)];
      const float w = r.weight[size_t(j)];
      ASSERT_GE(e, 0);
      ASSERT_LT(e, E);
      EXPECT_TRUE(std::isfinite(w) && w >= 0) << v.spec << " token " << t << " weight " << w;
      EXPECT_EQ(std::count(seen.begin(), seen.end(), e), 0) << v.spec << " token " << t << " expert " << e << " twice";
      seen.push_back(e);
    }
    const double s = token_sum(r, t);
    const bool any = r.offsets[size_t(t)] < r.offsets[size_t(t) + 1];
    switch (v.sum) {
      case Sum::One: EXPECT_NEAR(s, 1.0, 1e-5) << v.spec << " token " << t; break;
      case Sum::Scale: EXPECT_NEAR(s, v.scale, 1e-5 * v.scale) << v.spec << " token " << t; break;
      case Sum::AtMostOne: EXPECT_LE(s, 1.0 + 1e-5) << v.spec << " token " << t; break;
      case Sum::AtMostScale: EXPECT_LE(s, v.scale * (1.0 + 1e-5)) << v.spec << " token " << t; break;
      case Sum::Free: break;
    }
    if (v.sum == Sum::AtMostOne && any) {
      EXPECT_GT(s, 0.0) << v.spec;
    }
  }
  if (!r.probs.empty()) {
    ASSERT_EQ(r.probs.size(), size_t(T) * r.n_scores);
  }
}

TEST(RouterProperties, EveryRegistryExampleIsListed) {
  for (const auto& info : router_registry()) {
    bool found = std::any_of(variants().begin(), variants().end(), [&](const Variant& v) { return v.spec == info.example; });
    EXPECT_TRUE(found) << info.name << " example '" << info.example << "' has no entry in variants()";
    EXPECT_EQ(make_router(info.example, 16)->spec(), make_router(make_router(info.example, 16)->spec(), 16)->spec())
        << "spec() must round-trip through make_router: " << info.name;
  }
}

TEST(RouterProperties, ValidSumsUniqueAndDeterministic) {
  for (int E : {8, 16}) {
    for (const auto& v : variants()) {
      SCOPED_TRACE(v.spec + " E=" + std::to_string(E));
      auto r = make_router(v.spec, E);
      const int S = r->num_scores(E);
      for (int64_t T : {1, 3, 37}) {
        Batch b = random_batch(T, S, uint32_t(T * 31 + E));
        Routing a = route(*r, b, E);
        check_valid(a, T, E, v);
        Routing again = route(*r, b, E);
        EXPECT_EQ(a.offsets, again.offsets);
        EXPECT_EQ(a.expert, again.expert);
        EXPECT_EQ(a.weight, again.weight);
        EXPECT_EQ(a.dropped, again.dropped);
      }
    }
  }
}

// Reads an integer/float parameter back from a canonical spec.
double spec_param(const Router& r, const std::string& key) {
  return std::stod(RouterSpec::parse(r.spec()).params.at(key));
}

TEST(RouterProperties, FixedCountRoutersChooseExactlyK) {
  for (const char* spec : {"topk:k=3,norm=false", "topk_logits:k=2", "sigmoid:k=4,groups=2,topk_group=1",
                           "grouped:k=2,groups=4,topk_group=2", "random:k=3,seed=5", "hash:k=2,seed=9"}) {
    auto r = make_router(spec, 8);
    const int k = int(spec_param(*r, "k"));
    Batch b = random_batch(29, 8, 7);
    Routing out = route(*r, b, 8);
    for (int64_t t = 0; t < b.T; ++t) EXPECT_EQ(out.offsets[size_t(t) + 1] - out.offsets[size_t(t)], k) << spec;
  }
}

TEST(RouterProperties, GroupLimitedRoutersStayInTheKeptGroups) {
  for (const char* spec : {"sigmoid:k=3,groups=4,topk_group=2", "grouped:k=3,groups=4,topk_group=2"}) {
    auto r = make_router(spec, 16);
    Batch b = random_batch(41, 16, 3);
    Routing out = route(*r, b, 16);
    for (int64_t t = 0; t < b.T; ++t) {
      std::vector<int> groups;
      for (int32_t j = out.offsets[size_t(t)]; j < out.offsets[size_t(t) + 1]; ++j) {
        int g = out.expert[size_t(j)] / 4;
        if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
      }
      EXPECT_LE(groups.size(), 2u) << spec << " token " << t;
    }
  }
}

TEST(RouterProperties, TopPSetsAreMinimal) {
  for (const char* spec : {"topp:p=0.4", "topp:p=0.7", "topp:p=1e-06", "topp:p=0.9,max_k=3"}) {
    auto r = make_router(spec, 16);
    const double p = spec_param(*r, "p");
    const int cap = RouterSpec::parse(r->spec()).has("max_k") ? int(spec_param(*r, "max_k")) : 16;
    Batch b = random_batch(57, 16, 11, 1.5f);
    Routing out = route(*r, b, 16);
    for (int64_t t = 0; t < b.T; ++t) {
      const int n = out.offsets[size_t(t) + 1] - out.offsets[size_t(t)];
      ASSERT_GE(n, 1);
      const double all = token_sum(out, t);
      const double smallest = out.weight[size_t(out.offsets[size_t(t) + 1] - 1)];
      // listed in descending probability; without the last one the sum must not exceed p
      EXPECT_LE(all - smallest, p + 1e-6) << spec << " token " << t;
      EXPECT_TRUE(all > p - 1e-6 || n == cap) << spec << " token " << t << " sum " << all;
      EXPECT_LE(n, cap);
      for (int32_t j = out.offsets[size_t(t)] + 1; j < out.offsets[size_t(t) + 1]; ++j)
        EXPECT_GE(out.weight[size_t(j) - 1], out.weight[size_t(j)]);
    }
  }
}

TEST(RouterProperties, CapacityIsNeverExceeded) {
  for (const char* spec : {"capacity:k=1,cf=1.25", "capacity:k=2,cf=1", "capacity:k=2,cf=0.5,norm=true"}) {
    auto r = make_router(spec, 8);
    const int k = int(spec_param(*r, "k"));
    const double cf = spec_param(*r, "cf");
    Batch b = random_batch(64, 8, 5);
    for (int64_t t = 0; t < b.T; ++t) b.logits[size_t(t * 8)] += 3.0f;  // expert 0 is popular: drops happen
    Routing out = route(*r, b, 8);
    const int64_t C = int64_t(std::ceil(64.0 / 8.0 * cf));
    std::vector<int64_t> load(8, 0);
    for (int32_t e : out.expert) load[size_t(e)]++;
    for (int e = 0; e < 8; ++e) EXPECT_LE(load[size_t(e)], C) << spec << " expert " << e;
    EXPECT_GT(out.dropped, 0) << spec;
    EXPECT_EQ(out.nnz() + out.dropped, b.T * k) << spec;
    ASSERT_EQ(out.selected.size(), 8u);
    int64_t sel = 0;
    for (auto c : out.selected) sel += c;
    EXPECT_EQ(sel, b.T * k) << spec << ": selected counts are taken before dropping";
  }
}

TEST(RouterProperties, ExpertChoiceFillsEveryExpertToCapacity) {
  for (auto [T, cf] : {std::pair<int64_t, double>{37, 1.0}, {37, 2.5}, {3, 8.0}}) {
    auto r = make_router("expert_choice:cf=" + std::to_string(cf), 8);
    EXPECT_FALSE(r->causal());
    Batch b = random_batch(T, 8, 9);
    Routing out = route(*r, b, 8);
    const int64_t c = std::min<int64_t>(T, int64_t(std::ceil(double(T) * cf / 8.0)));
    std::vector<int64_t> load(8, 0);
    for (int32_t e : out.expert) load[size_t(e)]++;
    for (int e = 0; e < 8; ++e) EXPECT_EQ(load[size_t(e)], c) << "T=" << T << " cf=" << cf;
  }
}

TEST(RouterProperties, ExpertChoiceRefusesDecode) {
  auto r = make_router("expert_choice:cf=1", 8);
  Batch b = random_batch(1, 8, 1);
  RouteInput in;
  in.logits = b.logits.data();
  in.n_tokens = 1;
  in.n_scores = 8;
  in.decode = true;
  Routing out;
  try {
    r->route(in, 8, out);
    ADD_FAILURE() << "expert_choice accepted a decode step";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("autoregressive decode"), std::string::npos) << e.what();
  }
}

TEST(RouterProperties, NullExpertsCountedAsColumns) {
  auto r = make_router("null:k=3,m=4", 8);
  ASSERT_EQ(r->num_scores(8), 12);
  Batch b = random_batch(50, 12, 21);
  for (int64_t t = 0; t < b.T; ++t)
    for (int c = 8; c < 12; ++c) b.logits[size_t(t * 12 + c)] += 1.0f;
  Routing out = route(*r, b, 8);
  ASSERT_EQ(out.n_scores, 12);
  ASSERT_EQ(out.selected.size(), 12u);
  int64_t sel = 0, sel_null = 0;
  for (int c = 0; c < 12; ++c) {
    sel += out.selected[size_t(c)];
    if (c >= 8) sel_null += out.selected[size_t(c)];
  }
  EXPECT_EQ(sel, b.T * 3);
  EXPECT_EQ(sel_null, b.T * 3 - out.nnz()) << "every slot not on a real expert is on a null expert";
  EXPECT_GT(sel_null, 0);
}

TEST(RouterProperties, HashRoutersIgnoreBatchSplit) {
  for (const char* spec : {"random:k=3,seed=5", "hash:k=2,seed=9"}) {
    auto r = make_router(spec, 16);
    EXPECT_FALSE(r->uses_logits());
    Batch b = random_batch(40, 16, 2);
    Routing whole = route(*r, b, 16);
    Routing head = route(*r, b, 16, 0, 13), tail = route(*r, b, 16, 13);
    std::vector<int32_t> joined = head.expert;
    joined.insert(joined.end(), tail.expert.begin(), tail.expert.end());
    EXPECT_EQ(joined, whole.expert) << spec;
    // a different layer routes differently
    RouteInput in;
    in.logits = b.logits.data();
    in.n_tokens = b.T;
    in.n_scores = 16;
    in.token_ids = b.ids.data();
    in.positions = b.pos.data();
    in.layer = 1;
    Routing other;
    r->route(in, 16, other);
    EXPECT_NE(other.expert, whole.expert) << spec;
  }
  // hash: equal token ids get equal experts
  auto h = make_router("hash:k=2,seed=1", 16);
  Batch b = random_batch(60, 16, 4);
  Routing out = route(*h, b, 16);
  for (int64_t a = 0; a < b.T; ++a)
    for (int64_t c = a + 1; c < b.T; ++c)
      if (b.ids[size_t(a)] == b.ids[size_t(c)]) {
        EXPECT_EQ(out.expert[size_t(2 * a)], out.expert[size_t(2 * c)]);
        EXPECT_EQ(out.expert[size_t(2 * a + 1)], out.expert[size_t(2 * c + 1)]);
      }
}

TEST(RouterProperties, HashNeedsTokenIds) {
  auto r = make_router("hash:k=1", 8);
  std::vector<float> l(16, 0.0f);
  RouteInput in;
  in.logits = l.data();
  in.n_tokens = 2;
  in.n_scores = 8;
  Routing out;
  try {
    r->route(in, 8, out);
    ADD_FAILURE() << "hash routed without token ids";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token ids"), std::string::npos) << e.what();
  }
}

TEST(RouterProperties, ParameterTensorsAreChecked) {
  auto r = make_router("sigmoid:k=2", 8);
  ASSERT_EQ(r->param_names(), std::vector<std::string>{"e_score_correction_bias"});
  std::vector<float> bad(7, 0.0f);
  EXPECT_THROW(r->set_param("e_score_correction_bias", bad), Error);
  EXPECT_THROW(r->set_param("bias", std::vector<float>(8, 0.0f)), Error);
  std::vector<float> nan(8, 0.0f);
  nan[3] = NAN;
  EXPECT_THROW(r->set_param("e_score_correction_bias", nan), Error);
  // a large bias on expert 5 selects it, but its weight is still the unbiased sigmoid score
  std::vector<float> bias(8, 0.0f);
  bias[5] = 10.0f;
  r->set_param("e_score_correction_bias", bias);
  Batch b = random_batch(10, 8, 8);
  Routing out = route(*r, b, 8);
  for (int64_t t = 0; t < b.T; ++t) {
    bool has5 = false;
    for (int32_t j = out.offsets[size_t(t)]; j < out.offsets[size_t(t) + 1]; ++j) has5 |= out.expert[size_t(j)] == 5;
    EXPECT_TRUE(has5);
    EXPECT_NEAR(token_sum(out, t), 1.0, 1e-5);
  }
  auto relu = make_router("relu", 8);
  EXPECT_THROW(relu->set_param("norm_weight", bad), Error);
  relu->set_param("norm_weight", std::vector<float>(8, 0.0f));  // all gates zero: no expert
  Routing none = route(*relu, b, 8);
  EXPECT_EQ(none.nnz(), 0);
}

TEST(RouterProperties, BadParametersNamed) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"topk:k=9", "k=9"},
      {"topk:k=0", "k=0"},
      {"sigmoid:k=9", "k=9"},
      {"sigmoid:groups=3", "groups=3"},
      {"sigmoid:groups=8", "groups=8"},  // one expert per group: no top-2 group score
      {"sigmoid:groups=4,topk_group=5", "topk_group=5"},
      {"sigmoid:k=5,groups=4,topk_group=2", "k=5"},  // the kept groups hold only 4 experts
      {"sigmoid:scale=0", "scale=0"},
      {"grouped:groups=0", "groups=0"},
      {"grouped:groups=2,topk_group=0", "topk_group=0"},
      {"grouped:k=2,kk=1", "kk"},
      {"topp:p=0", "p=0"},
      {"topp:p=1.5", "p=1.5"},
      {"topp:p=-0.1", "p=-0.1"},
      {"topp:max_k=9", "max_k=9"},
      {"topp:max_k=0", "max_k=0"},
      {"null:k=13,m=4", "k=13"},
      {"null:m=0", "m=0"},
      {"expert_choice:cf=0", "cf=0"},
      {"expert_choice:cf=-1", "cf=-1"},
      {"expert_choice:k=2", "'k'"},
      {"capacity:cf=0", "cf=0"},
      {"capacity:k=9", "k=9"},
      {"random:k=0", "k=0"},
      {"random:seed=-1", "seed=-1"},
      {"hash:k=9", "k=9"},
      {"hash:p=1", "'p'"},
      {"relu:eps=0", "eps=0"},
      {"relu:k=2", "'k'"},
  };
  for (const auto& [spec, needle] : bad) {
    try {
      make_router(spec, 8);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << spec << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace sy
