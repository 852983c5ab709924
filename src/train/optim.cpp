#include "train/optim.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/train_kernels.h"

namespace sy::train {

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, int64_t t, float lr, float wd,
                const AdamWParams& hp) {
  SY_CHECK(t >= 1, "[train adamw] step ", t, " must be at least 1");
  const double bc1 = 1.0 - std::pow(double(hp.beta1), double(t));
  const double bc2 = 1.0 - std::pow(double(hp.beta2), double(t));
  const float step = float(double(lr) / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float decay = 1.0f - lr * wd;
  const int64_t block = 4096;
  default_pool().parallel_for((n + block - 1) / block, [&](int64_t task, int) {
    const int64_t begin = task * block, count = std::min(n, begin + block) - begin;
    fast::adamw_update(p + begin, g + begin, m + begin, v + begin, count, decay, hp.beta1, hp.beta2, step, bc2_sqrt,
                       hp.eps);
  });
}

double grad_norm(const float* g, int64_t n) {
  const int64_t block = 8192, tasks = (n + block - 1) / block;
  std::vector<double> part(size_t(tasks), 0.0);
  default_pool().parallel_for(tasks, [&](int64_t task, int) {
    const int64_t end = std::min(n, (task + 1) * block);
    double s = 0;
    for (int64_t i = task * block; i < end; ++i) s += double(g[i]) * g[i];
    part[size_t(task)] = s;
  });
  double s = 0;
  for (double x : part) s += x;
  return std::sqrt(s);
}

double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm) {
  SY_CHECK(max_norm > 0, "[train clip_grad_norm] max_norm ", max_norm, " must be greater than 0");
  double sq = 0;
  for (const auto& g : grads) {
    const double n = grad_norm(g.data(), int64_t(g.size()));
    sq += n * n;
  }
  const double total = std::sqrt(sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0)
    for (const auto& g : grads) {
      const int64_t n = int64_t(g.size()), block = 1 << 16;
      default_pool().parallel_for((n + block - 1) / block, [&](int64_t t, int) {
        fast::scale_inplace(g.data() + t * block, std::min(block, n - t * block), float(coef));
      });
    }
  return total;
}

double clip_grad_norm(float* g, int64_t n, double max_norm) {
  std::span<float> one(g, size_t(n));
  return clip_grad_norm(std::span<const std::span<float>>(&one, 1), max_norm);
}

double lr_at(int64_t step, int64_t warmup, int64_t total, double max_lr, double min_lr) {
  if (step < warmup) return max_lr * double(step + 1) / double(warmup);
  if (step >= total) return min_lr;
  const double r = double(step - warmup) / double(total - warmup);
  return min_lr + 0.5 * (1.0 + std::cos(M_PI * r)) * (max_lr - min_lr);
}

}  // namespace sy::train
