// A budgeted expert cache: routed experts' weights are read from the checkpoint file with pread
// into buffers the cache owns, by a background I/O pool (std::thread workers), and evicted by a
// pluggable policy (offload/policy.h) when the byte budget is reached. Each MoE layer sees it
// through CachedExperts, an ExpertStore (moe/expert_store.h):
//   acquire(e)   returns the expert pinned (never evicted while the handle lives); blocks until
//                it is loaded, and that wait is counted as stall time.
//   prefetch(es) queues loads that overlap with compute; MoELayer calls it with the experts of
//                the batch before acquiring them, the predictive hook (offload/predictor.h) one
//                or two layers ahead.
// Call prefetch() with all experts of a step before acquiring them (MoELayer does): it pins the
// resident ones while making room, so a step never evicts its own experts.
// One ExpertCache serves all layers, with one global budget (default) or a per-layer split.
//
// Per-layer split (ExpertCacheOptions::per_layer): layer l gets the share
//   layer_budget[l] = floor(budget * B_l / B),  B_l = bytes of layer l's routed experts, B = sum of B_l
// (integer bytes; the remainder of the floors, less than one byte per layer, is dropped, so the
// shares sum to at most the budget). Making room for an expert of layer l evicts only unpinned
// Ready experts of layer l, until layer l's resident bytes plus the new expert fit its share (and
// the global total fits the budget: it does whenever every layer is within its share; should
// another layer have overflowed, this layer still evicts only its own experts, else it overflows
// too); a demand cancels only layer l's queued predictions. max_held, the minimum-budget check
// (each share must hold its layer's active_per_token largest experts; the error gives the minimum
// TOTAL budget, max over l of ceil(need_l * B / B_l)), pins and the shrink after an overflow all
// work per layer. Overflow behaviour and stats are as with a global budget.
//
// Budget: bytes of resident expert tensors (gate + up + down as stored). A budget smaller than one
// token's active experts of the largest layer (active_per_token x largest expert) is refused at
// construction with the minimum in the message (per-layer split: see above). max_held(layer) tells
// MoELayer how many of a layer's experts fit at once (ExpertStore::max_held()); a batch that uses
// more (a long prompt) is computed in chunks, so the budget holds. Should the pinned experts still
// exceed the budget (a caller that acquires more than max_held() at once, or loads of predictions
// in flight that cannot be cancelled), the cache loads past the budget rather than deadlock
// (stats.overflow_loads, peak_resident_bytes) and shrinks back when the pins are released. A demand
// (acquire, or the step's own prefetch) cancels queued, not yet started predictive prefetches
// before overflowing.
//
// Hot experts (pin()): loaded at once and kept resident for the cache's lifetime (never evicted),
// e.g. the experts a recorded profile used most (offload/pin_profile.h). They count against the
// budget (with a per-layer split: their layer's share), and what remains must still hold one
// token's active experts.
//
// Direct I/O (ExpertCacheOptions::direct_io): reads bypass the page cache with O_DIRECT; offsets,
// lengths and buffers are aligned to 4096 bytes (each tensor is read from the 4 KiB block holding
// its first byte to the block holding its last, and the kernels get a view at its first byte; a
// tensor whose file offset is not a multiple of its element size is moved to the block start). A
// file system that refuses O_DIRECT (open or read fails with EINVAL, e.g. tmpfs) makes the cache
// use buffered pread for that file; io_note() says which was used and why.
//
// File safety: each file's identity (device, inode, size, mtime) is recorded when the cache opens
// it; every read checks the open descriptor and the path before and after the pread, and a short
// read is an error. A file that changed, was replaced or shrank gives a sy::Error naming the file
// and the expert, never wrong weights. Errors of background loads are rethrown by acquire().
// Experts may be f32, bf16 or f16 (any dtype the kernels take); biases are not supported yet.
#pragma once
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"
#include "moe/expert_store.h"
#include "offload/policy.h"

namespace sy::offload {

// Where one weight matrix lives: file, absolute byte offset (TensorInfo::file_offset), dtype and
// shape [rows, cols] (a Hugging Face nn.Linear weight, [out, in]).
struct TensorLocation {
  std::string file;
  size_t offset = 0;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  size_t nbytes() const { return size_t(rows) * size_t(cols) * dtype_size(dtype); }
};
// file: the path the tensor is read from (SafeTensors::path(), or Checkpoint::file_of(name)).
TensorLocation tensor_location(const std::string& file, const TensorInfo& t);

struct ExpertLocation {
  TensorLocation gate;  // [F, H]; rows = 0 when the activation has no gate (gelu, relu)
  TensorLocation up;    // [F, H]
  TensorLocation down;  // [H, F]
  size_t nbytes() const { return gate.nbytes() + up.nbytes() + down.nbytes(); }
};

struct CacheLayerSpec {
  std::vector<ExpertLocation> experts;  // [E] of this layer
  int active_per_token = 1;             // k: experts one token uses at this layer
};

struct ExpertCacheOptions {
  size_t budget_bytes = 0;
  PolicyKind policy = PolicyKind::LRU;
  int io_threads = 2;  // background readers
  bool direct_io = false;  // O_DIRECT reads (see above)
  bool per_layer = false;  // split the budget over the layers in proportion to their experts' bytes
};

struct CacheStats {
  int64_t acquires = 0;
  int64_t hits = 0;             // resident before the step asked for it
  int64_t late_prefetches = 0;  // prefetched ahead, still loading at acquire() (the wait counts as stall)
  int64_t misses = 0;           // not resident when the step asked (by prefetch(ahead=false) or acquire())
  int64_t loads = 0;            // completed reads, demand and prefetch
  int64_t prefetch_requests = 0;   // experts passed to prefetch() that were not resident
  int64_t prefetch_dropped = 0;    // not queued: nothing evictable to make room
  int64_t prefetch_unused = 0;     // prefetched, then evicted before any acquire()
  int64_t evictions = 0;
  int64_t overflow_loads = 0;      // loads past the budget because everything resident was pinned
  uint64_t bytes_read = 0;
  int64_t prefetch_cancelled = 0;  // queued predictions cancelled to make room for a demand
  int64_t pinned_experts = 0;      // kept resident by pin()
  size_t pinned_bytes = 0;
  int64_t direct_reads = 0, buffered_reads = 0;  // tensors read with and without O_DIRECT
  size_t resident_bytes = 0, peak_resident_bytes = 0;
  double stall_seconds = 0;        // time acquire() waited for loads
  double hit_rate() const { return acquires ? double(hits) / double(acquires) : 0.0; }
  std::string summary() const;     // one line
};

class ExpertCache : public std::enable_shared_from_this<ExpertCache> {
 public:
  // layers[l] describes layer l (a layer without routed experts: empty experts). Opens and checks
  // every file (tensor ranges inside the file, shapes consistent) and the budget.
  static std::shared_ptr<ExpertCache> create(std::vector<CacheLayerSpec> layers, ExpertCacheOptions opt);
  ~ExpertCache();
  ExpertCache(const ExpertCache&) = delete;
  ExpertCache& operator=(const ExpertCache&) = delete;

  ExpertHandle acquire(int layer, int64_t expert);
  // ahead = false: the experts of the step about to run (MoELayer's prefetch); a load started
  // here counts as a miss at acquire() however fast it completes. ahead = true: a prediction for
  // a later layer (offload/predictor.h); acquire() counts a hit when the load has completed.
  void prefetch(int layer, std::span<const int32_t> experts, bool ahead = false);
  // The ExpertStore view of one layer, for MoEWeights::experts.
  std::shared_ptr<ExpertStore> store(int layer);
  // Loads these experts of `layer` (blocking) and keeps them resident until the cache is
  // destroyed. Throws when the pinned bytes would leave less than min_budget_bytes() for the rest.
  void pin(int layer, std::span<const int32_t> experts);
  bool resident(int layer, int64_t expert) const;  // loaded (Ready)
  // Experts of `layer` that fit at once in the budget left by pinned experts (>= 1).
  int64_t max_held(int layer) const;
  // "" without direct_io; else "O_DIRECT" or what refused it and that buffered reads are used.
  std::string io_note() const;

  CacheStats stats() const;
  size_t budget_bytes() const { return opt_.budget_bytes; }
  // The smallest budget create() accepts (per-layer split: the smallest TOTAL budget).
  size_t min_budget_bytes() const { return min_budget_; }
  // The layer's share of the budget (without per_layer: the whole budget) and its resident bytes
  // (loaded, loading and queued experts of that layer).
  size_t layer_budget_bytes(int layer) const;
  size_t layer_resident_bytes(int layer) const;
  bool per_layer() const { return opt_.per_layer; }
  int num_layers() const { return int(layers_.size()); }
  int64_t num_experts(int layer) const;
  PolicyKind policy() const { return opt_.policy; }

 private:
  struct File {
    std::string path;
    int fd = -1;
    int dfd = -1;  // O_DIRECT descriptor, -1 without direct I/O or when refused
    uint64_t dev = 0, ino = 0;
    int64_t size = 0, mtime_ns = 0;
  };
  enum class State : uint8_t { Queued, Loading, Ready, Failed };
  struct Entry {
    State state = State::Queued;
    bool prefetched = false;  // loaded on a prefetch and not acquired since
    bool step_load = false;   // started by prefetch(ahead = false): its acquire is a miss
    int pins = 0;
    bool permanent = false;   // pin(): holds one pin forever
    size_t bytes = 0;
    std::unique_ptr<uint8_t[]> raw;  // over-allocated for 64-byte alignment
    FfnWeights weights;
    std::exception_ptr error;
  };
  struct LayerFiles {
    std::vector<ExpertLocation> experts;
    std::vector<std::array<int, 3>> file_index;  // per expert: gate, up, down file ids (-1: none)
    size_t largest = 0;                          // bytes of the largest expert
    size_t total = 0;                            // bytes of all its experts
    size_t need = 0;                             // active_per_token x largest
  };

  ExpertCache(ExpertCacheOptions opt) : opt_(opt) {}
  void start();
  void split_budget(int& worst);  // per_layer: layer_budget_, min_budget_ (the layer needing the most: worst)
  void worker();
  void load(ExpertKey key, Entry& e, const ExpertLocation& loc, const std::array<int, 3>& files);
  void open_direct(File& f);
  void check_file(const File& f, const char* when, ExpertKey key) const;
  // Room for `bytes` more of `layer`. false: nothing evictable. demand: may cancel queued
  // predictive prefetches (per-layer split: of that layer only).
  bool make_room(int layer, size_t bytes, bool demand);
  bool over_budget(int layer, size_t bytes) const;
  bool cancel_queued_prefetch(int layer);  // layer -1: any layer
  // Resident-byte accounting (stats_.resident_bytes, peak and the layer's count).
  void add_resident(int layer, size_t bytes);
  void sub_resident(int layer, size_t bytes);
  void read_tensor(int file_id, const TensorLocation& t, uint8_t* region, ExpertKey key, WeightRef& out);
  void evict(ExpertKey key);
  void unpin(ExpertKey key);
  void check_expert(int layer, int64_t expert) const;

  ExpertCacheOptions opt_;
  size_t min_budget_ = 0;
  std::vector<size_t> layer_budget_;    // [L] per-layer shares (per_layer), else empty
  std::vector<size_t> layer_resident_;  // [L]
  std::vector<size_t> layer_pinned_;    // [L] bytes held by pin()
  std::vector<LayerFiles> layers_;
  std::vector<File> files_;
  std::unique_ptr<EvictionPolicy> policy_;

  mutable std::mutex mu_;
  std::condition_variable loaded_cv_, work_cv_;
  std::unordered_map<ExpertKey, Entry> entries_;
  std::deque<ExpertKey> demand_q_, prefetch_q_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  CacheStats stats_;
  std::vector<std::string> direct_refused_;  // per file: why O_DIRECT is not used ("": it is); under mu_
};

// One layer of an ExpertCache as an ExpertStore.
class CachedExperts final : public ExpertStore {
 public:
  CachedExperts(std::shared_ptr<ExpertCache> cache, int layer);
  int64_t num_experts() const override { return cache_->num_experts(layer_); }
  ExpertHandle acquire(int64_t expert) override { return cache_->acquire(layer_, expert); }
  void prefetch(std::span<const int32_t> experts) override { cache_->prefetch(layer_, experts, false); }
  int64_t max_held() const override { return cache_->max_held(layer_); }
  void prefetch_ahead(std::span<const int32_t> experts) { cache_->prefetch(layer_, experts, true); }
  ExpertCache& cache() { return *cache_; }
  int layer() const { return layer_; }

 private:
  std::shared_ptr<ExpertCache> cache_;
  int layer_;
};

}  // namespace sy::offload
