// One token's 8-bit activations (launch_quantize_x's q/d/s) copied into shared memory for
// the decode products (matmul.cu, matmul_stream.cu), read back by the quant units through
// XShared as they would read an XRow.
#pragma once

#include <cstdint>

#include "backend/cuda/ops.h"
#include "backend/cuda/quant_units.cuh"

namespace hearth::cuda {

// 16-byte chunk c of the staged values lives at chunk swizzle(c): XOR-ed with its
// 128-byte row within that row. Lanes read one unit each, so a warp's 16-byte reads are
// 16, 32, 64 or 128 bytes apart (one unit per lane, by type); unswizzled, 8 lanes of a
// quarter-warp would share 2-4 of the 8 bank groups, swizzled they cover all 8.
__device__ __forceinline__ int64_t swizzle(int64_t c) { return c ^ ((c >> 3) & 7); }

__host__ __device__ inline int64_t stage_q_bytes(int64_t cols) { return (cols + 127) / 128 * 128; }
__host__ __device__ inline int64_t stage_bytes(int64_t cols) { return stage_q_bytes(cols) + 2 * (cols / 32) * 4; }

// One token's quantized activations in shared memory (stage_x), read by the units like
// an XRow.
struct XShared {
  const int8_t* q;  // swizzled chunks
  const float* d;
  const float* s;
  __device__ __forceinline__ void q32(int64_t at, int32_t (&out)[8]) const {
    const int64_t c = at / 16;  // at % 32 == 0: chunks c and c + 1 of one row
    const int4 a = reinterpret_cast<const int4*>(q)[swizzle(c)];
    const int4 b = reinterpret_cast<const int4*>(q)[swizzle(c + 1)];
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  }
};

// Copies token 0's q/d/s of p into `smem` (stage_bytes(cols) bytes, 16-byte aligned) with
// all threads of the block; the caller synchronizes before reading. kPairs: every 8
// values (words 2k, 2k + 1) go in as UnitMlx4::pair_x arranges them, even-indexed values
// first, so MLX 4-bit products read them without permutes (matmul_stream.cu).
template <bool kPairs = false>
__device__ __forceinline__ XShared stage_x(const GemvParams& p, int4* smem) {
  auto* q = reinterpret_cast<int8_t*>(smem);
  const int64_t chunks = p.w.cols / 16, nb = p.w.cols / 32;
  const auto* src = reinterpret_cast<const int4*>(p.xq);
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    int4 v = src[c];
    if constexpr (kPairs) UnitMlx4::pair_words(v.x, v.y), UnitMlx4::pair_words(v.z, v.w);
    smem[swizzle(c)] = v;
  }
  auto* f = reinterpret_cast<float*>(q + stage_q_bytes(p.w.cols));
  for (int64_t i = threadIdx.x; i < nb; i += blockDim.x) f[i] = p.xd[i], f[nb + i] = p.xs[i];
  return XShared{q, f, f + nb};
}

}  // namespace hearth::cuda
