// Portable scalar dot products of stored weight rows with prepared activations, for
// every weight type hearth loads. They are the fallback when no SIMD kernel exists (all
// non-x86 builds, and x86 types without an AVX2 kernel) and the second opinion the SIMD
// kernels are tested against, besides quant::dot_row_ref.
//
// Quantized kernels work on integers within a block: the weight block's integer levels
// times the activation's int8 values, summed exactly, then scaled once per (sub-)block
// by the float scales. Weight minimums (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) multiply the sum
// of the activation's levels, which Q8_K precomputes per 16 elements (bsums). Loops
// follow each format's byte order (documented in quant/dequantize.cpp) with fixed trip
// counts so compilers can vectorise them for whatever the target has.
#include <bit>
#include <type_traits>

#include "backend/cpu/quant_dot_kernels.h"
#include "core/half.h"
#include "quant/blocks.h"

namespace hearth::cpu::detail {
namespace {

using namespace hearth::quant;

// f16 -> f32 without branching on the exponent (core/half.h renormalises subnormals in a
// loop). Normal values: move exponent and mantissa into float position and rebias the
// exponent by a multiplication, which also keeps infinities and NaNs. Subnormals
// (exponent 0): the mantissa m placed under the exponent of 0.5 gives 0.5 + m * 2^-24,
// so subtracting 0.5 leaves m * 2^-24 exactly. Checked against f16_to_f32 for all values.
float half_to_float(uint16_t h) {
  const uint32_t shifted = static_cast<uint32_t>(h) << 17;  // exponent at bits 27..31, sign dropped
  const float normal = std::bit_cast<float>((shifted >> 4) + (224u << 23)) * 0x1.0p-112f;
  const float subnormal = std::bit_cast<float>((shifted >> 17) | (126u << 23)) - 0.5f;
  const uint32_t magnitude = std::bit_cast<uint32_t>(shifted < (1u << 27) ? subnormal : normal);
  return std::bit_cast<float>((static_cast<uint32_t>(h & 0x8000) << 16) | magnitude);
}

// Float rows: eight independent partial sums, so the loop vectorises without the
// reassociation a single running sum would need.
template <float (*kLoad)(const void*, int64_t)>
float dot_float_rows(const void* w, const void* act, int64_t n) {
  const auto* x = static_cast<const float*>(act);
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; ++u) lanes[u] += kLoad(w, i + u) * x[i + u];
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += kLoad(w, i) * x[i];
  return sum;
}

float load_f32(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }
float load_f16(const void* w, int64_t i) { return half_to_float(static_cast<const uint16_t*>(w)[i]); }
float load_bf16(const void* w, int64_t i) { return bf16_to_f32(static_cast<const uint16_t*>(w)[i]); }

// ---- 32-blocks against Q8_0: integer sums of one block ----------------------------------

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

int isum_q4_0(const BlockQ4_0& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += ((b.qs[j] & 0xF) - 8) * y[j] + ((b.qs[j] >> 4) - 8) * y[j + 16];
  return s;
}
int isum_q4_1(const BlockQ4_1& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += (b.qs[j] & 0xF) * y[j] + (b.qs[j] >> 4) * y[j + 16];
  return s;
}
template <typename Block, int kOffset>
int isum_q5(const Block& b, const int8_t* y) {
  const uint32_t h = load_u32(b.qh);
  int s = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>((h >> j) & 1) << 4;
    const int hi = (b.qs[j] >> 4) | static_cast<int>((h >> (j + 16)) & 1) << 4;
    s += (lo - kOffset) * y[j] + (hi - kOffset) * y[j + 16];
  }
  return s;
}
int isum_q8_0(const BlockQ8_0& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += b.qs[j] * y[j];
  return s;
}
int isum_iq4_nl(const BlockIQ4_NL& b, const int8_t* y) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += kIQ4NLValues[b.qs[j] & 0xF] * y[j] + kIQ4NLValues[b.qs[j] >> 4] * y[j + 16];
  return s;
}

// sum_blocks d_w * d_x * isum (+ m_w * d_x * sum(y) for the types with a minimum).
template <typename Block, int (*kIsum)(const Block&, const int8_t*), bool kMin>
float dot_q32(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float dx = half_to_float(y[i].d);
    sum += half_to_float(b[i].d) * dx * static_cast<float>(kIsum(b[i], y[i].qs));
    if constexpr (kMin) {
      int ysum = 0;
      for (int j = 0; j < 32; ++j) ysum += y[i].qs[j];
      sum += half_to_float(b[i].m) * dx * static_cast<float>(ysum);
    }
  }
  return sum;
}

// ---- super-blocks against Q8_K ---------------------------------------------------------

// Q2_K and Q3_K share the 2-bit layout: half h, shift j, then 32 bytes whose first and
// last 16 belong to sub-blocks 8h + 2j and 8h + 2j + 1.
template <bool kQ3>
float dot_q23_k(const void* w, const void* act, int64_t n) {
  using Block = std::conditional_t<kQ3, BlockQ3_K, BlockQ2_K>;
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0, imin = 0;
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const int s = 8 * h + 2 * j + half;
          const uint8_t* qs = b[i].qs + 32 * h + 16 * half;
          const int8_t* q8 = y[i].qs + 16 * s;
          int sub = 0;
          for (int k = 0; k < 16; ++k) {
            int q = (qs[k] >> (2 * j)) & 3;
            if constexpr (kQ3) q -= ((b[i].hmask[16 * half + k] >> (4 * h + j)) & 1) ? 0 : 4;
            sub += q * q8[k];
          }
          if constexpr (kQ3) {
            isum += q3k_scale(b[i].scales, s) * sub;
          } else {
            isum += (b[i].scales[s] & 0xF) * sub;
            imin += (b[i].scales[s] >> 4) * y[i].bsums[s];
          }
        }
      }
    }
    float block = half_to_float(b[i].d) * static_cast<float>(isum);
    if constexpr (!kQ3) block -= half_to_float(b[i].dmin) * static_cast<float>(imin);
    sum += y[i].d * block;
  }
  return sum;
}

// Q4_K/Q5_K: chunk c of 32 bytes holds sub-blocks 2c (low nibbles) and 2c + 1 (high).
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
      const uint8_t* qs = b[i].qs + 32 * (s / 2);
      const int8_t* q8 = y[i].qs + 32 * s;
      const int shift = 4 * (s % 2);
      int sub = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> shift) & 0xF;
        if constexpr (kFifthBit) q |= ((b[i].qh[l] >> s) & 1) << 4;
        sub += q * q8[l];
      }
      isum += sc * sub;
      imin += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    sum += y[i].d * (half_to_float(b[i].d) * static_cast<float>(isum) -
                     half_to_float(b[i].dmin) * static_cast<float>(imin));
  }
  return sum;
}

// Q6_K: half h, quarter r: 32 values whose first and last 16 use scales 8h + 2r, + 1.
float dot_q6_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0;
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < 4; ++r) {
        const uint8_t* ql = b[i].ql + 64 * h + 32 * (r & 1);
        const uint8_t* qh = b[i].qh + 32 * h;
        const int8_t* q8 = y[i].qs + 128 * h + 32 * r;
        const int shift = 4 * (r >> 1), hshift = 2 * r;
        int sub[2] = {0, 0};
        for (int half = 0; half < 2; ++half)
          for (int l = 16 * half; l < 16 * half + 16; ++l)
            sub[half] += ((((ql[l] >> shift) & 0xF) | ((qh[l] >> hshift) & 3) << 4) - 32) * q8[l];
        isum += b[i].scales[8 * h + 2 * r] * sub[0] + b[i].scales[8 * h + 2 * r + 1] * sub[1];
      }
    }
    sum += y[i].d * half_to_float(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// IQ4_XS: eight IQ4_NL bodies with 6-bit signed scales.
float dot_iq4_xs(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int isum = 0;
    for (int s = 0; s < 8; ++s) {
      const uint8_t* qs = b[i].qs + 16 * s;
      const int8_t* q8 = y[i].qs + 32 * s;
      int sub = 0;
      for (int j = 0; j < 16; ++j) sub += kIQ4NLValues[qs[j] & 0xF] * q8[j] + kIQ4NLValues[qs[j] >> 4] * q8[j + 16];
      isum += iq4xs_scale(b[i], s) * sub;
    }
    sum += y[i].d * half_to_float(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// ---- MLX affine ------------------------------------------------------------------------

// Values come in packs that start on a byte: 8/bits values per byte for 2/4/8 bits,
// 8 values in 3 or 5 bytes for 3/5 bits, 4 values in 3 bytes for 6 bits (quant/mlx.cpp).
// Each group is dequantized into a small buffer (scale * q + bias), then dotted with x
// like a float row.
template <int kBits>
float mlx_dot_bits(const Weight& w, int64_t row, const float* x) {
  constexpr int kPackValues = (kBits == 3 || kBits == 5) ? 8 : kBits == 6 ? 4 : 8 / kBits;
  constexpr int kPackBytes = kPackValues * kBits / 8;
  constexpr uint32_t kMask = (1u << kBits) - 1;
  const MlxRow r = mlx_row(w, row);
  const auto* bytes = reinterpret_cast<const uint8_t*>(r.words);
  const int gs = w.group_size;
  float values[128];  // one group (at most 128 values)
  float sum = 0.0f;
  for (int64_t g = 0; g < w.cols / gs; ++g) {
    const float scale = mlx_load_scale(r.scales, w.scale_type, g);
    const float bias = mlx_load_scale(r.biases, w.scale_type, g);
    const uint8_t* packs = bytes + g * gs / kPackValues * kPackBytes;
    for (int p = 0; p < gs / kPackValues; ++p) {
      uint64_t v = 0;
      for (int i = 0; i < kPackBytes; ++i) v |= static_cast<uint64_t>(packs[p * kPackBytes + i]) << (8 * i);
      for (int u = 0; u < kPackValues; ++u)
        values[p * kPackValues + u] = scale * static_cast<float>(static_cast<int>((v >> (u * kBits)) & kMask)) + bias;
    }
    sum += dot_float_rows<load_f32>(values, x + g * gs, gs);
  }
  return sum;
}

}  // namespace

DotFn dot_generic(DType type) {
  switch (type) {
    case DType::F32: return dot_float_rows<load_f32>;
    case DType::F16: return dot_float_rows<load_f16>;
    case DType::BF16: return dot_float_rows<load_bf16>;
    case DType::Q4_0: return dot_q32<BlockQ4_0, isum_q4_0, false>;
    case DType::Q4_1: return dot_q32<BlockQ4_1, isum_q4_1, true>;
    case DType::Q5_0: return dot_q32<BlockQ5_0, isum_q5<BlockQ5_0, 16>, false>;
    case DType::Q5_1: return dot_q32<BlockQ5_1, isum_q5<BlockQ5_1, 0>, true>;
    case DType::Q8_0: return dot_q32<BlockQ8_0, isum_q8_0, false>;
    case DType::IQ4_NL: return dot_q32<BlockIQ4_NL, isum_iq4_nl, false>;
    case DType::Q2_K: return dot_q23_k<false>;
    case DType::Q3_K: return dot_q23_k<true>;
    case DType::Q4_K: return dot_q45_k<BlockQ4_K, false>;
    case DType::Q5_K: return dot_q45_k<BlockQ5_K, true>;
    case DType::Q6_K: return dot_q6_k;
    case DType::IQ4_XS: return dot_iq4_xs;
    default: return nullptr;
  }
}

float half_to_float_generic(uint16_t h) { return half_to_float(h); }

MlxRow mlx_row(const Weight& w, int64_t row) {
  const int64_t aux = row * (w.cols / w.group_size) * (w.scale_type == DType::F32 ? 4 : 2);
  return {reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) + row * (w.cols * w.bits / 8)),
          static_cast<const uint8_t*>(w.scales) + aux, static_cast<const uint8_t*>(w.biases) + aux};
}

float mlx_dot_generic(const Weight& w, int64_t row, const float* x) {
  switch (w.bits) {
    case 2: return mlx_dot_bits<2>(w, row, x);
    case 3: return mlx_dot_bits<3>(w, row, x);
    case 4: return mlx_dot_bits<4>(w, row, x);
    case 5: return mlx_dot_bits<5>(w, row, x);
    case 6: return mlx_dot_bits<6>(w, row, x);
    default: return mlx_dot_bits<8>(w, row, x);
  }
}

}  // namespace hearth::cpu::detail
