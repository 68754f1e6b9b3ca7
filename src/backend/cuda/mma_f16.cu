// Tensor-core products of quantized weights for batched decode (2..64 tokens), second
// form: the weight is decoded straight into f16 mma fragments in registers (scale and min
// applied there), the activations are f16 in shared memory, and mma.sync m16n8k16 adds
// into f32 accumulators. out[n, rows] = x[n, cols] @ w^T, every weight byte read once.
//
// Why (mma.cu, docs/benchmarks_cuda_batched.md): the int8 kernel decoded each 256-element chunk into an
// int8 tile in shared memory and then paid 5 float operations per product element and
// 32-element block (w_scale * x_d * int + w_min * x_s), for every token; with the tile and
// its scales it held 60 KiB of shared memory for one chunk in flight, so a block waited
// for every chunk and 8B-shaped products read 0.7-1.1 TB/s. Here the scale and min are
// applied once per weight element (amortised over the tokens) and once per activation
// element (amortised over a block's 128 rows), so the per-token work is the mma alone, and
// with no decoded tile a block keeps 1-4 chunks of weight bytes in flight (kStages, from
// the shared memory budget of two blocks an SM, three at up to 8 tokens, and up to 32 in
// the tensor-copy form where two ring slots still fit: Q4_K, and Q4_0/Q5_K at 9-16).
//
// Layout: a block of 8 warps owns 128 rows (warp w: rows 16w..16w+15, every token tile of
// 8) and a range of 256-element K chunks (grid.y splits K; the splits' partial sums are
// then added in a fixed order by mma_f16_reduce_kernel). Per chunk:
//  - its weight bytes, each row's stored chunk as is, come through a ring of kStages slots
//    completing on the slot's mbarrier, requested kStages - 1 chunks ahead, the first ones
//    before pdl_wait (weights are constant): in the tensor-copy form (the default where
//    every weight's rows are 16-byte multiples, and from 17 tokens x has its XHalf copy)
//    thread 0 asks for all 128 rows' chunk with
//    one 2D tensor copy; in the row-copy form thread r asks for row r's with a bulk copy;
//  - its activations as f16 q * d: in the tensor-copy form from 17 tokens on (kXCopy),
//    thread 0 asks for the chunk's rows of every token of the XHalf copy (MmaParams::xh,
//    made by whichever launch quantized x) with one bulk copy, a chunk ahead; otherwise the
//    int8 q and d (launch_quantize_x) are loaded into registers a chunk ahead and converted
//    by every block;
//  - each row's scale (two for Q6_K's 16-element halves) and min per 32-element block, as
//    f16 pairs: in the row-copy form two threads a row write them to a table in shared
//    memory; in the tensor-copy form lane (g, t) works out those of blocks 2t and 2t+1 of
//    its two rows and the quad's lanes trade them by shuffles;
//  - activations (and table) are double buffered, so the block meets one barrier a chunk;
//  - lane (g, t) of a warp decodes, per 32-element block, elements 4t..4t+3 and
//    16+4t..16+4t+3 of rows g and g+8: in m16n8k16's A layout those are k = 2t, 2t+1, 2t+8,
//    2t+9 of the two k16 halves, any order of k being fine as long as the activations'
//    B fragments take the same: elements (4t, 4t+1 | 4t+2, 4t+3) in the row-copy form,
//    (4t, 4t+2 | 4t+1, 4t+3) in the tensor-copy form, the order in which a 4-bit word's
//    nibbles come out of a mask (the f16 activations are stored in that order): one
//    8-byte load per half either way.
// Values are made exact in f16 (1024 + v by a byte permute or a mask-and-or, minus 1024 +
// offset), then scaled with one rounding: w = fma(v, scale, min) in f16, as the prompt
// path's f16 tiles. Q4_K in the tensor-copy form decodes blocks 2p and 2p+1 (low and high
// nibbles of the same bytes) from one load.
// Up to three weights of one type and row length run in one launch (q/k/v, gate/up:
// MmaParams' data2/data3), each from its own row tile on.
// Types: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, and MLX 4-bit in the tensor-copy form only: its
// scales and biases live in arrays beside the rows, so each thread brings one row's
// scales or biases of a chunk into an area beside the ring slot by cp.async (4 or 8 bytes;
// other group sizes and scale types stay with mma.cu), and a word's 8 values in order are
// put in the activations' order by one byte permute. sm_90 only. HEARTH_CUDA_MMA_F16=0
// sends everything to mma.cu; HEARTH_CUDA_MMA_TMA=0 keeps the row-copy form (session 5's
// kernel) for every weight but MLX (mma.cu).
//
// Measurements (docs/benchmarks_cuda_batched.md, docs/benchmarks_cuda_decode.md):
// - mma2, mma6 (H200, 24576 x 4096 Q4_K): the tensor-copy form 8 tokens 36.8 -> 29.7 us,
//   32: 62.4 -> 44.3; bound by latency with 3 warps a scheduler (tensor pipe 22% busy),
//   hence the third block an SM; cutting decode instructions alone moved nothing.
// - Session 10 (H100): leaving the activation conversion out took 43.0 -> 37.2 us at 32
//   tokens, hence the XHalf copy (38.1 us); MLX 4-bit scale loads from global memory a
//   chunk ahead took 50.9 us at 8 tokens against 30.4 without them, by cp.async 41.3.
#include <cuda.h>  // CUtensorMap (the encoder is reached through the runtime)
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/mma_f16_decode.cuh"
#include "backend/cuda/ptx.cuh"
#include "backend/cuda/quant_units.cuh"
#include "backend/cuda/tensor_map.h"

namespace hearth::cuda {
namespace {

using namespace mma_f16_decode;

constexpr int kThreads = 256;
constexpr int kRows = 128;                    // weight rows per block: 16 per warp
constexpr int kChunk = 256;                   // K elements per chunk
constexpr int kXPitch = 2 * kChunk + 32;      // bytes per token of the f16 activations: 8-byte
                                              // loads of 4 tokens x 4 lanes hit distinct banks
constexpr int kScalePitch = 9;                // words per row of the scale table (8 blocks + 1)
// Shared memory of a block for kB blocks an SM: 228 KiB an SM, 1 KiB reserved a block and
// 128 bytes of static barriers (the tensor-copy form counts exactly; the row-copy form kept
// its rounder figures).
__host__ __device__ constexpr size_t smem_budget(int kB, bool kTma) {
  if (kTma) return (228 * 1024) / kB - 1024 - 128;
  return kB == 3 ? 74 * 1024 : 112 * 1024;
}

// MLX 4-bit: the chunk's scales, then its biases, of every row of the block (at most 8
// bytes a row: two or four f16/bf16, or two f32; mma_f16_applies), beside each ring slot.
template <class U>
constexpr int kScaleArea = std::is_same_v<U, UnitMlx4> ? 2 * kRows * 8 : 0;
template <class U>
__host__ __device__ constexpr size_t stage_bytes() {
  return static_cast<size_t>(kRows) * Fmt<U>::kPitch + kScaleArea<U>;
}
// Two buffers of activations, and of scale tables (the row-copy form only: the
// tensor-copy form's warps take their scales from the ring).
template <int NT, bool kTma>
__host__ __device__ constexpr size_t fixed_bytes() {
  return 2 * (static_cast<size_t>(8 * NT) * kXPitch + (kTma ? 0 : kRows * kScalePitch * 4));
}
// Ring slots: as many as fit in the budget, 2..5.
template <class U, int NT, int kB, bool kTma>
__host__ __device__ constexpr int stages() {
  const size_t s = (smem_budget(kB, kTma) - fixed_bytes<NT, kTma>()) / stage_bytes<U>();
  return s < 2 ? 2 : s > 5 ? 5 : static_cast<int>(s);
}
template <class U, int NT, int kB, bool kTma>
__host__ __device__ constexpr size_t smem_bytes() {
  return fixed_bytes<NT, kTma>() + stages<U, NT, kB, kTma>() * stage_bytes<U>();
}


// The chunk's bytes [start, end) of a row, copied from the 16-byte boundary a0 at or below
// start (lead bytes before it) in `pieces` 16-byte lines (rows of 32-element types may end
// inside a chunk; the 16 bytes of padding after every weight cover the rounding up).
struct Span {
  const uint8_t* a0;
  int lead, pieces;
};
template <class U>
__device__ __forceinline__ Span chunk_span(const uint8_t* row, int64_t row_bytes, int64_t c) {
  const int64_t begin = c * Fmt<U>::kBytes, end = min(begin + Fmt<U>::kBytes, row_bytes);
  const auto s = reinterpret_cast<uintptr_t>(row + begin), e = reinterpret_cast<uintptr_t>(row + end);
  Span sp;
  sp.a0 = reinterpret_cast<const uint8_t*>(s & ~uintptr_t{15});
  sp.lead = static_cast<int>(s & 15);
  sp.pieces = static_cast<int>(((e + 15) & ~uintptr_t{15}) - (s & ~uintptr_t{15})) / 16;
  return sp;
}

// One weight of a merged launch (MmaParams' second and third): its rows, where they
// start among the launch's row tiles and among the partial sums' columns.
struct Segment {
  const uint8_t* data;
  float* out;
  int64_t rows, tile0, col0;
  int index;  // 0, 1 or 2: which of the launch's weights (its tensor map)
  const void* scales;  // MLX
  const void* biases;
};
__device__ __forceinline__ Segment segment_of(const MmaParams& p, int64_t tile) {
  const int64_t t1 = (p.w.rows + kRows - 1) / kRows, t2 = t1 + (p.rows2 + kRows - 1) / kRows;
  if (p.data3 && tile >= t2)
    return Segment{p.data3, p.out3, p.rows3, t2, p.w.rows + p.rows2, 2, p.scales3, p.biases3};
  if (p.data2 && tile >= t1) return Segment{p.data2, p.out2, p.rows2, t1, p.w.rows, 1, p.scales2, p.biases2};
  return Segment{p.w.data, p.out, p.w.rows, 0, 0, 0, p.w.scales, p.w.biases};
}

// One row's chunk into the ring, completing on bar (every row's thread arrives, with 0
// bytes for rows past the end).
__device__ __forceinline__ void copy_row(uint8_t* dst, const uint8_t* src, uint32_t bytes, uint64_t* bar) {
  mbar_expect_tx(bar, bytes);
  if (bytes) bulk_copy(dst, src, bytes, bar);
}

// The launch's weights as 2D tensors of 16-bit elements (rows x row_bytes / 2) for the
// tensor copy engine: one copy brings a chunk of all the block's rows (box kPitch bytes x
// kRows rows; rows past the end and bytes past a row's end arrive as zeros).
struct TensorMaps {
  CUtensorMap m[3];
};

// One box of a 2D tensor (coordinates: 16-bit element, row) into shared memory,
// completing on bar.
__device__ __forceinline__ void tensor_copy_2d(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  HEARTH_SM90_ASM(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::
          "r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(smem_addr(bar))
      : "memory");
}

// NT: tiles of 8 tokens (1, 2, 4 or 8).
// kB: blocks an SM (2, or 3 at up to 8 tokens: registers capped at 85).
// kTma: a chunk of the block's rows comes by one tensor copy (thread 0) instead of one
// bulk copy per row (threads 0..127): 128 small requests a chunk kept the copy engine
// from streaming (session 6, docs/benchmarks_cuda_batched.md).
template <class U, int NT, int kB, bool kTma>
__global__ void __launch_bounds__(kThreads, kB)
    mma_f16_kernel(const MmaParams p, const __grid_constant__ TensorMaps maps) {
  constexpr int kS = stages<U, NT, kB, kTma>(), kPitch = Fmt<U>::kPitch, kTok = 8 * NT;
  constexpr bool kMlx4 = std::is_same_v<U, UnitMlx4>;
  static_assert(!kMlx4 || kTma, "MLX 4-bit takes the tensor-copy form only");
  // The activations by bulk copies of the XHalf copy (from kXHalfMinTokens tokens).
  constexpr bool kXCopy = kTma && NT >= 4;
  static_assert(kXHalfMinTokens == 17, "kXCopy's token tiles");
  // Activation pieces (16 int8 of one token) a thread converts per chunk.
  constexpr int kXPer = (kTok * 16 + kThreads - 1) / kThreads;
  extern __shared__ __align__(128) int4 smem_raw[];
  __shared__ uint64_t full[kS];
  __shared__ uint64_t x_full[2];  // kXCopy: the activation buffers
  auto* ring = reinterpret_cast<uint8_t*>(smem_raw);                       // [kS][kRows][kPitch]
  auto* scale_ring = ring + kS * kRows * kPitch;                           // MLX: [kS][scales, biases][kRows][8]
  auto* xh_all = scale_ring + kS * kScaleArea<U>;                          // [2][kTok][kXPitch] f16
  auto* table_all = reinterpret_cast<uint32_t*>(xh_all + 2 * kTok * kXPitch);  // [2][kRows][kScalePitch]

  const Segment seg = segment_of(p, blockIdx.x);
  const int64_t rows = seg.rows, cols = p.w.cols, n = p.n, nb_row = cols / 32, row_bytes = p.w.row_bytes;
  const int64_t chunks = (cols + kChunk - 1) / kChunk, per_split = (chunks + p.splits - 1) / p.splits;
  const int64_t c_begin = blockIdx.y * per_split, c_end = min(chunks, c_begin + per_split);
  const int64_t count = max(c_end - c_begin, int64_t{0});
  const int64_t row0 = (blockIdx.x - seg.tile0) * kRows;
  const int tid = threadIdx.x;

  // Thread r < kRows copies row r of the block; every row's thread arrives on the slot's
  // barrier, so it completes once per chunk.
  const uint8_t* my_row = seg.data + min(row0 + tid, rows - 1) * row_bytes;
  const bool my_row_real = tid < kRows && row0 + tid < rows;
  // MLX: thread t asks for row t % kRows's scales (t < kRows) or biases of the chunk (S
  // bytes, S = 256 / group_size elements), one cp.async group a chunk, empty ones too, so
  // that a thread's groups and the chunks stay in step (its wait below counts on it).
  const int s_elem = p.w.scale_kind == 0 ? 4 : 2, s_bytes = kMlx4 ? kChunk / p.w.group_size * s_elem : 0;
  auto issue_scales = [&](int64_t i) {
    if constexpr (kMlx4) {
      if (i < count) {
        const int r = tid % kRows;
        const auto* src = static_cast<const uint8_t*>(tid < kRows ? seg.scales : seg.biases) +
                          min(row0 + r, rows - 1) * p.w.groups_per_row * s_elem + (c_begin + i) * s_bytes;
        const uint32_t dst = smem_addr(scale_ring + (i % kS) * kScaleArea<U> + tid * 8);
        if (s_bytes == 8) cp_async_small<8>(dst, src, true);
        else cp_async_small<4>(dst, src, true);
      }
      cp_async_commit();
    }
  };
  auto issue = [&](int64_t i) {  // chunk c_begin + i into slot i % kS
    issue_scales(i);
    if constexpr (kTma) {
      if (tid != 0) return;
      const int slot = static_cast<int>(i % kS);
      mbar_expect_tx(&full[slot], kRows * kPitch);
      // From the 16-byte boundary at or below the chunk (a box starting elsewhere faulted):
      // lead_of bytes before it, Q6_K's only; its pitch leaves room for them.
      tensor_copy_2d(ring + slot * kRows * kPitch, &maps.m[seg.index],
                     static_cast<int>(((c_begin + i) * Fmt<U>::kBytes & ~int64_t{15}) / 2), static_cast<int>(row0),
                     &full[slot]);
      return;
    }
    if (tid >= kRows) return;
    const int slot = static_cast<int>(i % kS);
    const Span sp = chunk_span<U>(my_row, row_bytes, c_begin + i);
    copy_row(ring + (slot * kRows + tid) * kPitch, sp.a0, my_row_real ? 16u * sp.pieces : 0u, &full[slot]);
  };
  // Where a row's chunk c starts in its ring slot (with tensor copies the same for every
  // row: row_bytes is a multiple of 16).
  auto lead_of = [&](const uint8_t* row, int64_t c) {
    return kTma ? static_cast<int>(c * Fmt<U>::kBytes & 15) : chunk_span<U>(row, row_bytes, c).lead;
  };
  auto blocks_in = [&](int64_t c) { return static_cast<int>(nb_row - c * 8 < 8 ? nb_row - c * 8 : 8); };

  // Activations of chunk c into registers: piece i = tid + k kThreads is token i / 16,
  // elements 16 (i % 16).. of the chunk; tokens past n read token n - 1 (never stored).
  int4 xq[kXPer];
  float xd[kXPer];
#pragma unroll
  for (int k = 0; k < kXPer; ++k) xq[k] = make_int4(0, 0, 0, 0), xd[k] = 0.0f;
  auto load_x = [&](int64_t c) {
    const int nbk = blocks_in(c);
#pragma unroll
    for (int k = 0; k < kXPer; ++k) {
      const int i = tid + k * kThreads, t = i / 16, piece = i % 16;
      const int64_t ts = t < n ? t : n - 1;
      if (i < kTok * 16 && piece < 2 * nbk) {
        xq[k] = *reinterpret_cast<const int4*>(p.xq + ts * cols + c * kChunk + 16 * piece);
        xd[k] = p.xd[ts * nb_row + c * 8 + piece / 2];
      }
    }
  };
  // Chunk c (= c_begin + i) made ready for its products in buffer i & 1: the activations as
  // f16 (from the registers of load_x) and the scale table (from the ring, once there).
  auto prepare = [&](int64_t i) {
    const int64_t c = c_begin + i;
    const int nbk = blocks_in(c), buf = static_cast<int>(i & 1);
    uint8_t* xh = xh_all + buf * (kTok * kXPitch);
#pragma unroll
    for (int k = 0; k < kXPer; ++k) {
      const int j = tid + k * kThreads, t = j / 16, piece = j % 16;
      if (j >= kTok * 16 || piece >= 2 * nbk) continue;
      const __half2 d2 = __float2half2_rn(xd[k]), off = __float2half2_rn(1152.0f);
      const uint32_t w[4] = {static_cast<uint32_t>(xq[k].x) ^ 0x80808080u, static_cast<uint32_t>(xq[k].y) ^ 0x80808080u,
                             static_cast<uint32_t>(xq[k].z) ^ 0x80808080u, static_cast<uint32_t>(xq[k].w) ^ 0x80808080u};
      uint32_t h[8];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        uint32_t lo, hi;
        bytes_to_h2<kTma>(w[e], lo, hi);  // 1024 + 128 + q
        h[2 * e] = h2_bits(__hmul2(__hsub2(bits_h2(lo), off), d2));
        h[2 * e + 1] = h2_bits(__hmul2(__hsub2(bits_h2(hi), off), d2));
      }
      auto* dst = reinterpret_cast<uint4*>(xh + t * kXPitch + 32 * piece);
      dst[0] = make_uint4(h[0], h[1], h[2], h[3]);
      dst[1] = make_uint4(h[4], h[5], h[6], h[7]);
    }
    if (i + 1 < count) load_x(c + 1);  // in flight during this chunk's products
    // Scales (row-copy form): thread 2r + h takes blocks 4h..4h+3 of row r.
    const int slot = static_cast<int>(i % kS);
    mbar_wait(&full[slot], static_cast<uint32_t>((i / kS) & 1));
    if constexpr (!kTma) {
      const int rr = tid / 2, kb0 = 4 * (tid & 1);
      if (row0 + rr < rows) {
        const int lead = lead_of(seg.data + (row0 + rr) * row_bytes, c);
        const uint8_t* raw = ring + (slot * kRows + rr) * kPitch + lead;
        uint32_t* tab = table_all + buf * (kRows * kScalePitch) + rr * kScalePitch;
#pragma unroll
        for (int pair = kb0 / 2; pair < kb0 / 2 + 2; ++pair) {
          uint32_t e[2] = {};
          block_scale_pair<U>(raw, pair, nbk, e);
          if (2 * pair < nbk) tab[2 * pair] = e[0];
          if (2 * pair + 1 < nbk) tab[2 * pair + 1] = e[1];
        }
      }
    }
  };

  const int warp = tid / kWarp, lane = tid % kWarp, g = lane / 4, t4 = lane % 4;
  // Up to 16 tokens the two k16 halves of a block add into separate accumulators (summed
  // at the end), so that consecutive mma.sync do not wait for each other.
  constexpr bool kSplitAcc = kTma && NT <= 2;
  float acc[NT][4], acc2[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[j][i] = acc2[j][i] = 0.0f;

  // kXCopy: chunk c_begin + i of every token's activations into buffer i & 1.
  auto issue_x = [&](int64_t i) {
    if (tid != 0) return;
    const auto bytes = static_cast<uint32_t>(n * kXPitch);
    mbar_expect_tx(&x_full[i & 1], bytes);
    bulk_copy(xh_all + (i & 1) * (kTok * kXPitch), p.xh + (c_begin + i) * n * kXHalfPitch, bytes, &x_full[i & 1]);
  };
  static_assert(kXPitch == 2 * kXHalfPitch, "the XHalf layout is the kernel's");

  // Weights first (before the previous kernel ends), kS - 1 chunks ahead.
  if (tid == 0) {
    for (int s = 0; s < kS; ++s) mbar_init(&full[s], kTma ? 1 : kRows);
    mbar_init(&x_full[0], 1), mbar_init(&x_full[1], 1);
    mbar_fence_init();
  }
  __syncthreads();
  for (int64_t i = 0; i < kS - 1 && i < count; ++i) issue(i);
  for (int64_t i = count; i < kS - 1; ++i) issue_scales(i);  // MLX: empty groups
  pdl_begin();
  if constexpr (kXCopy) {
    if (count > 0) issue_x(0);
  } else {
    if (count > 0) load_x(c_begin), prepare(0);
  }

  // This lane's two rows (g, g + 8 of the warp's 16) and where their chunks start.
  const int r_lo = 16 * warp + g, r_hi = r_lo + 8;
  const uint8_t* row_lo = seg.data + min(row0 + r_lo, rows - 1) * row_bytes;
  const uint8_t* row_hi = seg.data + min(row0 + r_hi, rows - 1) * row_bytes;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t c = c_begin + i;
    const int slot = static_cast<int>(i % kS), buf = static_cast<int>(i & 1);
    // Chunk i is prepared by every thread, and every thread is done with chunk i - 1's
    // slot and buffers, which chunks i + kS - 1 and i + 1 reuse. MLX: this thread's
    // scale copies of chunk i have landed (kS - 2 newer groups may be in flight).
    if constexpr (kMlx4) cp_async_wait<kS - 2>();
    __syncthreads();
    if (i + kS - 1 < count) issue(i + kS - 1);
    else issue_scales(i + kS - 1);  // MLX: an empty group
    if constexpr (kXCopy) {
      if (i + 1 < count) issue_x(i + 1);
      mbar_wait(&full[slot], static_cast<uint32_t>((i / kS) & 1));
      mbar_wait(&x_full[i & 1], static_cast<uint32_t>((i >> 1) & 1));
    }

    const int nbk = blocks_in(c);
    const uint8_t* raw_lo = ring + (slot * kRows + r_lo) * kPitch + lead_of(row_lo, c);
    const uint8_t* raw_hi = ring + (slot * kRows + r_hi) * kPitch + lead_of(row_hi, c);
    const uint8_t* xh = xh_all + buf * (kTok * kXPitch);
    const uint32_t* table = table_all + buf * (kRows * kScalePitch);
    // Tensor-copy form: lane (g, t4) works out the scales of blocks 2 t4 and 2 t4 + 1 of its
    // two rows (rows past the end came as zeros), and each lane takes those of the block
    // at hand from the lane of its quad that has them: no table, no shared memory for it
    // (so three blocks fit an SM up to 32 tokens).
    uint32_t ent[2][2] = {};
    if constexpr (kMlx4) {  // (scale, bias) of blocks 2 t4, 2 t4 + 1 as the (scale, min) pairs of the other types
      const uint8_t* area = scale_ring + slot * kScaleArea<U>;
      const int shift = 31 - __clz(p.w.group_size);
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int k = (32 * (2 * t4 + e)) >> shift, row = r ? r_hi : r_lo;
          const float sc = load_scale(area + row * 8, p.w.scale_kind, k);
          const float bi = load_scale(area + (kRows + row) * 8, p.w.scale_kind, k);
          ent[r][e] = h2_bits(__floats2half2_rn(sc, bi));
        }
    } else if constexpr (kTma) {
      block_scale_pair<U>(raw_lo, t4, nbk, ent[0]), block_scale_pair<U>(raw_hi, t4, nbk, ent[1]);
    }
    auto scales_of = [&](int kb, __half2& el, __half2& eh) {
      if constexpr (kTma) {
        el = bits_h2(__shfl_sync(0xffffffffu, ent[0][kb & 1], 4 * g + (kb >> 1)));
        eh = bits_h2(__shfl_sync(0xffffffffu, ent[1][kb & 1], 4 * g + (kb >> 1)));
      } else {
        el = bits_h2(table[r_lo * kScalePitch + kb]), eh = bits_h2(table[r_hi * kScalePitch + kb]);
      }
    };
    // The products of block kb's A fragments (both k16 halves) with every token tile, in the
    // tensor-copy form: each tile's first half, then the second, so the mma.sync of one
    // accumulator are NT apart (asm volatile keeps their order) or go to two accumulators.
    auto mmas = [&](int kb, const uint32_t (&a)[2][4]) {
#pragma unroll
      for (int hf = 0; hf < 2; ++hf)
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const uint2 b = *reinterpret_cast<const uint2*>(xh + (8 * j + g) * kXPitch + 64 * kb + 32 * hf + 8 * t4);
          mma_16816(kSplitAcc && hf == 1 ? acc2[j] : acc[j], a[hf], b.x, b.y);
        }
    };
    // Q4_K in the tensor-copy form: blocks 2pp and 2pp + 1 from the same words (low and high
    // nibbles). A nibble goes into an f16 by one mask-and-or (1024 + v, or 1024 + 16 v for
    // a high one; two a word: bytes 0 and 2, then 1 and 3 after a shift, hence that form's
    // order of k within each 4), made exact v by one fma, then v * scale + min.
    auto pair = [&](int pp) {
      const auto* ql = reinterpret_cast<const uint32_t*>(raw_lo + 16 + 32 * pp + 4 * t4);
      const auto* qh = reinterpret_cast<const uint32_t*>(raw_hi + 16 + 32 * pp + 4 * t4);
      const uint32_t wl[2] = {ql[0], ql[4]}, wh[2] = {qh[0], qh[4]};
#pragma unroll
      for (int sb = 0; sb < 2; ++sb) {
        const int kb = 2 * pp + sb;
        __half2 el, eh;
        scales_of(kb, el, eh);
        const __half2 s_lo = __low2half2(el), m_lo = __high2half2(el), s_hi = __low2half2(eh), m_hi = __high2half2(eh);
        const uint32_t mask = sb ? 0x00F000F0u : 0x000F000Fu;
        const __half2 mul = __float2half2_rn(sb ? 0.0625f : 1.0f), add = __float2half2_rn(sb ? -64.0f : -1024.0f);
        auto value = [&](uint32_t w) { return __hfma2(bits_h2((w & mask) | 0x64006400u), mul, add); };
        uint32_t a[2][4];
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          a[hf][0] = h2_bits(__hfma2(value(wl[hf]), s_lo, m_lo));
          a[hf][1] = h2_bits(__hfma2(value(wh[hf]), s_hi, m_hi));
          a[hf][2] = h2_bits(__hfma2(value(wl[hf] >> 8), s_lo, m_lo));
          a[hf][3] = h2_bits(__hfma2(value(wh[hf] >> 8), s_hi, m_hi));
        }
        mmas(kb, a);
      }
    };
    // One 32-element block: A for both k16 halves (rows g, g + 8), then every token tile.
    auto block = [&](int kb) {
      uint32_t vl[2], vh[2];
      block_values<U>(raw_lo, kb, t4, vl);
      block_values<U>(raw_hi, kb, t4, vh);
      __half2 el, eh;
      scales_of(kb, el, eh);
      const __half2 off = __float2half2_rn(1024.0f + Fmt<U>::kOffset);
      constexpr bool kTwoScales = std::is_same_v<U, UnitQ6_K>;
      const __half2 zero = __float2half2_rn(0.0f);
      const __half2 m_lo = kTwoScales ? zero : __high2half2(el), m_hi = kTwoScales ? zero : __high2half2(eh);
      uint32_t a[2][4];  // [k16 half][fragment register]
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const __half2 s_lo = hf == 1 && kTwoScales ? __high2half2(el) : __low2half2(el);
        const __half2 s_hi = hf == 1 && kTwoScales ? __high2half2(eh) : __low2half2(eh);
        uint32_t l0, l1, h0, h1;
        bytes_to_h2<kTma>(vl[hf], l0, l1);
        bytes_to_h2<kTma>(vh[hf], h0, h1);
        a[hf][0] = h2_bits(__hfma2(__hsub2(bits_h2(l0), off), s_lo, m_lo));
        a[hf][1] = h2_bits(__hfma2(__hsub2(bits_h2(h0), off), s_hi, m_hi));
        a[hf][2] = h2_bits(__hfma2(__hsub2(bits_h2(l1), off), s_lo, m_lo));
        a[hf][3] = h2_bits(__hfma2(__hsub2(bits_h2(h1), off), s_hi, m_hi));
      }
      if constexpr (kTma) {
        mmas(kb, a);
      } else {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const uint8_t* xrow = xh + (8 * j + g) * kXPitch + 64 * kb + 8 * t4;
          const uint2 b0 = *reinterpret_cast<const uint2*>(xrow);
          const uint2 b1 = *reinterpret_cast<const uint2*>(xrow + 32);
          mma_16816(acc[j], a[0], b0.x, b0.y);
          mma_16816(acc[j], a[1], b1.x, b1.y);
        }
      }
    };
    // MLX 4-bit: a 32-element block is 4 words of 8 values in order; the lane's elements 4 t4
    // .. 4 t4 + 3 of each 16-element half are 2 bytes of word 2 hf + t4 / 2, moved under the
    // f16 exponent as (0, 2) and (1, 3) by one byte permute and a mask: the tensor-copy
    // form's order of k (the activations' order, XHalf).
    auto mlx_block = [&](int kb) {
      __half2 el, eh;
      scales_of(kb, el, eh);
      const __half2 s_lo = __low2half2(el), m_lo = __high2half2(el), s_hi = __low2half2(eh), m_hi = __high2half2(eh);
      const __half2 k1024 = __float2half2_rn(1024.0f);
      const uint32_t sel = (t4 & 1) ? 0x4342u : 0x4140u;
      auto value = [&](uint32_t y) { return __hsub2(bits_h2((y & 0x000F000Fu) | 0x64006400u), k1024); };
      uint32_t a[2][4];
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int at = 16 * kb + 4 * (2 * hf + (t4 >> 1));
        const uint32_t yl = __byte_perm(*reinterpret_cast<const uint32_t*>(raw_lo + at), 0u, sel);
        const uint32_t yh = __byte_perm(*reinterpret_cast<const uint32_t*>(raw_hi + at), 0u, sel);
        a[hf][0] = h2_bits(__hfma2(value(yl), s_lo, m_lo));
        a[hf][1] = h2_bits(__hfma2(value(yh), s_hi, m_hi));
        a[hf][2] = h2_bits(__hfma2(value(yl >> 4), s_lo, m_lo));
        a[hf][3] = h2_bits(__hfma2(value(yh >> 4), s_hi, m_hi));
      }
      mmas(kb, a);
    };
    if constexpr (kTma && std::is_same_v<U, UnitQ4_K>) {
      (void)nbk;  // K-quant rows are whole chunks
#pragma unroll
      for (int pp = 0; pp < 4; ++pp) pair(pp);
    } else if constexpr (kMlx4) {
      (void)nbk;  // rows of whole chunks (mma_f16_applies)
#pragma unroll
      for (int kb = 0; kb < 8; ++kb) mlx_block(kb);
    } else if (nbk == 8) {
#pragma unroll
      for (int kb = 0; kb < 8; ++kb) block(kb);
    } else {
      for (int kb = 0; kb < nbk; ++kb) block(kb);
    }
    if constexpr (!kXCopy)
      if (i + 1 < count) prepare(i + 1);
  }

  // Accumulator i of tile j: row g (i < 2) or g + 8, token 8j + 2 t4 + i % 2. With K
  // splits: partial [split][n][all the launch's rows], the segment's rows from col0.
  const int64_t total = p.w.rows + p.rows2 + p.rows3;
  if constexpr (kSplitAcc) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] += acc2[j][i];
  }
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t t = 8 * j + 2 * t4 + (i & 1), r = row0 + (i >= 2 ? r_hi : r_lo);
      if (t >= n || r >= rows) continue;
      if (p.splits > 1) p.partial[(blockIdx.y * n + t) * total + seg.col0 + r] = acc[j][i];
      else seg.out[t * rows + r] = acc[j][i];
    }
}

// Each output = the sum of its splits' partial sums, in split order.
__global__ void mma_f16_reduce_kernel(const MmaParams p) {
  pdl_begin();
  const int64_t total = p.w.rows + p.rows2 + p.rows3, all = p.n * total;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= all) return;
  float s = 0.0f;
  for (int k = 0; k < p.splits; ++k) s += p.partial[k * all + i];
  const int64_t t = i / total, col = i % total;
  if (col < p.w.rows) p.out[t * p.w.rows + col] = s;
  else if (col < p.w.rows + p.rows2) p.out2[t * p.rows2 + col - p.w.rows] = s;
  else p.out3[t * p.rows3 + col - p.w.rows - p.rows2] = s;
}

// Row tiles of a launch: every weight's rows from a tile boundary.
int64_t row_tiles(const MmaParams& p) {
  return (p.w.rows + kRows - 1) / kRows + (p.data2 ? (p.rows2 + kRows - 1) / kRows : 0) +
         (p.data3 ? (p.rows3 + kRows - 1) / kRows : 0);
}

// Tensor copies where every weight's rows are 16-byte multiples from a 16-byte aligned
// start, and from 17 tokens x has its XHalf copy (HEARTH_CUDA_MMA_TMA=0: never, the
// session-5 kernel as it was).
int64_t g_tensor_launches = 0;  // mma_f16_tensor_launches
int g_sms = 0;                   // the device's multiprocessors (init_mma_f16)
bool tma_on() {
  static const bool on = [] {
    const char* e = std::getenv("HEARTH_CUDA_MMA_TMA");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// The tensor map of one weight (rows x row_bytes) for boxes of `pitch` bytes x kRows rows.
bool encode_map(CUtensorMap* map, const uint8_t* data, int64_t rows, int64_t row_bytes, int pitch) {
  return encode_rows_map(map, data, rows, row_bytes, pitch, kRows);
}

bool three_blocks();

// Three blocks an SM for the tensor-copy form at 9-32 tokens where their shared memory
// allows (Q4_K: two ring slots each; 80 registers).
template <class U, int NT>
constexpr bool kThreeTma = NT >= 2 && NT <= 4 && smem_bytes<U, NT, 3, true>() <= smem_budget(3, true);

// False (nothing launched) where MLX 4-bit cannot take the tensor-copy form.
template <class U, int NT, int kB = 2>
bool launch_nt(const MmaParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(row_tiles(p)), static_cast<unsigned>(p.splits));
  TensorMaps maps{};
  {
    constexpr int kPitch = Fmt<U>::kPitch;
    const int64_t rb = p.w.row_bytes;
    if (tma_on() && (NT < 4 || p.xh) && encode_map(&maps.m[0], p.w.data, p.w.rows, rb, kPitch) &&
        (!p.data2 || encode_map(&maps.m[1], p.data2, p.rows2, rb, kPitch)) &&
        (!p.data3 || encode_map(&maps.m[2], p.data3, p.rows3, rb, kPitch))) {
      if constexpr (kThreeTma<U, NT>) {
        // Blocks are placed one an SM, then a second, then a third: a grid that fills no
        // third slot would only lose the two-block kernel's third ring slot (H200, o at
        // 32 tokens, 256 blocks: 13.2 us with two blocks an SM, 15.1 with three).
        if (three_blocks() && static_cast<int64_t>(grid.x) * grid.y > 2 * int64_t{g_sms}) {
          HEARTH_LAUNCH((mma_f16_kernel<U, NT, 3, true>), grid, dim3(kThreads), (smem_bytes<U, NT, 3, true>()), stream,
                        p, maps);
          HEARTH_CUDA_LAUNCHED();
          ++g_tensor_launches;
          return true;
        }
      }
      HEARTH_LAUNCH((mma_f16_kernel<U, NT, kB, true>), grid, dim3(kThreads), (smem_bytes<U, NT, kB, true>()), stream,
                    p, maps);
      HEARTH_CUDA_LAUNCHED();
      ++g_tensor_launches;
      return true;
    }
  }
  if constexpr (std::is_same_v<U, UnitMlx4>) {
    return false;
  } else {
    HEARTH_LAUNCH((mma_f16_kernel<U, NT, kB, false>), grid, dim3(kThreads), (smem_bytes<U, NT, kB, false>()), stream,
                  p, maps);
    HEARTH_CUDA_LAUNCHED();
    return true;
  }
}

template <class U, int NT, int kB, bool kTma>
void allow_one() {
  check_cuda(cudaFuncSetAttribute(mma_f16_kernel<U, NT, kB, kTma>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem_bytes<U, NT, kB, kTma>())),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
  check_cuda(cudaFuncSetAttribute(mma_f16_kernel<U, NT, kB, kTma>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
}
template <class U, int NT, int kB = 2>
void allow_nt() {
  if constexpr (!std::is_same_v<U, UnitMlx4>) allow_one<U, NT, kB, false>();
  allow_one<U, NT, kB, true>();
  if constexpr (kThreeTma<U, NT>) allow_one<U, NT, 3, true>();
}

// Three blocks an SM at up to 8 tokens: more warps to hide the latencies, fewer ring slots
// each (3 instead of 5 for Q4_K). H200, 8 tokens: merged gate/up Q4_K 47.8 -> 37.0 us,
// Q4_0 41.0 -> 31.9; 8 sequences of 8B Q4_K_M 1,319 -> 1,431 tok/s (docs/benchmarks_cuda_batched.md).
// The tensor-copy form also takes three at 9-32 tokens where its ring fits (kThreeTma;
// H200, merged gate/up Q4_K at 32 tokens 51.2 -> 44.3 us with the planner's splits).
// HEARTH_CUDA_MMA_F16_B3=0: two (the row-copy form's registers allow three at 8 tokens only).
bool three_blocks() {
  static const bool on = [] {
    const char* e = std::getenv("HEARTH_CUDA_MMA_F16_B3");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

template <class F>
bool with_unit(DType type, int bits, F&& f);

// Blocks an SM of the kernel form (tensor copies or not) for n tokens: two (or three,
// three_blocks) where the shared memory allows, else one (Q8_0 and Q6_K at 64 tokens; Q4_K
// and Q5_K there too in the row-copy form).
template <bool kTma>
int with_blocks(DType type, int bits, int64_t n) {
  int b = 1;
  with_unit(type, bits, [&](auto u) {
    using U = decltype(u);
    constexpr size_t k2 = smem_budget(2, kTma);
    constexpr int b1 = smem_bytes<U, 1, 2, kTma>() <= k2 ? 2 : 1, b8 = smem_bytes<U, 8, 2, kTma>() <= k2 ? 2 : 1;
    int b2 = smem_bytes<U, 2, 2, kTma>() <= k2 ? 2 : 1, b4 = smem_bytes<U, 4, 2, kTma>() <= k2 ? 2 : 1;
    constexpr int b1_3 = smem_bytes<U, 1, 3, kTma>() <= smem_budget(3, kTma) ? 3 : b1;
    if (kTma && three_blocks()) {
      if constexpr (kThreeTma<U, 2>) b2 = 3;
      if constexpr (kThreeTma<U, 4>) b4 = 3;
    }
    b = n <= 8 ? (three_blocks() ? b1_3 : b1) : n <= 16 ? b2 : n <= 32 ? b4 : b8;
    return true;
  });
  return b;
}

template <class F>
bool with_unit(DType type, int bits, F&& f) {  // the quantized types, of MLX the 4-bit one
  if (type == DType::MLX_AFFINE) return bits == 4 && f(UnitMlx4{});
  return with_quant_unit<false>(type, 0, f);
}

bool g_ready = false;  // init_mma_f16 ran and HEARTH_CUDA_MMA_F16 is not 0

}  // namespace

int64_t mma_f16_tensor_launches() { return g_tensor_launches; }

void init_mma_f16() {
  const char* e = std::getenv("HEARTH_CUDA_MMA_F16");
  int device = 0, optin = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute",
             __FILE__, __LINE__);
  // The sm_90 code only (bulk copies; the shared memory of two blocks an SM): other cards
  // keep mma.cu.
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute",
             __FILE__, __LINE__);
  check_cuda(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute",
             __FILE__, __LINE__);
  g_ready = !(e && std::string(e) == "0") && major == 9 &&
            static_cast<size_t>(optin) >= smem_bytes<UnitQ8_0, 8, 2, false>();
  if (!g_ready) return;
  auto all = [](auto u) {
    using U = decltype(u);
    allow_nt<U, 1>(), allow_nt<U, 1, 3>(), allow_nt<U, 2>(), allow_nt<U, 4>(), allow_nt<U, 8>();
  };
  all(UnitQ4_0{}), all(UnitQ8_0{}), all(UnitQ4_K{}), all(UnitQ5_K{}), all(UnitQ6_K{}), all(UnitMlx4{});
}

bool mma_f16_applies(const DevWeight& w) {
  if (!g_ready || !with_unit(w.type, w.bits, [](auto) { return true; })) return false;
  // MLX 4-bit: the tensor-copy form only, rows of whole chunks, power-of-two groups (the
  // group of an element is a shift) whose scales for a chunk are 4 or 8 bytes a row (one
  // cp.async: groups of 64 or 128 with f16/bf16 scales, 128 with f32 ones).
  if (w.type == DType::MLX_AFFINE) {
    const int64_t g = w.group_size, s_bytes = g > 0 ? kChunk / g * (w.scale_kind == 0 ? 4 : 2) : 0;
    return tma_on() && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && w.row_bytes % 16 == 0 &&
           w.cols % kChunk == 0 && g >= 32 && (g & (g - 1)) == 0 && (s_bytes == 4 || s_bytes == 8) &&
           reinterpret_cast<uintptr_t>(w.scales) % 8 == 0 && reinterpret_cast<uintptr_t>(w.biases) % 8 == 0;
  }
  // 4-byte word loads of the K-quant rows need 16-byte aligned chunks; the other types
  // read 2-byte aligned halves. Rows of 32-element types may end inside a chunk.
  const bool k_quant = w.type == DType::Q4_K || w.type == DType::Q5_K;
  if (reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || (k_quant && w.row_bytes % 16 != 0) || w.row_bytes % 2 != 0)
    return false;
  return w.type == DType::Q4_0 || w.type == DType::Q8_0 || w.cols % kChunk == 0;
}

int32_t mma_plan_splits(const DevWeight& w, int64_t n, int sm_count) {
  if (!mma_f16_applies(w)) return mma_splits(w.rows, w.cols, int64_t{sm_count} * mma_blocks_per_sm(w.type, w.bits, n));
  const bool tma = tma_on() && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && w.row_bytes % 16 == 0;
  const int per_sm = tma ? with_blocks<true>(w.type, w.bits, n) : with_blocks<false>(w.type, w.bits, n);
  // Blocks of the last wave idle while the others finish: a weight of `tiles` row blocks
  // split s ways takes ceil(tiles s / slots) waves of 1/s of the work each. K splits even
  // that out but write and read s partial sums per output: count both in bytes.
  const int64_t slots = int64_t{sm_count} * per_sm;
  const int64_t tiles = (w.rows + kRows - 1) / kRows, chunks = (w.cols + kChunk - 1) / kChunk;
  const double weight = static_cast<double>(w.rows) * static_cast<double>(w.row_bytes);
  int32_t best = 1;
  double best_cost = 0;
  for (int32_t s = 1; s <= std::min<int64_t>(chunks, 16); ++s) {
    const double x = static_cast<double>(tiles * s) / static_cast<double>(slots);
    double cost = weight * std::ceil(x) / x;
    if (s > 1) cost += 8.0 * static_cast<double>(s) * static_cast<double>(n * w.rows);
    if (s == 1 || cost < best_cost) best = s, best_cost = cost;
  }
  // As many splits as give every split the same chunk count (no empty one).
  const int64_t per = (chunks + best - 1) / best;
  return static_cast<int32_t>((chunks + per - 1) / per);
}

bool launch_mma_f16(const MmaParams& params, cudaStream_t stream) {
  if (!mma_f16_applies(params.w)) return false;
  const MmaParams& p = params;
  return with_unit(p.w.type, p.w.bits, [&](auto u) {
    using U = decltype(u);
    bool ran = false;
    if (p.n <= 8 && three_blocks()) ran = launch_nt<U, 1, 3>(p, stream);
    else if (p.n <= 8) ran = launch_nt<U, 1>(p, stream);
    else if (p.n <= 16) ran = launch_nt<U, 2>(p, stream);
    else if (p.n <= 32) ran = launch_nt<U, 4>(p, stream);
    else ran = launch_nt<U, 8>(p, stream);
    if (!ran) return false;  // MLX 4-bit without its tensor copies: mma.cu takes it
    if (p.splits > 1 && !p.reduce_later) {  // else the next launch adds them (MmaParams::reduce_later)
      HEARTH_LAUNCH(mma_f16_reduce_kernel, grid_for(p.n * (p.w.rows + p.rows2 + p.rows3), 256), 256, 0, stream, p);
      HEARTH_CUDA_LAUNCHED();
    }
    return true;
  });
}

}  // namespace hearth::cuda
