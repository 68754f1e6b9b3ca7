// CudaBackend::measure_bandwidth: what the card's memory moves in a device-to-device copy,
// the ceiling that `hearth bench model` compares a decode step's bytes with. A copy reads
// and writes every byte, so bytes/s = 2 * size / time; best of five passes after a warm-up,
// timed with events on the backend's stream. The two buffers are freed before returning;
// when the card has no room for them the answer is 0 (not measured), never an error.
#include "backend/cuda/backend_cuda.h"

#include <algorithm>

namespace hearth::cuda {

double CudaBackend::measure_bandwidth(size_t bytes) {
  sync();
  size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  bytes = std::min(bytes, free_bytes / 4) & ~static_cast<size_t>(255);
  if (bytes < (16u << 20)) return 0.0;
  void* src = nullptr;
  void* dst = nullptr;
  if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess) {
    cudaGetLastError();  // clear the allocation error
    if (src) cudaFree(src);
    return 0.0;
  }
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  float best_ms = 0.0f;
  check(cudaMemsetAsync(src, 0x5a, bytes, stream_), "cudaMemsetAsync");
  for (int pass = 0; pass < 6; ++pass) {  // pass 0 warms up
    check(cudaEventRecord(start, stream_), "cudaEventRecord");
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync (bandwidth)");
    check(cudaEventRecord(stop, stream_), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    if (pass > 0 && (best_ms == 0.0f || ms < best_ms)) best_ms = ms;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  check(cudaFree(src), "cudaFree");
  check(cudaFree(dst), "cudaFree");
  return best_ms > 0.0f ? 2.0 * static_cast<double>(bytes) / (static_cast<double>(best_ms) * 1e-3) : 0.0;
}

}  // namespace hearth::cuda
