// A fixed pool of native worker threads. parallel_for runs fn(task, thread)
// for every task in [0, n_tasks) across the pool (the calling thread takes part)
// and returns when all are done. Workers spin briefly before sleeping so that a
// decode step does not pay thread wake-up latency. No allocation per call.
#pragma once
#include <cstdint>

namespace ts {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads including the caller; >= 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  template <typename Fn>
  void parallel_for(int n_tasks, Fn& fn) {
    run(n_tasks, [](void* ctx, int task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); }, &fn);
  }

 private:
  using TaskFn = void (*)(void* ctx, int task, int thread);
  void run(int n_tasks, TaskFn fn, void* ctx);
  int n_threads_;
  struct Impl;
  Impl* impl_;
};

// Physical cores available to this process (SMT siblings counted once).
int physical_core_count();

}  // namespace ts
