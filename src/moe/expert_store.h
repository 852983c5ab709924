// Where routed experts' weights come from. The MoE layer asks the store for an expert and holds
// the returned handle while it computes; an offloading store (src/offload/) loads experts into
// a budgeted cache behind the same interface and may prefetch.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/weights.h"

namespace sy {

struct ExpertHandle {
  FfnWeights weights;
  std::shared_ptr<const void> pin;  // keeps the weights resident while held
};

class ExpertStore {
 public:
  virtual ~ExpertStore() = default;
  virtual int64_t num_experts() const = 0;
  virtual ExpertHandle acquire(int64_t expert) = 0;
  // Hint: these experts are needed soon (this or a later layer). Default: nothing.
  virtual void prefetch(std::span<const int32_t> experts) { (void)experts; }
  // How many of this layer's experts can be held (acquired) at once without exceeding the
  // store's memory budget; MoELayer computes a batch that needs more in chunks of this size.
  // At least 1. Default: all of them (nothing is loaded).
  virtual int64_t max_held() const { return num_experts(); }
};

// All experts resident: views into memory owned elsewhere (a mapped checkpoint), or owned here.
class InMemoryExperts final : public ExpertStore {
 public:
  explicit InMemoryExperts(std::vector<FfnWeights> experts, std::shared_ptr<const void> owner = nullptr)
      : experts_(std::move(experts)), owner_(std::move(owner)) {}
  int64_t num_experts() const override { return int64_t(experts_.size()); }
  ExpertHandle acquire(int64_t e) override { return {experts_.at(size_t(e)), owner_}; }

 private:
  std::vector<FfnWeights> experts_;
  std::shared_ptr<const void> owner_;
};

}  // namespace sy
