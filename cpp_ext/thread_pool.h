// A tiny fork-join pool for splitting one kernel call across cores.
//
// A recurrent step lasts tens of microseconds, less than a condition-variable wake-up can
// cost, so idle workers poll for a while after each job before they sleep. Part p of a job
// is normally run by thread p, so each core keeps streaming the same weights (which then
// stay in its L2 when they fit); a thread that finishes early runs parts nobody has started,
// so a worker that the OS has not scheduled (an oversubscribed CPU) delays nothing.
// Each LSTM/GRU object owns its pool: streams on different Python threads never queue here.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace edgeact {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // starts threads - 1 workers; the caller is thread 0
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  // Calls job(part) exactly once for every part in [0, threads()) and returns when all have
  // finished. Not re-entrant: callers serialise run() themselves. In a forked child, whose
  // workers did not survive the fork, every part runs on the calling thread.
  void run(const std::function<void(int)>& job);

 private:
  void work(int self);
  void run_parts(const std::function<void(int)>& job, int self);

  const int threads_;
  const long owner_pid_;
  std::vector<std::thread> workers_;
  std::unique_ptr<std::atomic<bool>[]> claimed_;      // part p has been taken by some thread
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<int> finished_{0};                      // parts done in this job
  std::atomic<int> active_{0};                        // workers between wake-up and done
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace edgeact
