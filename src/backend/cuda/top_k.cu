// The k largest logits of each row on the GPU, so that a step copies back k (id, value)
// pairs a sequence instead of its whole row (151,936 floats for Qwen3: 19 MB a step at 32
// sequences, and a full-row argmax or top-k on the host for each of them).
//
// Order: value descending, then column ascending (the sampler's ByLogit order, so that
// its top_k stage sees the same candidates in the same order); -inf and NaN never count,
// -0 equals +0. Each value becomes a 64-bit key whose unsigned order is that order: the
// float's bits made monotonic in the high word (-0 first turned into +0) and the inverted
// column in the low word. Keys are distinct, and 0 marks a value that does not count.
//
// Two launches: top_k_segment_kernel selects the k best keys of every 8,192-column segment
// of a row (one block each), top_k_merge_kernel the k best of a row's segment winners, and
// writes their columns and original values. Both select by radix: 8 bits a pass from the
// top, a 256-bin histogram of the keys that still share the prefix, until the k-th key is
// known (often after one or two passes), then every key at or above it is kept and ranked
// by counting the kept keys above it.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSegmentItems = kTopKSegment / kThreads;  // keys a thread holds in the first launch
constexpr int kMergeItems = kTopKMergeKeys / kThreads;  // and in the second

__device__ __forceinline__ uint64_t logit_key(float v, int32_t col) {
  if (!(v > -__int_as_float(0x7f800000))) return 0;  // -inf and NaN
  uint32_t bits = __float_as_uint(v == 0.0f ? 0.0f : v);
  bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(bits) << 32) | (0xffffffffu - static_cast<uint32_t>(col));
}

__device__ __forceinline__ int32_t key_col(uint64_t key) {
  return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key));
}

struct SelectShared {
  uint32_t hist[256];
  uint32_t warp_sums[kThreads / kWarp];
  uint64_t threshold;  // every key >= threshold is kept
  uint32_t remaining;  // keys still to take among those sharing the prefix
  uint32_t found;      // the threshold is final
  uint32_t kept;
  uint64_t kept_keys[kTopKMax];
};

// The min(k, non-zero keys) largest of the block's keys (kItems a thread), sorted
// descending into out[0, k) and the rest of out[0, k) zeroed. Every thread calls it.
template <int kItems>
__device__ void block_top_k(const uint64_t (&keys)[kItems], int32_t k, SelectShared& sh, uint64_t* out) {
  const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
  uint64_t prefix = 0, mask = 0;
  if (t == 0) sh.remaining = static_cast<uint32_t>(k), sh.found = 0, sh.threshold = 1, sh.kept = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    sh.hist[t] = 0;
    __syncthreads();
    if (sh.found) break;
#pragma unroll
    for (int i = 0; i < kItems; ++i)
      if (keys[i] != 0 && (keys[i] & mask) == prefix) atomicAdd(&sh.hist[(keys[i] >> shift) & 255], 1u);
    __syncthreads();
    // Thread t looks at bin 255 - t: an inclusive scan gives above[b] = keys with digit >= b.
    const int bin = 255 - t;
    const uint32_t count = sh.hist[bin];
    uint32_t above = count;
#pragma unroll
    for (int o = 1; o < kWarp; o <<= 1) {
      const uint32_t v = __shfl_up_sync(0xffffffffu, above, o);
      if (lane >= o) above += v;
    }
    if (lane == kWarp - 1) sh.warp_sums[warp] = above;
    __syncthreads();
    for (int w = 0; w < warp; ++w) above += sh.warp_sums[w];
    const uint32_t need = sh.remaining;
    const uint32_t below = above - count;  // keys with a larger digit
    __syncthreads();                       // every thread has read remaining
    if (bin == 0 && above < need) {
      // Fewer keys than k share the prefix: only possible in the first pass (fewer than
      // k keys count at all); keep every one.
      sh.threshold = 1, sh.found = 1;
    } else if (above >= need && below < need) {
      const uint64_t digit = static_cast<uint64_t>(bin) << shift;
      if (above == need) {
        sh.threshold = prefix | digit, sh.found = 1;  // the whole bin is kept
      } else {
        sh.remaining = need - below;
        if (shift == 0) sh.threshold = prefix | digit, sh.found = 1;
      }
      sh.warp_sums[0] = bin;  // read back below (the scan is done with warp_sums)
    }
    __syncthreads();
    if (!sh.found) {
      prefix |= static_cast<uint64_t>(sh.warp_sums[0]) << shift;
      mask |= uint64_t{255} << shift;
    }
  }
  __syncthreads();
  const uint64_t threshold = sh.threshold;
#pragma unroll
  for (int i = 0; i < kItems; ++i)
    if (keys[i] != 0 && keys[i] >= threshold) {
      const uint32_t at = atomicAdd(&sh.kept, 1u);
      if (at < kTopKMax) sh.kept_keys[at] = keys[i];
    }
  __syncthreads();
  const int32_t kept = min(static_cast<int32_t>(sh.kept), k);  // min(k, keys that count): keys are distinct
  if (t < k) {
    if (t < kept) {
      const uint64_t mine = sh.kept_keys[t];
      int32_t rank = 0;
      for (int32_t j = 0; j < kept; ++j) rank += sh.kept_keys[j] > mine;
      out[rank] = mine;
    } else {
      out[t] = 0;
    }
  }
}

__global__ void __launch_bounds__(kThreads) top_k_segment_kernel(const TopKParams p) {
  pdl_begin();
  __shared__ SelectShared sh;
  const int64_t row = blockIdx.y;
  const int32_t begin = blockIdx.x * kTopKSegment;
  const float* x = p.x + row * p.ld;
  uint64_t keys[kSegmentItems];
#pragma unroll
  for (int i = 0; i < kSegmentItems; ++i) {
    const int32_t col = begin + i * kThreads + static_cast<int32_t>(threadIdx.x);
    keys[i] = col < p.n_valid ? logit_key(x[col], col) : 0;
  }
  block_top_k(keys, p.k, sh, p.partial + (row * p.segments + blockIdx.x) * p.k);
}

__global__ void __launch_bounds__(kThreads) top_k_merge_kernel(const TopKParams p) {
  pdl_begin();
  __shared__ SelectShared sh;
  __shared__ uint64_t best[kTopKMax];
  const int64_t row = blockIdx.x;
  const uint64_t* partial = p.partial + row * p.segments * p.k;
  const int32_t n = p.segments * p.k;
  uint64_t keys[kMergeItems];
#pragma unroll
  for (int i = 0; i < kMergeItems; ++i) {
    const int32_t j = i * kThreads + static_cast<int32_t>(threadIdx.x);
    keys[i] = j < n ? partial[j] : 0;
  }
  block_top_k(keys, p.k, sh, best);
  __syncthreads();
  if (threadIdx.x < static_cast<unsigned>(p.k)) {
    const uint64_t key = best[threadIdx.x];
    const int32_t col = key != 0 ? key_col(key) : -1;
    p.ids[row * p.k + threadIdx.x] = col;
    p.values[row * p.k + threadIdx.x] = col >= 0 ? p.x[row * p.ld + col] : 0.0f;
  }
}

}  // namespace

void launch_top_k(const TopKParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  HEARTH_ASSERT(p.k >= 1 && p.k <= kTopKMax && p.segments * p.k <= kTopKMergeKeys);
  HEARTH_ASSERT(static_cast<int64_t>(p.segments) * kTopKSegment >= p.n_valid);
  HEARTH_LAUNCH(top_k_segment_kernel, dim3(p.segments, static_cast<uint32_t>(p.rows)), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
  HEARTH_LAUNCH(top_k_merge_kernel, static_cast<uint32_t>(p.rows), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace hearth::cuda
