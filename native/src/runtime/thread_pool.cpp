// Persistent worker threads handing out tasks through one atomic counter.
//
// The counter packs the job's generation (high 32 bits) with a task cursor
// (low 32 bits) that starts at 2^31 - n_tasks: a claim is a fetch_add, valid
// while the cursor is below 2^31, and the task index is cursor - (2^31 - n).
// Because the generation travels in the same word, a worker that is late for
// one job can never claim a task of the next one with stale job data, so the
// caller need not wait for workers to "check out" — only for the tasks to be
// done. Workers spin (with pause) for a short while after a job, so the next
// matmul of a decode step finds them awake, then sleep on a condition variable.
#include "runtime/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define TS_CPU_RELAX() __asm__ volatile("yield" ::: "memory")
#else
#define TS_CPU_RELAX() ((void)0)
#endif

namespace ts {

namespace {
constexpr uint64_t kCursorBase = 1ull << 31;
// Waiting workers pause-spin for kPauseTime, then keep polling but yield the
// core between polls (so on a busy machine they don't take time from the
// thread that will publish the next job), then sleep after kSpinTime.
constexpr auto kPauseTime = std::chrono::microseconds(50);
constexpr auto kSpinTime = std::chrono::microseconds(300);
inline uint32_t generation_of(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
}  // namespace

struct ThreadPool::Impl {
  // Each hot shared variable on its own cache line.
  alignas(64) std::atomic<uint64_t> counter{kCursorBase};  // generation 0, no tasks
  alignas(64) std::atomic<int> done{0};
  alignas(64) std::atomic<TaskFn> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<int> n_tasks{0};
  alignas(64) std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> threads;

  // Claims and runs tasks until the job whose counter value we see has none left.
  void work(int thread) {
    for (;;) {
      const uint64_t v = counter.fetch_add(1, std::memory_order_acq_rel);
      const uint64_t cursor = v & 0xffffffffu;
      if (cursor >= kCursorBase) return;
      // A claimed task keeps its job from finishing, so these are that job's values.
      const int n = n_tasks.load(std::memory_order_relaxed);
      const int task = static_cast<int>(cursor - (kCursorBase - static_cast<uint64_t>(n)));
      fn.load(std::memory_order_relaxed)(ctx.load(std::memory_order_relaxed), task, thread);
      done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker_main(int thread) {
    uint32_t seen = 0;
    for (;;) {
      // Spin for new work, then sleep.
      uint32_t gen = generation_of(counter.load(std::memory_order_acquire));
      if (gen == seen && !stop.load(std::memory_order_relaxed)) {
        const auto start = std::chrono::steady_clock::now();
        bool yielding = false;
        for (int i = 0;; ++i) {
          if (yielding)
            std::this_thread::yield();
          else
            TS_CPU_RELAX();
          gen = generation_of(counter.load(std::memory_order_acquire));
          if (gen != seen || stop.load(std::memory_order_relaxed)) break;
          if ((i & 63) == 63) {
            const auto spent = std::chrono::steady_clock::now() - start;
            if (spent > kSpinTime) break;
            yielding = spent > kPauseTime;
          }
        }
      }
      if (gen == seen && !stop.load(std::memory_order_relaxed)) {
        std::unique_lock<std::mutex> lock(mu);
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        cv.wait(lock, [&] {
          return stop.load(std::memory_order_seq_cst) ||
                 generation_of(counter.load(std::memory_order_seq_cst)) != seen;
        });
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        gen = generation_of(counter.load(std::memory_order_acquire));
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = gen;
      work(thread);
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads), impl_(new Impl) {
  if (n_threads < 1) {
    delete impl_;
    throw std::invalid_argument("ThreadPool needs at least one thread");
  }
  try {
    impl_->threads.reserve(static_cast<size_t>(n_threads - 1));
    for (int t = 1; t < n_threads; ++t) impl_->threads.emplace_back([this, t] { impl_->worker_main(t); });
  } catch (...) {
    this->~ThreadPool();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop.store(true, std::memory_order_seq_cst);
  }
  impl_->cv.notify_all();
  for (std::thread& t : impl_->threads) t.join();
  delete impl_;
  impl_ = nullptr;
}

void ThreadPool::run(int n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  Impl& s = *impl_;
  s.fn.store(fn, std::memory_order_relaxed);
  s.ctx.store(ctx, std::memory_order_relaxed);
  s.n_tasks.store(n_tasks, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  const uint32_t gen = generation_of(s.counter.load(std::memory_order_relaxed)) + 1;
  // Publishes the job (release) and starts its cursor at 2^31 - n_tasks.
  s.counter.store((static_cast<uint64_t>(gen) << 32) | (kCursorBase - static_cast<uint64_t>(n_tasks)),
                  std::memory_order_seq_cst);
  if (s.sleepers.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(s.mu); }  // a sleeper is either waiting or will see the new generation
    s.cv.notify_all();
  }
  s.work(0);
  // Tasks still running on workers: pause-spin, then yield (a worker that
  // was preempted may need this core to finish).
  for (int i = 0; s.done.load(std::memory_order_acquire) != n_tasks; ++i) {
    if (i < 2000)
      TS_CPU_RELAX();
    else
      std::this_thread::yield();
  }
}

}  // namespace ts
