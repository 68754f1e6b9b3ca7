// measure_read_bandwidth: each pass starts all threads together (a spin barrier), each sums
// its slice with four independent accumulators so the loads, not the adds, bound the loop;
// the pass time is the slowest thread's. The buffer is written once first so its pages are
// resident before timing.
#include "cli/bench_memory.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "engine/generation_stats.h"

namespace hearth::cli {
namespace {

uint64_t sum_slice(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

}  // namespace

Bandwidth measure_read_bandwidth(int n_threads, size_t bytes, int passes) {
  const int64_t avail = mem_available_bytes();
  if (avail > 0) bytes = std::min(bytes, static_cast<size_t>(avail / 4));
  const size_t n = std::max<size_t>(bytes / sizeof(uint64_t), 1 << 20);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  n_threads = std::max(1, n_threads);
  std::atomic<uint64_t> sink{0};
  double best = 1e30;
  for (int pass = 0; pass < passes; ++pass) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> elapsed(static_cast<size_t>(n_threads));
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        const size_t begin = n * static_cast<size_t>(t) / static_cast<size_t>(n_threads);
        const size_t end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(n_threads);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        const auto t0 = std::chrono::steady_clock::now();
        sink.fetch_add(sum_slice(buf.get() + begin, end - begin), std::memory_order_relaxed);
        elapsed[static_cast<size_t>(t)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      });
    }
    while (ready.load() < n_threads) std::this_thread::yield();
    go.store(true, std::memory_order_release);
    for (auto& th : threads) th.join();
    best = std::min(best, *std::max_element(elapsed.begin(), elapsed.end()));
  }
  Bandwidth bw;
  bw.buffer_bytes = n * sizeof(uint64_t);
  bw.bytes_per_s = static_cast<double>(bw.buffer_bytes) / best;
  return bw;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

}  // namespace hearth::cli
