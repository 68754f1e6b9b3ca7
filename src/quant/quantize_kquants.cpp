// Reference quantizers for the super-block types (Q2_K … Q6_K, IQ4_XS) and IQ4_NL.
// Each block is quantized in three steps:
//   1. fit every sub-block on its own (fit.cpp: scale and, for Q2/4/5_K, a min);
//   2. quantize those sub-block scales against half-precision super-scales, the way the
//      format stores them (6-bit, 4-bit or int8 codes);
//   3. re-round every value against the scales as they will be dequantized, so the
//      rounding sees the stored (not the fitted) scales.
// Bit packing mirrors the dequantizers in dequantize.cpp, which document the orders.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/ref_internal.h"

namespace hearth::quant::detail {
namespace {

int clamp_round(float v, int lo, int hi) { return std::clamp(round_int(v), lo, hi); }

// Super-scale for non-negative sub-block values coded as 0..max_code, written as f16;
// returns the f16 value that dequantization will use.
float store_super_scale(float max_value, int max_code, uint16_t* out) {
  *out = f32_to_f16(max_value / static_cast<float>(max_code));
  return f16_to_f32(*out);
}

// Code of a value against a stored super-scale (0 when the super-scale is zero).
int scale_code(float value, float super, int lo, int hi) {
  return super > 0.0f ? clamp_round(value / super, lo, hi) : 0;
}

// Value of largest magnitude among n, with its sign.
float signed_absmax(const float* v, int n) {
  float max = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(v[i]) > std::fabs(max)) max = v[i];
  return max;
}

// Asymmetric types: value = (d * sc) * q - (dmin * m). Fits n_sub sub-blocks of `len`
// values, codes scales and mins with max_code, and writes the re-rounded q (0..nmax).
void quantize_asym_superblock(const float* x, int n_sub, int len, int nmax, int max_code, uint16_t* d_out,
                              uint16_t* dmin_out, int* sc, int* m, uint8_t* q) {
  AsymFit fits[16];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int s = 0; s < n_sub; ++s) {
    fits[s] = fit_asymmetric(x + s * len, len, nmax);
    max_scale = std::max(max_scale, fits[s].scale);
    max_min = std::max(max_min, fits[s].min);
  }
  const float d = store_super_scale(max_scale, max_code, d_out);
  const float dmin = store_super_scale(max_min, max_code, dmin_out);
  for (int s = 0; s < n_sub; ++s) {
    sc[s] = scale_code(fits[s].scale, d, 0, max_code);
    m[s] = scale_code(fits[s].min, dmin, 0, max_code);
    const float dl = d * static_cast<float>(sc[s]);
    const float ml = dmin * static_cast<float>(m[s]);
    for (int l = 0; l < len; ++l) {
      const int e = s * len + l;
      q[e] = static_cast<uint8_t>(dl > 0.0f ? clamp_round((x[e] + ml) / dl, 0, nmax) : 0);
    }
  }
}

// Symmetric types: value = (d * sc) * q with signed sc in [-code_neg, code_pos] and q in
// [-nneg, npos]. d is chosen so the largest-magnitude sub-block scale codes to -code_neg.
void quantize_sym_superblock(const float* x, int n_sub, int len, int nneg, int npos, int code_neg, int code_pos,
                             uint16_t* d_out, int* sc, int8_t* q) {
  float scales[16];
  for (int s = 0; s < n_sub; ++s) scales[s] = fit_symmetric(x + s * len, len, nneg, npos);
  *d_out = f32_to_f16(signed_absmax(scales, n_sub) / static_cast<float>(-code_neg));
  const float d = f16_to_f32(*d_out);
  for (int s = 0; s < n_sub; ++s) {
    sc[s] = d != 0.0f ? clamp_round(scales[s] / d, -code_neg, code_pos) : 0;
    const float dl = d * static_cast<float>(sc[s]);
    for (int l = 0; l < len; ++l) {
      const int e = s * len + l;
      q[e] = static_cast<int8_t>(dl != 0.0f ? clamp_round(x[e] / dl, -nneg, npos) : 0);
    }
  }
}

// Packs 2-bit values u[0..256) as Q2_K/Q3_K store them: element 128h + 32j + k in bits
// 2j..2j+1 of qs[32h + k].
void pack_2bit(const uint8_t* u, uint8_t* qs) {
  std::memset(qs, 0, 64);
  for (int e = 0; e < kQK_K; ++e)
    qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>((u[e] & 3) << (2 * ((e / 32) % 4)));
}

void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
  int sc[16], m[16];
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_asym_superblock(x, 16, 16, 3, 15, &y[i].d, &y[i].dmin, sc, m, q);
    for (int s = 0; s < 16; ++s) y[i].scales[s] = static_cast<uint8_t>(sc[s] | m[s] << 4);
    pack_2bit(q, y[i].qs);
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
  int sc[16];
  int8_t q[kQK_K];
  uint8_t u[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_sym_superblock(x, 16, 16, 4, 3, 32, 31, &y[i].d, sc, q);
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    for (int s = 0; s < 16; ++s) {  // inverse of q3k_scale
      const int v = sc[s] + 32;
      y[i].scales[s % 8] |= static_cast<uint8_t>((v & 0xF) << (s < 8 ? 0 : 4));
      y[i].scales[8 + s % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (s / 4)));
    }
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    for (int e = 0; e < kQK_K; ++e) {
      u[e] = static_cast<uint8_t>(q[e] + 4);  // 0..7; bit 2 set means "no -4"
      y[i].hmask[e % 32] |= static_cast<uint8_t>((u[e] >> 2) << (4 * (e / 128) + (e / 32) % 4));
    }
    pack_2bit(u, y[i].qs);
  }
}

// Inverse of k4_scale_min for eight 6-bit (scale, min) pairs.
void pack_k4_scales(const int* sc, const int* m, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int s = 0; s < 8; ++s) {
    if (s < 4) {
      scales[s] |= static_cast<uint8_t>(sc[s]);
      scales[s + 4] |= static_cast<uint8_t>(m[s]);
    } else {
      scales[s + 4] = static_cast<uint8_t>((sc[s] & 0xF) | (m[s] & 0xF) << 4);
      scales[s - 4] |= static_cast<uint8_t>((sc[s] >> 4) << 6);
      scales[s] |= static_cast<uint8_t>((m[s] >> 4) << 6);
    }
  }
}

template <typename Block, bool kFifthBit>
void quantize_q45_k(const float* x, Block* y, int64_t nb) {
  int sc[8], m[8];
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_asym_superblock(x, 8, 32, kFifthBit ? 31 : 15, 63, &y[i].d, &y[i].dmin, sc, m, q);
    pack_k4_scales(sc, m, y[i].scales);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = static_cast<uint8_t>((q[64 * c + l] & 0xF) | (q[64 * c + 32 + l] & 0xF) << 4);
    if constexpr (kFifthBit) {
      std::memset(y[i].qh, 0, sizeof(y[i].qh));
      for (int e = 0; e < kQK_K; ++e) y[i].qh[e % 32] |= static_cast<uint8_t>((q[e] >> 4) << (e / 32));
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int sc[16];
  int8_t q[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_sym_superblock(x, 16, 16, 32, 31, 128, 127, &y[i].d, sc, q);
    for (int s = 0; s < 16; ++s) y[i].scales[s] = static_cast<int8_t>(sc[s]);
    std::memset(y[i].ql, 0, sizeof(y[i].ql));
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int e = 0; e < kQK_K; ++e) {  // inverse of dequant_q6_k's mapping
      const int u = q[e] + 32, h = e / 128, r = (e / 32) % 4, l = e % 32;
      y[i].ql[64 * h + l + 32 * (r & 1)] |= static_cast<uint8_t>((u & 0xF) << (r < 2 ? 0 : 4));
      y[i].qh[32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * r));
    }
  }
}

// Nibble codes of 32 values against a stored scale, in Q4_0 order.
void pack_grid_nibbles(const float* x, float dl, uint8_t* qs) {
  uint8_t q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(dl != 0.0f ? nearest_grid_index(x[j] / dl) : 8);
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(q[j] | q[j + 16] << 4);
}

void quantize_iq4_nl(const float* x, BlockIQ4_NL* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    y[i].d = f32_to_f16(fit_grid(x, kQK));
    pack_grid_nibbles(x, f16_to_f32(y[i].d), y[i].qs);
  }
}

void quantize_iq4_xs(const float* x, BlockIQ4_XS* y, int64_t nb) {
  float scales[8];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    for (int b = 0; b < 8; ++b) scales[b] = fit_grid(x + 32 * b, 32);
    y[i].d = f32_to_f16(signed_absmax(scales, 8) / -32.0f);
    const float d = f16_to_f32(y[i].d);
    y[i].scales_h = 0;
    std::memset(y[i].scales_l, 0, sizeof(y[i].scales_l));
    for (int b = 0; b < 8; ++b) {
      const int ls = d != 0.0f ? clamp_round(scales[b] / d, -32, 31) : 0;
      const int v = ls + 32;
      y[i].scales_l[b / 2] |= static_cast<uint8_t>((v & 0xF) << (4 * (b % 2)));
      y[i].scales_h = static_cast<uint16_t>(y[i].scales_h | (v >> 4) << (2 * b));
      pack_grid_nibbles(x + 32 * b, d * static_cast<float>(ls), y[i].qs + 16 * b);
    }
  }
}

template <typename Block>
Block* as(void* p) {
  return static_cast<Block*>(p);
}

}  // namespace

bool quantize_blocks_k(DType type, const float* src, void* dst, int64_t nb) {
  switch (type) {
    case DType::Q2_K: quantize_q2_k(src, as<BlockQ2_K>(dst), nb); return true;
    case DType::Q3_K: quantize_q3_k(src, as<BlockQ3_K>(dst), nb); return true;
    case DType::Q4_K: quantize_q45_k<BlockQ4_K, false>(src, as<BlockQ4_K>(dst), nb); return true;
    case DType::Q5_K: quantize_q45_k<BlockQ5_K, true>(src, as<BlockQ5_K>(dst), nb); return true;
    case DType::Q6_K: quantize_q6_k(src, as<BlockQ6_K>(dst), nb); return true;
    case DType::IQ4_NL: quantize_iq4_nl(src, as<BlockIQ4_NL>(dst), nb); return true;
    case DType::IQ4_XS: quantize_iq4_xs(src, as<BlockIQ4_XS>(dst), nb); return true;
    default: return false;
  }
}

}  // namespace hearth::quant::detail
