// Memory read bandwidth of this machine, measured for `hearth bench model`: threads sum
// disjoint slices of a buffer much larger than the caches, the best of several passes
// counts. It is the ceiling batch-1 decoding runs against, since every generated token
// reads every weight once.
#pragma once

#include <cstddef>
#include <string>

namespace hearth::cli {

struct Bandwidth {
  double bytes_per_s = 0;
  size_t buffer_bytes = 0;
};

// Reads a buffer of about `bytes` (capped at a quarter of available memory) with n_threads.
Bandwidth measure_read_bandwidth(int n_threads, size_t bytes, int passes = 5);

// "model name" of /proc/cpuinfo, or "unknown CPU".
std::string cpu_model_name();

}  // namespace hearth::cli
