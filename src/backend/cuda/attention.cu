// Paged causal attention on the GPU, and the KV cache writes it reads.
//
// One block of 4 warps per (token, kv head, group of up to 4 query heads, key split):
// the query heads that share a kv head (GQA) are processed together, so each key and
// value row is loaded once for all of them. Warps take every 4th key of the split; each
// lane holds E = head_dim / 32 contiguous elements of the key/value rows (one coalesced
// load per row per warp) and an online softmax per head (running max and sum, base-2
// exponentials with log2(e) folded into the query scale). D = 4 keys (AttentionParams::
// keys_in_flight; 2 as before, and at head_dim 256) are loaded before any is used and share one rescaling of
// the state: a long context is bound by latency, not bandwidth (H200, 8B shape, 16384
// keys: tg 131.8 tok/s with 2 keys, 140.3 with 4, 118.7 with 8, whose 140 registers a
// thread halve the resident blocks). The warps' states are merged in shared memory; with one split that is
// the output, otherwise (max, sum, acc) go to a buffer, and the last block of the splits
// of a (token, head group) to finish, found by an atomic count, combines them
// (flash-decoding in one launch). The split count depends only on the batch shape and the context's
// power-of-two bucket, so decode steps keep the same launch (and CUDA graph).
//
// The output may also be quantized for the o_proj product (AttentionParams::out_q), fused by
// the backend into decode steps.
//
// Prompts use the same kernel: each token is a query with its own causal key range.
//
// The cache is f32, f16 or 8-bit (q8_0 rows, backend.h kv_row_bytes): an 8-bit row is read
// as each lane's E int8 values plus the f16 scale of their 32-group (E <= 8, so a lane's
// elements never straddle two groups), 1.0625 bytes an element instead of 2.
#include <cmath>

#include "backend/cuda/attention_splits.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kHeadsPerBlock = 4;
constexpr int kWarps = 4;
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

// The 8-bit cache's element type tag (rows of kv_q8_row_bytes).
struct Q8 {};

// Where one lane's E elements of kv head g lie in a cache of KT: the cache row of `slot`.
// load() gives the elements and a factor they must be multiplied by (1 but for 8 bits: the
// scale their 32-group shares, applied by the kernel once per lane instead of per element).
template <int E, typename KT>
struct CacheLane {
  const KT* base;  // the cache + g * head_dim + lane * E
  int64_t row;
  __device__ CacheLane(const void* cache, int64_t row_, int g, int lane)
      : base(static_cast<const KT*>(cache) + g * 32 * E + lane * E), row(row_) {}
  __device__ __forceinline__ float load(int64_t slot, float (&out)[E]) const {
    load_row<E>(base + slot * row, out);
    return 1.0f;
  }
};

// The signed byte i of x as a float: 2^23 * 1.5 + b has b in its low mantissa bits, so an
// integer add and a float subtract replace the slower integer-to-float conversion.
__device__ __forceinline__ float byte_to_float(uint32_t x, int i) {
  const int b = static_cast<int>(x << (24 - 8 * i)) >> 24;
  return __int_as_float(0x4B400000 + b) - 12582912.0f;
}

template <int E>
struct CacheLane<E, Q8> {
  const uint8_t* base;  // the cache + this lane's first element
  const __half* scale;  // the cache + the f16 scale of its 32-group
  int64_t row_bytes;
  __device__ CacheLane(const void* cache, int64_t row, int g, int lane) {
    const int64_t at = g * 32 * E + lane * E;
    base = static_cast<const uint8_t*>(cache) + at;
    scale = reinterpret_cast<const __half*>(static_cast<const uint8_t*>(cache) + row) + at / 32;
    row_bytes = kv_q8_row_bytes(row);
  }
  __device__ __forceinline__ float load(int64_t slot, float (&out)[E]) const {
    const uint8_t* p = base + slot * row_bytes;
    const auto* d_at = reinterpret_cast<const __half*>(reinterpret_cast<const uint8_t*>(scale) + slot * row_bytes);
    const float d = __half2float(*d_at);
    uint32_t w[(E + 3) / 4];
    if constexpr (E == 1) {
      w[0] = *p;
    } else if constexpr (E == 2) {
      w[0] = *reinterpret_cast<const uint16_t*>(p);
    } else if constexpr (E == 4) {
      w[0] = *reinterpret_cast<const uint32_t*>(p);
    } else {
      const uint2 u = *reinterpret_cast<const uint2*>(p);
      w[0] = u.x, w[1] = u.y;
    }
#pragma unroll
    for (int e = 0; e < E; ++e) out[e] = byte_to_float(w[e / 4], e % 4);
    return d;
  }
};

template <int E, typename KT, int D>
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
  const CacheLane<E, KT> kc(p.k_cache, row, g, lane), vc(p.v_cache, row, g, lane);
  auto slot_of = [&](int pos) {
    return static_cast<int64_t>(table[pos / p.block_size]) * p.block_size + pos % p.block_size;
  };
  // D keys of the warp (pos, pos + 4, ...) are loaded before any is used, so a warp keeps
  // D rows of keys and of values in flight; their scores share one rescaling of the state.
  float k[D][E], v[D][E], kd[D], vd[D];  // elements and their factors (CacheLane::load)
  auto load_key = [&](int d, int pos) {
    const int64_t slot = slot_of(pos);
    kd[d] = kc.load(slot, k[d]);
    vd[d] = vc.load(slot, v[d]);
  };

  // A warp's first D keys are loaded before pdl_wait() where they predate this step: a
  // sequence has at most n tokens in the step, so keys before positions[t] + 1 - n were
  // written by earlier steps (or copied in before this one), and the step data (positions,
  // block tables) is copied in before the step's first kernel. The loads and their
  // block-table lookups then overlap the kernel before this one instead of following it:
  // at decode's short contexts that was most of this kernel's time (H200, 8B, 80-token
  // context: 11.5 us of a layer's 78 in the decode graph).
  const int old_end = n_keys - static_cast<int>(p.n);
  const int first = k_begin + warp;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int pos = first + d * kWarps;
    if (pos < k_end && pos < old_end) load_key(d, pos);
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

  for (int pos = first; pos < k_end; pos += D * kWarps) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int at = pos + d * kWarps;
      if (at < k_end) {  // uniform per warp
        if (pos != first || at >= old_end) load_key(d, at);  // the first batch: what the preload left
      } else {
        kd[d] = vd[d] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) k[d][e] = v[d][e] = 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < kHeadsPerBlock; ++j) {
      if (j >= nh) break;
      float sc[D];
#pragma unroll
      for (int d = 0; d < D; ++d) {
        float a = 0;
#pragma unroll
        for (int e = 0; e < E; ++e) a += qr[j][e] * k[d][e];
        sc[d] = a * kd[d];
      }
#pragma unroll
      for (int d = 0; d < D; ++d) sc[d] = warp_sum(sc[d]);
      float m_new = m[j];
#pragma unroll
      for (int d = 0; d < D; ++d) m_new = pos + d * kWarps < k_end ? fmaxf(m_new, sc[d]) : m_new;
      const float corr = exp2f(m[j] - m_new);  // key pos is valid: m_new is finite
      l[j] *= corr;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[j][e] *= corr;
#pragma unroll
      for (int d = 0; d < D; ++d) {
        const float w = pos + d * kWarps < k_end ? exp2f(sc[d] - m_new) : 0.0f;
        l[j] += w;
        const float wv = w * vd[d];
#pragma unroll
        for (int e = 0; e < E; ++e) acc[j][e] += wv * v[d][e];
      }
      m[j] = m_new;
    }
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
    store_split_state(p, t * p.n_heads + h0 + j, d, kHd, split, mx, sum, a);
  }
  // The last split block of this (token, head group) combines all splits.
  if (p.n_splits == 1 || !last_split_block(p.split_count + t * gridDim.y + blockIdx.y, p.n_splits)) return;
  for (int i = threadIdx.x; i < nh * kHd; i += blockDim.x)
    combine_splits<false>(p, t * p.n_heads + h0 + i / kHd, i % kHd, kHd);
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

// One warp per (token, 32-group of the row): the group's scale needs all 32 values.
__global__ void kv_store_q8_kernel(const KvStoreParams p) {
  pdl_begin();
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (w >= p.n * (p.row / 32)) return;  // uniform per warp
  const int64_t t = w / (p.row / 32), i = (w % (p.row / 32)) * 32 + threadIdx.x % kWarp;
  const int64_t dst = p.slots[t] * kv_q8_row_bytes(p.row);
  warp_store_kv_q8(p.k[t * p.row + i], static_cast<uint8_t*>(p.k_cache) + dst, p.row, i);
  warp_store_kv_q8(p.v[t * p.row + i], static_cast<uint8_t*>(p.v_cache) + dst, p.row, i);
}

template <int E, typename KT>
void attention_launch(const AttentionParams& p, dim3 grid, dim3 block, cudaStream_t stream) {
  // Keys in flight per warp: 4, or 2 (HEARTH_CUDA_ATTN_KEYS=2, the kernel before 4; and at
  // head_dim 256, where 4 take 168 registers a thread, unmeasured).
  if (p.keys_in_flight == 2 || E == 8) HEARTH_LAUNCH((attention_kernel<E, KT, 2>), grid, block, 0, stream, p);
  else HEARTH_LAUNCH((attention_kernel<E, KT, 4>), grid, block, 0, stream, p);
}

template <typename KT>
void attention_for(const AttentionParams& p, cudaStream_t stream) {
  const int group = p.n_heads / p.n_kv_heads;
  const dim3 grid(static_cast<unsigned>(p.n), static_cast<unsigned>(p.n_kv_heads * ((group + kHeadsPerBlock - 1) / kHeadsPerBlock)),
                  static_cast<unsigned>(p.n_splits));
  const dim3 block(kWarps * kWarp);
  switch (p.head_dim) {
    case 32: attention_launch<1, KT>(p, grid, block, stream); break;
    case 64: attention_launch<2, KT>(p, grid, block, stream); break;
    case 128: attention_launch<4, KT>(p, grid, block, stream); break;
    case 256: attention_launch<8, KT>(p, grid, block, stream); break;
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
  if (p.tensor_cores) return launch_decode_attention(p, stream);
  if (p.kind == 2) attention_for<Q8>(p, stream);
  else if (p.kind == 1) attention_for<__half>(p, stream);
  else attention_for<float>(p, stream);
}

void launch_kv_store(const KvStoreParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  const unsigned grid = grid_for(p.n * p.row, 256);
  if (p.kind == 2) HEARTH_LAUNCH(kv_store_q8_kernel, grid, 256, 0, stream, p);  // a warp per 32-group
  else if (p.kind == 1) HEARTH_LAUNCH((kv_store_kernel<__half>), grid, 256, 0, stream, p);
  else HEARTH_LAUNCH((kv_store_kernel<float>), grid, 256, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace hearth::cuda
