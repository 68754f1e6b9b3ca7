// Device helpers shared by the CUDA kernels (*.cu only): error checks after launches,
// warp reductions, half/bfloat16 loads and the integer tricks the quantized dot products
// use. Everything a host test must also compile lives in quant_units.cuh instead.
//
// Conventions: kernels are named <op>_<variant>_kernel and launched only through the
// launch_* functions of ops.h; every launch is followed by HEARTH_CUDA_LAUNCHED(), which
// turns a bad configuration into a hearth::Error instead of a silent wrong answer.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/error.h"

namespace hearth::cuda {

inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e) + " (" + file + ":" + std::to_string(line) +
         ")");
}

#define HEARTH_CUDA_LAUNCHED() ::hearth::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

constexpr int kWarp = 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a whole block of blockDim.x threads (a multiple of 32, at most 1024). Every
// thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

inline unsigned grid_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace hearth::cuda
