// ggml block layouts, byte for byte as they sit in a GGUF file. Each struct is one block
// of a row; a row of n elements is n / kElems blocks laid end to end. Half-precision
// fields are kept as raw IEEE binary16 bits (uint16_t, read with f16_to_f32) so the
// structs are plain bytes with no alignment surprises; sizes are checked against
// core/dtype.cpp's table here and again at run time in tests/quant.
//
// "32-blocks" (Q4_0 … Q8_1, IQ4_NL) hold 32 elements with one scale. "Super-blocks"
// (the K-quants, IQ4_XS) hold 256 elements split into sub-blocks of 16 or 32 whose
// scales are themselves quantized against one or two half-precision super-scales.
// The exact element order of each type is documented at its dequantizer
// (quant/dequantize.cpp); this header only fixes where the bytes are.
#pragma once

#include <cstdint>

namespace hearth::quant {

inline constexpr int kQK = 32;     // elements per 32-block
inline constexpr int kQK_K = 256;  // elements per super-block

struct BlockQ4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // byte j: element j (low nibble) and j + 16 (high nibble), offset 8
};
struct BlockQ4_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 minimum (added)
  uint8_t qs[16];   // nibbles as Q4_0, unsigned
};
struct BlockQ5_0 {
  uint16_t d;       // f16 scale
  uint8_t qh[4];    // bit j of this little-endian u32 = 5th bit of element j
  uint8_t qs[16];   // low nibbles as Q4_0; values offset 16
};
struct BlockQ5_1 {
  uint16_t d;       // f16 scale
  uint16_t m;       // f16 minimum (added)
  uint8_t qh[4];    // as Q5_0
  uint8_t qs[16];   // as Q5_0, unsigned
};
struct BlockQ8_0 {
  uint16_t d;       // f16 scale
  int8_t qs[32];    // element j = d * qs[j]
};
struct BlockQ8_1 {
  uint16_t d;       // f16 scale
  uint16_t s;       // f16 of d * sum(qs): lets a dot product fold in a weight minimum
  int8_t qs[32];
};

struct BlockQ2_K {
  uint8_t scales[16];  // sub-block s (16 elements): scale = low nibble, min = high nibble
  uint8_t qs[64];      // 2-bit values, four per byte (see dequantize.cpp)
  uint16_t d;          // f16 super-scale of the scales
  uint16_t dmin;       // f16 super-scale of the mins
};
struct BlockQ3_K {
  uint8_t hmask[32];   // high (third) bit of each value; clear means "subtract 4"
  uint8_t qs[64];      // low 2 bits, four per byte, same order as Q2_K
  uint8_t scales[12];  // sixteen 6-bit scales, offset 32 (see q3k_scale)
  uint16_t d;          // f16 super-scale
};
struct BlockQ4_K {
  uint16_t d;          // f16 super-scale of the scales
  uint16_t dmin;       // f16 super-scale of the mins
  uint8_t scales[12];  // eight 6-bit scales and eight 6-bit mins (see k4_scale_min)
  uint8_t qs[128];     // 64-element chunks: byte 32c + l holds 64c + l (low), 64c + 32 + l (high)
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];  // as Q4_K
  uint8_t qh[32];      // fifth bits: bit 2c / 2c + 1 of qh[l] for the low / high nibble of chunk c
  uint8_t qs[128];     // as Q4_K
};
struct BlockQ6_K {
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // high 2 bits
  int8_t scales[16];   // one signed scale per 16 elements
  uint16_t d;          // f16 super-scale, stored last
};
struct BlockQ8_K {
  float d;             // f32 scale (activations only, never in files)
  int8_t qs[256];
  int16_t bsums[16];   // sum of qs over each run of 16 elements
};

struct BlockIQ4_NL {
  uint16_t d;          // f16 scale
  uint8_t qs[16];      // nibble order as Q4_0; nibble v means kIQ4NLValues[v]
};
struct BlockIQ4_XS {
  uint16_t d;          // f16 super-scale
  uint16_t scales_h;   // high 2 bits of the eight 6-bit sub-block scales, 2 bits each
  uint8_t scales_l[4]; // low 4 bits, two sub-blocks per byte (even in the low nibble)
  uint8_t qs[128];     // 32-element sub-block b: bytes 16b..16b+15 in Q4_0 nibble order
};

// Sizes from core/dtype.cpp; a mismatch would make every row offset wrong.
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);

// The sixteen levels of IQ4_NL and IQ4_XS, a non-uniform grid denser near zero.
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// Scale and min of sub-block s (0..7) of a Q4_K/Q5_K block. The first four pairs use the
// low 6 bits of bytes 0..7; the last four put their low nibbles in bytes 8..11 and
// borrow the spare top two bits of bytes 0..7 for their high bits.
inline void k4_scale_min(const uint8_t* scales, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4);
    *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// Signed scale (-32..31) of sub-block s (0..15) of a Q3_K block: low nibble from byte
// s % 8 (low nibble for s < 8, high for s >= 8), high two bits from byte 8 + s % 4 at
// bit 2 * (s / 4).
inline int q3k_scale(const uint8_t* scales, int s) {
  const int lo = (scales[s % 8] >> (s < 8 ? 0 : 4)) & 0xF;
  const int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
  return (lo | hi << 4) - 32;
}

// Signed scale (-32..31) of sub-block b (0..7) of an IQ4_XS block.
inline int iq4xs_scale(const BlockIQ4_XS& block, int b) {
  const int lo = (block.scales_l[b / 2] >> (4 * (b % 2))) & 0xF;
  const int hi = (block.scales_h >> (2 * b)) & 3;
  return (lo | hi << 4) - 32;
}

}  // namespace hearth::quant
