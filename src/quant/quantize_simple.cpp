// Reference quantizers for the 32-element block types and Q8_K. They follow the
// rounding rules of llama.cpp's quantize_row_*_ref (read for facts, written anew) so a
// file written by hearth quantizes a tensor the way llama-quantize would without an
// importance matrix:
//   Q4_0/Q5_0: d = (signed value of largest magnitude) / -8 or -16, q = trunc(x/d + 8.5 or 16.5)
//   Q4_1/Q5_1: d = (max - min) / 15 or 31, m = min, q = trunc((x - min)/d + 0.5)
//   Q8_0/Q8_1: d = max|x| / 127, q = round(x / d)  (Q8_1 also stores d * sum(q))
//   Q8_K:      d = -(signed value of largest magnitude) / 127 (f32), q = nearest(x / d)
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/ref_internal.h"

namespace hearth::quant::detail {
namespace {

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// Shared by Q4_0 (levels 16) and Q5_0 (levels 32): symmetric with the extreme value at -levels/2.
template <int kLevels>
void quantize_sym_block(const float* x, uint16_t* d_out, uint8_t* q) {
  const float d = signed_absmax(x, kQK) / -(kLevels / 2);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  for (int j = 0; j < kQK; ++j) {
    const int v = static_cast<int>(x[j] * id + (kLevels / 2 + 0.5f));
    q[j] = static_cast<uint8_t>(std::min(kLevels - 1, v));
  }
}

// Shared by Q4_1 and Q5_1: asymmetric between the block's min and max.
template <int kLevels>
void quantize_asym_block(const float* x, uint16_t* d_out, uint16_t* m_out, uint8_t* q) {
  float min = x[0], max = x[0];
  for (int j = 1; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / (kLevels - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  *m_out = f32_to_f16(min);
  for (int j = 0; j < kQK; ++j) {
    const int v = static_cast<int>((x[j] - min) * id + 0.5f);
    q[j] = static_cast<uint8_t>(std::min(kLevels - 1, v));
  }
}

// Packs 32 values (< 16) in Q4_0 nibble order: byte j = q[j] | q[j + 16] << 4.
void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
}

// Packs bit 4 of 32 five-bit values into a little-endian u32.
void pack_fifth_bits(const uint8_t* q, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<uint8_t>(h >> (8 * b));
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  uint8_t q[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    quantize_sym_block<16>(x, &y[i].d, q);
    pack_nibbles(q, y[i].qs);
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  uint8_t q[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    quantize_asym_block<16>(x, &y[i].d, &y[i].m, q);
    pack_nibbles(q, y[i].qs);
  }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  uint8_t q[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    quantize_sym_block<32>(x, &y[i].d, q);
    pack_nibbles(q, y[i].qs);
    pack_fifth_bits(q, y[i].qh);
  }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  uint8_t q[kQK];
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    quantize_asym_block<32>(x, &y[i].d, &y[i].m, q);
    pack_nibbles(q, y[i].qs);
    pack_fifth_bits(q, y[i].qh);
  }
}

// Q8_0 and Q8_1 share the scale and rounding; returns sum(q) for Q8_1's s field.
int quantize_q8_block(const float* x, uint16_t* d_out, int8_t* qs) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  int sum = 0;
  for (int j = 0; j < kQK; ++j) {
    qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    sum += qs[j];
  }
  return sum;
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) quantize_q8_block(x, &y[i].d, y[i].qs);
}

void quantize_q8_1(const float* x, BlockQ8_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const int sum = quantize_q8_block(x, &y[i].d, y[i].qs);
    // llama.cpp multiplies by the unrounded d; the f16 d is what dot products see, so
    // the sum is formed from it instead (the difference is below f16 precision of s).
    y[i].s = f32_to_f16(static_cast<float>(sum) * f16_to_f32(y[i].d));
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    std::memset(&y[i], 0, sizeof(BlockQ8_K));
    const float max = signed_absmax(x, kQK_K);
    if (max == 0.0f) continue;
    const float iscale = -127.0f / max;
    for (int e = 0; e < kQK_K; ++e) {
      const int v = static_cast<int>(std::nearbyint(iscale * x[e]));
      y[i].qs[e] = static_cast<int8_t>(std::min(127, v));
      y[i].bsums[e / 16] = static_cast<int16_t>(y[i].bsums[e / 16] + y[i].qs[e]);
    }
    y[i].d = 1.0f / iscale;
  }
}

template <typename Block>
Block* as(void* p) {
  return static_cast<Block*>(p);
}

}  // namespace

bool quantize_blocks_simple(DType type, const float* src, void* dst, int64_t nb) {
  switch (type) {
    case DType::Q4_0: quantize_q4_0(src, as<BlockQ4_0>(dst), nb); return true;
    case DType::Q4_1: quantize_q4_1(src, as<BlockQ4_1>(dst), nb); return true;
    case DType::Q5_0: quantize_q5_0(src, as<BlockQ5_0>(dst), nb); return true;
    case DType::Q5_1: quantize_q5_1(src, as<BlockQ5_1>(dst), nb); return true;
    case DType::Q8_0: quantize_q8_0(src, as<BlockQ8_0>(dst), nb); return true;
    case DType::Q8_1: quantize_q8_1(src, as<BlockQ8_1>(dst), nb); return true;
    case DType::Q8_K: quantize_q8_k(src, as<BlockQ8_K>(dst), nb); return true;
    default: return false;
  }
}

}  // namespace hearth::quant::detail
