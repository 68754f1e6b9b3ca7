// Portable scalar dot products of stored weight rows with prepared activations, for
// every weight type hearth loads. They are the fallback when no SIMD kernel exists and
// the reference the SIMD kernels are tested against (besides quant::dot_row_ref).
//
// Quantized kernels work on integers within a block: the weight block's integer levels
// times the activation's int8 values, summed exactly, then scaled once per (sub-)block
// by the float scales. Weight minimums (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) multiply the sum
// of the activation's levels, which Q8_K precomputes per 16 elements (bsums).
#include <cstring>
#include <type_traits>

#include "backend/cpu/quant_dot_kernels.h"
#include "core/half.h"
#include "quant/blocks.h"

namespace hearth::cpu::detail {
namespace {

using namespace hearth::quant;

float dot_f32(const void* w, const void* act, int64_t n) {
  const auto* a = static_cast<const float*>(w);
  const auto* x = static_cast<const float*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * x[i];
  return sum;
}

template <float (*kToF32)(uint16_t)>
float dot_half(const void* w, const void* act, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* x = static_cast<const float*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += kToF32(a[i]) * x[i];
  return sum;
}

// Levels of one 32-block in element order (Q4_0 nibble order: byte j = elements j, j + 16).
void unpack_nibbles(const uint8_t* qs, int* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = qs[j] & 0xF;
    q[j + 16] = qs[j] >> 4;
  }
}

void add_fifth_bits(const uint8_t* qh, int* q) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < 32; ++j) q[j] |= ((h >> j) & 1) << 4;
}

int dot32(const int* q, const int8_t* x) {
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += q[j] * x[j];
  return sum;
}

int sum32(const int8_t* x) {
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += x[j];
  return sum;
}

// 32-block types against Q8_0 activations. Offset levels (Q4_0: q - 8) are folded in
// as offset * sum(x); Q4_1/Q5_1 add m * d_x * sum(x).
template <typename Block>
float dot_q32(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  float sum = 0.0f;
  int q[32];
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float dx = f16_to_f32(y[i].d);
    if constexpr (std::is_same_v<Block, BlockQ8_0>) {
      for (int j = 0; j < 32; ++j) q[j] = b[i].qs[j];
    } else if constexpr (std::is_same_v<Block, BlockIQ4_NL>) {
      unpack_nibbles(b[i].qs, q);
      for (int j = 0; j < 32; ++j) q[j] = kIQ4NLValues[q[j]];
    } else {
      unpack_nibbles(b[i].qs, q);
      if constexpr (std::is_same_v<Block, BlockQ5_0> || std::is_same_v<Block, BlockQ5_1>) add_fifth_bits(b[i].qh, q);
    }
    int isum = dot32(q, y[i].qs);
    if constexpr (std::is_same_v<Block, BlockQ4_0>) isum -= 8 * sum32(y[i].qs);
    if constexpr (std::is_same_v<Block, BlockQ5_0>) isum -= 16 * sum32(y[i].qs);
    sum += f16_to_f32(b[i].d) * dx * static_cast<float>(isum);
    if constexpr (std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>)
      sum += f16_to_f32(b[i].m) * dx * static_cast<float>(sum32(y[i].qs));
  }
  return sum;
}

// Q2_K: d * sum_s (sc_s * sum q x) - dmin * sum_s (m_s * bsum_s), times d_x.
float dot_q2_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0, imin = 0;
    for (int s = 0; s < 16; ++s) {
      int sub = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int q = (b[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        sub += q * y[i].qs[e];
      }
      isum += (b[i].scales[s] & 0xF) * sub;
      imin += (b[i].scales[s] >> 4) * y[i].bsums[s];
    }
    sum += y[i].d * (f16_to_f32(b[i].d) * static_cast<float>(isum) - f16_to_f32(b[i].dmin) * static_cast<float>(imin));
  }
  return sum;
}

// Q3_K: d * sum_s (scale_s * sum q x), q in -4..3.
float dot_q3_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int sub = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int h = e / 128, j = (e / 32) % 4, k = e % 32;
        const int lo = (b[i].qs[32 * h + k] >> (2 * j)) & 3;
        const int q = lo - (((b[i].hmask[k] >> (4 * h + j)) & 1) ? 0 : 4);
        sub += q * y[i].qs[e];
      }
      isum += q3k_scale(b[i].scales, s) * sub;
    }
    sum += y[i].d * f16_to_f32(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K/Q5_K: d * sum_s (sc_s * sum q x) - dmin * sum_s (m_s * (bsum_2s + bsum_2s+1)).
template <typename Block, bool kFifthBit>
float dot_q45_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0, imin = 0;
    for (int s = 0; s < 8; ++s) {
      int sc = 0, m = 0;
      k4_scale_min(b[i].scales, s, &sc, &m);
      int sub = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (b[i].qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0xF;
        if constexpr (kFifthBit) q |= ((b[i].qh[l] >> s) & 1) << 4;
        sub += q * y[i].qs[32 * s + l];
      }
      isum += sc * sub;
      imin += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    sum += y[i].d * (f16_to_f32(b[i].d) * static_cast<float>(isum) - f16_to_f32(b[i].dmin) * static_cast<float>(imin));
  }
  return sum;
}

// Q6_K: d * sum_s (scale_s * sum (q - 32) x).
float dot_q6_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int sub = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int h = e / 128, r = (e / 32) % 4, l = e % 32;
        const int lo = (b[i].ql[64 * h + l + 32 * (r & 1)] >> (r < 2 ? 0 : 4)) & 0xF;
        const int hi = (b[i].qh[32 * h + l] >> (2 * r)) & 3;
        sub += ((lo | hi << 4) - 32) * y[i].qs[e];
      }
      isum += b[i].scales[s] * sub;
    }
    sum += y[i].d * f16_to_f32(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// IQ4_XS: d * sum_b ((ls_b - 32) * sum grid[q] x).
float dot_iq4_xs(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  int q[32];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0;
    for (int s = 0; s < 8; ++s) {
      unpack_nibbles(b[i].qs + 16 * s, q);
      for (int j = 0; j < 32; ++j) q[j] = kIQ4NLValues[q[j]];
      isum += iq4xs_scale(b[i], s) * dot32(q, y[i].qs + 32 * s);
    }
    sum += y[i].d * f16_to_f32(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

DotFn dot_generic(DType type) {
  switch (type) {
    case DType::F32: return dot_f32;
    case DType::F16: return dot_half<f16_to_f32>;
    case DType::BF16: return dot_half<bf16_to_f32>;
    case DType::Q4_0: return dot_q32<BlockQ4_0>;
    case DType::Q4_1: return dot_q32<BlockQ4_1>;
    case DType::Q5_0: return dot_q32<BlockQ5_0>;
    case DType::Q5_1: return dot_q32<BlockQ5_1>;
    case DType::Q8_0: return dot_q32<BlockQ8_0>;
    case DType::IQ4_NL: return dot_q32<BlockIQ4_NL>;
    case DType::Q2_K: return dot_q2_k;
    case DType::Q3_K: return dot_q3_k;
    case DType::Q4_K: return dot_q45_k<BlockQ4_K, false>;
    case DType::Q5_K: return dot_q45_k<BlockQ5_K, true>;
    case DType::Q6_K: return dot_q6_k;
    case DType::IQ4_XS: return dot_iq4_xs;
    default: return nullptr;
  }
}

MlxRow mlx_row(const Weight& w, int64_t row) {
  const int64_t aux = row * (w.cols / w.group_size) * (w.scale_type == DType::F32 ? 4 : 2);
  return {reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) + row * (w.cols * w.bits / 8)),
          static_cast<const uint8_t*>(w.scales) + aux, static_cast<const uint8_t*>(w.biases) + aux};
}

float mlx_load_scale(const uint8_t* p, DType type, int64_t g) {
  uint16_t h;
  switch (type) {
    case DType::F32: {
      float f;
      std::memcpy(&f, p + 4 * g, 4);
      return f;
    }
    case DType::BF16: std::memcpy(&h, p + 2 * g, 2); return bf16_to_f32(h);
    default: std::memcpy(&h, p + 2 * g, 2); return f16_to_f32(h);
  }
}

// Values are read from the row's little-endian bit stream (see quant/mlx.cpp).
float mlx_dot_generic(const Weight& w, int64_t row, const float* x) {
  const MlxRow r = mlx_row(w, row);
  const uint32_t mask = (1u << w.bits) - 1;
  float sum = 0.0f;
  for (int64_t g = 0; g < w.cols / w.group_size; ++g) {
    float qx = 0.0f, xs = 0.0f;
    for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
      const int64_t bit = k * w.bits;
      const int off = static_cast<int>(bit % 32);
      uint64_t v = r.words[bit / 32] >> off;
      if (off + w.bits > 32) v |= static_cast<uint64_t>(r.words[bit / 32 + 1]) << (32 - off);
      qx += static_cast<float>(static_cast<uint32_t>(v) & mask) * x[k];
      xs += x[k];
    }
    sum += mlx_load_scale(r.scales, w.scale_type, g) * qx + mlx_load_scale(r.biases, w.scale_type, g) * xs;
  }
  return sum;
}

}  // namespace hearth::cpu::detail
