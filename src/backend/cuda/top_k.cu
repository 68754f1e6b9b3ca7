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
// writes their columns and original values. A block selects in three steps (block_top_k):
//  1. a threshold: each thread's largest key, and the k-th largest of those. At least k
//     keys reach it (those k maxima), and a key below it cannot be among the k best;
//  2. the keys at or above it are gathered: at most k threads' keys (typically a few more
//     than k keys, since a row's best are spread over the threads);
//  3. each gathered key's rank is the number of gathered keys above it; ranks < k are the
//     answer, in order. Where more than kRankMax keys were gathered (a row built against
//     the threshold), a radix select by 8-bit digits picks them instead.
// An earlier form selected by radix alone (8 passes of a 256-bin histogram in shared
// memory): 30 us for one row, as every key of a segment went through the first pass's
// few busy bins (logits share few exponents).
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = kTopKSegment / kThreads;  // keys a thread holds (both launches)
static_assert(kTopKMergeKeys / kThreads == kItems);
constexpr int kGatherMax = kTopKMax * kItems;  // keys at or above the threshold, at most
constexpr int kRankMax = 1024;                 // more than this many: the radix select

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
  uint64_t maxima[kThreads];  // each thread's largest key
  uint64_t threshold;
  uint32_t gathered;
  uint64_t keys[kGatherMax];  // the keys at or above the threshold
  // The radix select's state.
  uint32_t hist[256];
  uint32_t warp_sums[kThreads / kWarp];
  uint32_t remaining, digit, found;
};

// Rare path: the k best of the n gathered keys by radix select, 8 bits a pass from the
// top, until the k-th key is known; returns it (keys at or above it are the answer).
__device__ uint64_t radix_kth(SelectShared& sh, int32_t n, int32_t k) {
  constexpr int kMine = kGatherMax / kThreads;
  const int t = threadIdx.x, lane = t % kWarp, warp = t / kWarp;
  uint64_t mine[kMine];
#pragma unroll
  for (int i = 0; i < kMine; ++i) mine[i] = t + i * kThreads < n ? sh.keys[t + i * kThreads] : 0;
  uint64_t prefix = 0, mask = 0, kth = 1;
  if (t == 0) sh.remaining = static_cast<uint32_t>(k), sh.found = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    sh.hist[t] = 0;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kMine; ++i)
      if (mine[i] != 0 && (mine[i] & mask) == prefix) atomicAdd(&sh.hist[(mine[i] >> shift) & 255], 1u);
    __syncthreads();
    // Thread t looks at bin 255 - t: an inclusive scan gives above = keys with digit >= bin.
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
    __syncthreads();  // every thread has read remaining
    if (above >= need && above - count < need) {  // the bin holding the k-th key
      sh.digit = static_cast<uint32_t>(bin);
      sh.remaining = need - (above - count);
      sh.found = above == need || shift == 0;  // the whole bin is kept (keys are distinct)
    }
    __syncthreads();
    prefix |= static_cast<uint64_t>(sh.digit) << shift;
    mask |= uint64_t{255} << shift;
    if (sh.found) {
      kth = prefix;
      break;
    }
  }
  __syncthreads();
  return kth;
}

// The min(k, non-zero keys) largest of the block's keys (kItems a thread), sorted
// descending into out[0, k), the rest of out[0, k) zeroed. Every thread calls it.
__device__ void block_top_k(const uint64_t (&keys)[kItems], int32_t k, SelectShared& sh, uint64_t* out) {
  const int t = threadIdx.x;
  uint64_t m = 0;
#pragma unroll
  for (int i = 0; i < kItems; ++i) m = keys[i] > m ? keys[i] : m;
  sh.maxima[t] = m;
  if (t == 0) sh.gathered = 0, sh.threshold = 1;  // fewer than k maxima: every key counts
  __syncthreads();
  if (m != 0) {
    int32_t rank = 0;  // maxima above this thread's (distinct keys: distinct ranks)
    for (int u = 0; u < kThreads; ++u) rank += sh.maxima[u] > m;
    if (rank == k - 1) sh.threshold = m;
  }
  __syncthreads();
  const uint64_t threshold = sh.threshold;
#pragma unroll
  for (int i = 0; i < kItems; ++i)
    if (keys[i] != 0 && keys[i] >= threshold) sh.keys[atomicAdd(&sh.gathered, 1u)] = keys[i];
  __syncthreads();
  const auto n = static_cast<int32_t>(sh.gathered);  // <= kGatherMax: at most k threads' keys
  const uint64_t floor = n > kRankMax ? radix_kth(sh, n, k) : 1;
  for (int32_t j = t; j < n; j += kThreads) {
    const uint64_t key = sh.keys[j];
    if (key < floor) continue;
    int32_t rank = 0;
    for (int32_t u = 0; u < n; ++u) rank += sh.keys[u] > key;
    if (rank < k) out[rank] = key;
  }
  for (int32_t j = min(n, k) + t; j < k; j += kThreads) out[j] = 0;
}

__global__ void __launch_bounds__(kThreads) top_k_segment_kernel(const TopKParams p) {
  pdl_begin();
  __shared__ SelectShared sh;
  const int64_t row = blockIdx.y;
  const int32_t begin = blockIdx.x * kTopKSegment;
  const float* x = p.x + row * p.ld;
  uint64_t keys[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
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
  uint64_t keys[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
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
