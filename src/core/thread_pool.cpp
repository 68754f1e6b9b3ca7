// Work is handed out in chunks from a shared counter so that uneven rows (attention over
// different context lengths) balance themselves across threads.
#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

namespace hearth {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (n_threads_ == 1 || n <= min_chunk) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard call_lock(call_mutex_);
  // About four chunks per thread: enough to balance, few enough to keep overhead low.
  const int64_t chunk = std::max(min_chunk, (n + 4 * n_threads_ - 1) / (4 * n_threads_));
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    next_chunk_ = 0;
    pending_ = n_threads_ - 1;
    error_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();
  // The caller works too.
  for (;;) {
    int64_t begin;
    {
      std::lock_guard lock(mutex_);
      begin = next_chunk_;
      next_chunk_ += chunk;
    }
    if (begin >= n) break;
    try {
      fn(begin, std::min(n, begin + chunk), 0);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  std::unique_lock lock(mutex_);
  work_done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_main(int index) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock lock(mutex_);
    work_ready_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const auto* fn = job_;
    for (;;) {
      const int64_t begin = next_chunk_;
      next_chunk_ += job_chunk_;
      if (begin >= job_n_) break;
      const int64_t end = std::min(job_n_, begin + job_chunk_);
      lock.unlock();
      try {
        (*fn)(begin, end, index);
      } catch (...) {
        lock.lock();
        if (!error_) error_ = std::current_exception();
        lock.unlock();
      }
      lock.lock();
    }
    if (--pending_ == 0) work_done_.notify_all();
  }
}

namespace {
std::unique_ptr<ThreadPool>& global_pool() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
std::mutex global_mutex;
}  // namespace

ThreadPool& ThreadPool::global() {
  std::lock_guard lock(global_mutex);
  auto& pool = global_pool();
  if (!pool) pool = std::make_unique<ThreadPool>(0);
  return *pool;
}

void ThreadPool::set_global_threads(int n_threads) {
  std::lock_guard lock(global_mutex);
  global_pool() = std::make_unique<ThreadPool>(n_threads);
}

}  // namespace hearth
