// Paged causal attention on the GPU, and the KV cache writes it reads.
//
// One block of 4 warps per (token, kv head, group of up to 4 query heads, key split):
// the query heads that share a kv head (GQA) are processed together, so each key and
// value row is loaded once for all of them. Warps take every 4th key of the split; each
// lane holds E = head_dim / 32 contiguous elements of the key/value rows (one coalesced
// load per row per warp) and an online softmax per head (running max and sum, base-2
// exponentials with log2(e) folded into the query scale). Two keys are loaded before
// either is used. The warps' states are merged in shared memory; with one split that is
// the output, otherwise (max, sum, acc) go to a buffer, and the last block of the splits
// of a (token, head group) to finish, found by an atomic count, combines them
// (flash-decoding in one launch). The split count depends only on the batch shape and the context's
// power-of-two bucket, so decode steps keep the same launch (and CUDA graph).
//
// The output may also be quantized for the o_proj product (AttentionParams::out_q), fused by
// the backend into decode steps.
//
// Prompts use the same kernel: each token is a query with its own causal key range.
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kHeadsPerBlock = 4;
constexpr int kWarps = 4;
constexpr int kPreloaded = 4;  // keys per warp loaded before pdl_wait (see the kernel)
constexpr float kLog2e = 1.4426950408889634f;

template <int E>
__device__ __forceinline__ void load_row(const float* p, float (&out)[E]) {
  if constexpr (E == 1) {
    out[0] = p[0];
  } else if constexpr (E == 2) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    out[0] = v.x, out[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < E / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(p)[i];
      out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
  }
}

template <int E>
__device__ __forceinline__ void load_row(const __half* p, float (&out)[E]) {
  if constexpr (E == 1) {
    out[0] = __half2float(p[0]);
  } else {
#pragma unroll
    for (int i = 0; i < E / 2; ++i) {
      const float2 v = __half22float2(reinterpret_cast<const __half2*>(p)[i]);
      out[2 * i] = v.x, out[2 * i + 1] = v.y;
    }
  }
}

template <int E, typename KT>
__global__ void __launch_bounds__(kWarps * kWarp) attention_kernel(const AttentionParams p) {
  constexpr int kHd = 32 * E;
  __shared__ float q_s[kHeadsPerBlock][kHd];
  __shared__ float red_ml[kWarps][kHeadsPerBlock][2];
  __shared__ float red_acc[kWarps][kHeadsPerBlock][kHd];

  const int64_t t = blockIdx.x;
  const int group = p.n_heads / p.n_kv_heads;
  const int head_groups = (group + kHeadsPerBlock - 1) / kHeadsPerBlock;
  const int g = blockIdx.y / head_groups;
  const int j0 = (blockIdx.y % head_groups) * kHeadsPerBlock;
  const int nh = min(kHeadsPerBlock, group - j0);
  const int h0 = g * group + j0;
  const int split = blockIdx.z;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;

  const int n_keys = p.positions[t] + 1;
  const int per = (n_keys + p.n_splits - 1) / p.n_splits;
  const int k_begin = split * per, k_end = min(n_keys, k_begin + per);

  const int32_t* table = p.block_tables + p.table_offset[t];
  const int64_t row = static_cast<int64_t>(p.n_kv_heads) * kHd;
  const KT* kc = static_cast<const KT*>(p.k_cache) + g * kHd + lane * E;
  const KT* vc = static_cast<const KT*>(p.v_cache) + g * kHd + lane * E;
  auto slot_of = [&](int pos) {
    return static_cast<int64_t>(table[pos / p.block_size]) * p.block_size + pos % p.block_size;
  };
  auto load_key = [&](int pos, float (&k)[E], float (&v)[E]) {
    const int64_t at = slot_of(pos) * row;
    load_row<E>(kc + at, k);
    load_row<E>(vc + at, v);
  };

  // A warp's first kPreloaded keys are loaded before pdl_wait() where they predate this
  // step: a sequence has at most n tokens in the step, so keys before positions[t] + 1 - n
  // were written by earlier steps (or copied in before this one), and the step data
  // (positions, block tables) is copied in before the step's first kernel. The loads and
  // their block-table lookups then overlap the kernel before this one instead of
  // following it: at decode's short contexts that was most of this kernel's time (H200,
  // 8B, 80-token context: 11.5 us of a layer's 78 in the decode graph).
  const int old_end = n_keys - static_cast<int>(p.n);
  const int first = k_begin + warp;
  float kp[kPreloaded][E], vp[kPreloaded][E];
#pragma unroll
  for (int i = 0; i < kPreloaded; ++i) {
    const int pos = first + i * kWarps;
    if (pos < k_end && pos < old_end) load_key(pos, kp[i], vp[i]);
  }
  pdl_begin();

  const float qscale = p.scale * kLog2e;
  for (int i = threadIdx.x; i < nh * kHd; i += blockDim.x)
    q_s[i / kHd][i % kHd] = p.q[(t * p.n_heads + h0 + i / kHd) * kHd + i % kHd] * qscale;
  __syncthreads();

  float qr[kHeadsPerBlock][E], acc[kHeadsPerBlock][E], m[kHeadsPerBlock], l[kHeadsPerBlock];
#pragma unroll
  for (int j = 0; j < kHeadsPerBlock; ++j) {
    m[j] = -INFINITY, l[j] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) qr[j][e] = j < nh ? q_s[j][lane * E + e] : 0.0f, acc[j][e] = 0.0f;
  }

  auto update = [&](const float (&k)[E], const float (&v)[E]) {
#pragma unroll
    for (int j = 0; j < kHeadsPerBlock; ++j) {
      if (j >= nh) break;
      float s = 0;
#pragma unroll
      for (int e = 0; e < E; ++e) s += qr[j][e] * k[e];
      s = warp_sum(s);
      const float m_new = fmaxf(m[j], s);
      const float corr = exp2f(m[j] - m_new), w = exp2f(s - m_new);
      l[j] = l[j] * corr + w;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[j][e] = acc[j][e] * corr + w * v[e];
      m[j] = m_new;
    }
  };
#pragma unroll
  for (int i = 0; i < kPreloaded; ++i) {
    const int pos = first + i * kWarps;
    if (pos >= k_end) break;
    if (pos >= old_end) load_key(pos, kp[i], vp[i]);  // written by this step
    update(kp[i], vp[i]);
  }
  int pos = first + kPreloaded * kWarps;
  for (; pos + kWarps < k_end; pos += 2 * kWarps) {
    const int64_t s0 = slot_of(pos) * row, s1 = slot_of(pos + kWarps) * row;
    float k0[E], v0[E], k1[E], v1[E];
    load_row<E>(kc + s0, k0);
    load_row<E>(vc + s0, v0);
    load_row<E>(kc + s1, k1);
    load_row<E>(vc + s1, v1);
    update(k0, v0);
    update(k1, v1);
  }
  if (pos < k_end) {
    const int64_t s0 = slot_of(pos) * row;
    float k0[E], v0[E];
    load_row<E>(kc + s0, k0);
    load_row<E>(vc + s0, v0);
    update(k0, v0);
  }

  // Merge the warps' states.
#pragma unroll
  for (int j = 0; j < kHeadsPerBlock; ++j) {
    if (lane == 0) red_ml[warp][j][0] = m[j], red_ml[warp][j][1] = l[j];
#pragma unroll
    for (int e = 0; e < E; ++e) red_acc[warp][j][lane * E + e] = acc[j][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < nh * kHd; i += blockDim.x) {
    const int j = i / kHd, d = i % kHd;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, red_ml[w][j][0]);
    float sum = 0, a = 0;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(red_ml[w][j][0] - mx);  // 0 for a warp without keys
        sum += red_ml[w][j][1] * f;
        a += red_acc[w][j][d] * f;
      }
    }
    const int64_t oh = t * p.n_heads + h0 + j;
    if (p.n_splits == 1) {  // a warp is 32 elements of one head: one 32-block to quantize
      p.out[oh * kHd + d] = a / sum;
      if (p.out_q) warp_quantize(a / sum, oh * kHd + d, p.out_q, p.out_qd, p.out_qs);
    } else {
      const int64_t ps = oh * p.n_splits + split;
      p.part_acc[ps * kHd + d] = a;
      if (d == 0) p.part_ml[2 * ps] = mx, p.part_ml[2 * ps + 1] = sum;
    }
  }
  if (p.n_splits == 1) return;

  // The last split block of this (token, head group) to finish combines all splits: its
  // partials are visible to it after the other blocks' fences and their count.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* count = p.split_count + t * gridDim.y + blockIdx.y;
    last = atomicAdd(count, 1) == p.n_splits - 1;
    if (last) *count = 0;  // every split has counted: ready for the next launch
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int i = threadIdx.x; i < nh * kHd; i += blockDim.x) {  // a warp: 32 elements of one head
    const int64_t oh = t * p.n_heads + h0 + i / kHd;
    const int d = i % kHd;
    const float* ml = p.part_ml + 2 * oh * p.n_splits;
    float mx = -INFINITY;
    for (int s = 0; s < p.n_splits; ++s) mx = fmaxf(mx, __ldcg(ml + 2 * s));
    float sum = 0, a = 0;
    for (int s = 0; s < p.n_splits; ++s) {
      const float ms = __ldcg(ml + 2 * s);
      if (ms == -INFINITY) continue;  // an empty split
      const float f = exp2f(ms - mx);
      sum += __ldcg(ml + 2 * s + 1) * f;
      a += __ldcg(p.part_acc + (oh * p.n_splits + s) * kHd + d) * f;
    }
    p.out[oh * kHd + d] = a / sum;
    if (p.out_q) warp_quantize(a / sum, oh * kHd + d, p.out_q, p.out_qd, p.out_qs);
  }
}

template <typename KT>
__global__ void kv_store_kernel(const KvStoreParams p) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n * p.row) return;
  const int64_t t = i / p.row, e = i % p.row;
  const int64_t dst = p.slots[t] * p.row + e;
  if constexpr (sizeof(KT) == 2) {
    static_cast<__half*>(p.k_cache)[dst] = __float2half_rn(p.k[i]);
    static_cast<__half*>(p.v_cache)[dst] = __float2half_rn(p.v[i]);
  } else {
    static_cast<float*>(p.k_cache)[dst] = p.k[i];
    static_cast<float*>(p.v_cache)[dst] = p.v[i];
  }
}

template <typename KT>
void attention_for(const AttentionParams& p, cudaStream_t stream) {
  const int group = p.n_heads / p.n_kv_heads;
  const dim3 grid(static_cast<unsigned>(p.n), static_cast<unsigned>(p.n_kv_heads * ((group + kHeadsPerBlock - 1) / kHeadsPerBlock)),
                  static_cast<unsigned>(p.n_splits));
  const dim3 block(kWarps * kWarp);
  switch (p.head_dim) {
    case 32: HEARTH_LAUNCH((attention_kernel<1, KT>), grid, block, 0, stream, p); break;
    case 64: HEARTH_LAUNCH((attention_kernel<2, KT>), grid, block, 0, stream, p); break;
    case 128: HEARTH_LAUNCH((attention_kernel<4, KT>), grid, block, 0, stream, p); break;
    case 256: HEARTH_LAUNCH((attention_kernel<8, KT>), grid, block, 0, stream, p); break;
    default: fail("attention: head_dim " + std::to_string(p.head_dim) + " is not supported by the CUDA backend");
  }
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace

bool attention_head_dim_supported(int64_t head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

void launch_attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  if (p.kind == 1) attention_for<__half>(p, stream);
  else attention_for<float>(p, stream);
}

void launch_kv_store(const KvStoreParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  const unsigned grid = grid_for(p.n * p.row, 256);
  if (p.kind == 1) HEARTH_LAUNCH((kv_store_kernel<__half>), grid, 256, 0, stream, p);
  else HEARTH_LAUNCH((kv_store_kernel<float>), grid, 256, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace hearth::cuda
