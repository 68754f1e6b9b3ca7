// The tail both split-K decode attention kernels share (attention.cu, decode_attention.cu):
// flash-decoding in one launch. Each block of a key split writes, per head element, its
// merged state: the output itself when there is one split, else the split's partial
// (acc, and max and sum once per head); the last split block of a group to finish, elected
// by an atomic count that it resets for the next launch, adds the splits' partials.
// kFast: 2^x by ex2.approx (decode_attention.cu), else exp2f (attention.cu); each kernel
// keeps the exponential it always used.
#pragma once

#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"
#include "backend/cuda/ptx.cuh"

namespace hearth::cuda {

template <bool kFast>
__device__ __forceinline__ float split_exp2(float x) {
  if constexpr (kFast) return fast_exp2(x);
  else return exp2f(x);
}

// Element d of output head oh (row oh of out, head_dim hd): state (m, sum, a) of this block's
// keys. A warp holds 32 elements of one head, so the 8-bit output is one block per warp.
__device__ __forceinline__ void store_split_state(const AttentionParams& p, int64_t oh, int d, int hd, int split,
                                                  float m, float sum, float a) {
  if (p.n_splits == 1) {
    p.out[oh * hd + d] = a / sum;
    if (p.out_q) warp_quantize(a / sum, oh * hd + d, p.out_q, p.out_qd, p.out_qs, p.out_qh);
  } else {
    const int64_t ps = oh * p.n_splits + split;
    p.part_acc[ps * hd + d] = a;
    if (d == 0) p.part_ml[2 * ps] = m, p.part_ml[2 * ps + 1] = sum;
  }
}

// Called by every thread of a block after its store_split_state calls: true in the last
// block of the group (counter) to get here, whose reads then see every split's partials
// (the other blocks fenced them before counting).
__device__ __forceinline__ bool last_split_block(int32_t* counter, int n_splits) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1) == n_splits - 1;
    if (last) *counter = 0;  // every split has counted: ready for the next launch
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

// Element d of output head oh from the splits' partials (empty splits skipped).
template <bool kFast>
__device__ __forceinline__ void combine_splits(const AttentionParams& p, int64_t oh, int d, int hd) {
  const float* ml = p.part_ml + 2 * oh * p.n_splits;
  float m = -INFINITY;
  for (int s = 0; s < p.n_splits; ++s) m = fmaxf(m, __ldcg(ml + 2 * s));
  float sum = 0.0f, a = 0.0f;
  for (int s = 0; s < p.n_splits; ++s) {
    const float ms = __ldcg(ml + 2 * s);
    if (ms == -INFINITY) continue;  // an empty split
    const float f = split_exp2<kFast>(ms - m);
    sum += __ldcg(ml + 2 * s + 1) * f;
    a += __ldcg(p.part_acc + (oh * p.n_splits + s) * hd + d) * f;
  }
  p.out[oh * hd + d] = a / sum;
  if (p.out_q) warp_quantize(a / sum, oh * hd + d, p.out_q, p.out_qd, p.out_qs, p.out_qh);
}

}  // namespace hearth::cuda
