// Device helpers shared by the CUDA kernels (*.cu only): error checks after launches,
// warp reductions, half/bfloat16 loads and the integer tricks the quantized dot products
// use. Everything a host test must also compile lives in quant_units.cuh instead.
//
// Conventions: kernels are named <op>_<variant>_kernel and launched only through the
// launch_* functions of ops.h, through HEARTH_LAUNCH (programmatic dependent launch, below),
// which turns a bad configuration into a hearth::Error instead of a silent wrong answer.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "backend/cuda/ops.h"
#include "core/error.h"

namespace hearth::cuda {

inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e) + " (" + file + ":" + std::to_string(line) +
         ")");
}

#define HEARTH_CUDA_LAUNCHED() ::hearth::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// Programmatic dependent launch (sm_90): a kernel launched through HEARTH_LAUNCH may start
// while the kernel before it in the stream is still running, so that its launch, its
// prologue and its first weight loads overlap that kernel's tail (inside the decode
// graphs too). Correctness rests on one rule: every kernel calls pdl_wait() before it reads
// or writes any activation, cache or scratch memory; only constant data (weights, their
// scales) may be read before. pdl_wait() returns once the previous kernel has completed
// and its writes are visible, so the order of the stream holds transitively.
// pdl_launch_dependents() then lets the next kernel begin launching. Without sm_90 code
// (other cards, or PDL off: set_programmatic_launch) both are no-ops and launches serialize.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The usual first lines of a kernel: inputs ready, next kernel may start launching.
// (Every kernel triggering before its wait measured 3% slower on an H200: products then
// launch two ahead and compete with the running one. See pdl_begin_before_product.)
__device__ __forceinline__ void pdl_begin() {
  pdl_wait();
  pdl_launch_dependents();
}

// For the small kernels that come before a product (RMSNorm, SwiGLU): let the product
// launch first, then wait. Products wait first (pdl_begin), so at most one product is
// launched ahead: its blocks, where the multiprocessors have room beside the product
// still running, request their first weights during that product's tail and this
// kernel. Safe for the same reason as pdl_begin: the product's own pdl_wait waits for
// this kernel to complete, and a dependent grid launches only once every block of this
// one is placed. H100, 8B tg128 against pdl_begin here: Q4_K_M 330.8 -> 333.4, Q4_0 352.2
// -> 354.1, MLX 4-bit 318.0 -> 327.3 tok/s (every kernel triggering first was 3% slower).
__device__ __forceinline__ void pdl_begin_before_product() {
  pdl_launch_dependents();
  pdl_wait();
}

// kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-serialization
// attribute when programmatic_launch() is on; errors become hearth::Error.
template <class... K, class... A>
void launch_kernel(const char* file, int line, void (*kernel)(K...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, A&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = programmatic_launch() ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, static_cast<A&&>(args)...), "kernel launch", file, line);
}
#define HEARTH_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::hearth::cuda::launch_kernel(__FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)

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

// 8-bit quantization of one 32-block held one value per lane by a full warp, as
// launch_quantize_x writes it: q[i] = rint(y / d) with d = amax / 127, and for block i / 32
// its scale d and d * sum(q). i is this lane's element index. With h.h, also the f16 q * d
// (one rounding, of the f16 d, as mma_f16.cu made it of q and d) at its XHalf place.
__device__ __forceinline__ void warp_quantize(float y, int64_t i, int8_t* q, float* qd, float* qs, const XHalf& h) {
  const float amax = warp_max(fabsf(y));
  const float d = amax / 127.0f;
  const int v = amax > 0.0f ? __float2int_rn(y / d) : 0;
  q[i] = static_cast<int8_t>(v);
  const float sum = warp_sum(static_cast<float>(v));
  if (threadIdx.x % kWarp == 0) {
    qd[i / 32] = d;
    qs[i / 32] = d * sum;
  }
  if (h.h) {  // n <= 64 tokens: 32-bit division (a 64-bit one is a long software routine)
    const auto u = static_cast<uint32_t>(i), cols = static_cast<uint32_t>(h.cols), t = u / cols, c = u - t * cols;
    const uint32_t e = c & 3;
    const int64_t at = (static_cast<int64_t>(c >> 8) * h.n + t) * kXHalfPitch + (c & 255) - e + ((e & 1) << 1 | e >> 1);
    h.h[at] = __half_as_ushort(__hmul(__int2half_rn(v), __float2half_rn(d)));
  }
}

// The 8-bit KV cache (backend.h kv_row_bytes, kv_quant.h): a cache row of `row` elements
// is row int8 values, row / 32 f16 scales, then zeros to a multiple of 16 bytes.
__device__ __forceinline__ int64_t kv_q8_row_bytes(int64_t row) { return (row + row / 32 * 2 + 15) / 16 * 16; }

// 8 values of an 8-bit cache row (raw, as stored) times their f16 scale d, as 8 f16 (the
// tensor-core attention kernels' tiles). Byte q + 128 under the exponent byte 0x64 is the
// f16 1152 + q exactly (spacing 1 in [1024, 2048)); minus 1152 is q, and q * d takes the one
// rounding of an f16 cache.
__device__ __forceinline__ uint4 kv_q8_to_f16x8(uint2 raw, __half2 d) {
  const uint32_t w[2] = {raw.x ^ 0x80808080u, raw.y ^ 0x80808080u};
  uint4 out;
  auto* h = reinterpret_cast<__half2*>(&out);
  const __half2 bias = __float2half2_rn(1152.0f);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const uint32_t u = __byte_perm(w[e / 2], 0x64646464u, e % 2 ? 0x4342 : 0x4140);
    h[e] = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&u), bias), d);
  }
  return out;
}

// Stores one 32-group of a cache row, held one value per lane by a full warp, as
// quantize_kv_row_q8 does (same IEEE operations, so the same bytes): d = f16(amax / 127),
// q = rint(y / d). dst is the row; i is this lane's element index in it.
__device__ __forceinline__ void warp_store_kv_q8(float y, uint8_t* dst, int64_t row, int64_t i) {
  const float amax = warp_max(fabsf(y));
  const __half dh = __float2half_rn(amax / 127.0f);
  const float d = __half2float(dh);
  const float v = d > 0.0f ? rintf(y / d) : 0.0f;
  reinterpret_cast<int8_t*>(dst)[i] = static_cast<int8_t>(fminf(fmaxf(v, -127.0f), 127.0f));
  if (threadIdx.x % kWarp == 0) reinterpret_cast<__half*>(dst + row)[i / 32] = dh;
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
