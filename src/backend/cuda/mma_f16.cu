// Tensor-core products of quantized weights for batched decode (5..64 tokens), second
// form: the weight is decoded straight into f16 mma fragments in registers (scale and min
// applied there), the activations are f16 in shared memory, and mma.sync m16n8k16 adds
// into f32 accumulators. out[n, rows] = x[n, cols] @ w^T, every weight byte read once.
//
// Why (mma.cu, docs/benchmarks.md): the int8 kernel decoded each 256-element chunk into an
// int8 tile in shared memory and then paid 5 float operations per product element and
// 32-element block (w_scale * x_d * int + w_min * x_s), for every token; with the tile and
// its scales it held 60 KiB of shared memory for one chunk in flight, so a block waited
// for every chunk (the copy was half of its time) and 8B-shaped products read 0.7-1.1
// TB/s. Here the scale and min are applied once per weight element (amortised over the
// tokens) and once per activation element (amortised over a block's 128 rows), so the
// per-token work is the mma alone, and with no decoded tile a block keeps 2-5 chunks of
// weight bytes in flight (kStages, from the shared memory budget of two blocks an SM).
//
// Layout: a block of 8 warps owns 128 rows (warp w: rows 16w..16w+15, every token tile of
// 8) and a range of 256-element K chunks (grid.y splits K as in mma.cu, partial sums then
// added by mma.cu's reduce kernel). Per chunk:
//  - its weight bytes, each row's stored chunk as is, come through a ring of kStages slots
//    copied with cp.async (requested before pdl_wait: weights are constant);
//  - its int8 activations (launch_quantize_x's q and d) are loaded into registers one chunk
//    ahead and written to shared memory as f16 q * d;
//  - each row's scale (two for Q6_K's 16-element halves) and min per 32-element block go to
//    a small table as f16 pairs;
//  - lane (g, t) of a warp decodes, per 32-element block, elements 4t..4t+3 and
//    16+4t..16+4t+3 of rows g and g+8: in m16n8k16's A layout those are k = 2t, 2t+1, 2t+8,
//    2t+9 of the two k16 halves, any order of k being fine as long as the activations'
//    B fragments take the same, which for that choice is x[token][4t..4t+3] in natural
//    order: one 8-byte load per half.
// Values are made exact in f16 (1024 + v by a byte permute, minus 1024 + offset), then
// scaled with one rounding: w = fma(v, scale, min) in f16, as the prompt path's f16 tiles.
// Types: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K (MLX, whose scales live outside the rows, stays
// with mma.cu). HEARTH_CUDA_MMA_F16=0 sends everything to mma.cu (before/after figures).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/quant_units.cuh"

namespace hearth::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 128;                    // weight rows per block: 16 per warp
constexpr int kChunk = 256;                   // K elements per chunk
constexpr int kXPitch = 2 * kChunk + 32;      // bytes per token of the f16 activations: 8-byte
                                              // loads of 4 tokens x 4 lanes hit distinct banks
constexpr int kScalePitch = 9;                // uint2 per row of the scale table (8 blocks + 1)
constexpr size_t kSmemBudget = 113 * 1024;    // per block, so that two fit on an SM

// Per type: bytes of one row's chunk as stored, the ring's row pitch (room for the chunk's
// offset from a 16-byte boundary, and an odd number of 16-byte lines so the 8 rows a
// warp reads at once fall on distinct banks), the value offset (q - offset is the signed
// value) and whether the rows' chunks are 4-byte aligned words.
template <class U> struct Fmt;
template <> struct Fmt<UnitQ4_0> { static constexpr int kBytes = 144, kPitch = 176, kOffset = 8; };
template <> struct Fmt<UnitQ8_0> { static constexpr int kBytes = 272, kPitch = 304, kOffset = 128; };
template <> struct Fmt<UnitQ4_K> { static constexpr int kBytes = 144, kPitch = 144, kOffset = 0; };
template <> struct Fmt<UnitQ5_K> { static constexpr int kBytes = 176, kPitch = 176, kOffset = 0; };
template <> struct Fmt<UnitQ6_K> { static constexpr int kBytes = 210, kPitch = 240, kOffset = 32; };

template <class U>
__host__ __device__ constexpr size_t stage_bytes() { return static_cast<size_t>(kRows) * Fmt<U>::kPitch; }
template <int NT>
__host__ __device__ constexpr size_t fixed_bytes() { return static_cast<size_t>(8 * NT) * kXPitch + kRows * kScalePitch * 8; }
// Ring slots: as many as fit in the budget, 2..5.
template <class U, int NT>
__host__ __device__ constexpr int stages() {
  const size_t s = (kSmemBudget - fixed_bytes<NT>()) / stage_bytes<U>();
  return s < 2 ? 2 : s > 5 ? 5 : static_cast<int>(s);
}
template <class U, int NT>
__host__ __device__ constexpr size_t smem_bytes() { return fixed_bytes<NT>() + stages<U, NT>() * stage_bytes<U>(); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ __half2 bits_h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }

// A word from a 2-byte aligned shared address.
__device__ __forceinline__ uint32_t ld_u32_2(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | static_cast<uint32_t>(h[1]) << 16;
}

// Bytes (v0..v3, each < 1024 - 1024 = unsigned) of w as f16 pairs (1024 + v0, 1024 + v1)
// and (1024 + v2, 1024 + v3): exact, one permute each.
__device__ __forceinline__ void bytes_to_h2(uint32_t w, uint32_t& lo, uint32_t& hi) {
  lo = __byte_perm(w, 0x64646464u, 0x4140);
  hi = __byte_perm(w, 0x64646464u, 0x4342);
}

// The 8 values this lane takes of one row's 32-element block kb of the chunk (raw: the
// row's chunk as stored): v[0] elements 4t..4t+3, v[1] elements 16+4t..16+4t+3, one
// unsigned byte each (q + offset).
template <class U>
__device__ __forceinline__ void block_values(const uint8_t* raw, int kb, int t, uint32_t (&v)[2]) {
  if constexpr (std::is_same_v<U, UnitQ4_0>) {  // 18-byte blocks: d, 16 bytes of nibbles
    const uint32_t w = ld_u32_2(raw + 18 * kb + 2 + 4 * t);
    v[0] = w & 0x0F0F0F0Fu, v[1] = (w >> 4) & 0x0F0F0F0Fu;
  } else if constexpr (std::is_same_v<U, UnitQ8_0>) {  // 34-byte blocks: d, 32 int8
    v[0] = ld_u32_2(raw + 34 * kb + 2 + 4 * t) ^ 0x80808080u;
    v[1] = ld_u32_2(raw + 34 * kb + 18 + 4 * t) ^ 0x80808080u;
  } else if constexpr (std::is_same_v<U, UnitQ4_K> || std::is_same_v<U, UnitQ5_K>) {
    // Sub-blocks 2p (low nibbles) and 2p + 1 (high) share 32 bytes; Q5_K's fifth bits:
    // bit kb of qh byte l is element l's.
    constexpr int kQs = std::is_same_v<U, UnitQ5_K> ? 48 : 16;
    const auto* q = reinterpret_cast<const uint32_t*>(raw + kQs + 32 * (kb >> 1) + 4 * t);
    const int sh = 4 * (kb & 1);
    v[0] = (q[0] >> sh) & 0x0F0F0F0Fu, v[1] = (q[4] >> sh) & 0x0F0F0F0Fu;
    if constexpr (std::is_same_v<U, UnitQ5_K>) {
      const auto* qh = reinterpret_cast<const uint32_t*>(raw + 16 + 4 * t);
      v[0] |= ((qh[0] >> kb) & 0x01010101u) << 4, v[1] |= ((qh[4] >> kb) & 0x01010101u) << 4;
    }
  } else {  // Q6_K: quarter kb & 3 of half kb >> 2; low 4 bits in ql, high 2 in qh
    const int h = kb >> 2, qq = kb & 3;
    const uint8_t* ql = raw + 64 * h + 32 * (qq & 1) + 4 * t;
    const uint8_t* qh = raw + 128 + 32 * h + 4 * t;
    const int sl = 4 * (qq >> 1), sh = 2 * qq;
    v[0] = ((ld_u32_2(ql) >> sl) & 0x0F0F0F0Fu) | ((ld_u32_2(qh) >> sh) & 0x03030303u) << 4;
    v[1] = ((ld_u32_2(ql + 16) >> sl) & 0x0F0F0F0Fu) | ((ld_u32_2(qh + 16) >> sh) & 0x03030303u) << 4;
  }
}

// Scale table entry of one row's block kb: (scale of elements 0-15, of 16-31) and
// (min, min) as f16 pairs; the weight is (q - offset) * scale + min.
template <class U>
__device__ __forceinline__ uint2 block_scales(const uint8_t* raw, int kb) {
  float s0, s1, mn = 0.0f;
  if constexpr (std::is_same_v<U, UnitQ4_0> || std::is_same_v<U, UnitQ8_0>) {
    s0 = s1 = half_bits_to_float(*reinterpret_cast<const uint16_t*>(raw + Fmt<U>::kBytes / 8 * kb));
  } else if constexpr (std::is_same_v<U, UnitQ4_K> || std::is_same_v<U, UnitQ5_K>) {
    const auto* head = reinterpret_cast<const uint32_t*>(raw);  // d, dmin; 12 scale bytes
    const float d = half_bits_to_float(static_cast<uint16_t>(head[0] & 0xFFFF));
    const float dmin = half_bits_to_float(static_cast<uint16_t>(head[0] >> 16));
    const uint8_t* sc = raw + 4;
    int s, m;
    if (kb < 4) {
      s = sc[kb] & 63, m = sc[kb + 4] & 63;
    } else {
      s = (sc[kb + 4] & 0xF) | ((sc[kb - 4] >> 6) << 4);
      m = (sc[kb + 4] >> 4) | ((sc[kb] >> 6) << 4);
    }
    s0 = s1 = d * static_cast<float>(s), mn = -dmin * static_cast<float>(m);
  } else {  // Q6_K: int8 scales per 16 elements, d at 208
    const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(raw + 208));
    const auto* sc = reinterpret_cast<const int8_t*>(raw + 192);
    s0 = d * static_cast<float>(sc[2 * kb]), s1 = d * static_cast<float>(sc[2 * kb + 1]);
  }
  return make_uint2(h2_bits(__floats2half2_rn(s0, s1)), h2_bits(__floats2half2_rn(mn, mn)));
}

// Rows of the block [kRows], the chunk's bytes [start, end) of a row, copied from the
// 16-byte boundary at or below start (rows of 32-element types may end inside a chunk).
struct Span {
  uintptr_t a0;
  int lead, pieces;
};
template <class U>
__device__ __forceinline__ Span chunk_span(const MmaParams& p, int64_t r, int64_t c) {
  const uint8_t* row = p.w.data + r * p.w.row_bytes;
  const int64_t begin = c * Fmt<U>::kBytes, end = min(begin + Fmt<U>::kBytes, p.w.row_bytes);
  const uintptr_t s = reinterpret_cast<uintptr_t>(row + begin), e = reinterpret_cast<uintptr_t>(row + end);
  Span sp;
  sp.a0 = s & ~uintptr_t{15};
  sp.lead = static_cast<int>(s - sp.a0);
  sp.pieces = static_cast<int>(((e + 15) & ~uintptr_t{15}) - sp.a0) / 16;
  return sp;
}

// NT: tiles of 8 tokens (1, 2, 4 or 8).
template <class U, int NT>
__global__ void __launch_bounds__(kThreads, 2) mma_f16_kernel(const MmaParams p) {
  constexpr int kS = stages<U, NT>(), kPitch = Fmt<U>::kPitch, kTok = 8 * NT;
  constexpr int kPieces = kPitch / 16;
  // Activation pieces (16 int8 of one token) a thread converts per chunk.
  constexpr int kXPer = (kTok * 16 + kThreads - 1) / kThreads;
  extern __shared__ int4 smem_raw[];
  auto* xh = reinterpret_cast<uint8_t*>(smem_raw);                  // [kTok][kXPitch] f16
  auto* table = reinterpret_cast<uint2*>(xh + kTok * kXPitch);      // [kRows][kScalePitch]
  auto* ring = reinterpret_cast<uint8_t*>(table + kRows * kScalePitch);  // [kS][kRows][kPitch]

  const int64_t rows = p.w.rows, cols = p.w.cols, n = p.n, nb_row = cols / 32;
  const int64_t chunks = (cols + kChunk - 1) / kChunk, per_split = (chunks + p.splits - 1) / p.splits;
  const int64_t c_begin = blockIdx.y * per_split, c_end = min(chunks, c_begin + per_split);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int tid = threadIdx.x;

  auto issue = [&](int64_t c, int slot) {
    uint8_t* dst = ring + slot * (kRows * kPitch);
    for (int i = tid; i < kRows * kPieces; i += kThreads) {
      const int rr = i / kPieces, piece = i % kPieces;
      if (row0 + rr >= rows) continue;
      const Span sp = chunk_span<U>(p, row0 + rr, c);
      if (piece < sp.pieces) cp_async16(dst + rr * kPitch + 16 * piece, reinterpret_cast<const void*>(sp.a0 + 16 * piece));
    }
  };
  auto blocks_in = [&](int64_t c) { return static_cast<int>(nb_row - c * 8 < 8 ? nb_row - c * 8 : 8); };

  // Activations of chunk c into registers: piece i = tid + k kThreads is token i / 16,
  // elements 16 (i % 16).. of the chunk; tokens past n read token n - 1 (never stored).
  int4 xq[kXPer];
  float xd[kXPer];
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
  auto store_x = [&](int64_t c) {
    const int nbk = blocks_in(c);
#pragma unroll
    for (int k = 0; k < kXPer; ++k) {
      const int i = tid + k * kThreads, t = i / 16, piece = i % 16;
      if (i >= kTok * 16 || piece >= 2 * nbk) continue;
      const __half2 d2 = __float2half2_rn(xd[k]), off = __float2half2_rn(1152.0f);
      const uint32_t w[4] = {static_cast<uint32_t>(xq[k].x) ^ 0x80808080u, static_cast<uint32_t>(xq[k].y) ^ 0x80808080u,
                             static_cast<uint32_t>(xq[k].z) ^ 0x80808080u, static_cast<uint32_t>(xq[k].w) ^ 0x80808080u};
      uint32_t h[8];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t lo, hi;
        bytes_to_h2(w[j], lo, hi);  // 1024 + 128 + q
        h[2 * j] = h2_bits(__hmul2(__hsub2(bits_h2(lo), off), d2));
        h[2 * j + 1] = h2_bits(__hmul2(__hsub2(bits_h2(hi), off), d2));
      }
      auto* dst = reinterpret_cast<uint4*>(xh + t * kXPitch + 32 * piece);
      dst[0] = make_uint4(h[0], h[1], h[2], h[3]);
      dst[1] = make_uint4(h[4], h[5], h[6], h[7]);
    }
  };
  // The scale table of chunk c from its ring slot.
  auto fill_table = [&](int64_t c, int slot) {
    const int nbk = blocks_in(c);
    for (int i = tid; i < kRows * 8; i += kThreads) {
      const int rr = i / 8, kb = i % 8;
      if (row0 + rr >= rows || kb >= nbk) continue;
      const int lead = chunk_span<U>(p, row0 + rr, c).lead;
      table[rr * kScalePitch + kb] = block_scales<U>(ring + slot * (kRows * kPitch) + rr * kPitch + lead, kb);
    }
  };

  const int warp = tid / kWarp, lane = tid % kWarp, g = lane / 4, t4 = lane % 4;
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  // Weights first (before the previous kernel ends), kS - 1 chunks ahead.
#pragma unroll
  for (int s = 0; s < kS - 1; ++s) {
    if (c_begin + s < c_end) issue(c_begin + s, s);
    cp_async_commit();
  }
  pdl_begin();
  if (c_begin < c_end) load_x(c_begin);

  // This lane's two rows (g, g + 8 of the warp's 16) and their offset in a chunk's copy.
  const int r_lo = 16 * warp + g, r_hi = r_lo + 8;
  const int64_t rg_lo = min(row0 + r_lo, rows - 1), rg_hi = min(row0 + r_hi, rows - 1);
  for (int64_t c = c_begin, i = 0; c < c_end; ++c, ++i) {
    const int slot = static_cast<int>(i % kS);
    cp_async_wait<kS - 2>();  // chunk c's group is complete
    __syncthreads();          // ... for every thread; chunk c - 1's buffers are free
    if (c + kS - 1 < c_end) issue(c + kS - 1, static_cast<int>((i + kS - 1) % kS));
    cp_async_commit();
    store_x(c);
    if (c + 1 < c_end) load_x(c + 1);  // in flight during this chunk's products
    fill_table(c, slot);
    __syncthreads();

    const int nbk = blocks_in(c);
    const uint8_t* base = ring + slot * (kRows * kPitch);
    const uint8_t* raw_lo = base + r_lo * kPitch + chunk_span<U>(p, rg_lo, c).lead;
    const uint8_t* raw_hi = base + r_hi * kPitch + chunk_span<U>(p, rg_hi, c).lead;
    // One 32-element block: A for both k16 halves (rows g, g + 8), then every token tile.
    auto block = [&](int kb) {
      uint32_t vl[2], vh[2];
      block_values<U>(raw_lo, kb, t4, vl);
      block_values<U>(raw_hi, kb, t4, vh);
      const uint2 sl = table[r_lo * kScalePitch + kb], sh = table[r_hi * kScalePitch + kb];
      const __half2 off = __float2half2_rn(1024.0f + Fmt<U>::kOffset);
      uint32_t a[2][4];  // [k16 half][fragment register]
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const __half2 s_lo = hf == 0 ? __low2half2(bits_h2(sl.x)) : __high2half2(bits_h2(sl.x));
        const __half2 s_hi = hf == 0 ? __low2half2(bits_h2(sh.x)) : __high2half2(bits_h2(sh.x));
        uint32_t l0, l1, h0, h1;
        bytes_to_h2(vl[hf], l0, l1);
        bytes_to_h2(vh[hf], h0, h1);
        a[hf][0] = h2_bits(__hfma2(__hsub2(bits_h2(l0), off), s_lo, bits_h2(sl.y)));
        a[hf][1] = h2_bits(__hfma2(__hsub2(bits_h2(h0), off), s_hi, bits_h2(sh.y)));
        a[hf][2] = h2_bits(__hfma2(__hsub2(bits_h2(l1), off), s_lo, bits_h2(sl.y)));
        a[hf][3] = h2_bits(__hfma2(__hsub2(bits_h2(h1), off), s_hi, bits_h2(sh.y)));
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const uint8_t* xrow = xh + (8 * j + g) * kXPitch + 64 * kb + 8 * t4;
        const uint2 b0 = *reinterpret_cast<const uint2*>(xrow);
        const uint2 b1 = *reinterpret_cast<const uint2*>(xrow + 32);
        mma_f16(acc[j], a[0], b0.x, b0.y);
        mma_f16(acc[j], a[1], b1.x, b1.y);
      }
    };
    if (nbk == 8) {
#pragma unroll
      for (int kb = 0; kb < 8; ++kb) block(kb);
    } else {
      for (int kb = 0; kb < nbk; ++kb) block(kb);
    }
  }

  // Accumulator i of tile j: row g (i < 2) or g + 8, token 8j + 2 t4 + i % 2.
  float* dst = p.splits > 1 ? p.partial + blockIdx.y * n * rows : p.out;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t t = 8 * j + 2 * t4 + (i & 1), r = row0 + (i >= 2 ? r_hi : r_lo);
      if (t < n && r < rows) dst[t * rows + r] = acc[j][i];
    }
}

template <class U, int NT>
void launch_nt(const MmaParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.w.rows + kRows - 1) / kRows), static_cast<unsigned>(p.splits));
  HEARTH_LAUNCH(mma_f16_kernel<U, NT>, grid, dim3(kThreads), smem_bytes<U, NT>(), stream, p);
  HEARTH_CUDA_LAUNCHED();
}

template <class U, int NT>
void allow_nt() {
  check_cuda(cudaFuncSetAttribute(mma_f16_kernel<U, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem_bytes<U, NT>())),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
  check_cuda(cudaFuncSetAttribute(mma_f16_kernel<U, NT>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared),
             "cudaFuncSetAttribute", __FILE__, __LINE__);
}

template <class F>
bool with_unit(DType type, F&& f);

// Blocks an SM of the kernel for n tokens: two (kSmemBudget), one for Q8_0 past 32 tokens.
int with_blocks(DType type, int64_t n) {
  int b = 1;
  with_unit(type, [&](auto u) {
    using U = decltype(u);
    constexpr int b1 = smem_bytes<U, 1>() <= kSmemBudget ? 2 : 1, b2 = smem_bytes<U, 2>() <= kSmemBudget ? 2 : 1;
    constexpr int b4 = smem_bytes<U, 4>() <= kSmemBudget ? 2 : 1, b8 = smem_bytes<U, 8>() <= kSmemBudget ? 2 : 1;
    b = n <= 8 ? b1 : n <= 16 ? b2 : n <= 32 ? b4 : b8;
    return true;
  });
  return b;
}

template <class F>
bool with_unit(DType type, F&& f) {
  switch (type) {
    case DType::Q4_0: return f(UnitQ4_0{});
    case DType::Q8_0: return f(UnitQ8_0{});
    case DType::Q4_K: return f(UnitQ4_K{});
    case DType::Q5_K: return f(UnitQ5_K{});
    case DType::Q6_K: return f(UnitQ6_K{});
    default: return false;
  }
}

bool g_ready = false;  // init_mma_f16 ran and HEARTH_CUDA_MMA_F16 is not 0

}  // namespace

void init_mma_f16() {
  const char* e = std::getenv("HEARTH_CUDA_MMA_F16");
  int device = 0, optin = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "cudaDeviceGetAttribute",
             __FILE__, __LINE__);
  // Cards with less shared memory a block than the largest configuration (sm_86/89:
  // 99 KiB) keep mma.cu.
  g_ready = !(e && std::string(e) == "0") && static_cast<size_t>(optin) >= smem_bytes<UnitQ8_0, 8>();
  if (!g_ready) return;
  auto all = [](auto u) {
    using U = decltype(u);
    allow_nt<U, 1>(), allow_nt<U, 2>(), allow_nt<U, 4>(), allow_nt<U, 8>();
  };
  all(UnitQ4_0{}), all(UnitQ8_0{}), all(UnitQ4_K{}), all(UnitQ5_K{}), all(UnitQ6_K{});
}

bool mma_f16_applies(const DevWeight& w) {
  if (!g_ready || !with_unit(w.type, [](auto) { return true; })) return false;
  // 4-byte word loads of the K-quant rows need 16-byte aligned chunks; the other types
  // read 2-byte aligned halves. Rows of 32-element types may end inside a chunk.
  const bool k_quant = w.type == DType::Q4_K || w.type == DType::Q5_K;
  if (reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || (k_quant && w.row_bytes % 16 != 0) || w.row_bytes % 2 != 0)
    return false;
  return w.type == DType::Q4_0 || w.type == DType::Q8_0 || w.cols % kChunk == 0;
}

int32_t mma_plan_splits(const DevWeight& w, int64_t n, int sm_count) {
  if (!mma_f16_applies(w)) return mma_splits(w.rows, w.cols, int64_t{sm_count} * mma_blocks_per_sm(w.type, w.bits, n));
  const int per_sm = with_blocks(w.type, n);
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

bool launch_mma_f16(const MmaParams& p, cudaStream_t stream) {
  if (!mma_f16_applies(p.w)) return false;
  return with_unit(p.w.type, [&](auto u) {
    using U = decltype(u);
    if (p.n <= 8) launch_nt<U, 1>(p, stream);
    else if (p.n <= 16) launch_nt<U, 2>(p, stream);
    else if (p.n <= 32) launch_nt<U, 4>(p, stream);
    else launch_nt<U, 8>(p, stream);
    return true;
  });
}

}  // namespace hearth::cuda
