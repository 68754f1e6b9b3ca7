// Quantized weights decoded in registers: the inner loops of the CUDA matrix-vector
// products, written once for device and host so a plain C++ test (tests/cuda/
// test_quant_units.cpp) checks every bit trick against the scalar reference without a GPU.
//
// A weight row is cut into "units": the piece one thread decodes from contiguous bytes.
//  - Quantized types pair with activations quantized per 32 elements (XRow: int8 values,
//    scale d and s = d * sum(q) per block) and use 4-way int8 dot products (dp4a):
//    Q4_0/Q8_0 one 32-block, Q4_K/Q5_K one 64-element chunk, Q6_K two 32-element quarters
//    sharing their bytes, MLX 4/8-bit 32 elements of one group.
//  - F32/F16/BF16 pair with float activations: 8 elements a unit (1 for odd row lengths).
// A unit's load() reads the weight bytes once; dot() may then run for several tokens.
// part(p) hands the tensor-core products (mma.cu) the unit's 32-element piece p (at row
// element part_offset(u, p)) as int8 words in element order with the affine map back to
// values: element i = sc[i / 16] * q[i] + mn, so a piece's dot with an activation block
// (d, s = d * sum(q_x)) is d * (sc . int sums of each half) + mn * s.
// Block layouts are quant/blocks.h; element orders are documented in quant/dequantize.cpp.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define HEARTH_HD __host__ __device__ __forceinline__
#define HEARTH_UNROLL _Pragma("unroll")
#include <cuda_fp16.h>
#else
#define HEARTH_HD inline
#define HEARTH_UNROLL
#include "core/dtype.h"
#include "core/half.h"
#endif

namespace hearth::cuda {

// ---- portable intrinsics ------------------------------------------------------------

HEARTH_HD float half_bits_to_float(uint16_t h) {
#if defined(__CUDACC__)
  return __half2float(__ushort_as_half(h));
#else
  return f16_to_f32(h);
#endif
}

HEARTH_HD float bf16_bits_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

// c + sum of the four signed byte products of a and b.
HEARTH_HD int dp4a(uint32_t a, int32_t b, int c) {
#if defined(__CUDA_ARCH__)
  return __dp4a(static_cast<int>(a), b, c);
#else
  for (int i = 0; i < 4; ++i)
    c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
  return c;
#endif
}

// Byte-wise a - b, without borrows between bytes.
HEARTH_HD uint32_t vsub4(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vsub4(a, b);
#else
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= ((((a >> (8 * i)) & 0xFF) - ((b >> (8 * i)) & 0xFF)) & 0xFF) << (8 * i);
  return r;
#endif
}

// Byte i of the result is byte (selector nibble i) of the 8 bytes x:y (x = bytes 0..3).
HEARTH_HD uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t selector) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(x, y, selector);
#else
  const uint64_t v = static_cast<uint64_t>(y) << 32 | x;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>((v >> (8 * ((selector >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
#endif
}

// ---- loads ---------------------------------------------------------------------------

HEARTH_HD uint16_t ld_u16(const uint8_t* p) {  // p 2-byte aligned
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint16_t*>(p);
#else
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}

HEARTH_HD uint32_t load_word(const uint8_t* p, int64_t i) {  // word i of 4-byte aligned words
#if defined(__CUDA_ARCH__)
  return reinterpret_cast<const uint32_t*>(p)[i];
#else
  uint32_t v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
#endif
}

// 4N bytes at a 16-byte aligned address.
template <int N>
HEARTH_HD void ld_words16(const void* p, uint32_t (&out)[N]) {
#if defined(__CUDA_ARCH__)
  static_assert(N % 4 == 0);
HEARTH_UNROLL
  for (int i = 0; i < N / 4; ++i) {
    const uint4 v = reinterpret_cast<const uint4*>(p)[i];
    out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
  }
#else
  std::memcpy(out, p, 4 * N);
#endif
}

// 4N bytes at any address. On the device it reads the aligned words around them and
// shifts, so up to 3 bytes past the end are touched: device weights carry 16 bytes of
// padding for this.
template <int N>
HEARTH_HD void ld_words_any(const uint8_t* p, uint32_t (&out)[N]) {
#if defined(__CUDA_ARCH__)
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uint32_t* base = reinterpret_cast<const uint32_t*>(a & ~uintptr_t{3});
  const uint32_t shift = static_cast<uint32_t>(a & 3) * 8;
  uint32_t w[N + 1];
HEARTH_UNROLL
  for (int i = 0; i <= N; ++i) w[i] = base[i];
HEARTH_UNROLL
  for (int i = 0; i < N; ++i) out[i] = __funnelshift_r(w[i], w[i + 1], shift);
#else
  std::memcpy(out, p, 4 * N);
#endif
}

HEARTH_HD void ld_x8(const int8_t* p, int32_t (&out)[8]) {  // 32 activation bytes, 16-aligned
#if defined(__CUDA_ARCH__)
  const int4 a = reinterpret_cast<const int4*>(p)[0], b = reinterpret_cast<const int4*>(p)[1];
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
#else
  std::memcpy(out, p, 32);
#endif
}

HEARTH_HD void ld_f8(const void* p, float (&out)[8]) {  // 8 floats, 16-aligned
#if defined(__CUDA_ARCH__)
  const float4 a = static_cast<const float4*>(p)[0], b = static_cast<const float4*>(p)[1];
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
#else
  std::memcpy(out, p, 32);
#endif
}

HEARTH_HD int ubyte(uint32_t w, int j) { return static_cast<int>((w >> (8 * j)) & 0xFF); }
HEARTH_HD int sbyte(uint32_t w, int j) { return static_cast<int8_t>(static_cast<uint8_t>(w >> (8 * j))); }

// ---- operands ------------------------------------------------------------------------

// One token's activations: q/d/s for quantized weights (32-element blocks), f otherwise.
// Units read the int8 values only through q32(), so a kernel can hand them another source
// with the same members (matmul.cu's XShared: the values staged in shared memory).
struct XRow {
  const int8_t* q;  // [cols]
  const float* d;   // [cols / 32] block scales
  const float* s;   // [cols / 32] d * sum(q) of each block
  const float* f;   // [cols] the floats themselves
  // The 32 values at element `at` (a multiple of 32) as 8 words.
  HEARTH_HD void q32(int64_t at, int32_t (&out)[8]) const { ld_x8(q + at, out); }
};

// What a unit needs besides its row's bytes (MLX scales and biases).
struct WAux {
  const void* scales;  // [rows, cols / group_size]
  const void* biases;
  int32_t scale_kind;  // 0 f32, 1 f16, 2 bf16
  int32_t group_size;
  int64_t groups_per_row;
};

HEARTH_HD float load_scale(const void* p, int32_t kind, int64_t i) {
  if (kind == 1) return half_bits_to_float(static_cast<const uint16_t*>(p)[i]);
  if (kind == 2) return bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// Scale and min of sub-block s of a Q4_K/Q5_K block whose 12 scale bytes are the words
// w0 (bytes 0..3), w1 (4..7), w2 (8..11); see quant::k4_scale_min.
HEARTH_HD void k4_scale_min_words(uint32_t w0, uint32_t w1, uint32_t w2, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = (w0 >> (8 * s)) & 63;
    *m = (w1 >> (8 * s)) & 63;
  } else {
    const int t = 8 * (s - 4);
    *sc = ((w2 >> t) & 0xF) | (((w0 >> t) >> 6) & 3) << 4;
    *m = ((w2 >> t) >> 4 & 0xF) | (((w1 >> t) >> 6) & 3) << 4;
  }
}

// x's 32-element blocks as a unit multiplies them: the unit's kBlocks blocks (x_block(u, i))
// in registers. The register-resident form lets a kernel load a lane's activations once
// and reuse them for every row (matmul_stream.cu); dot() gathers them from an XRow or
// XShared per call.
template <int kBlocks>
struct XBlocks {
  int32_t q[kBlocks][8];
  float d[kBlocks];  // block scale
  float s[kBlocks];  // d * sum(q)
};

template <class U, class X>
HEARTH_HD XBlocks<U::kBlocks> gather_x(const X& x, int u) {
  XBlocks<U::kBlocks> b;
HEARTH_UNROLL
  for (int i = 0; i < U::kBlocks; ++i) {
    const int blk = U::x_block(u, i);
    x.q32(32 * static_cast<int64_t>(blk), b.q[i]);
    b.d[i] = x.d[blk];
    b.s[i] = x.s[blk];
  }
  return b;
}

// ---- units against quantized activations ---------------------------------------------

struct UnitQ4_0 {
  static constexpr int kElems = 32;
  float d;
  uint32_t q[4];
  HEARTH_HD void load(const uint8_t* row, int64_t, int u, const WAux&) {
    const uint8_t* p = row + 18 * u;
    d = half_bits_to_float(ld_u16(p));
    ld_words_any<4>(p + 2, q);
  }
  static constexpr int kBlocks = 1;
  static HEARTH_HD int x_block(int u, int) { return u; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitQ4_0>(x, u)); }
  HEARTH_HD float dot(const XBlocks<1>& x) const {
    int sum = 0;
HEARTH_UNROLL
    for (int i = 0; i < 4; ++i) {
      sum = dp4a(q[i] & 0x0F0F0F0Fu, x.q[0][i], sum);
      sum = dp4a((q[i] >> 4) & 0x0F0F0F0Fu, x.q[0][4 + i], sum);
    }
    return d * (x.d[0] * static_cast<float>(sum) - 8.0f * x.s[0]);  // nibbles are offset by 8
  }
  // Element i of the unit (i a compile-time constant after unrolling), at row element
  // part_offset(u, i / 32) + i % 32.
  HEARTH_HD float elem(int i) const {
    const int j = i % 16;
    return d * static_cast<float>(((ubyte(q[j / 4], j % 4) >> (i < 16 ? 0 : 4)) & 0xF) - 8);
  }
  static HEARTH_HD int64_t part_offset(int u, int) { return 32 * static_cast<int64_t>(u); }
  HEARTH_HD void part(int, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = q[i] & 0x0F0F0F0Fu, w[4 + i] = (q[i] >> 4) & 0x0F0F0F0Fu;
    sc[0] = sc[1] = d, mn = -8.0f * d;
  }
};

struct UnitQ8_0 {
  static constexpr int kElems = 32;
  float d;
  uint32_t q[8];
  HEARTH_HD void load(const uint8_t* row, int64_t, int u, const WAux&) {
    const uint8_t* p = row + 34 * u;
    d = half_bits_to_float(ld_u16(p));
    ld_words_any<8>(p + 2, q);
  }
  static constexpr int kBlocks = 1;
  static HEARTH_HD int x_block(int u, int) { return u; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitQ8_0>(x, u)); }
  HEARTH_HD float dot(const XBlocks<1>& x) const {
    int sum = 0;
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) sum = dp4a(q[i], x.q[0][i], sum);
    return d * x.d[0] * static_cast<float>(sum);
  }
  HEARTH_HD float elem(int i) const { return d * static_cast<float>(sbyte(q[i / 4], i % 4)); }
  static HEARTH_HD int64_t part_offset(int u, int) { return 32 * static_cast<int64_t>(u); }
  HEARTH_HD void part(int, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = q[i];
    sc[0] = sc[1] = d, mn = 0.0f;
  }
};

// Q4_K (kFifth = false) and Q5_K: unit u is chunk u % 4 (64 elements: sub-blocks 2c
// in the low nibbles, 2c + 1 in the high ones) of super-block u / 4.
template <bool kFifth>
struct UnitQ45_K {
  static constexpr int kElems = 64;
  static constexpr int kBlockBytes = kFifth ? 176 : 144;
  float d0, m0, d1, m1;  // (d * scale) and (dmin * min) of the two sub-blocks
  uint32_t lo[8], hi[8];  // 4-bit (5-bit) values as bytes, elements 4i..4i+3 per word
  HEARTH_HD void load(const uint8_t* row, int64_t, int u, const WAux&) {
    const int c = u & 3;
    const uint8_t* p = row + static_cast<int64_t>(kBlockBytes) * (u >> 2);
    uint32_t head[4];  // d, dmin (f16 each), then the 12 scale bytes
    ld_words16<4>(p, head);
    const float d = half_bits_to_float(static_cast<uint16_t>(head[0] & 0xFFFF));
    const float dmin = half_bits_to_float(static_cast<uint16_t>(head[0] >> 16));
    // Sub-blocks 2c and 2c + 1 at once: their bytes are one 16-bit half of each scale
    // word, so both 6-bit scales (mins) come out as the two bytes of one word; the same
    // fields as k4_scale_min_words, in fewer instructions (this runs once per unit).
    const int h = 16 * (c & 1);
    const uint32_t w0 = head[1] >> h, w1 = head[2] >> h, w2 = head[3] >> h;
    const uint32_t sc = c < 2 ? w0 & 0x3F3Fu : (w2 & 0x0F0Fu) | ((w0 >> 2) & 0x3030u);
    const uint32_t m = c < 2 ? w1 & 0x3F3Fu : ((w2 >> 4) & 0x0F0Fu) | ((w1 >> 2) & 0x3030u);
    d0 = d * static_cast<float>(sc & 0xFF), m0 = dmin * static_cast<float>(m & 0xFF);
    d1 = d * static_cast<float>((sc >> 8) & 0xFF), m1 = dmin * static_cast<float>((m >> 8) & 0xFF);
    uint32_t q[8];
    ld_words16<8>(p + (kFifth ? 48 : 16) + 32 * c, q);
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) lo[i] = q[i] & 0x0F0F0F0Fu, hi[i] = (q[i] >> 4) & 0x0F0F0F0Fu;
    if constexpr (kFifth) {
      uint32_t h[8];
      ld_words16<8>(p + 16, h);
HEARTH_UNROLL
      for (int i = 0; i < 8; ++i) {
        lo[i] |= ((h[i] >> (2 * c)) & 0x01010101u) << 4;
        hi[i] |= ((h[i] >> (2 * c + 1)) & 0x01010101u) << 4;
      }
    }
  }
  static constexpr int kBlocks = 2;
  static HEARTH_HD int x_block(int u, int i) { return 2 * u + i; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitQ45_K>(x, u)); }
  HEARTH_HD float dot(const XBlocks<2>& x) const {
    int s0 = 0, s1 = 0;
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) s0 = dp4a(lo[i], x.q[0][i], s0), s1 = dp4a(hi[i], x.q[1][i], s1);
    return d0 * x.d[0] * static_cast<float>(s0) - m0 * x.s[0] + d1 * x.d[1] * static_cast<float>(s1) - m1 * x.s[1];
  }
  HEARTH_HD float elem(int i) const {
    return i < 32 ? d0 * static_cast<float>(ubyte(lo[i / 4], i % 4)) - m0
                  : d1 * static_cast<float>(ubyte(hi[(i - 32) / 4], i % 4)) - m1;
  }
  static HEARTH_HD int64_t part_offset(int u, int part) { return 64 * static_cast<int64_t>(u) + 32 * part; }
  HEARTH_HD void part(int p, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = p == 0 ? lo[i] : hi[i];
    sc[0] = sc[1] = p == 0 ? d0 : d1, mn = p == 0 ? -m0 : -m1;
  }
};
using UnitQ4_K = UnitQ45_K<false>;
using UnitQ5_K = UnitQ45_K<true>;

// Q6_K: unit u of super-block u / 4 is half h = (u / 2) % 2, quarters r0 = u % 2 and
// r0 + 2, which share their low-bit bytes (low / high nibble) and high-bit bytes.
struct UnitQ6_K {
  static constexpr int kElems = 64;
  int32_t a[8], b[8];  // signed 6-bit values (q - 32) of quarters r0 and r0 + 2
  int sa0, sa1, sb0, sb1;  // scales of their 16-element halves
  float d;
  // Unit u's block, and its low-bit and high-bit words (load, load_dot).
  static HEARTH_HD const uint8_t* words(const uint8_t* row, int u, uint32_t (&ql)[8], uint32_t (&qh)[8]) {
    const int h = (u >> 1) & 1, r0 = u & 1;
    const uint8_t* p = row + 210 * static_cast<int64_t>(u >> 2);
    ld_words_any<8>(p + 64 * h + 32 * r0, ql);
    ld_words_any<8>(p + 128 + 32 * h, qh);
    return p;
  }
  // The scales of unit u's four 16-element halves (a0, a1, b0, b1) in the block at p.
  static HEARTH_HD const int8_t* half_scales(const uint8_t* p, int u) {
    return reinterpret_cast<const int8_t*>(p + 192 + 8 * ((u >> 1) & 1) + 2 * (u & 1));
  }
  // Word i's 6-bit values 0..63 of quarters r0 (va) and r0 + 2 (vb).
  static HEARTH_HD void values(uint32_t ql, uint32_t qh, int r0, uint32_t* va, uint32_t* vb) {
    *va = (ql & 0x0F0F0F0Fu) | ((qh >> (2 * r0)) & 0x03030303u) << 4;
    *vb = ((ql >> 4) & 0x0F0F0F0Fu) | ((qh >> (2 * r0 + 4)) & 0x03030303u) << 4;
  }
  HEARTH_HD void load(const uint8_t* row, int64_t, int u, const WAux&) {
    uint32_t ql[8], qh[8];
    const uint8_t* p = words(row, u, ql, qh);
    const int8_t* sc = half_scales(p, u);
    sa0 = sc[0], sa1 = sc[1], sb0 = sc[4], sb1 = sc[5];
    d = half_bits_to_float(ld_u16(p + 208));
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) {
      uint32_t va, vb;
      values(ql[i], qh[i], u & 1, &va, &vb);
      a[i] = static_cast<int32_t>(vsub4(va, 0x20202020u));
      b[i] = static_cast<int32_t>(vsub4(vb, 0x20202020u));
    }
  }
  static constexpr int kBlocks = 2;
  // Quarters r0 and r0 + 2 of half h of super-block u / 4.
  static HEARTH_HD int x_block(int u, int i) { return 8 * (u >> 2) + 4 * ((u >> 1) & 1) + (u & 1) + 2 * i; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitQ6_K>(x, u)); }
  HEARTH_HD float dot(const XBlocks<2>& x) const {
    int a0 = 0, a1 = 0, b0 = 0, b1 = 0;
HEARTH_UNROLL
    for (int i = 0; i < 4; ++i) {
      a0 = dp4a(static_cast<uint32_t>(a[i]), x.q[0][i], a0), a1 = dp4a(static_cast<uint32_t>(a[i + 4]), x.q[0][i + 4], a1);
      b0 = dp4a(static_cast<uint32_t>(b[i]), x.q[1][i], b0), b1 = dp4a(static_cast<uint32_t>(b[i + 4]), x.q[1][i + 4], b1);
    }
    return d * (x.d[0] * static_cast<float>(sa0 * a0 + sa1 * a1) + x.d[1] * static_cast<float>(sb0 * b0 + sb1 * b1));
  }
  // load + dot for the decode products (matmul_stream.cu): the values stay 0..63 and the
  // offset comes off the integer sums, sum((q - 32) x) = sum(q x) - 32 sum(x) over each
  // 16-element half, so the 16 byte-wise subtractions of load() become 16 dp4a; the
  // same integer sums, so the same float.
  static HEARTH_HD float load_dot(const uint8_t* row, int u, const WAux&, const XBlocks<2>& x) {
    uint32_t ql[8], qh[8];
    const uint8_t* p = words(row, u, ql, qh);
    const int8_t* sc = half_scales(p, u);
    int sum[4] = {0, 0, 0, 0}, xsum[4] = {0, 0, 0, 0};  // halves: a0, a1, b0, b1
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) {
      uint32_t va, vb;
      values(ql[i], qh[i], u & 1, &va, &vb);
      const int half = i / 4;
      sum[half] = dp4a(va, x.q[0][i], sum[half]), xsum[half] = dp4a(0x01010101u, x.q[0][i], xsum[half]);
      sum[2 + half] = dp4a(vb, x.q[1][i], sum[2 + half]), xsum[2 + half] = dp4a(0x01010101u, x.q[1][i], xsum[2 + half]);
    }
    int a[4];
HEARTH_UNROLL
    for (int k = 0; k < 4; ++k) a[k] = sum[k] - 32 * xsum[k];
    const float d = half_bits_to_float(ld_u16(p + 208));
    return d * (x.d[0] * static_cast<float>(sc[0] * a[0] + sc[1] * a[1]) +
                x.d[1] * static_cast<float>(sc[4] * a[2] + sc[5] * a[3]));
  }
  HEARTH_HD float elem(int i) const {
    const int l = i % 32;
    const int q = i < 32 ? sbyte(static_cast<uint32_t>(a[l / 4]), l % 4) : sbyte(static_cast<uint32_t>(b[l / 4]), l % 4);
    const int sc = i < 32 ? (l < 16 ? sa0 : sa1) : (l < 16 ? sb0 : sb1);
    return d * static_cast<float>(sc) * static_cast<float>(q);
  }
  static HEARTH_HD int64_t part_offset(int u, int part) {
    return 256 * static_cast<int64_t>(u >> 2) + 128 * ((u >> 1) & 1) + 32 * (u & 1) + 64 * part;
  }
  // The one unit with 16-element scales: sc differs between the halves of a piece.
  HEARTH_HD void part(int p, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = static_cast<uint32_t>(p == 0 ? a[i] : b[i]);
    sc[0] = d * static_cast<float>(p == 0 ? sa0 : sb0), sc[1] = d * static_cast<float>(p == 0 ? sa1 : sb1), mn = 0.0f;
  }
};

// The scale group of an MLX unit's first element: group sizes are powers of two (32, 64
// or 128; CudaBackend::supports_weight), so a shift, not a division, in every unit.
HEARTH_HD int64_t mlx_group(int64_t r, int u, const WAux& aux) {
#ifdef __CUDA_ARCH__
  const int shift = __ffs(aux.group_size) - 1;
#else
  const int shift = __builtin_ctz(static_cast<unsigned>(aux.group_size));
#endif
  return r * aux.groups_per_row + ((32 * u) >> shift);
}

// MLX affine, 4 bits: 32 elements = 4 words; word k holds elements 8k..8k+7, lowest first.
struct UnitMlx4 {
  static constexpr int kElems = 32;
  uint32_t v[8];  // values as bytes in element order
  float scale, bias;
  HEARTH_HD void load(const uint8_t* row, int64_t r, int u, const WAux& aux) {
    uint32_t w[4];
    ld_words16<4>(row + 16 * u, w);
HEARTH_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t even = w[k] & 0x0F0F0F0Fu, odd = (w[k] >> 4) & 0x0F0F0F0Fu;  // elements 0,2,4,6 / 1,3,5,7
      v[2 * k] = byte_perm(even, odd, 0x5140);
      v[2 * k + 1] = byte_perm(even, odd, 0x7362);
    }
    const int64_t g = mlx_group(r, u, aux);
    scale = load_scale(aux.scales, aux.scale_kind, g);
    bias = load_scale(aux.biases, aux.scale_kind, g);
  }
  // Activations staged once for a whole product (matmul_stream.cu, stage_x<true>) are
  // arranged as pair_x does: words 2k and 2k + 1 become elements 8k + 0, 2, 4, 6 and
  // 8k + 1, 3, 5, 7, which meet a weight word's low and high nibbles as stored, so
  // load_dot_paired needs no byte permutes (8 a unit in load()).
  // Words a (values 0-3 of 8) and b (4-7) -> (0, 2, 4, 6) and (1, 3, 5, 7).
  static HEARTH_HD void pair_words(int32_t& a, int32_t& b) {
    const auto ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
    a = static_cast<int32_t>(byte_perm(ua, ub, 0x6420)), b = static_cast<int32_t>(byte_perm(ua, ub, 0x7531));
  }
  static HEARTH_HD void pair_x(XBlocks<1>& x) {
HEARTH_UNROLL
    for (int k = 0; k < 4; ++k) pair_words(x.q[0][2 * k], x.q[0][2 * k + 1]);
  }
  static HEARTH_HD float load_dot_paired(const uint8_t* row, int u, const WAux& aux, const XBlocks<1>& px) {
    uint32_t w[4];
    ld_words16<4>(row + 16 * u, w);
    int sum = 0;
HEARTH_UNROLL
    for (int k = 0; k < 4; ++k) {
      sum = dp4a(w[k] & 0x0F0F0F0Fu, px.q[0][2 * k], sum);
      sum = dp4a((w[k] >> 4) & 0x0F0F0F0Fu, px.q[0][2 * k + 1], sum);
    }
    const int64_t g = mlx_group(0, u, aux);
    return load_scale(aux.scales, aux.scale_kind, g) * px.d[0] * static_cast<float>(sum) +
           load_scale(aux.biases, aux.scale_kind, g) * px.s[0];
  }
  static constexpr int kBlocks = 1;
  static HEARTH_HD int x_block(int u, int) { return u; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitMlx4>(x, u)); }
  HEARTH_HD float dot(const XBlocks<1>& x) const {
    int sum = 0;
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) sum = dp4a(v[i], x.q[0][i], sum);
    return scale * x.d[0] * static_cast<float>(sum) + bias * x.s[0];
  }
  HEARTH_HD float elem(int i) const { return scale * static_cast<float>(ubyte(v[i / 4], i % 4)) + bias; }
  static HEARTH_HD int64_t part_offset(int u, int) { return 32 * static_cast<int64_t>(u); }
  HEARTH_HD void part(int, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = v[i];
    sc[0] = sc[1] = scale, mn = bias;
  }
};

// MLX affine, 8 bits: 32 elements = 8 words of 4 bytes; values are stored as q - 128 so
// the signed dot product applies, and 128 * sum(x) is added back.
struct UnitMlx8 {
  static constexpr int kElems = 32;
  uint32_t v[8];
  float scale, bias;
  HEARTH_HD void load(const uint8_t* row, int64_t r, int u, const WAux& aux) {
    ld_words16<8>(row + 32 * u, v);
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) v[i] ^= 0x80808080u;
    const int64_t g = mlx_group(r, u, aux);
    scale = load_scale(aux.scales, aux.scale_kind, g);
    bias = load_scale(aux.biases, aux.scale_kind, g);
  }
  static constexpr int kBlocks = 1;
  static HEARTH_HD int x_block(int u, int) { return u; }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const { return dot(gather_x<UnitMlx8>(x, u)); }
  HEARTH_HD float dot(const XBlocks<1>& x) const {
    int sum = 0;
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) sum = dp4a(v[i], x.q[0][i], sum);
    return scale * (x.d[0] * static_cast<float>(sum) + 128.0f * x.s[0]) + bias * x.s[0];
  }
  HEARTH_HD float elem(int i) const { return scale * static_cast<float>(ubyte(v[i / 4], i % 4) ^ 0x80) + bias; }
  static HEARTH_HD int64_t part_offset(int u, int) { return 32 * static_cast<int64_t>(u); }
  HEARTH_HD void part(int, uint32_t (&w)[8], float (&sc)[2], float& mn) const {
HEARTH_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = v[i];  // q - 128
    sc[0] = sc[1] = scale, mn = 128.0f * scale + bias;
  }
};

// ---- units against float activations ---------------------------------------------------

// kKind 0 f32, 1 f16, 2 bf16; kWidth 8 (row length a multiple of 8) or 1.
template <int kKind, int kWidth>
struct UnitFloat {
  static constexpr int kElems = kWidth;
  float w[kWidth];
  HEARTH_HD void load(const uint8_t* row, int64_t, int u, const WAux&) {
    if constexpr (kWidth == 8) {
      if constexpr (kKind == 0) {
        ld_f8(row + 32 * u, w);
      } else {
        uint32_t h[4];
        ld_words16<4>(row + 16 * u, h);
HEARTH_UNROLL
        for (int i = 0; i < 4; ++i) {
          const auto lo = static_cast<uint16_t>(h[i] & 0xFFFF), hi = static_cast<uint16_t>(h[i] >> 16);
          w[2 * i] = kKind == 1 ? half_bits_to_float(lo) : bf16_bits_to_float(lo);
          w[2 * i + 1] = kKind == 1 ? half_bits_to_float(hi) : bf16_bits_to_float(hi);
        }
      }
    } else {
      w[0] = load_scale(row, kKind, u);
    }
  }
  template <class X>
  HEARTH_HD float dot(const X& x, int u) const {
    float sum = 0;
    if constexpr (kWidth == 8) {
      float xf[8];
      ld_f8(x.f + 8 * u, xf);
HEARTH_UNROLL
      for (int i = 0; i < 8; ++i) sum += w[i] * xf[i];
    } else {
      sum = w[0] * x.f[u];
    }
    return sum;
  }
};

// f(unit) with the unit that reads weights of `type` (bits: MLX's 4 or 8), false where no
// unit does (or for MLX when kMlx is false: f is then never instantiated with its units).
template <bool kMlx = true, class F>
bool with_quant_unit(DType type, int bits, F&& f) {
  switch (type) {
    case DType::Q4_0: return f(UnitQ4_0{});
    case DType::Q8_0: return f(UnitQ8_0{});
    case DType::Q4_K: return f(UnitQ4_K{});
    case DType::Q5_K: return f(UnitQ5_K{});
    case DType::Q6_K: return f(UnitQ6_K{});
    case DType::MLX_AFFINE:
      if constexpr (kMlx) {
        if (bits == 4) return f(UnitMlx4{});
        if (bits == 8) return f(UnitMlx8{});
      }
      return false;
    default: return false;
  }
}

}  // namespace hearth::cuda
