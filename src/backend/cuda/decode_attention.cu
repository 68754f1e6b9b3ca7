// Decode attention for steps of a few tokens per sequence and several sequences, on the
// tensor cores, from the paged f16 or q8_0 cache (the backend's choice on sm_90 for steps of
// 1-64 tokens, at most two a sequence; docs/benchmarks_cuda_attention.md has its figures).
//
// One block of W warps per (token, kv head, key split); grid x is the kv head, so the blocks
// of one token, which read the same cache rows, start together. The block's 16 query rows are the
// GQA group's heads of that token (group <= 16; rows past it are zero and never written),
// so every key and value row is loaded once for all heads that share it. Keys are cut into
// 16-key tiles counted from key 0 (only the sequence's last tile is partial); a split takes
// a run of tiles and its warps take every W-th of them. Each warp is its own pipeline: it
// gathers its tiles from the paged cache into its own shared-memory stages with cp.async
// (AttentionParams::stages of them in flight, 16-byte chunks, zero-filled past the last
// key), waits on its own copy groups and meets the other warps only at the end, so no block
// barrier stalls a warp's loads. Per tile, S = Q K^T and O += P V are mma.sync m16n8k16
// (f16 in, f32 accumulate, fragments by ldmatrix from rows padded by 16 bytes, as in
// flash_attention.cu), with an online softmax per row (base 2, log2(e) folded into the
// query scale). An 8-bit tile is staged raw (int8 values and f16 scales) and converted
// by its warp into an f16 tile before the products: 1.06 bytes an element cross the bus.
//
// The warps' states are merged in shared memory; with one split that is the output (and
// optionally its 8-bit quantization for o_proj, AttentionParams::out_q), otherwise (max,
// sum, acc) go to the partial buffers and the last block of a (token, kv head) to finish
// combines the splits (the scheme of attention.cu, in the same launch). The split count is
// a function of the batch shape and the context's power-of-two bucket only
// (decode_attention_splits), so decode steps keep their launch and CUDA graph. The backend
// asks for as many blocks as are resident at once (2 an SM at head_dim 128, 3 stages): a
// second wave starts with empty pipelines, and each split adds partials and a combine
// (H200, 8B shape, 576 keys, this kernel with grid x = token, each launch timed alone, its
// launch gap included: 32 sequences 33.5 us at 1 split, 43.4 at 2, 48.3 at 3; 8 sequences
// 22.5 us at 3 splits, 32.4 at 9, 38.7 at 16).
//
// Cache rows that predate the step are requested before pdl_wait (the argument of
// attention.cu: a sequence has at most n tokens in the step, so keys below position + 1 - n
// were written before this kernel's predecessors ran; positions and block tables are step
// data, copied in before the step's first kernel). A warp whose first tiles reach a newer
// key waits first.
#include <algorithm>
#include <atomic>
#include <cmath>

#include "backend/cuda/attention_splits.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"
#include "backend/cuda/ptx.cuh"

namespace hearth::cuda {
namespace {

// W, the warps a block: 4, or 8 where blocks of 4 would fill at most half the
// multiprocessors (the backend's choice, AttentionParams::warps): one sequence is 8 kv heads
// x 2 splits, 16 blocks on 132 multiprocessors, and with 8 warps each warp's chain of tiles
// (load, wait, products) is half as long. H100, 8B Q4_K_M tg128 378 / 384 -> 395 / 393 tok/s,
// Q4_0 417 -> 429; 8 sequences keep 4 (8: 1,751 -> 1,728; docs/benchmarks_cuda_decode.md).
constexpr int kRows = 16;  // query rows of a block: the group's heads, zero-padded
constexpr int kTile = 16;  // keys a warp takes at a time
constexpr float kLog2e = 1.4426950408889634f;

std::atomic<int64_t> g_launches{0};

// The shared memory of one kernel shape: the Q tile [kRows][kStride] halves, then each
// warp's area: f16 stages [stages][K, V][kTile][kStride] halves; Q8: raw stages
// [stages][K, V][kTile][HD] int8, [stages][K, V][kTile][HD / 32] f16 scales, then one f16
// tile pair [K, V][kTile][kStride] the raw stage is converted into. After the loop the
// warp areas hold the merge: o [W][kRows][HD] floats, then (max, sum) [W][kRows][2].
template <int HD, bool Q8, int W>
struct Layout {
  static constexpr int kStride = HD + 8;                     // halves: 8 rows hit distinct banks
  static constexpr int kQ = kRows * kStride * 2;             // bytes
  static constexpr int kF16Tiles = 2 * kTile * kStride * 2;  // bytes of a K and a V tile in f16
  static constexpr int kRawValues = 2 * kTile * HD;          // bytes
  static constexpr int kRawScales = 2 * kTile * (HD / 32) * 2;
  static constexpr int kStage = Q8 ? kRawValues + kRawScales : kF16Tiles;
  __host__ __device__ static constexpr int warp_bytes(int stages) { return stages * kStage + (Q8 ? kF16Tiles : 0); }
  static constexpr int kMerge = W * kRows * (HD + 2) * 4;
  __host__ __device__ static constexpr int smem(int stages) {
    const int warps = W * warp_bytes(stages);
    return kQ + (warps > kMerge ? warps : kMerge);
  }
};


// Waits until at most `pending` (0..3) of this thread's newest groups are still in flight.
__device__ __forceinline__ void cp_async_wait_pending(int pending) {
  switch (pending) {
    case 0: cp_async_wait<0>(); break;
    case 1: cp_async_wait<1>(); break;
    case 2: cp_async_wait<2>(); break;
    default: cp_async_wait<3>(); break;
  }
}

template <int HD, bool Q8, int W>
__global__ void __launch_bounds__(W * kWarp) decode_attention_kernel(const AttentionParams p) {
  using L = Layout<HD, Q8, W>;
  constexpr int kWarps = W, kThreads = W * kWarp;
  constexpr int S = L::kStride, kChunks = HD / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  __half* q_s = reinterpret_cast<__half*>(smem);  // [kRows][S]
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int stages = p.stages;
  unsigned char* area = smem + L::kQ + warp * L::warp_bytes(stages);

  const int g = blockIdx.x, split = blockIdx.z;  // x: kv heads, so that the blocks of a token start together
  const int64_t t = blockIdx.y;
  const int group = p.n_heads / p.n_kv_heads;
  const int h0 = g * group;
  const int n_keys = p.positions[t] + 1;
  const int n_tiles = (n_keys + kTile - 1) / kTile;
  const int per = (n_tiles + p.n_splits - 1) / p.n_splits;
  const int tile_begin = split * per, tile_end = min(n_tiles, tile_begin + per);
  // This warp's tiles: tile_begin + warp + kWarps * i for i < count.
  const int count = tile_end - tile_begin > warp ? (tile_end - tile_begin - warp + kWarps - 1) / kWarps : 0;

  const int32_t* table = p.block_tables + p.table_offset[t];
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * HD;
  const int64_t q8_row = kv_q8_row_bytes(kv_row);
  auto slot_of = [&](int key) {
    return static_cast<int64_t>(table[key / p.block_size]) * p.block_size + key % p.block_size;
  };
  // Where blocks hold whole tiles (block_size a multiple of 16), a tile's keys are the
  // consecutive slots from its first key's: one block-table read a tile, made an iteration
  // before the tile is requested (next_first below), so the request does not wait on it.
  const bool whole_tiles = p.block_size % kTile == 0;
  auto first_slot = [&](int i) -> int64_t {
    return whole_tiles && i < count ? slot_of((tile_begin + warp + kWarps * i) * kTile) : 0;
  };

  // Requests the warp's tile i into stage i % stages and commits one copy group (empty
  // past the warp's last tile, so that group i is always the i-th committed); `first` is
  // first_slot(i).
  auto load_tile = [&](int i, int64_t first) {
    const auto slot = [&](int kb, int r) { return whole_tiles ? first + r : slot_of(kb + r); };
    if (i < count) {
      const int kb = (tile_begin + warp + kWarps * i) * kTile;
      unsigned char* st = area + (i % stages) * L::kStage;
      if constexpr (Q8) {
        const auto* kq = static_cast<const uint8_t*>(p.k_cache) + g * HD;
        const auto* vq = static_cast<const uint8_t*>(p.v_cache) + g * HD;
        constexpr int kQChunks = HD / 16;  // 16-byte chunks of a row's values
        const int64_t scale_at = kv_row + g * (HD / 16) - g * HD;  // a row's scales, from its values
        constexpr int kPieces = kTile * (kQChunks + 1);  // a row's value chunks, then its scales
#pragma unroll
        for (int it = 0; it < (kPieces + kWarp - 1) / kWarp; ++it) {
          const int j = lane + it * kWarp;
          if (j >= kPieces) break;
          const int r = j / (kQChunks + 1), c = j % (kQChunks + 1), key = kb + r;
          const bool valid = key < n_keys;
          const int64_t at = valid ? slot(kb, r) * q8_row : 0;
          if (c < kQChunks) {
            const uint32_t dst = smem_addr(st + r * HD + c * 16);
            cp_async16(dst, kq + at + c * 16, valid);
            cp_async16(dst + kTile * HD, vq + at + c * 16, valid);
          } else {
            const uint32_t dst = smem_addr(st + L::kRawValues + r * (HD / 16));
            cp_async_small<HD / 16>(dst, kq + at + scale_at, valid);
            cp_async_small<HD / 16>(dst + kTile * (HD / 16), vq + at + scale_at, valid);
          }
        }
      } else {
        const __half* kc = static_cast<const __half*>(p.k_cache) + g * HD;
        const __half* vc = static_cast<const __half*>(p.v_cache) + g * HD;
        auto* ks = reinterpret_cast<__half*>(st);
#pragma unroll
        for (int it = 0; it < kTile * kChunks / kWarp; ++it) {
          const int j = lane + it * kWarp;
          const int r = j / kChunks, c = j % kChunks, key = kb + r;
          const bool valid = key < n_keys;
          const int64_t off = valid ? slot(kb, r) * kv_row + c * 8 : 0;
          const uint32_t dst = smem_addr(ks + r * S + c * 8);
          cp_async16(dst, kc + off, valid);
          cp_async16(dst + kTile * S * 2, vc + off, valid);
        }
      }
    }
    cp_async_commit();
  };

  // The first stages' rows are requested before pdl_wait unless one of them may have been
  // written in this step (at or past old_end).
  const int old_end = n_keys - static_cast<int>(p.n);
  const int first_n = min(count, stages);
  const bool late = first_n > 0 && (tile_begin + warp + kWarps * (first_n - 1) + 1) * kTile > old_end;
  if (!late)
    for (int i = 0; i < stages; ++i) load_tile(i, first_slot(i));
  pdl_begin();
  if (late)
    for (int i = 0; i < stages; ++i) load_tile(i, first_slot(i));
  int64_t next_first = first_slot(stages);

  // The queries as f16, scaled; rows past the group are zero.
  const float qscale = p.scale * kLog2e;
  for (int i = threadIdx.x; i < kRows * (HD / 4); i += kThreads) {
    const int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < group) v = *reinterpret_cast<const float4*>(p.q + (t * p.n_heads + h0 + r) * HD + c);
    auto* dst = reinterpret_cast<uint32_t*>(q_s + r * S + c);
    dst[0] = pack_half2(v.x * qscale, v.y * qscale);
    dst[1] = pack_half2(v.z * qscale, v.w * qscale);
  }
  __syncthreads();

  // This lane's rows: lane / 4 + 8 * h; [i][2 * h + e] indexes the accumulators of row h.
  float o[HD / 8][4], mx[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  const uint32_t q_addr = smem_addr(q_s + (lane % 16) * S + (lane / 16) * 8);

  for (int i = 0; i < count; ++i) {
    cp_async_wait_pending(stages - 1);  // group i has landed (this lane's copies)
    __syncwarp();                       // and every lane's
    unsigned char* st = area + (i % stages) * L::kStage;
    const __half* kt = reinterpret_cast<const __half*>(st);
    if constexpr (Q8) {  // the raw stage -> the warp's f16 tiles, 8 elements (one scale) a step
      __half* f = reinterpret_cast<__half*>(area + stages * L::kStage);
      const auto* rq = reinterpret_cast<const int8_t*>(st);
      const auto* rd = reinterpret_cast<const __half*>(st + L::kRawValues);
#pragma unroll 4
      for (int it = 0; it < 2 * kTile * kChunks / kWarp; ++it) {
        const int j = lane + it * kWarp;
        const int r = j / kChunks, c = j % kChunks;  // r < kTile: keys, else values
        const uint2 raw = *reinterpret_cast<const uint2*>(rq + r * HD + c * 8);
        const uint4 out = kv_q8_to_f16x8(raw, __half2half2(rd[r * (HD / 32) + c / 4]));
        *reinterpret_cast<uint4*>(f + r * S + c * 8) = out;
      }
      __syncwarp();
      kt = f;
    }
    const __half* vt = kt + kTile * S;

    // S = Q K^T over the tile's 16 keys: two 16x8 accumulator tiles (keys 0-7, 8-15).
    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    const uint32_t k_addr = smem_addr(kt + (lane % 8 + (lane / 16) * 8) * S + ((lane / 8) % 2) * 8);
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[4], b[4];
      ldmatrix_x4(a, q_addr + kk * 32);
      ldmatrix_x4(b, k_addr + kk * 32);
      mma_16816(s[0], a, b[0], b[1]);
      mma_16816(s[1], a, b[2], b[3]);
    }
    const int kb = (tile_begin + warp + kWarps * i) * kTile;
    if (kb + kTile > n_keys) {  // the sequence's last tile: keys past it are zero rows
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (kb + j * 8 + 2 * (lane % 4) + (e & 1) >= n_keys) s[j][e] = -INFINITY;
    }

    // Online softmax; every tile has a valid key, so the new max is finite.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float m_new = fmaxf(mx[h], fmaxf(fmaxf(s[0][2 * h], s[0][2 * h + 1]), fmaxf(s[1][2 * h], s[1][2 * h + 1])));
      m_new = quad_max(m_new);
      const float c = fast_exp2(mx[h] - m_new);
      mx[h] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        s[j][2 * h] = fast_exp2(s[j][2 * h] - m_new);
        s[j][2 * h + 1] = fast_exp2(s[j][2 * h + 1] - m_new);
        sum += s[j][2 * h] + s[j][2 * h + 1];
      }
      l[h] = l[h] * c + sum;  // this lane's columns; summed over the quad at the end
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) o[d][2 * h] *= c, o[d][2 * h + 1] *= c;
    }

    // O += P V: the two accumulator tiles of S are one 16x16 A fragment; V rows are keys,
    // so ldmatrix with transposition gives the col-major B.
    const uint32_t pa[4] = {pack_half2(s[0][0], s[0][1]), pack_half2(s[0][2], s[0][3]), pack_half2(s[1][0], s[1][1]),
                            pack_half2(s[1][2], s[1][3])};
    const uint32_t v_addr = smem_addr(vt + (lane % 8 + ((lane / 8) % 2) * 8) * S + (lane / 16) * 8);
#pragma unroll
    for (int dn = 0; dn < HD / 16; ++dn) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, v_addr + dn * 32);
      mma_16816(o[2 * dn], pa, b[0], b[1]);
      mma_16816(o[2 * dn + 1], pa, b[2], b[3]);
    }
    __syncwarp();  // every lane is done with the stage before it is requested again
    load_tile(i + stages, next_first);
    next_first = first_slot(i + stages + 1);
  }
  cp_async_wait<0>();

  // Merge the warps' states (over the stages: every warp must be done with them).
  __syncthreads();
  float* red_o = reinterpret_cast<float*>(smem + L::kQ);  // [kWarps][kRows][HD]
  float* red_ml = red_o + kWarps * kRows * HD;             // [kWarps][kRows][2]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = lane / 4 + 8 * h;
    const float sum = quad_sum(l[h]);
    if (lane % 4 == 0) red_ml[(warp * kRows + r) * 2] = mx[h], red_ml[(warp * kRows + r) * 2 + 1] = sum;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d)
      *reinterpret_cast<float2*>(red_o + (warp * kRows + r) * HD + d * 8 + 2 * (lane % 4)) =
          make_float2(o[d][2 * h], o[d][2 * h + 1]);
  }
  __syncthreads();
  // A warp is 32 elements of one head (HD % 32 == 0): one 32-block to quantize.
  for (int i = threadIdx.x; i < group * HD; i += kThreads) {
    const int j = i / HD, d = i % HD;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, red_ml[(w * kRows + j) * 2]);
    float sum = 0.0f, a = 0.0f;
    if (m != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = fast_exp2(red_ml[(w * kRows + j) * 2] - m);  // 0 for a warp without tiles
        sum += red_ml[(w * kRows + j) * 2 + 1] * f;
        a += red_o[(w * kRows + j) * HD + d] * f;
      }
    }
    store_split_state(p, t * p.n_heads + h0 + j, d, HD, split, m, sum, a);
  }
  // The last split block of this (token, kv head) combines all splits.
  if (p.n_splits == 1 || !last_split_block(p.split_count + t * p.n_kv_heads + g, p.n_splits)) return;
  for (int i = threadIdx.x; i < group * HD; i += kThreads)
    combine_splits<true>(p, t * p.n_heads + h0 + i / HD, i % HD, HD);
}

template <int HD, bool Q8, int W>
void launch_for(const AttentionParams& p, cudaStream_t stream) {
  const int smem = Layout<HD, Q8, W>::smem(p.stages);
  const auto kernel = decode_attention_kernel<HD, Q8, W>;
  static int smem_set = 0;  // the opt-in already granted to this kernel (host side, one device)
  if (smem > smem_set) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "cudaFuncSetAttribute (decode attention)", __FILE__, __LINE__);
    smem_set = smem;
  }
  const dim3 grid(static_cast<unsigned>(p.n_kv_heads), static_cast<unsigned>(p.n), static_cast<unsigned>(p.n_splits));
  HEARTH_LAUNCH(kernel, grid, dim3(W * kWarp), static_cast<size_t>(smem), stream, p);
  HEARTH_CUDA_LAUNCHED();
}

template <int HD, bool Q8>
void launch_for(const AttentionParams& p, cudaStream_t stream) {
  p.warps == 8 ? launch_for<HD, Q8, 8>(p, stream) : launch_for<HD, Q8, 4>(p, stream);
}

template <int W>
int64_t smem_for(int64_t head_dim, bool q8, int stages) {
  if (head_dim == 64) return q8 ? Layout<64, true, W>::smem(stages) : Layout<64, false, W>::smem(stages);
  if (head_dim == 128) return q8 ? Layout<128, true, W>::smem(stages) : Layout<128, false, W>::smem(stages);
  return 0;
}

}  // namespace

bool decode_attention_applies(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int32_t kind) {
  const int64_t group = n_heads / n_kv_heads;
  return (kind == 1 || kind == 2) && (head_dim == 64 || head_dim == 128) && group >= 1 && group <= kRows;
}

int64_t decode_attention_smem(int64_t head_dim, int32_t kind, int stages, int warps) {
  return warps == 8 ? smem_for<8>(head_dim, kind == 2, stages) : smem_for<4>(head_dim, kind == 2, stages);
}

int32_t decode_attention_splits(int64_t n_tokens, int64_t n_kv_heads, int64_t ctx_bucket, int64_t slots,
                                int min_keys) {
  int64_t s = slots / std::max<int64_t>(1, n_tokens * n_kv_heads);
  s = std::min({s, std::max<int64_t>(1, ctx_bucket / std::max(min_keys, kTile)), int64_t{64}});
  return static_cast<int32_t>(std::max<int64_t>(s, 1));
}

int64_t decode_attention_launches() { return g_launches.load(); }

void launch_decode_attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  if (!decode_attention_applies(p.n_heads, p.n_kv_heads, p.head_dim, p.kind) || p.stages < 1 || p.stages > 4 ||
      (p.warps != 0 && p.warps != 4 && p.warps != 8))
    fail("decode attention: no kernel for head_dim " + std::to_string(p.head_dim) + ", group " +
         std::to_string(p.n_heads / p.n_kv_heads) + ", cache kind " + std::to_string(p.kind) + ", " +
         std::to_string(p.stages) + " stages, " + std::to_string(p.warps) + " warps");
  g_launches.fetch_add(1);
  if (p.head_dim == 64) p.kind == 2 ? launch_for<64, true>(p, stream) : launch_for<64, false>(p, stream);
  else p.kind == 2 ? launch_for<128, true>(p, stream) : launch_for<128, false>(p, stream);
}

}  // namespace hearth::cuda
