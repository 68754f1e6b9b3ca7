// Reference dequantizers for every ggml block type (layouts in quant/blocks.h). Each
// function documents which stored bits make element e of its block.
//
// Arithmetic order is part of the contract: scripts/quant_reference.py evaluates the
// same float32 expressions (e.g. Q4_K: (d * sc) * q - (dmin * m)) and the tests require
// bit-exact equality, so this library is built with -ffp-contract=off (no fused
// multiply-adds) and every product is written out in the order the script uses.
#include <cstring>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/ref_internal.h"

namespace hearth::quant::detail {
namespace {

// Q4_0: byte j holds element j (low nibble) and j + 16 (high); value = d * (nibble - 8).
void dequant_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((x[i].qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((x[i].qs[j] >> 4) - 8);
    }
  }
}

// Q4_1: nibbles as Q4_0, value = d * nibble + m.
void dequant_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    const float m = f16_to_f32(x[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(x[i].qs[j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(x[i].qs[j] >> 4) + m;
    }
  }
}

// Q5_0/Q5_1: nibbles as Q4_0 plus bit e of the little-endian u32 qh as bit 4.
uint32_t load_qh(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 | static_cast<uint32_t>(qh[2]) << 16 |
         static_cast<uint32_t>(qh[3]) << 24;
}

void dequant_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (x[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4;
      const int hi = (x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void dequant_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    const float m = f16_to_f32(x[i].m);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int lo = (x[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4;
      const int hi = (x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

// Q8_0/Q8_1: element j = d * qs[j].
template <typename Block>
void dequant_q8(const Block* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(x[i].qs[j]);
  }
}

// Q2_K: element e = 128h + 32j + k (h < 2, j < 4, k < 32) is bits 2j..2j+1 of
// qs[32h + k]; its sub-block is s = e / 16 with scale = scales[s] & 15 and
// min = scales[s] >> 4: value = (d * scale) * q - (dmin * min).
void dequant_q2_k(const BlockQ2_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    const float dmin = f16_to_f32(x[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, j = (e / 32) % 4, k = e % 32;
      const int q = (x[i].qs[32 * h + k] >> (2 * j)) & 3;
      const uint8_t sc = x[i].scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q3_K: low bits as Q2_K; the third bit is bit 4h + j of hmask[k]. A clear bit means the
// value is (low bits) - 4, a set bit means (low bits): q in -4..3.
// value = (d * q3k_scale(s)) * q.
void dequant_q3_k(const BlockQ3_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, j = (e / 32) % 4, k = e % 32;
      const int lo = (x[i].qs[32 * h + k] >> (2 * j)) & 3;
      const bool high = (x[i].hmask[k] >> (4 * h + j)) & 1;
      const int q = lo - (high ? 0 : 4);
      const float dl = d * static_cast<float>(q3k_scale(x[i].scales, e / 16));
      y[e] = dl * static_cast<float>(q);
    }
  }
}

// Q4_K: chunk c (64 elements) uses bytes qs[32c .. 32c + 31]: element 64c + l is the low
// nibble of byte 32c + l (sub-block 2c), element 64c + 32 + l the high nibble (2c + 1).
// Q5_K adds bit 2c (low) or 2c + 1 (high) of qh[l] as bit 4.
// value = (d * sc) * q - (dmin * m).
template <typename Block, bool kFifthBit>
void dequant_q45_k(const Block* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    const float dmin = f16_to_f32(x[i].dmin);
    for (int s = 0; s < 8; ++s) {
      int sc = 0, m = 0;
      k4_scale_min(x[i].scales, s, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      const int c = s / 2, shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) {
        int q = (x[i].qs[32 * c + l] >> shift) & 0xF;
        if constexpr (kFifthBit) q |= ((x[i].qh[l] >> s) & 1) << 4;
        y[32 * s + l] = dl * static_cast<float>(q) - ml;
      }
    }
  }
}

// Q6_K: half h (128 elements) uses ql[64h ..], qh[32h ..], scales[8h ..]. For l < 32,
// quarter r (0..3) of the half is element 128h + 32r + l with low 4 bits from
// ql[64h + l + 32 (r & 1)] (low nibble for r < 2, high for r >= 2) and high 2 bits from
// qh[32h + l] at bit 2r; scale index 8h + 2r + l / 16.
// value = (d * scale) * (q - 32).
void dequant_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, r = (e / 32) % 4, l = e % 32;
      const int lo = (x[i].ql[64 * h + l + 32 * (r & 1)] >> (r < 2 ? 0 : 4)) & 0xF;
      const int hi = (x[i].qh[32 * h + l] >> (2 * r)) & 3;
      const float dl = d * static_cast<float>(x[i].scales[8 * h + 2 * r + l / 16]);
      y[e] = dl * static_cast<float>((lo | hi << 4) - 32);
    }
  }
}

// Q8_K: element e = d * qs[e] (d is f32; bsums are redundant for dequantization).
void dequant_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K)
    for (int e = 0; e < kQK_K; ++e) y[e] = x[i].d * static_cast<float>(x[i].qs[e]);
}

// IQ4_NL: nibbles as Q4_0, value = d * kIQ4NLValues[nibble].
void dequant_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIQ4NLValues[x[i].qs[j] & 0xF]);
      y[j + 16] = d * static_cast<float>(kIQ4NLValues[x[i].qs[j] >> 4]);
    }
  }
}

// IQ4_XS: sub-block b is an IQ4_NL block body in qs[16b ..] with scale
// (d * iq4xs_scale(b)): value = (d * ls) * kIQ4NLValues[nibble].
void dequant_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    for (int b = 0; b < 8; ++b) {
      const float dl = d * static_cast<float>(iq4xs_scale(x[i], b));
      const uint8_t* qs = x[i].qs + 16 * b;
      for (int j = 0; j < 16; ++j) {
        y[32 * b + j] = dl * static_cast<float>(kIQ4NLValues[qs[j] & 0xF]);
        y[32 * b + j + 16] = dl * static_cast<float>(kIQ4NLValues[qs[j] >> 4]);
      }
    }
  }
}

template <typename Block>
const Block* as(const void* p) {
  return static_cast<const Block*>(p);
}

}  // namespace

bool dequantize_blocks(DType type, const void* src, float* dst, int64_t nb) {
  switch (type) {
    case DType::Q4_0: dequant_q4_0(as<BlockQ4_0>(src), dst, nb); return true;
    case DType::Q4_1: dequant_q4_1(as<BlockQ4_1>(src), dst, nb); return true;
    case DType::Q5_0: dequant_q5_0(as<BlockQ5_0>(src), dst, nb); return true;
    case DType::Q5_1: dequant_q5_1(as<BlockQ5_1>(src), dst, nb); return true;
    case DType::Q8_0: dequant_q8(as<BlockQ8_0>(src), dst, nb); return true;
    case DType::Q8_1: dequant_q8(as<BlockQ8_1>(src), dst, nb); return true;
    case DType::Q2_K: dequant_q2_k(as<BlockQ2_K>(src), dst, nb); return true;
    case DType::Q3_K: dequant_q3_k(as<BlockQ3_K>(src), dst, nb); return true;
    case DType::Q4_K: dequant_q45_k<BlockQ4_K, false>(as<BlockQ4_K>(src), dst, nb); return true;
    case DType::Q5_K: dequant_q45_k<BlockQ5_K, true>(as<BlockQ5_K>(src), dst, nb); return true;
    case DType::Q6_K: dequant_q6_k(as<BlockQ6_K>(src), dst, nb); return true;
    case DType::Q8_K: dequant_q8_k(as<BlockQ8_K>(src), dst, nb); return true;
    case DType::IQ4_NL: dequant_iq4_nl(as<BlockIQ4_NL>(src), dst, nb); return true;
    case DType::IQ4_XS: dequant_iq4_xs(as<BlockIQ4_XS>(src), dst, nb); return true;
    default: return false;
  }
}

}  // namespace hearth::quant::detail
