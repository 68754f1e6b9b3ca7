// Tensor-core products of quantized weights with 8-bit activations, for batched decode
// (2..64 tokens; one token takes matmul_stream.cu): out[n, rows] = x[n, cols] @ w^T, reading
// every weight byte once. With this int8 kernel alone, the dp4a kernels of matmul.cu won
// below 5 tokens (no shared-memory round trip); with mma_f16.cu these win from 2 (the
// backend's mma_min_tokens_). Above,
// the f16 tiles of prompts take over (which already win on some Q6_K shapes at 33-64
// tokens: docs/benchmarks_cuda_batched.md).
// On sm_90, launch_mma hands Q4_0, Q8_0, Q4_K, Q5_K and Q6_K weights to mma_f16.cu (f16
// fragments decoded in registers: 20-45% faster on the 8B shapes); this kernel keeps MLX,
// other cards, and everything with HEARTH_CUDA_MMA_F16=0.
//
// A block of 8 warps owns 64 weight rows and a range of 256-element K chunks; each warp
// owns 16 of the rows and half of their work: half the token tiles (NT tiles of 8, the
// tail clamped to the last token) from 17 tokens on, below that half of each chunk's
// 32-element blocks (the halves' sums added at the end). Per chunk:
//  - the next chunk's weight bytes (each row's stored blocks, as they are) and activations
//    (int8 values, d and s = d * sum(q) per block, as launch_quantize_x writes them) are
//    copied into shared memory with cp.async, so they are in flight while this chunk is
//    decoded and multiplied (double buffered);
//  - this chunk's units (quant_units.cuh) are read from that copy and decoded into int8
//    values [64 rows, 256] with, per 32-element block, scale and min (each unit's part());
//  - each warp multiplies with mma.sync m16n8k32 s8 x s8 -> s32 per 32-element block (two
//    m16n8k16 for Q6_K, whose scales change every 16 elements), fragments loaded with
//    ldmatrix, and adds w_scale * x_d * int + w_min * x_s to f32 accumulators.
// NOTE(mma): measured on an H200 (24576 x 4096 Q4_K, 16 tokens): units loaded from global
// memory into registers a chunk ahead 78 us; the cp.async copy 73 us; the block loop
// unrolled 58 us; int-to-float by bit tricks and 8 warps a block instead of 4 56 us
// (64 tokens: 190 -> 131 us). Timing the phases alone: the copy 29 us (only a chunk in
// flight per block, 2-3 blocks an SM), the products ~22 us, the decoding ~5 us: the
// kernel is latency- and issue-bound, not at the bandwidth (docs/benchmarks_cuda_batched.md).
// A 4096-row weight is only 64 blocks, too few for the GPU, so K is also split over blocks
// (grid.y, mma_splits): each split writes its sums to a partial buffer and a second kernel
// adds the splits in a fixed order (the same result every run, nothing to reset: graphs
// replay it as recorded).
#include <algorithm>
#include <string>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ptx.cuh"
#include "backend/cuda/quant_units.cuh"

namespace hearth::cuda {
namespace {

constexpr int kMmaThreads = 256;  // 8 warps: 4 groups of 16 rows x 2 halves of the work
constexpr int kRows = 64;          // weight rows per block
constexpr int kChunk = 256;       // K elements per step of the block's loop
constexpr int kPitch = kChunk + 16;  // shared row pitch in bytes: 68 words, so the 8 rows of
                                     // an ldmatrix phase fall on distinct banks

// Shared memory of a block with kTok (padded) tokens: weight values [kRows][kPitch], their
// (scale lo, scale hi, min, -) [kRows][kScalePitch], then two buffers of the activations' chunk:
// values [kTok][kPitch] and (d[t], d[t+1], s[t], s[t+1]) for even t: [8][kTok / 2] float4,
// then two buffers of the weights' stored bytes (mma_smem).
constexpr int kScalePitch = 9;  // float4 per row of scales: 8 blocks + 1, so the 8 rows a
                                // warp reads at once fall on distinct banks
__host__ __device__ constexpr size_t w_bytes() { return kRows * kPitch + kRows * kScalePitch * 16; }
__host__ __device__ constexpr size_t x_buf_q_bytes(int tok) { return static_cast<size_t>(tok) * kPitch; }
__host__ __device__ constexpr size_t x_buf_f_bytes(int tok) { return static_cast<size_t>(8) * (tok / 2) * 16; }


__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Four 8x8 matrices of 16-bit elements (here: 8 rows x 16 bytes of int8); lanes 8i..8i+7
// give the row addresses of matrix i, and register i of lane l holds bytes 4 (l % 4)..+3
// of row l / 4 of matrix i: the fragment layout of mma's int8 operands.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c = a (16 rows x 32 int8) . b (32 x 8 tokens), and the 16-element half of it.
__device__ __forceinline__ void mma_k32(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}
__device__ __forceinline__ void mma_k16(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %7, %7, %7};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(b), "r"(0));
}

// Bytes of one row's 256-element chunk as stored, and the shared pitch of its copy: the
// copy starts at the 16-byte boundary at or below the chunk (cp.async moves aligned 16
// bytes), so it keeps the chunk's alignment mod 16, which the units' loads rely on, and
// holds the up to 3 bytes past the end that ld_words_any reads.
template <class U>
__host__ __device__ constexpr int chunk_bytes() {
  if constexpr (std::is_same_v<U, UnitQ4_0>) return 8 * 18;
  else if constexpr (std::is_same_v<U, UnitQ8_0>) return 8 * 34;
  else if constexpr (std::is_same_v<U, UnitQ4_K>) return 144;
  else if constexpr (std::is_same_v<U, UnitQ5_K>) return 176;
  else if constexpr (std::is_same_v<U, UnitQ6_K>) return 210;
  else if constexpr (std::is_same_v<U, UnitMlx4>) return 128;
  else return 256;  // UnitMlx8
}
template <class U>
__host__ __device__ constexpr int raw_pitch() {
  return (chunk_bytes<U>() + 30 + 15) / 16 * 16;
}
// All of a block's shared memory; then two buffers of the weights' raw chunk [kRows][raw_pitch].
template <class U>
constexpr size_t mma_smem(int tok) {
  return w_bytes() + 2 * (x_buf_q_bytes(tok) + x_buf_f_bytes(tok)) + 2 * static_cast<size_t>(kRows) * raw_pitch<U>();
}

// An int32 |v| < 2^22 as a float in two full-rate operations: the int-to-float conversion
// unit does a quarter of the SM's float rate, and a product converts four sums per mma.
__device__ __forceinline__ float int_to_float(int v) {
  return __int_as_float(v + 0x4B400000) - 12582912.0f;  // 1.5 * 2^23: v in the mantissa
}

// NT: tiles of 8 tokens (even: B fragments come two tiles per ldmatrix).
template <class U, int NT>
__global__ void __launch_bounds__(kMmaThreads, NT == 8 ? 2 : 3) mma_kernel(const MmaParams p) {
  constexpr int kUpc = kChunk / U::kElems;                 // units of a row in a chunk
  constexpr int kU = kRows * kUpc / kMmaThreads;           // units a thread decodes per chunk
  constexpr int kTok = 8 * NT;
  constexpr int kRaw = raw_pitch<U>(), kPieces = kRaw / 16;
  constexpr bool kScales16 = std::is_same_v<U, UnitQ6_K>;  // 16-element scales
  extern __shared__ int4 smem_raw[];
  static_assert(4 * 4 * NT * kWarp * 4 <= kRows * kPitch, "the halves' sums reuse the weight values' space");
  auto* ws = reinterpret_cast<int8_t*>(smem_raw);
  auto* wsc = reinterpret_cast<float4*>(ws + kRows * kPitch);
  auto* xq_s = reinterpret_cast<int8_t*>(wsc + kRows * kScalePitch);
  auto* xf_s = reinterpret_cast<float*>(xq_s + 2 * x_buf_q_bytes(kTok));
  auto* raw_s = reinterpret_cast<uint8_t*>(xf_s + 2 * (x_buf_f_bytes(kTok) / 4));  // [2][kRows][kRaw]

  const int64_t rows = p.w.rows, cols = p.w.cols, n = p.n, nb_row = cols / 32;
  const int n_units = static_cast<int>(cols / U::kElems);
  const int64_t chunks = (cols + kChunk - 1) / kChunk, per_split = (chunks + p.splits - 1) / p.splits;
  const int64_t c_begin = blockIdx.y * per_split, c_end = min(chunks, c_begin + per_split);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;

  // Chunk c of row r: bytes [start, end) of the weight, copied from the 16-byte boundary
  // a0 at or below start (rows of 32-element types may end inside a chunk).
  auto chunk_span = [&](int64_t r, int64_t c, uintptr_t* a0, int* lead, int* pieces) {
    const uint8_t* row = p.w.data + r * p.w.row_bytes;
    const int64_t begin = c * chunk_bytes<U>(), end = min(begin + chunk_bytes<U>(), p.w.row_bytes);
    const uintptr_t s = reinterpret_cast<uintptr_t>(row + begin), e = reinterpret_cast<uintptr_t>(row + end);
    *a0 = s & ~uintptr_t{15};
    *lead = static_cast<int>(s - *a0);
    *pieces = static_cast<int>(((e + 15) & ~uintptr_t{15}) - *a0) / 16;
  };
  // The weights of chunk c into raw buffer buf: 16-byte pieces, neighbouring threads on
  // neighbouring pieces of a row.
  // Neighbouring threads on neighbouring 16-byte pieces of a row. (Asking L2 for chunk
  // c + 1 as well, one bulk prefetch a row, made the 8B shapes 5-25% slower on an H200.)
  auto issue_w = [&](int64_t c, int buf) {
    uint8_t* dst = raw_s + buf * (kRows * kRaw);
    for (int i = threadIdx.x; i < kRows * kPieces; i += kMmaThreads) {
      const int rr = i / kPieces, piece = i % kPieces;
      if (row0 + rr >= rows) continue;
      uintptr_t a0;
      int lead, pieces;
      chunk_span(row0 + rr, c, &a0, &lead, &pieces);
      if (piece < pieces) cp_async16(dst + rr * kRaw + 16 * piece, reinterpret_cast<const void*>(a0 + 16 * piece));
    }
  };
  // The 32-blocks of chunk c that exist (rows of 32-element types need not fill a chunk).
  auto blocks_in = [&](int64_t c) { return static_cast<int>(nb_row - c * 8 < 8 ? nb_row - c * 8 : 8); };
  // The activations of chunk c into buffer buf. Tokens past n read token n - 1: finite
  // values whose sums are never stored.
  auto issue_x = [&](int64_t c, int buf) {
    const int nbk = blocks_in(c);
    int8_t* q = xq_s + buf * x_buf_q_bytes(kTok);
    float* f = xf_s + buf * (x_buf_f_bytes(kTok) / 4);
    for (int i = threadIdx.x; i < kTok * 16; i += kMmaThreads) {
      const int t = i / 16, piece = i % 16;
      const int64_t ts = (t < n ? t : n - 1);
      if (piece < 2 * nbk) cp_async16(q + t * kPitch + 16 * piece, p.xq + ts * cols + c * kChunk + 16 * piece);
    }
    for (int i = threadIdx.x; i < kTok * 8; i += kMmaThreads) {
      const int t = i / 8, b = i % 8;
      const int64_t ts = (t < n ? t : n - 1);
      if (b >= nbk) continue;
      float* dst = f + (b * (kTok / 2) + t / 2) * 4 + (t & 1);
      cp_async4(dst, p.xd + ts * nb_row + c * 8 + b);
      cp_async4(dst + 2, p.xs + ts * nb_row + c * 8 + b);
    }
  };
  // Units of chunk c from the raw copy into int8 values and (scale lo, scale hi, min) per
  // 32-block. Unit k of this thread: row j / kUpc of the block, unit j % kUpc of the chunk.
  // The units see the chunk as a row starting there (unit indices within the chunk; MLX
  // scales and biases advanced to the chunk's first group).
  auto decode = [&](int64_t c, int buf) {
    WAux aux{p.w.scales, p.w.biases, p.w.scale_kind, p.w.group_size, p.w.groups_per_row};
    if (aux.scales) {
      const int64_t skip = c * kChunk / aux.group_size * (aux.scale_kind == 0 ? 4 : 2);
      aux.scales = static_cast<const char*>(aux.scales) + skip;
      aux.biases = static_cast<const char*>(aux.biases) + skip;
    }
    const uint8_t* raw = raw_s + buf * (kRows * kRaw);
#pragma unroll
    for (int k = 0; k < kU; ++k) {
      const int j = threadIdx.x + k * kMmaThreads, rr = j / kUpc, uc = j % kUpc;
      const int64_t r = row0 + rr;
      if (r >= rows || c * kUpc + uc >= n_units) continue;  // never stored / no such block
      uintptr_t a0;
      int lead, pieces;
      chunk_span(r, c, &a0, &lead, &pieces);
      U unit;
      unit.load(raw + rr * kRaw + lead, r, uc, aux);
#pragma unroll
      for (int part = 0; part < U::kElems / 32; ++part) {
        uint32_t q[8];
        float sc[2], mn;
        unit.part(part, q, sc, mn);
        const int off = static_cast<int>(U::part_offset(uc, part));
        auto* dst = reinterpret_cast<uint4*>(ws + rr * kPitch + off);
        dst[0] = make_uint4(q[0], q[1], q[2], q[3]);
        dst[1] = make_uint4(q[4], q[5], q[6], q[7]);
        wsc[rr * kScalePitch + off / 32] = make_float4(sc[0], sc[1], mn, 0.0f);
      }
    }
  };

  // Warp w: rows 16 (w % 4).. of the block and half h = w / 4 of the work: from 32 tokens
  // on, token tiles [h NT / 2, (h + 1) NT / 2); below, blocks kb = h, h + 2, .. of each
  // chunk (the halves' sums are added at the end).
  constexpr bool kSplitTokens = NT >= 4;
  constexpr int kTiles = kSplitTokens ? NT / 2 : NT;  // token tiles of a warp
  const int warp = threadIdx.x / kWarp % 4, half = threadIdx.x / kWarp / 4;
  const int lane = threadIdx.x % kWarp, g = lane / 4, tig = lane % 4;
  const int tile0 = kSplitTokens ? half * kTiles : 0;
  float acc[kTiles][4];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  if (c_begin < c_end) issue_w(c_begin, 0);  // weights: before the previous kernel ends
  pdl_begin();
  if (c_begin < c_end) issue_x(c_begin, 0);
  cp_async_commit();
  for (int64_t c = c_begin, i = 0; c < c_end; ++c, ++i) {
    const int buf = static_cast<int>(i & 1);
    if (c + 1 < c_end) issue_w(c + 1, buf ^ 1), issue_x(c + 1, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();  // everything but the group just committed: chunk c
    __syncthreads();
    decode(c, buf);
    __syncthreads();
    const int nbk = blocks_in(c);
    const int8_t* xq = xq_s + buf * x_buf_q_bytes(kTok);
    const auto* xf = reinterpret_cast<const float4*>(xf_s + buf * (x_buf_f_bytes(kTok) / 4));
    const int8_t* a_row = ws + (16 * warp + (lane & 7) + 8 * ((lane >> 3) & 1)) * kPitch + 16 * (lane >> 4);
    // One 32-element block of the chunk for all of the warp's rows and tokens.
    auto block = [&](int kb) {
      uint32_t a[4];
      ldmatrix_x4(a, a_row + 32 * kb);
      const float4 w0 = wsc[(16 * warp + g) * kScalePitch + kb], w1 = wsc[(16 * warp + g + 8) * kScalePitch + kb];
#pragma unroll
      for (int j = 0; j < kTiles; j += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, xq + (8 * (tile0 + j + (lane >> 4)) + (lane & 7)) * kPitch + 32 * kb + 16 * ((lane >> 3) & 1));
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
          const float4 x = xf[kb * (kTok / 2) + 4 * (tile0 + j + jj) + tig];  // d(t0), d(t0 + 1), s(t0), s(t0 + 1)
          float* o = acc[j + jj];
          if constexpr (kScales16) {
            int lo[4], hi[4];
            mma_k16(lo, a[0], a[1], b[2 * jj]);
            mma_k16(hi, a[2], a[3], b[2 * jj + 1]);
            o[0] += x.x * (w0.x * int_to_float(lo[0]) + w0.y * int_to_float(hi[0])) + w0.z * x.z;
            o[1] += x.y * (w0.x * int_to_float(lo[1]) + w0.y * int_to_float(hi[1])) + w0.z * x.w;
            o[2] += x.x * (w1.x * int_to_float(lo[2]) + w1.y * int_to_float(hi[2])) + w1.z * x.z;
            o[3] += x.y * (w1.x * int_to_float(lo[3]) + w1.y * int_to_float(hi[3])) + w1.z * x.w;
          } else {
            int sum[4];
            mma_k32(sum, a, b[2 * jj], b[2 * jj + 1]);
            o[0] = fmaf(w0.x * x.x, int_to_float(sum[0]), fmaf(w0.z, x.z, o[0]));
            o[1] = fmaf(w0.x * x.y, int_to_float(sum[1]), fmaf(w0.z, x.w, o[1]));
            o[2] = fmaf(w1.x * x.x, int_to_float(sum[2]), fmaf(w1.z, x.z, o[2]));
            o[3] = fmaf(w1.x * x.y, int_to_float(sum[3]), fmaf(w1.z, x.w, o[3]));
          }
        }
      }
    };
    // Unrolled for whole chunks, so that the loads of later blocks overlap the products of
    // earlier ones (a loop of unknown length ran each block's chain of latencies in turn).
    constexpr int kStep = kSplitTokens ? 1 : 2;
    const int kb0 = kSplitTokens ? 0 : half;
    if (nbk == 8) {
#pragma unroll
      for (int kb = 0; kb < 8; kb += kStep) block(kb + kb0);
    } else {
      for (int kb = kb0; kb < nbk; kb += kStep) block(kb);
    }
    __syncthreads();  // the shared values are rewritten for the next chunk
  }

  // Halves over blocks: the second half's sums through shared memory (no copy is pending:
  // the last group committed was empty) to the first, which stores them.
  if constexpr (!kSplitTokens) {
    auto* red = reinterpret_cast<float*>(smem_raw);  // [4 warps][NT * 4][32 lanes]
    if (half == 1)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) red[(warp * NT * 4 + 4 * j + i) * kWarp + lane] = acc[j][i];
    __syncthreads();
    if (half == 1) return;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] += red[(warp * NT * 4 + 4 * j + i) * kWarp + lane];
  }

  // Accumulator i of tile j: row g (i < 2) or g + 8, token 8j + 2 tig + i % 2.
  float* dst = p.splits > 1 ? p.partial + blockIdx.y * n * rows : p.out;
  const int64_t r0 = row0 + 16 * warp + g;
#pragma unroll
  for (int j = 0; j < kTiles; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t t = 8 * (tile0 + j) + 2 * tig + (i & 1), r = r0 + (i >= 2 ? 8 : 0);
      if (t < n && r < rows) dst[t * rows + r] = acc[j][i];
    }
}

// out = the sum of the splits' partial products, in split order.
__global__ void mma_reduce_kernel(const MmaParams p) {
  pdl_begin();
  const int64_t total = p.n * p.w.rows;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  float s = 0.0f;
  for (int k = 0; k < p.splits; ++k) s += p.partial[k * total + i];
  p.out[i] = s;
}

template <class U, int NT>
void launch_mma_kernel(const MmaParams& p, cudaStream_t stream) {
  const auto kernel = mma_kernel<U, NT>;
  constexpr size_t smem = mma_smem<U>(8 * NT);
  const dim3 grid(static_cast<unsigned>((p.w.rows + kRows - 1) / kRows), static_cast<unsigned>(p.splits));
  HEARTH_LAUNCH(kernel, grid, dim3(kMmaThreads), smem, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

// More than 48 KiB of dynamic shared memory must be asked for, once per kernel, and not
// while a stream is captured: init_mma() runs at start-up.
template <class U, int NT>
void allow_smem() {
  check_cuda(cudaFuncSetAttribute(mma_kernel<U, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(mma_smem<U>(8 * NT))),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
  // All of L1 that can be shared memory, so that several blocks fit on an SM: the
  // weights' latency is hidden by other blocks' work.
  check_cuda(cudaFuncSetAttribute(mma_kernel<U, NT>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
}

// Blocks of 128 threads that fit on an SM, by kernel: [type][NT / 4] (NT 2, 4, 8), read by
// mma_blocks_per_sm; set by init_mma once the shared memory is allowed.
int g_blocks_per_sm[7][3] = {};

template <class U>
void allow_smem_all(int type_index) {
  allow_smem<U, 2>(), allow_smem<U, 4>(), allow_smem<U, 8>();
  const void* kernels[3] = {reinterpret_cast<const void*>(mma_kernel<U, 2>),
                            reinterpret_cast<const void*>(mma_kernel<U, 4>),
                            reinterpret_cast<const void*>(mma_kernel<U, 8>)};
  const size_t smem[3] = {mma_smem<U>(16), mma_smem<U>(32), mma_smem<U>(64)};
  for (int i = 0; i < 3; ++i) {
    int blocks = 1;
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernels[i], kMmaThreads, smem[i]),
               "cudaOccupancyMaxActiveBlocksPerMultiprocessor", __FILE__, __LINE__);
    g_blocks_per_sm[type_index][i] = std::max(blocks, 1);
  }
}

int type_index(DType type, int bits) {
  switch (type) {
    case DType::Q4_0: return 0;
    case DType::Q8_0: return 1;
    case DType::Q4_K: return 2;
    case DType::Q5_K: return 3;
    case DType::Q6_K: return 4;
    default: return bits == 4 ? 5 : 6;
  }
}

template <class U>
void mma_for_unit(const MmaParams& p, cudaStream_t stream) {
  if (p.n <= 16) launch_mma_kernel<U, 2>(p, stream);
  else if (p.n <= 32) launch_mma_kernel<U, 4>(p, stream);
  else launch_mma_kernel<U, 8>(p, stream);
}

}  // namespace

void init_mma() {
  allow_smem_all<UnitQ4_0>(0), allow_smem_all<UnitQ8_0>(1), allow_smem_all<UnitQ4_K>(2), allow_smem_all<UnitQ5_K>(3);
  allow_smem_all<UnitQ6_K>(4), allow_smem_all<UnitMlx4>(5), allow_smem_all<UnitMlx8>(6);
  init_mma_f16();
}

int mma_blocks_per_sm(DType type, int bits, int64_t n) {
  return g_blocks_per_sm[type_index(type, bits)][n <= 16 ? 0 : n <= 32 ? 1 : 2];
}

bool mma_type_supported(DType type, int bits) {
  switch (type) {
    case DType::Q4_0: case DType::Q8_0: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    case DType::MLX_AFFINE: return bits == 4 || bits == 8;
    default: return false;
  }
}

int32_t mma_splits(int64_t rows, int64_t cols, int64_t slots) {
  // About as many blocks as fit on the GPU at once, each split at least one chunk; then as
  // few splits as give every split the same number of chunks.
  const int64_t tiles = (rows + kRows - 1) / kRows, chunks = (cols + kChunk - 1) / kChunk;
  const int64_t want = std::clamp<int64_t>((slots + tiles / 2) / tiles, 1, chunks);
  const int64_t per = (chunks + want - 1) / want;
  return static_cast<int32_t>((chunks + per - 1) / per);
}

void launch_mma(const MmaParams& p, cudaStream_t stream) {
  HEARTH_ASSERT(p.n >= 1 && p.n <= kMmaMaxTokens && p.w.cols % 32 == 0 && p.splits >= 1);
  HEARTH_ASSERT(p.splits == 1 || p.partial);
  if (launch_mma_f16(p, stream)) return;  // f16 fragments (mma_f16.cu), with its own reduction
  HEARTH_ASSERT(!p.data2 && !p.data3 && !p.reduce_later);  // merged products: only mma_f16.cu takes them
  switch (p.w.type) {
    case DType::Q4_0: mma_for_unit<UnitQ4_0>(p, stream); break;
    case DType::Q8_0: mma_for_unit<UnitQ8_0>(p, stream); break;
    case DType::Q4_K: mma_for_unit<UnitQ4_K>(p, stream); break;
    case DType::Q5_K: mma_for_unit<UnitQ5_K>(p, stream); break;
    case DType::Q6_K: mma_for_unit<UnitQ6_K>(p, stream); break;
    case DType::MLX_AFFINE:
      if (p.w.bits == 4) mma_for_unit<UnitMlx4>(p, stream);
      else mma_for_unit<UnitMlx8>(p, stream);
      break;
    default: fail("matmul: weight type " + std::string(dtype_name(p.w.type)) + " has no tensor-core kernel");
  }
  if (p.splits > 1) {
    HEARTH_LAUNCH(mma_reduce_kernel, grid_for(p.n * p.w.rows, 256), 256, 0, stream, p);
    HEARTH_CUDA_LAUNCHED();
  }
}

}  // namespace hearth::cuda
