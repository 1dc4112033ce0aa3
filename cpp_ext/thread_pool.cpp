#include "thread_pool.h"

#include <chrono>

#include <unistd.h>

namespace edgeact {
namespace {

// How long an idle worker polls for the next job before it blocks: long enough to span the
// gap between the layers of a stacked network and back-to-back steps, short enough not to
// burn a core between camera frames (33 ms at 30 fps).
constexpr std::chrono::microseconds kPollFor{200};
constexpr int kPollsPerYield = 64;  // let other runnable threads in while polling

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads)
    : threads_(threads),
      owner_pid_(static_cast<long>(getpid())),
      claimed_(std::make_unique<std::atomic<bool>[]>(static_cast<std::size_t>(threads))) {
  for (int part = 0; part < threads; ++part) claimed_[part].store(true);  // no job yet
  workers_.reserve(threads > 1 ? threads - 1 : 0);
  for (int self = 1; self < threads; ++self) workers_.emplace_back([this, self] { work(self); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_parts(const std::function<void(int)>& job, int self) {
  for (int i = 0; i < threads_; ++i) {
    const int part = (self + i) % threads_;  // own part first, then anything left
    if (!claimed_[part].exchange(true)) {
      job(part);
      finished_.fetch_add(1);
    }
  }
}

void ThreadPool::run(const std::function<void(int)>& job) {
  if (workers_.empty() || static_cast<long>(getpid()) != owner_pid_) {
    for (int part = 0; part < threads_; ++part) job(part);
    return;
  }
  finished_.store(0);
  for (int part = 0; part < threads_; ++part) claimed_[part].store(false);
  job_.store(&job);
  {
    // Publishing under the mutex means a worker about to sleep cannot miss the job.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  run_parts(job, 0);
  for (int polls = 1; finished_.load() != threads_; ++polls) {
    if (polls % kPollsPerYield == 0) std::this_thread::yield(); else cpu_relax();
  }
  // A worker that wakes from now on reads a null job and goes back to waiting; one that woke
  // earlier may still hold `job`, so wait for it before `job` goes out of scope.
  job_.store(nullptr);
  for (int polls = 1; active_.load() != 0; ++polls) {
    if (polls % kPollsPerYield == 0) std::this_thread::yield(); else cpu_relax();
  }
}

void ThreadPool::work(int self) {
  std::uint64_t seen = 0;
  for (;;) {
    std::uint64_t now = generation_.load();
    const auto poll_until = std::chrono::steady_clock::now() + kPollFor;
    for (int polls = 1; now == seen; ++polls) {
      if (polls % kPollsPerYield == 0) {
        if (std::chrono::steady_clock::now() > poll_until) {
          std::unique_lock<std::mutex> lock(mutex_);
          wake_.wait(lock, [&] { return generation_.load() != seen; });
        } else {
          std::this_thread::yield();
        }
      } else {
        cpu_relax();
      }
      now = generation_.load();
    }
    seen = now;
    if (stop_.load()) return;
    active_.fetch_add(1);
    if (const std::function<void(int)>* job = job_.load()) run_parts(*job, self);
    active_.fetch_sub(1);
  }
}

}  // namespace edgeact
