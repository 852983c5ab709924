#include "offload/trace_analysis.h"

#include <algorithm>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace sy::offload {

const char* scope_name(CacheScope s) { return s == CacheScope::Global ? "global" : "per-layer"; }

namespace {

// One demand step (a token at a layer) and the predictions made right after it.
struct Step {
  int layer;
  const std::vector<int32_t>* experts;
  std::vector<const TracePrediction*> predictions;
};

std::vector<Step> build_steps(const Trace& tr) {
  std::vector<Step> steps;
  for (const auto& t : tr.tokens) {
    for (int l = 0; l < tr.header.n_layers; ++l) {
      bool rec = t.recorded[size_t(l)];
      std::vector<const TracePrediction*> preds;
      for (const auto& p : t.predictions)
        if (p.from == l) preds.push_back(&p);
      if (rec || !preds.empty()) steps.push_back({l, &t.experts[size_t(l)], std::move(preds)});
    }
  }
  return steps;
}

void check_capacity(const Trace& tr, int capacity) {
  int need = std::max(tr.max_active(), 1);
  SY_CHECK(capacity >= need, "[trace] ", tr.name, ": a cache of ", capacity,
           " experts cannot hold one token's active experts at a layer (up to ", need, "); minimum ", need);
}

// A simulated cache: resident set + policy (one per layer, or one for all).
struct SimCache {
  std::unordered_set<ExpertKey> resident;
  std::unique_ptr<EvictionPolicy> policy;
};

}  // namespace

ReplayResult replay_policy(const Trace& tr, PolicyKind kind, int capacity, CacheScope scope) {
  check_capacity(tr, capacity);
  ReplayResult res;
  res.policy = policy_name(kind);
  res.scope = scope;
  res.capacity = capacity;
  const int n_caches = scope == CacheScope::PerLayer ? tr.header.n_layers : 1;
  std::vector<SimCache> caches(static_cast<size_t>(n_caches));
  for (auto& c : caches) c.policy = make_policy(kind);
  auto cache_of = [&](int layer) -> SimCache& { return caches[scope == CacheScope::PerLayer ? size_t(layer) : 0]; };
  std::unordered_set<ExpertKey> pinned, prefetched_unused;
  std::vector<ExpertKey> cand;

  // Makes room for one expert; false when everything resident is pinned.
  auto make_room = [&](SimCache& c) {
    while (c.resident.size() >= size_t(capacity)) {
      cand.clear();
      for (ExpertKey k : c.resident)
        if (!pinned.count(k)) cand.push_back(k);
      if (cand.empty()) return false;
      std::sort(cand.begin(), cand.end());  // deterministic candidate order
      ExpertKey v = c.policy->victim(cand);
      c.resident.erase(v);
      c.policy->erase(v);
      prefetched_unused.erase(v);
    }
    return true;
  };

  for (const Step& s : build_steps(tr)) {
    pinned.clear();
    SimCache& c = cache_of(s.layer);
    for (int32_t e : *s.experts) pinned.insert(expert_key(s.layer, e));
    for (int32_t e : *s.experts) {
      ExpertKey k = expert_key(s.layer, e);
      ++res.requests;
      if (c.resident.count(k)) {
        ++res.hits;
        if (prefetched_unused.erase(k)) ++res.prefetch_used;
      } else {
        bool ok = make_room(c);
        SY_CHECK(ok, "[trace] internal: no evictable expert for a demand load");
        c.resident.insert(k);
        c.policy->insert(k, false);
        ++res.loads;
        res.bytes_read += tr.header.expert_bytes[size_t(s.layer)];
      }
      c.policy->access(k);
    }
    if (kind != PolicyKind::Predictive) continue;
    for (const TracePrediction* p : s.predictions) {
      SimCache& pc = cache_of(p->to);
      for (int32_t e : p->experts) pinned.insert(expert_key(p->to, e));
      for (int32_t e : p->experts) {
        ExpertKey k = expert_key(p->to, e);
        if (pc.resident.count(k)) {
          pc.policy->hint(k);
          continue;
        }
        if (!make_room(pc)) continue;
        pc.resident.insert(k);
        pc.policy->insert(k, true);
        prefetched_unused.insert(k);
        ++res.prefetches;
        res.bytes_read += tr.header.expert_bytes[size_t(p->to)];
      }
    }
  }
  return res;
}

ReplayResult replay_belady(const Trace& tr, int capacity, CacheScope scope) {
  check_capacity(tr, capacity);
  ReplayResult res;
  res.policy = "belady";
  res.scope = scope;
  res.capacity = capacity;
  std::vector<Step> steps = build_steps(tr);
  // Future request positions of every key, consumed as the replay advances.
  std::unordered_map<ExpertKey, std::vector<int64_t>> uses;
  for (size_t i = 0; i < steps.size(); ++i)
    for (int32_t e : *steps[i].experts) uses[expert_key(steps[i].layer, e)].push_back(int64_t(i));
  std::unordered_map<ExpertKey, size_t> cursor;
  const int n_caches = scope == CacheScope::PerLayer ? tr.header.n_layers : 1;
  std::vector<std::unordered_set<ExpertKey>> resident(static_cast<size_t>(n_caches));
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    auto& c = resident[scope == CacheScope::PerLayer ? size_t(s.layer) : 0];
    std::unordered_set<ExpertKey> req;
    for (int32_t e : *s.experts) {
      ExpertKey k = expert_key(s.layer, e);
      req.insert(k);
      ++cursor[k];  // past this use
    }
    for (int32_t e : *s.experts) {
      ExpertKey k = expert_key(s.layer, e);
      ++res.requests;
      if (c.count(k)) {
        ++res.hits;
        continue;
      }
      if (c.size() >= size_t(capacity)) {
        ExpertKey victim = 0;
        int64_t far = -1;
        for (ExpertKey r : c) {
          if (req.count(r)) continue;
          const auto& u = uses[r];
          size_t cur = cursor[r];
          int64_t next = cur < u.size() ? u[cur] : kNever;
          if (next > far || (next == far && r < victim)) far = next, victim = r;
        }
        SY_CHECK(far >= 0, "[trace] internal: no evictable expert for a demand load");
        c.erase(victim);
      }
      c.insert(k);
      ++res.loads;
      res.bytes_read += tr.header.expert_bytes[size_t(s.layer)];
    }
  }
  return res;
}

std::vector<PredictorAccuracy> predictor_accuracy(const Trace& tr) {
  std::map<int, PredictorAccuracy> by_d;
  for (const auto& t : tr.tokens) {
    for (const auto& p : t.predictions) {
      if (!t.recorded[size_t(p.to)]) continue;
      auto& a = by_d[p.to - p.from];
      a.distance = p.to - p.from;
      ++a.predictions;
      const auto& act = t.experts[size_t(p.to)];
      a.predicted += int64_t(p.experts.size());
      a.actual += int64_t(act.size());
      for (int32_t e : p.experts)
        if (std::find(act.begin(), act.end(), e) != act.end()) ++a.correct;
    }
  }
  std::vector<PredictorAccuracy> out;
  for (auto& [d, a] : by_d) out.push_back(a);
  return out;
}

namespace {

// The expert lists of one layer, split by sequence id (trace order within a sequence).
std::vector<std::vector<const std::vector<int32_t>*>> sequences_at(const Trace& tr, int layer) {
  std::map<int32_t, std::vector<const std::vector<int32_t>*>> by_seq;
  for (const auto& t : tr.tokens)
    if (t.recorded[size_t(layer)]) by_seq[t.seq].push_back(&t.experts[size_t(layer)]);
  std::vector<std::vector<const std::vector<int32_t>*>> out;
  for (auto& [s, v] : by_seq) out.push_back(std::move(v));
  return out;
}

}  // namespace

double segment_routing_best_performance(const Trace& tr, int m, int layer) {
  SY_CHECK(m >= 1, "[trace] segment length must be >= 1, got ", m);
  SY_CHECK(layer >= -1 && layer < tr.header.n_layers, "[trace] layer ", layer, " out of range");
  const int E = tr.header.n_experts;
  // hist[c]: (window, expert) pairs with c activations in the window.
  std::vector<double> hist(size_t(m) + 1, 0.0);
  bool any = false;
  for (int l = (layer < 0 ? 0 : layer); l < (layer < 0 ? tr.header.n_layers : layer + 1); ++l) {
    for (const auto& seq : sequences_at(tr, l)) {
      if (seq.size() < size_t(m)) continue;
      any = true;
      std::vector<int> cnt(size_t(E), 0);
      for (int i = 0; i < m; ++i)
        for (int32_t e : *seq[size_t(i)]) ++cnt[size_t(e)];
      for (size_t start = 0;; ++start) {
        for (int e = 0; e < E; ++e) hist[size_t(cnt[size_t(e)])] += 1.0;
        if (start + size_t(m) >= seq.size()) break;
        for (int32_t e : *seq[start]) --cnt[size_t(e)];
        for (int32_t e : *seq[start + size_t(m)]) ++cnt[size_t(e)];
      }
    }
  }
  if (!any) return 0.0;
  double actual = 0;
  for (int c = 0; c <= m; ++c) actual += double(c) * hist[size_t(c)];
  double best = 0, matches = 0, predicted = 0;
  for (int j = m; j >= 0; --j) {  // suffix sums: experts with at least j activations
    matches += double(j) * hist[size_t(j)];
    predicted += double(m) * hist[size_t(j)];
    double den = predicted + actual;
    if (den > 0) best = std::max(best, 2.0 * matches / den);
  }
  return best;
}

std::vector<double> segment_cache_best_hit_rate(const Trace& tr, int L, int max_cache, int layer) {
  SY_CHECK(L >= 1, "[trace] future length must be >= 1, got ", L);
  SY_CHECK(max_cache >= 1, "[trace] cache size must be >= 1, got ", max_cache);
  SY_CHECK(layer >= -1 && layer < tr.header.n_layers, "[trace] layer ", layer, " out of range");
  const int E = tr.header.n_experts;
  std::vector<int64_t> hits_at_rank(size_t(E) + 1, 0);  // requests served at cache rank r
  int64_t requests = 0;
  for (int l = (layer < 0 ? 0 : layer); l < (layer < 0 ? tr.header.n_layers : layer + 1); ++l) {
    for (const auto& seq : sequences_at(tr, l)) {
      const size_t n = seq.size();
      std::vector<int> future(size_t(E), 0);  // activations in tokens [i, i + L)
      std::vector<int64_t> last(size_t(E), -1);  // last use time; -1 = never seen
      for (size_t i = 0; i < std::min(n, size_t(L)); ++i)
        for (int32_t e : *seq[i]) ++future[size_t(e)];
      int64_t clock = 0;
      int seen = 0;
      std::vector<int> order, rank(static_cast<size_t>(E));
      for (size_t i = 0; i < n; ++i) {
        order.clear();
        for (int e = 0; e < E; ++e)
          if (last[size_t(e)] >= 0) order.push_back(e);
        std::sort(order.begin(), order.end(), [&](int a, int b) {
          if (future[size_t(a)] != future[size_t(b)]) return future[size_t(a)] > future[size_t(b)];
          return last[size_t(a)] > last[size_t(b)];
        });
        for (size_t r = 0; r < order.size(); ++r) rank[size_t(order[r])] = int(r);
        for (int32_t e : *seq[i]) {
          ++requests;
          if (last[size_t(e)] >= 0) {
            ++hits_at_rank[size_t(rank[size_t(e)])];
          } else {
            ++hits_at_rank[size_t(seen)];
            ++seen;
          }
        }
        for (int32_t e : *seq[i]) {
          last[size_t(e)] = clock++;
          --future[size_t(e)];
        }
        if (i + size_t(L) < n)
          for (int32_t e : *seq[i + size_t(L)]) ++future[size_t(e)];
      }
    }
  }
  std::vector<double> out(size_t(max_cache), 0.0);
  int64_t cum = 0;
  for (int c = 1; c <= max_cache; ++c) {
    if (c - 1 <= E) cum += hits_at_rank[size_t(c - 1)];
    out[size_t(c - 1)] = requests ? double(cum) / double(requests) : 0.0;
  }
  return out;
}

}  // namespace sy::offload
