// RMSNorm and rotary position embeddings on the GPU, with the fusions the backend records
// for decode steps (see RmsNormParams and RopeParams in ops.h).
//
// RMSNorm: one warp per row for short rows (per-head q/k norms, hd <= 256), one block of
// up to 1024 threads per row otherwise (the hidden-state norms, of one token or of a
// prompt's hundreds: a warp a row left a 512 x 4096 prompt norm at 47 us on an H200),
// holding the row in registers; the sum of squares is accumulated in f32 per thread and
// reduced across the warp/block (the CPU reference accumulates in double; the difference
// is far inside the op tests' bounds). Both walk a row in 32-element strides per warp, so
// each warp iteration covers one 32-block and can quantize it for the next matmul.
// RoPE: one thread per (token, rotated pair), looping over heads so cos/sin are computed
// once per pair; fused with the per-head norm (and the KV store, and the q heads along
// with the k heads; in batched steps it may also add the merged q/k/v product's K splits,
// RopeParams::partial), one warp per (token, head). An 8-bit cache is written after the
// rotation, in a second pass over the head's 32-groups (a lane's rotated elements are
// pairs, not one element of each group). The angle is evaluated in double like the CPU reference: positions reach 10^5 and
// a float angle would lose the phase.
#include <atomic>
#include <cstdlib>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

std::atomic<int64_t> g_rope_split_launches{0};

// The second pass of a row: y = v * inv * w, stored, and quantized per 32-block when asked.
// i runs lane-contiguously in 32-element strides, so `i / 32` is one block per warp step.
__device__ __forceinline__ void norm_store(const RmsNormParams& p, int64_t row, int64_t i, float y) {
  p.out[row * p.dim + i] = y;
  if (p.q) warp_quantize(y, row * p.dim + i, p.q, p.qd, p.qs, p.qh);
}

__device__ __forceinline__ float norm_load(const RmsNormParams& p, int64_t row, int64_t i) {
  float v = p.x[row * p.dim + i];
  if (p.add) {
    v += p.add[row * p.dim + i];
    p.x[row * p.dim + i] = v;  // the residual stream keeps the sum
  }
  return v;
}

__global__ void rms_norm_warp_kernel(const RmsNormParams p) {
  pdl_begin_before_product();
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= p.rows) return;  // uniform per warp
  float ss = 0;
  for (int64_t i = lane; i < p.dim; i += kWarp) {
    const float v = norm_load(p, row, i);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(p.dim) + p.eps);
  for (int64_t i = lane; i < p.dim; i += kWarp) norm_store(p, row, i, p.x[row * p.dim + i] * inv * p.w[i]);
}

// A row per block of up to 1024 threads, its values held in registers (kPer per thread),
// so each pass over global memory pays its latency once: the decode step's hidden-state
// norms, one or a few rows of 1024..8192, where a loop of dependent loads was the cost.
template <int kPer>
__global__ void __launch_bounds__(1024) rms_norm_block_kernel(const RmsNormParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float v[kPer], wv[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {  // the weight is constant: loaded while the previous kernel ends
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    wv[j] = i < p.dim ? p.w[i] : 0.0f;
  }
  pdl_begin_before_product();
  float ss = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    v[j] = i < p.dim ? p.x[row * p.dim + i] : 0.0f;
  }
  if (p.add) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (i < p.dim) {
        v[j] += p.add[row * p.dim + i];
        p.x[row * p.dim + i] = v[j];  // the residual stream keeps the sum
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) ss += v[j] * v[j];
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(p.dim) + p.eps);
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (i < p.dim) norm_store(p, row, i, v[j] * inv * wv[j]);  // dim % 32 == 0 with q: whole warps
  }
}

// One token's norm without an add (the products add into the residual): a row is cut into
// slices of 256 elements, a block each, and every block reduces the whole row's sum of
// squares itself (16 KB read from L2 by 16 blocks at once), so that no block waits for
// another; each then normalizes and quantizes its slice, one element a thread, one
// warp_quantize step. (With an add, blocks would read x while others write x + add back,
// and in place while others write the norm: the block kernel keeps those.) Taken where the
// backend sets RmsNormParams::slices (not before MLX products, which lost 1% with it).
template <int kPer>
__global__ void __launch_bounds__(256) rms_norm_slice_kernel(const RmsNormParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.y;
  const int slice = static_cast<int>(blockIdx.x), t = threadIdx.x;
  const int64_t i = static_cast<int64_t>(slice) * 256 + t;  // this thread's element
  const float w = i < p.dim ? p.w[i] : 0.0f;  // constant: loaded while the previous kernel ends
  pdl_begin_before_product();
  float v[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int64_t j = t + 256 * static_cast<int64_t>(k);
    v[k] = j < p.dim ? p.x[row * p.dim + j] : 0.0f;
  }
  float ss = 0, mine = 0;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    ss += v[k] * v[k];
    if (k == slice) mine = v[k];
  }
  ss = block_sum(ss, scratch);
  if (i >= p.dim) return;  // dim % 32 == 0: whole warps leave together
  const float inv = rsqrtf(ss / static_cast<float>(p.dim) + p.eps);
  norm_store(p, row, i, mine * inv * w);
}

// Rows too long for registers: the same in two passes over memory.
__global__ void rms_norm_long_kernel(const RmsNormParams p) {
  pdl_begin_before_product();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float v = norm_load(p, row, i);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(p.dim) + p.eps);
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) norm_store(p, row, i, p.x[row * p.dim + i] * inv * p.w[i]);
}

__device__ __forceinline__ void rope_angle(const RopeParams& p, int64_t t, int64_t j, float* c, float* s) {
  double sd = 0, cd = 0;
  sincos(static_cast<double>(p.positions[t]) * static_cast<double>(p.inv_freq[j]), &sd, &cd);
  *c = static_cast<float>(cd) * p.attn_factor;
  *s = static_cast<float>(sd) * p.attn_factor;
}

__global__ void rope_kernel(const RopeParams p) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n * p.half) return;
  const int64_t t = i / p.half, j = i % p.half;
  float cf, sf;
  rope_angle(p, t, j, &cf, &sf);
  const int64_t ia = p.neox ? j : 2 * j, ib = p.neox ? j + p.half : 2 * j + 1;
  float* x = p.x + t * p.heads * p.head_dim;
  for (int64_t h = 0; h < p.heads; ++h, x += p.head_dim) {
    const float a = x[ia], b = x[ib];
    x[ia] = a * cf - b * sf;
    x[ib] = a * sf + b * cf;
  }
}

// Per-head RMSNorm, then the rotation, then (k_cache set) the cache write of kv_store.
__global__ void norm_rope_kernel(const RopeParams p) {
  constexpr int kPairs = 4;  // pairs per lane whose angles are computed before pdl_wait (head_dim <= 256)
  int64_t task = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;  // t * heads + h
  const int lane = threadIdx.x % kWarp;
  const int64_t first = p.n * p.heads;
  if (task >= first + p.n * p.heads2) return;  // uniform per warp
  const bool second = task >= first;  // a head of x2
  if (second) task -= first;
  const int64_t heads = second ? p.heads2 : p.heads;
  const int64_t t = task / heads, hd = p.head_dim;
  // The angles need only positions and frequencies (step data and constants, written
  // before this step's kernels): the double-precision sincos runs while the previous
  // kernel ends.
  float cs[kPairs], sn[kPairs];
#pragma unroll
  for (int k = 0; k < kPairs; ++k)
    if (lane + kWarp * k < p.half) rope_angle(p, t, lane + kWarp * k, &cs[k], &sn[k]);
  pdl_begin();
  float* x = (second ? p.x2 : p.x) + task * hd;
  const float* norm_w = second ? p.norm_w2 : p.norm_w;
  const bool store = p.k_cache && !second;
  if (p.partial) {  // the product's splits, added in split order (32-bit indices: see RopeParams)
    const auto total = static_cast<uint32_t>((p.heads2 + 2 * p.heads) * hd);
    const auto all = static_cast<uint32_t>(p.n) * total, head = static_cast<uint32_t>(task % heads);
    const uint32_t row = static_cast<uint32_t>(t) * total;
    const auto col = static_cast<uint32_t>(second ? head * hd : (p.heads2 + head) * hd);
    const auto v_at = static_cast<uint32_t>(p.heads * hd);  // v's columns after k's
    for (uint32_t i = lane; i < hd; i += kWarp) {
      float sum = 0.0f, v = 0.0f;
      for (int k = 0; k < p.splits; ++k) {
        sum += p.partial[k * all + row + col + i];
        if (store) v += p.partial[k * all + row + col + v_at + i];
      }
      x[i] = sum;
      if (store) p.v_out[task * hd + i] = v;
    }
    __syncwarp();  // the head's sums, written by every lane, are visible to all
  }
  float ss = 0;
  for (int64_t i = lane; i < hd; i += kWarp) ss += x[i] * x[i];
  const float inv = rsqrtf(warp_sum(ss) / static_cast<float>(hd) + p.eps);
  const bool q8 = p.kv_kind == 2;
  const int64_t cache_at = store && !q8 ? p.slots[t] * heads * hd + (task % heads) * hd : 0;
  auto put = [&](int64_t i, float y) {
    x[i] = y;
    if (!store || q8) return;
    const float v = p.v[task * hd + i];
    if (p.kv_kind == 1) {
      static_cast<__half*>(p.k_cache)[cache_at + i] = __float2half_rn(y);
      static_cast<__half*>(p.v_cache)[cache_at + i] = __float2half_rn(v);
    } else {
      static_cast<float*>(p.k_cache)[cache_at + i] = y;
      static_cast<float*>(p.v_cache)[cache_at + i] = v;
    }
  };
  // All reads of x for the sum are done (warp_sum synchronises the warp); each lane now
  // reads and writes only its own elements.
  auto rotate = [&](int64_t j, float cf, float sf) {
    const int64_t ia = p.neox ? j : 2 * j, ib = p.neox ? j + p.half : 2 * j + 1;
    const float a = x[ia] * inv * norm_w[ia], b = x[ib] * inv * norm_w[ib];
    put(ia, a * cf - b * sf);
    put(ib, a * sf + b * cf);
  };
#pragma unroll
  for (int k = 0; k < kPairs; ++k)
    if (lane + kWarp * k < p.half) rotate(lane + kWarp * k, cs[k], sn[k]);
  for (int64_t j = lane + kWarp * kPairs; j < p.half; j += kWarp) {  // longer heads than attention takes
    float cf, sf;
    rope_angle(p, t, j, &cf, &sf);
    rotate(j, cf, sf);
  }
  for (int64_t i = 2 * p.half + lane; i < hd; i += kWarp) put(i, x[i] * inv * norm_w[i]);  // not rotated
  if (!store || !q8) return;
  __syncwarp();  // the head's rotated values, written by every lane, are visible to all
  const int64_t row = heads * hd, at = (task % heads) * hd;
  auto* kd = static_cast<uint8_t*>(p.k_cache) + p.slots[t] * kv_q8_row_bytes(row);
  auto* vd = static_cast<uint8_t*>(p.v_cache) + p.slots[t] * kv_q8_row_bytes(row);
  for (int64_t i = lane; i < hd; i += kWarp) {  // hd % 32 == 0: whole groups, whole warps
    warp_store_kv_q8(x[i], kd, row, at + i);
    warp_store_kv_q8(p.v[task * hd + i], vd, row, at + i);
  }
}

}  // namespace

void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  const auto rows = static_cast<unsigned>(p.rows);
  static const bool slices = [] {  // HEARTH_CUDA_NORM_SLICES=0: the block kernel (experiments)
    const char* e = std::getenv("HEARTH_CUDA_NORM_SLICES");
    return !(e && e[0] == '0');
  }();
  const bool in_place = p.out < p.x + p.rows * p.dim && p.x < p.out + p.rows * p.dim;
  if (p.dim <= 256) {  // short rows (per-head norms): a warp each
    HEARTH_LAUNCH(rms_norm_warp_kernel, grid_for(p.rows * kWarp, 256), 256, 0, stream, p);
  } else if (slices && p.slices && p.rows == 1 && !p.add && !in_place && p.dim % 32 == 0 && p.dim <= 8192) {
    const dim3 grid(static_cast<unsigned>((p.dim + 255) / 256), 1);
    if (p.dim <= 1024) HEARTH_LAUNCH(rms_norm_slice_kernel<4>, grid, 256, 0, stream, p);
    else if (p.dim <= 2048) HEARTH_LAUNCH(rms_norm_slice_kernel<8>, grid, 256, 0, stream, p);
    else if (p.dim <= 4096) HEARTH_LAUNCH(rms_norm_slice_kernel<16>, grid, 256, 0, stream, p);
    else HEARTH_LAUNCH(rms_norm_slice_kernel<32>, grid, 256, 0, stream, p);
  } else if (p.dim <= 1024) {  // a block a row, values in registers; whole warps (q needs them)
    HEARTH_LAUNCH((rms_norm_block_kernel<1>), rows, static_cast<unsigned>((p.dim + 31) / 32 * 32), 0, stream, p);
  } else if (p.dim <= 2048) {
    HEARTH_LAUNCH((rms_norm_block_kernel<2>), rows, 1024, 0, stream, p);
  } else if (p.dim <= 4096) {
    HEARTH_LAUNCH((rms_norm_block_kernel<4>), rows, 1024, 0, stream, p);
  } else if (p.dim <= 8192) {
    HEARTH_LAUNCH((rms_norm_block_kernel<8>), rows, 1024, 0, stream, p);
  } else {
    HEARTH_LAUNCH(rms_norm_long_kernel, rows, 1024, 0, stream, p);
  }
  HEARTH_CUDA_LAUNCHED();
}

int64_t rope_split_launches() { return g_rope_split_launches.load(); }

void launch_rope(const RopeParams& p, cudaStream_t stream) {
  if (p.n * p.half == 0 && !p.norm_w) return;
  if (p.partial) {
    HEARTH_ASSERT(p.norm_w && p.x2 && p.k_cache && p.v_out && p.splits >= 1 &&
                  p.n * (p.heads2 + 2 * p.heads) * p.head_dim * p.splits < (int64_t{1} << 31));
    g_rope_split_launches.fetch_add(1);
  }
  if (p.norm_w) {
    HEARTH_LAUNCH(norm_rope_kernel, grid_for(p.n * (p.heads + p.heads2) * kWarp, 128), 128, 0, stream, p);
  } else {
    HEARTH_LAUNCH(rope_kernel, grid_for(p.n * p.half, 128), 128, 0, stream, p);
  }
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace hearth::cuda
