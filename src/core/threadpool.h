// A persistent thread pool. Work is split into tasks that threads claim from an atomic counter
// (chunk stealing, as in ggml-cpu); the calling thread takes part as thread 0. Never more threads
// than cores: the size is clamped to the CPUs this process may run on.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sy {

class ThreadPool {
 public:
  // n_threads <= 0 means all available cores. Clamped to [1, available cores].
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task, thread) for every task in [0, n_tasks) and returns when all are done.
  // `thread` is in [0, size()) and unique among concurrently running calls, so it can index
  // per-thread scratch. The first exception thrown by fn is rethrown here. Not reentrant: fn
  // must not call parallel_for on the same pool (nested calls run inline on the caller).
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);
  // As parallel_for, but runs the tasks inline on the caller (thread 0) when `work` (in any unit,
  // e.g. multiply-adds) is below `min_parallel_work`: waking the workers costs more than small
  // jobs take. Same results either way (tasks are independent).
  void parallel_for(int64_t n_tasks, int64_t work, int64_t min_parallel_work,
                    const std::function<void(int64_t task, int thread)>& fn) {
    if (work < min_parallel_work) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    parallel_for(n_tasks, fn);
  }

 private:
  void worker(int index);
  void run_tasks(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> active_{0};
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  std::mutex error_mu_;
  std::atomic<bool> in_call_{false};
};

int available_cores();          // CPUs in this process's affinity mask
ThreadPool& default_pool();      // created on first use with set_default_threads' value
void set_default_threads(int n);  // n <= 0: all cores. Recreates the pool.

}  // namespace sy
