// Decoding a quantized weight's stored bytes into f16 mma.sync fragments, for mma_f16.cu
// (whose header says how a lane's values map onto m16n8k16's A layout): per type the format
// of one row's 256-element chunk in the ring (Fmt), the 8 values a lane takes of a 32-element
// block, and the (scale, min) f16 pairs of the blocks. Values are made exact in f16 by
// putting them under 1024 (byte permutes or masks with 0x64); scales are an f16 times a
// small integer, rounded once, as the prompt path's f16 tiles round them.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/quant_units.cuh"

namespace hearth::cuda::mma_f16_decode {

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
// MLX 4-bit: 256 values in 128 bytes, eight to a word in order (scales and biases live in
// arrays beside the rows); the tensor copy's box of 144 bytes reads 16 of the next chunk.
template <> struct Fmt<UnitMlx4> { static constexpr int kBytes = 128, kPitch = 144, kOffset = 0; };

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ __half2 bits_h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }

// A word from a 2-byte aligned shared address.
__device__ __forceinline__ uint32_t ld_u32_2(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | static_cast<uint32_t>(h[1]) << 16;
}

// Bytes (v0..v3, each < 1024 - 1024 = unsigned) of w as f16 pairs (1024 + v0, 1024 + v1)
// and (1024 + v2, 1024 + v3): exact, one permute each.
// kPerm: the pairs (v0, v2) and (v1, v3) instead, the tensor-copy form's order of k (the
// order a 4-bit word's nibbles come out in, mma_f16_kernel).
template <bool kPerm = false>
__device__ __forceinline__ void bytes_to_h2(uint32_t w, uint32_t& lo, uint32_t& hi) {
  lo = __byte_perm(w, 0x64646464u, kPerm ? 0x4240 : 0x4140);
  hi = __byte_perm(w, 0x64646464u, kPerm ? 0x4341 : 0x4342);
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

// Scale entry of a Q4_0 or Q8_0 row's block kb, an f16 pair (scale, min): (the block's d, 0).
template <class U>
__device__ __forceinline__ uint32_t block_scales(const uint8_t* raw, int kb) {
  static_assert(std::is_same_v<U, UnitQ4_0> || std::is_same_v<U, UnitQ8_0>, "K-quants: block_scale_pair");
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(raw + Fmt<U>::kBytes / 8 * kb));  // high half +0
}

// Scale entries (d sc, -dmin m) of blocks 2 p and 2 p + 1 of a Q4_K or Q5_K chunk (one
// superblock, 16-byte aligned in the ring): an f16 times a 6-bit integer, rounded once,
// from three word loads and byte masks, with no branch on which half of the blocks p is in
// (a test per block would split the warps whose lanes take both halves). Blocks 0-3: sc =
// bytes 0-3 & 63, m = bytes 4-7 & 63; blocks 4-7: the low (sc) and high (m) nibbles of
// bytes 8-11, with the top two bits of bytes 0-3 (sc) and 4-7 (m) above them.
__device__ __forceinline__ void k_quant_scales(const uint8_t* raw, int p, uint32_t (&out)[2]) {
  const auto* w = reinterpret_cast<const uint32_t*>(raw);  // d | dmin << 16, then the 12 scale bytes
  const uint32_t w0 = w[1], w1 = w[2], w2 = w[3];
  const bool high = p >= 2;
  const uint32_t sc = high ? (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u) : w0 & 0x3F3F3F3Fu;
  const uint32_t mn = high ? ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u) : w1 & 0x3F3F3F3Fu;
  const __half2 d = bits_h2(w[0] ^ 0x80000000u), k1024 = __float2half2_rn(1024.0f);  // (d, -dmin)
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int b = 8 * ((2 * p + e) & 3);
    const uint32_t v = ((sc >> b) & 0xFFu) | ((mn >> b) & 0xFFu) << 16 | 0x64006400u;  // (1024 + sc, 1024 + m)
    out[e] = h2_bits(__hmul2(d, __hsub2(bits_h2(v), k1024)));
  }
}

// The same for a Q6_K chunk: (d sc[2 kb], d sc[2 kb + 1]) of blocks kb = 2 p and 2 p + 1
// (two scales a block, one per 16 elements), the four int8 scales from one 2-byte aligned
// word (a Q6_K chunk starts off 4-byte boundaries) made exact f16 by the 1024 + 128 + sc
// trick, then one f16 product each.
__device__ __forceinline__ void q6_k_scales(const uint8_t* raw, int p, uint32_t (&out)[2]) {
  const uint32_t sc = ld_u32_2(raw + 192 + 4 * p) ^ 0x80808080u;  // sc + 128, bytes 4 p .. + 3
  const __half2 d = __half2half2(*reinterpret_cast<const __half*>(raw + 208)), k1152 = __float2half2_rn(1152.0f);
  out[0] = h2_bits(__hmul2(d, __hsub2(bits_h2(__byte_perm(sc, 0x64646464u, 0x4140)), k1152)));
  out[1] = h2_bits(__hmul2(d, __hsub2(bits_h2(__byte_perm(sc, 0x64646464u, 0x4342)), k1152)));
}

// The scale table entries of blocks 2 p and 2 p + 1 of a row's chunk (those below nbk;
// K-quant chunks are whole): (scale, min) pairs, the weight being (q - offset) * scale +
// min; Q6_K (no min): the scales of elements 0-15 and 16-31.
template <class U>
__device__ __forceinline__ void block_scale_pair(const uint8_t* raw, int p, int nbk, uint32_t (&out)[2]) {
  if constexpr (std::is_same_v<U, UnitQ4_K> || std::is_same_v<U, UnitQ5_K>) {
    (void)nbk, k_quant_scales(raw, p, out);
  } else if constexpr (std::is_same_v<U, UnitQ6_K>) {
    (void)nbk, q6_k_scales(raw, p, out);
  } else {
#pragma unroll
    for (int e = 0; e < 2; ++e)
      if (2 * p + e < nbk) out[e] = block_scales<U>(raw, 2 * p + e);
  }
}

}  // namespace hearth::cuda::mma_f16_decode
