#include "offload/expert_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "core/error.h"

namespace sy::offload {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kDirectAlign = 4096;  // O_DIRECT offsets, lengths and buffers

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

std::string mib(size_t bytes) { return str(bytes, " bytes (", double(bytes) / (1024.0 * 1024.0), " MiB)"); }

int64_t mtime_ns(const struct stat& st) { return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

std::string expert_name(ExpertKey k) { return str("layer ", key_layer(k), " expert ", key_expert(k)); }

void check_tensor(const TensorLocation& t, int layer, size_t e, const char* what, int64_t rows, int64_t cols) {
  SY_CHECK(t.rows == rows && t.cols == cols, "[offload] layer ", layer, " expert ", e, ": ", what, " is [", t.rows, ", ",
           t.cols, "], expected [", rows, ", ", cols, "] (", t.file, ")");
  SY_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16, "[offload] layer ", layer,
           " expert ", e, ": ", what, " has dtype ", dtype_name(t.dtype), "; experts must be f32, bf16 or f16");
}

}  // namespace

TensorLocation tensor_location(const std::string& file, const TensorInfo& t) {
  SY_CHECK(t.shape.size() == 2, "[offload] ", file, ": tensor ", t.name, " has shape ", t.shape_str(),
           ", expected a 2-d weight");
  TensorLocation loc{file, t.file_offset, t.dtype, t.shape[0], t.shape[1]};
  SY_CHECK(loc.nbytes() == t.nbytes, "[offload] ", file, ": tensor ", t.name, " holds ", t.nbytes,
           " bytes, its shape and dtype need ", loc.nbytes());
  return loc;
}

std::string CacheStats::summary() const {
  return str("expert cache: ", acquires, " acquires, hit rate ", hit_rate(), " (", hits, " hits, ", late_prefetches,
             " waited on a prefetch, ", misses, " misses), ", loads, " loads, ", double(bytes_read) / (1024.0 * 1024.0),
             " MiB read, stalled ", stall_seconds, " s, ", evictions, " evictions, ", prefetch_unused,
             " prefetches unused, peak ", double(peak_resident_bytes) / (1024.0 * 1024.0), " MiB resident",
             overflow_loads ? str(", ", overflow_loads, " loads past the budget (batch pinned more than it)") : "",
             prefetch_cancelled ? str(", ", prefetch_cancelled, " queued prefetches cancelled") : "",
             pinned_experts ? str(", ", pinned_experts, " experts pinned (", double(pinned_bytes) / (1024.0 * 1024.0),
                                  " MiB)")
                            : "",
             direct_reads ? str(", ", direct_reads, " O_DIRECT reads") : "");
}

std::shared_ptr<ExpertCache> ExpertCache::create(std::vector<CacheLayerSpec> layers, ExpertCacheOptions opt) {
  SY_CHECK(opt.io_threads >= 1 && opt.io_threads <= 64, "[offload] io_threads must be in [1, 64], got ",
           opt.io_threads);
  std::shared_ptr<ExpertCache> c(new ExpertCache(opt));
  c->policy_ = make_policy(opt.policy);
  std::map<std::string, int> file_ids;
  auto file_id = [&](const TensorLocation& t) -> int {
    if (t.rows == 0) return -1;
    auto it = file_ids.find(t.file);
    if (it != file_ids.end()) return it->second;
    File f;
    f.path = t.file;
    f.fd = ::open(t.file.c_str(), O_RDONLY | O_CLOEXEC);
    SY_CHECK(f.fd >= 0, "[offload] cannot open ", t.file, ": ", std::strerror(errno));
    struct stat st;
    if (::fstat(f.fd, &st) != 0) {
      int err = errno;
      ::close(f.fd);
      fail("[offload] cannot stat ", t.file, ": ", std::strerror(err));
    }
    f.dev = uint64_t(st.st_dev);
    f.ino = uint64_t(st.st_ino);
    f.size = int64_t(st.st_size);
    f.mtime_ns = mtime_ns(st);
    if (opt.direct_io) c->open_direct(f);
    c->files_.push_back(f);
    return file_ids[t.file] = int(c->files_.size()) - 1;
  };
  size_t min_budget = 0;
  int min_layer = -1;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& spec = layers[l];
    LayerFiles lf;
    lf.experts = spec.experts;
    size_t largest = 0;
    for (size_t e = 0; e < spec.experts.size(); ++e) {
      const ExpertLocation& x = spec.experts[e];
      const int64_t F = x.up.rows, H = x.up.cols;
      SY_CHECK(F > 0 && H > 0, "[offload] layer ", l, " expert ", e, ": up weight has no rows or columns");
      check_tensor(x.up, int(l), e, "up", F, H);
      check_tensor(x.down, int(l), e, "down", H, F);
      if (x.gate.rows != 0) check_tensor(x.gate, int(l), e, "gate", F, H);
      std::array<int, 3> ids{file_id(x.gate), file_id(x.up), file_id(x.down)};
      const TensorLocation* ts[3] = {&x.gate, &x.up, &x.down};
      for (int i = 0; i < 3; ++i) {
        if (ids[size_t(i)] < 0) continue;
        const File& f = c->files_[size_t(ids[size_t(i)])];
        SY_CHECK(ts[i]->offset + ts[i]->nbytes() <= size_t(f.size), "[offload] layer ", l, " expert ", e,
                 ": bytes [", ts[i]->offset, ", ", ts[i]->offset + ts[i]->nbytes(), ") lie past the end of ", f.path,
                 " (", f.size, " bytes)");
      }
      lf.file_index.push_back(ids);
      largest = std::max(largest, x.nbytes());
      lf.total += x.nbytes();
    }
    lf.largest = largest;
    if (!spec.experts.empty()) {
      SY_CHECK(spec.active_per_token >= 1 && size_t(spec.active_per_token) <= spec.experts.size(), "[offload] layer ",
               l, ": active_per_token ", spec.active_per_token, " must be in [1, ", spec.experts.size(), "]");
      lf.need = size_t(spec.active_per_token) * largest;
      if (lf.need > min_budget) min_budget = lf.need, min_layer = int(l);
    }
    c->layers_.push_back(std::move(lf));
  }
  c->layer_resident_.assign(c->layers_.size(), 0);
  c->layer_pinned_.assign(c->layers_.size(), 0);
  if (opt.per_layer) c->split_budget(min_layer);  // sets min_budget_, checks every share
  else c->min_budget_ = min_budget;
  c->direct_refused_.assign(c->files_.size(), "");
  for (size_t i = 0; i < c->files_.size(); ++i)
    if (opt.direct_io && c->files_[i].dfd < 0) c->direct_refused_[i] = "open with O_DIRECT failed";
  SY_CHECK(opt.per_layer || opt.budget_bytes >= min_budget, "[offload] expert budget ", mib(opt.budget_bytes),
           " is smaller than one token's active experts: layer ", min_layer, " uses ",
           min_layer >= 0 ? layers[size_t(min_layer)].active_per_token : 0, " experts of up to ",
           mib(min_layer >= 0 ? min_budget / size_t(layers[size_t(min_layer)].active_per_token) : 0),
           " at once; minimum budget ", mib(min_budget));
  c->start();
  return c;
}

// share_l = floor(budget * B_l / B); the smallest total whose share still holds need_l is
// ceil(need_l * B / B_l). 128-bit products: budget * B_l may pass 2^64.
void ExpertCache::split_budget(int& worst) {
  __extension__ typedef unsigned __int128 u128;
  u128 all = 0;
  for (const LayerFiles& lf : layers_) all += lf.total;
  layer_budget_.assign(layers_.size(), 0);
  min_budget_ = 0;
  worst = -1;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerFiles& lf = layers_[l];
    if (lf.total == 0) continue;
    layer_budget_[l] = size_t(u128(opt_.budget_bytes) * lf.total / all);
    const size_t min_total = size_t((u128(lf.need) * all + lf.total - 1) / lf.total);
    if (min_total > min_budget_) min_budget_ = min_total, worst = int(l);
  }
  for (size_t l = 0; l < layers_.size(); ++l)
    SY_CHECK(layer_budget_[l] >= layers_[l].need, "[offload] expert budget ", mib(opt_.budget_bytes),
             " split per layer gives layer ", l, " ", mib(layer_budget_[l]), " (its share of all experts' bytes), "
             "smaller than one token's active experts of that layer (", mib(layers_[l].need),
             "); minimum budget ", mib(min_budget_), " (layer ", worst, " needs the most)");
}

size_t ExpertCache::layer_budget_bytes(int layer) const {
  num_experts(layer);  // range check
  return opt_.per_layer ? layer_budget_[size_t(layer)] : opt_.budget_bytes;
}

size_t ExpertCache::layer_resident_bytes(int layer) const {
  num_experts(layer);  // range check
  std::lock_guard<std::mutex> lk(mu_);
  return layer_resident_[size_t(layer)];
}

void ExpertCache::add_resident(int layer, size_t bytes) {
  stats_.resident_bytes += bytes;
  layer_resident_[size_t(layer)] += bytes;
  stats_.peak_resident_bytes = std::max(stats_.peak_resident_bytes, stats_.resident_bytes);
}

void ExpertCache::sub_resident(int layer, size_t bytes) {
  stats_.resident_bytes -= bytes;
  layer_resident_[size_t(layer)] -= bytes;
}

void ExpertCache::start() {
  for (int i = 0; i < opt_.io_threads; ++i) workers_.emplace_back([this] { worker(); });
}

ExpertCache::~ExpertCache() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
  for (auto& f : files_) {
    if (f.fd >= 0) ::close(f.fd);
    if (f.dfd >= 0) ::close(f.dfd);
  }
}

void ExpertCache::open_direct(File& f) {
  f.dfd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  // The same file? (a rename between the two opens would mix files)
  struct stat a, b;
  if (f.dfd >= 0 && (::fstat(f.fd, &a) != 0 || ::fstat(f.dfd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
    ::close(f.dfd);
    fail("[offload] ", f.path, " was replaced while it was being opened");
  }
}

std::string ExpertCache::io_note() const {
  if (!opt_.direct_io) return "";
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  for (size_t i = 0; i < files_.size(); ++i)
    if (!direct_refused_[i].empty())
      out += str(out.empty() ? "" : "; ", files_[i].path, ": ", direct_refused_[i]);
  return out.empty() ? std::string("O_DIRECT") : "O_DIRECT refused, buffered pread used: " + out;
}

int64_t ExpertCache::max_held(int layer) const {
  num_experts(layer);  // range check
  std::lock_guard<std::mutex> lk(mu_);
  const size_t largest = std::max<size_t>(1, layers_[size_t(layer)].largest);
  const size_t budget = opt_.per_layer ? layer_budget_[size_t(layer)] : opt_.budget_bytes;
  const size_t pinned = opt_.per_layer ? layer_pinned_[size_t(layer)] : stats_.pinned_bytes;
  const size_t free = budget - std::min(budget, pinned);
  return std::max<int64_t>(1, int64_t(free / largest));
}

bool ExpertCache::resident(int layer, int64_t expert) const {
  check_expert(layer, expert);
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(expert_key(layer, expert));
  return it != entries_.end() && it->second.state == State::Ready;
}

void ExpertCache::pin(int layer, std::span<const int32_t> experts) {
  for (int32_t x : experts) check_expert(layer, x);
  std::unique_lock<std::mutex> lk(mu_);
  size_t add = 0;
  std::vector<ExpertKey> keys;
  for (int32_t x : experts) {
    const ExpertKey key = expert_key(layer, x);
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.permanent) continue;
    keys.push_back(key);
    add += layers_[size_t(layer)].experts[size_t(x)].nbytes();
  }
  if (opt_.per_layer) {
    const size_t share = layer_budget_[size_t(layer)], pinned = layer_pinned_[size_t(layer)];
    const size_t need = layers_[size_t(layer)].need;
    SY_CHECK(pinned + add + need <= share, "[offload] pinning ", keys.size(), " more experts of layer ", layer, " (",
             mib(add), ") beside ", mib(pinned), " already pinned there would leave less than one token's active "
             "experts of that layer (", mib(need), ") of its share of the budget, ", mib(share), "; pin fewer experts");
  }
  SY_CHECK(stats_.pinned_bytes + add + min_budget_ <= opt_.budget_bytes || opt_.per_layer, "[offload] pinning ",
           keys.size(), " more experts of layer ", layer, " (", mib(add), ") beside ", mib(stats_.pinned_bytes),
           " already pinned would leave less than one token's active experts (", mib(min_budget_),
           ") of the budget of ", mib(opt_.budget_bytes), "; pin fewer experts");
  for (ExpertKey key : keys) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      const size_t bytes = layers_[size_t(layer)].experts[size_t(key_expert(key))].nbytes();
      if (!make_room(layer, bytes, true)) ++stats_.overflow_loads;
      Entry& e = entries_[key];
      e.bytes = bytes;
      add_resident(layer, bytes);
      demand_q_.push_back(key);
      it = entries_.find(key);
    }
    it->second.permanent = true;
    it->second.prefetched = false;
    ++it->second.pins;
    stats_.pinned_bytes += it->second.bytes;
    layer_pinned_[size_t(layer)] += it->second.bytes;
    ++stats_.pinned_experts;
  }
  work_cv_.notify_all();
  auto done = [&] {
    for (ExpertKey k : keys) {
      State st = entries_.at(k).state;
      if (st != State::Ready && st != State::Failed) return false;
    }
    return true;
  };
  loaded_cv_.wait(lk, done);
  std::exception_ptr err;
  for (ExpertKey k : keys) {
    Entry& e = entries_.at(k);
    if (e.state != State::Failed) continue;
    if (!err) err = e.error;
    sub_resident(layer, e.bytes);
    stats_.pinned_bytes -= e.bytes;
    layer_pinned_[size_t(layer)] -= e.bytes;
    --stats_.pinned_experts;
    entries_.erase(k);
  }
  if (err) std::rethrow_exception(err);
}

int64_t ExpertCache::num_experts(int layer) const {
  SY_CHECK(layer >= 0 && layer < int(layers_.size()), "[offload] layer ", layer, " out of range [0, ", layers_.size(),
           ")");
  return int64_t(layers_[size_t(layer)].experts.size());
}

void ExpertCache::check_expert(int layer, int64_t expert) const {
  int64_t n = num_experts(layer);
  SY_CHECK(expert >= 0 && expert < n, "[offload] layer ", layer, ": expert ", expert, " out of range [0, ", n, ")");
}

std::shared_ptr<ExpertStore> ExpertCache::store(int layer) {
  num_experts(layer);  // range check
  return std::make_shared<CachedExperts>(shared_from_this(), layer);
}

CacheStats ExpertCache::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void ExpertCache::evict(ExpertKey key) {
  auto it = entries_.find(key);
  if (it->second.prefetched) ++stats_.prefetch_unused;
  sub_resident(key_layer(key), it->second.bytes);
  policy_->erase(key);
  entries_.erase(it);
  ++stats_.evictions;
}

bool ExpertCache::over_budget(int layer, size_t bytes) const {
  if (stats_.resident_bytes + bytes > opt_.budget_bytes) return true;
  return opt_.per_layer && layer_resident_[size_t(layer)] + bytes > layer_budget_[size_t(layer)];
}

bool ExpertCache::make_room(int layer, size_t bytes, bool demand) {
  std::vector<ExpertKey> cand;
  const int only = opt_.per_layer ? layer : -1;  // per-layer split: evict and cancel in this layer only
  while (over_budget(layer, bytes)) {
    cand.clear();
    for (const auto& [k, e] : entries_)
      if (e.state == State::Ready && e.pins == 0 && (only < 0 || key_layer(k) == only)) cand.push_back(k);
    if (cand.empty()) {
      if (demand && cancel_queued_prefetch(only)) continue;
      return false;
    }
    std::sort(cand.begin(), cand.end());
    evict(policy_->victim(cand));
  }
  return true;
}

// The prediction queued last (the furthest from being read) that no step asked for yet.
bool ExpertCache::cancel_queued_prefetch(int layer) {
  for (auto q = prefetch_q_.rbegin(); q != prefetch_q_.rend(); ++q) {
    if (layer >= 0 && key_layer(*q) != layer) continue;
    auto it = entries_.find(*q);
    if (it == entries_.end()) continue;
    const Entry& e = it->second;
    if (e.state != State::Queued || e.pins != 0 || e.step_load || e.permanent) continue;
    sub_resident(key_layer(it->first), e.bytes);
    ++stats_.prefetch_cancelled;
    policy_->erase(it->first);
    entries_.erase(it);
    prefetch_q_.erase(std::next(q).base());
    return true;
  }
  return false;
}

void ExpertCache::unpin(ExpertKey key) {
  std::unique_lock<std::mutex> lk(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  --it->second.pins;
  const int layer = key_layer(key);
  if (over_budget(layer, 0)) make_room(layer, 0, false);  // back under budget (or the layer's share) after an overflow
}

ExpertHandle ExpertCache::acquire(int layer, int64_t expert) {
  check_expert(layer, expert);
  const ExpertKey key = expert_key(layer, expert);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  ++stats_.acquires;
  auto it = entries_.find(key);
  bool waited = true;
  if (it == entries_.end()) {
    ++stats_.misses;
    size_t bytes = layers_[size_t(layer)].experts[size_t(expert)].nbytes();
    if (!make_room(layer, bytes, true)) ++stats_.overflow_loads;
    Entry& e = entries_[key];
    e.bytes = bytes;
    e.pins = 1;
    add_resident(layer, bytes);
    demand_q_.push_back(key);
    work_cv_.notify_one();
  } else {
    Entry& e = it->second;
    if (e.step_load) {
      ++stats_.misses;
      e.step_load = false;
      waited = e.state != State::Ready;
    } else if (e.state == State::Ready) {
      ++stats_.hits;
      waited = false;
    } else {
      ++stats_.late_prefetches;
    }
    if (e.state != State::Ready) {
      if (e.state == State::Queued) {  // a queued prefetch is now a demand: read it next
        auto q = std::find(prefetch_q_.begin(), prefetch_q_.end(), key);
        if (q != prefetch_q_.end()) {
          prefetch_q_.erase(q);
          demand_q_.push_front(key);
        }
      }
    }
    ++e.pins;
  }
  Entry* e = &entries_.at(key);
  if (waited) loaded_cv_.wait(lk, [&] { return e->state == State::Ready || e->state == State::Failed; });
  if (waited) stats_.stall_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (e->state == State::Failed) {
    std::exception_ptr err = e->error;
    if (--e->pins == 0) {
      sub_resident(layer, e->bytes);
      entries_.erase(key);
    }
    std::rethrow_exception(err);
  }
  e->prefetched = false;
  policy_->access(key);
  ExpertHandle h;
  h.weights = e->weights;
  h.pin = std::shared_ptr<const void>(e->raw.get(), [self = shared_from_this(), key](const void*) { self->unpin(key); });
  return h;
}

void ExpertCache::prefetch(int layer, std::span<const int32_t> experts, bool ahead) {
  for (int32_t x : experts) check_expert(layer, x);
  std::unique_lock<std::mutex> lk(mu_);
  bool queued = false;
  // Resident experts of this request are pinned while room is made for the others, so one
  // request never evicts its own members (as the trace replay does).
  std::vector<ExpertKey> held;
  for (int32_t x : experts) {
    auto it = entries_.find(expert_key(layer, x));
    if (it != entries_.end() && it->second.state == State::Ready) {  // only Ready ones are evictable
      ++it->second.pins;
      held.push_back(it->first);
    }
  }
  for (int32_t x : experts) {
    const ExpertKey key = expert_key(layer, x);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.state == State::Ready) policy_->hint(key);
      continue;
    }
    ++stats_.prefetch_requests;
    size_t bytes = layers_[size_t(layer)].experts[size_t(x)].nbytes();
    if (!make_room(layer, bytes, !ahead)) {
      ++stats_.prefetch_dropped;
      continue;
    }
    Entry& e = entries_[key];
    e.bytes = bytes;
    e.prefetched = true;
    e.step_load = !ahead;
    add_resident(layer, bytes);
    prefetch_q_.push_back(key);
    queued = true;
  }
  for (ExpertKey k : held) {
    auto it = entries_.find(k);
    if (it != entries_.end()) --it->second.pins;
  }
  if (queued) work_cv_.notify_all();
}

void ExpertCache::check_file(const File& f, const char* when, ExpertKey key) const {
  struct stat a, b;
  SY_CHECK(::fstat(f.fd, &a) == 0, "[offload] cannot stat ", f.path, ": ", std::strerror(errno));
  if (a.st_size < f.size)
    fail("[offload] ", f.path, " shrank from ", f.size, " to ", int64_t(a.st_size), " bytes since it was opened (",
         when, " reading ", expert_name(key), "); restart with the new file");
  if (a.st_size != f.size || mtime_ns(a) != f.mtime_ns)
    fail("[offload] ", f.path, " changed since it was opened (size ", f.size, " -> ", int64_t(a.st_size),
         " bytes, mtime ", f.mtime_ns, " -> ", mtime_ns(a), " ns; ", when, " reading ", expert_name(key),
         "); refusing to read weights that may be inconsistent, restart with the new file");
  if (::stat(f.path.c_str(), &b) != 0 || uint64_t(b.st_dev) != f.dev || uint64_t(b.st_ino) != f.ino ||
      b.st_size != a.st_size || mtime_ns(b) != f.mtime_ns)
    fail("[offload] ", f.path, " was replaced or removed since it was opened (", when, " reading ", expert_name(key),
         "); refusing to mix weights of two files, restart with the new file");
}

// Reads one tensor into `region` (aligned to kDirectAlign with direct I/O, else kAlign, and large
// enough for the aligned span) and points `out` at it.
void ExpertCache::read_tensor(int file_id, const TensorLocation& t, uint8_t* region, ExpertKey key, WeightRef& out) {
  const File& f = files_[size_t(file_id)];
  const size_t n = t.nbytes();
  uint8_t* p = region;
  bool direct = f.dfd >= 0;
  if (direct) {
    std::lock_guard<std::mutex> lk(mu_);
    direct = direct_refused_[size_t(file_id)].empty();
  }
  if (direct) {
    const size_t a0 = t.offset / kDirectAlign * kDirectAlign, end = t.offset + n;
    const size_t len = round_up(end, kDirectAlign) - a0;
    size_t done = 0;
    while (done < end - a0) {
      ssize_t r = ::pread(f.dfd, region + done, len - done, off_t(a0 + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EINVAL && done == 0) {  // the file system takes no O_DIRECT reads here
        std::lock_guard<std::mutex> lk(mu_);
        direct_refused_[size_t(file_id)] = "a read with O_DIRECT failed with EINVAL";
        direct = false;
        break;
      }
      SY_CHECK(r >= 0, "[offload] ", f.path, ": O_DIRECT read of ", expert_name(key), " failed: ", std::strerror(errno));
      SY_CHECK(r > 0, "[offload] ", f.path, ": short read of ", expert_name(key), ": the file ends before byte ", end,
               " (it shrank since it was opened?)");
      done += size_t(r);
    }
    if (direct) {
      p = region + (t.offset - a0);
      // Kernels read elements through typed pointers: move a tensor whose file offset is not a
      // multiple of its element size to the (aligned) region start.
      if (reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) != 0) {
        std::memmove(region, p, n);
        p = region;
      }
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.direct_reads;
    }
  }
  if (!direct) {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(f.fd, p + done, n - done, off_t(t.offset + done));
      if (r < 0 && errno == EINTR) continue;
      SY_CHECK(r >= 0, "[offload] ", f.path, ": read of ", expert_name(key), " failed: ", std::strerror(errno));
      SY_CHECK(r > 0, "[offload] ", f.path, ": short read of ", expert_name(key), ": the file ends before byte ",
               t.offset + n, " (it shrank since it was opened?)");
      done += size_t(r);
    }
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.buffered_reads;
  }
  out = WeightRef{p, t.dtype, t.rows, t.cols};
}

void ExpertCache::load(ExpertKey key, Entry& e, const ExpertLocation& loc, const std::array<int, 3>& fids) {
  const TensorLocation* ts[3] = {&loc.gate, &loc.up, &loc.down};
  const size_t align = opt_.direct_io ? kDirectAlign : kAlign;
  size_t off[3], total = 0;
  for (int i = 0; i < 3; ++i) {
    off[i] = total;
    if (fids[size_t(i)] < 0) continue;
    // With direct I/O a region holds the whole 4 KiB blocks the tensor touches.
    const size_t head = opt_.direct_io ? ts[i]->offset % kDirectAlign : 0;
    total += round_up(head + ts[i]->nbytes(), align);
  }
  e.raw.reset(new uint8_t[total + align]);
  uint8_t* base = e.raw.get();
  base += (align - reinterpret_cast<uintptr_t>(base) % align) % align;
  for (int i = 0; i < 3; ++i)
    if (fids[size_t(i)] >= 0) check_file(files_[size_t(fids[size_t(i)])], "before", key);
  WeightRef* dst[3] = {&e.weights.gate, &e.weights.up, &e.weights.down};
  for (int i = 0; i < 3; ++i)
    if (fids[size_t(i)] >= 0) read_tensor(fids[size_t(i)], *ts[i], base + off[i], key, *dst[i]);
  // A write during the read leaves a new mtime or size: caught here, before anyone sees the bytes.
  for (int i = 0; i < 3; ++i)
    if (fids[size_t(i)] >= 0) check_file(files_[size_t(fids[size_t(i)])], "after", key);
}

void ExpertCache::worker() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [&] { return stop_ || !demand_q_.empty() || !prefetch_q_.empty(); });
    if (stop_) return;
    std::deque<ExpertKey>& q = demand_q_.empty() ? prefetch_q_ : demand_q_;
    ExpertKey key = q.front();
    q.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.state != State::Queued) continue;
    it->second.state = State::Loading;
    const int layer = key_layer(key);
    const ExpertLocation& loc = layers_[size_t(layer)].experts[size_t(key_expert(key))];
    const std::array<int, 3>& fids = layers_[size_t(layer)].file_index[size_t(key_expert(key))];
    // Loading entries are never evicted, so the node stays valid without the lock; the worker
    // fills a private Entry and publishes it under the lock.
    Entry tmp;
    lk.unlock();
    std::exception_ptr err;
    try {
      load(key, tmp, loc, fids);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    Entry& e = entries_.at(key);
    if (err) {
      e.state = State::Failed;
      e.error = err;
      if (e.pins == 0) {  // nobody waits: forget it, a later acquire retries and reports
        sub_resident(layer, e.bytes);
        entries_.erase(key);
      }
    } else {
      e.raw = std::move(tmp.raw);
      e.weights = tmp.weights;
      e.state = State::Ready;
      ++stats_.loads;
      stats_.bytes_read += e.bytes;
      policy_->insert(key, e.prefetched);
    }
    loaded_cv_.notify_all();
  }
}

CachedExperts::CachedExperts(std::shared_ptr<ExpertCache> cache, int layer) : cache_(std::move(cache)), layer_(layer) {
  SY_CHECK(cache_, "[offload] CachedExperts needs a cache");
  cache_->num_experts(layer_);  // range check
}

}  // namespace sy::offload
