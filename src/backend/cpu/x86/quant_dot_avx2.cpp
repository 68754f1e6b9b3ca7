// AVX2 + FMA + F16C dot products (see quant_dot_kernels.h) for float rows (F32, F16,
// BF16), the 32-element block types against Q8_0 activations, and MLX 4/8-bit rows, plus
// the table of every AVX2 kernel (the super-block ones live in
// quant_dot_avx2_kquants.cpp). Without those extensions the tables are empty and the
// scalar kernels are used.
#include "backend/cpu/quant_dot_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "backend/cpu/x86/avx2_common.h"
#include "quant/blocks.h"

namespace hearth::cpu::detail {
namespace {

using namespace hearth::quant;
using namespace hearth::cpu::detail::avx2;

// ---- float rows ----------------------------------------------------------------------

// kLoad(w, i) gives 8 weights as floats; 4 accumulators hide the FMA latency.
template <__m256 (*kLoad)(const void*, int64_t), float (*kScalar)(const void*, int64_t)>
float dot_float_rows(const void* w, const void* act, int64_t n) {
  const auto* x = static_cast<const float*>(act);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(kLoad(w, i + 8 * u), _mm256_loadu_ps(x + i + 8 * u), acc[u]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(kLoad(w, i), _mm256_loadu_ps(x + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += kScalar(w, i) * x[i];
  return sum;
}

__m256 load_f32(const void* w, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(w) + i); }
float scalar_f32(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }

const __m128i* half_ptr(const void* w, int64_t i) {
  return reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i);
}
__m256 load_f16(const void* w, int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128(half_ptr(w, i))); }
float scalar_f16(const void* w, int64_t i) { return half(static_cast<const uint16_t*>(w)[i]); }

__m256 load_bf16(const void* w, int64_t i) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(half_ptr(w, i))), 16));
}
float scalar_bf16(const void* w, int64_t i) {
  return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<const uint16_t*>(w)[i] << 16)));
}

// ---- 32-blocks against Q8_0 -----------------------------------------------------------

// Q5_0/Q5_1's fifth bits: byte j of the result is 0x10 where bit j of the u32 qh is set.
__m256i fifth_bits(const uint8_t* qh) {
  uint32_t h;
  __builtin_memcpy(&h, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(  // byte j <- byte j / 8 of h
      _mm256_set1_epi32(static_cast<int>(h)),
      _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

// Each block type gives its 32 levels (signed for dot_i8, or unsigned for dot_u8).
__m256i levels_q8_0(const BlockQ8_0& b) { return load256(b.qs); }
__m256i levels_q4_0(const BlockQ4_0& b) { return _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8)); }
__m256i levels_q4_1(const BlockQ4_1& b) { return unpack_nibbles(b.qs); }
__m256i levels_q5_0(const BlockQ5_0& b) {
  return _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)), _mm256_set1_epi8(16));
}
__m256i levels_q5_1(const BlockQ5_1& b) { return _mm256_or_si256(unpack_nibbles(b.qs), fifth_bits(b.qh)); }
__m256i levels_iq4_nl(const BlockIQ4_NL& b) {
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  return _mm256_shuffle_epi8(grid, unpack_nibbles(b.qs));
}

// sum_blocks d_w * d_x * sum(q * x) (+ m_w * d_x * sum(x) when kMin). Two blocks per
// step keep two independent dependency chains.
template <typename Block, __m256i (*kLevels)(const Block&), bool kMin>
float dot_q32(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  auto step = [&](int64_t i, __m256& acc) {
    const __m256i x = load256(y[i].qs);
    const float dx = half(y[i].d);
    if constexpr (kMin) {
      const __m256 xsum = _mm256_cvtepi32_ps(dot_u8(_mm256_set1_epi8(1), x));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i].m) * dx), xsum, acc);
      acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i].d) * dx), _mm256_cvtepi32_ps(dot_u8(kLevels(b[i]), x)), acc);
    } else {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i].d) * dx), _mm256_cvtepi32_ps(dot_i8(kLevels(b[i]), x)), acc);
    }
  };
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / kQK;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    step(i, acc0);
    step(i + 1, acc1);
  }
  if (i < nb) step(i, acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

// ---- MLX affine rows ------------------------------------------------------------------

// 32 levels starting at element k (a multiple of 32) of a 4-bit or 8-bit row, as four
// vectors of 8 floats. 4-bit: byte k/2 holds element k in its low nibble and k + 1 in its
// high nibble, so interleaving the low and high nibbles restores element order.
struct Levels32 {
  __m256 v[4];
};
Levels32 mlx_levels4(const uint32_t* words, int64_t k) {
  const auto* packed = reinterpret_cast<const uint8_t*>(words) + k / 2;
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(bytes, mask), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  const __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);  // elements 0..15, 16..31
  return {{_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(first)),
           _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(first, first))),
           _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(second)),
           _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(second, second)))}};
}
Levels32 mlx_levels8(const uint32_t* words, int64_t k) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(words) + k;
  Levels32 out;
  for (int u = 0; u < 4; ++u) {
    const __m128i eight = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + 8 * u));
    out.v[u] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(eight));
  }
  return out;
}

// Per group: scale * sum(q x) + bias * sum(x). 32 elements per step (every group size is
// a multiple) over four q*x chains and two x chains; scales and biases go to separate
// accumulators so no chain waits on another.
template <Levels32 (*kLevels)(const uint32_t*, int64_t)>
float mlx_dot(const Weight& w, int64_t row, const float* x) {
  const MlxRow r = mlx_row(w, row);
  const int64_t gs = w.group_size;
  __m256 acc_scale = _mm256_setzero_ps(), acc_bias = _mm256_setzero_ps();
  for (int64_t g = 0; g < w.cols / gs; ++g) {
    __m256 qx0 = _mm256_setzero_ps(), qx1 = _mm256_setzero_ps(), qx2 = _mm256_setzero_ps(), qx3 = _mm256_setzero_ps();
    __m256 xs0 = _mm256_setzero_ps(), xs1 = _mm256_setzero_ps();
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 32) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      const __m256 x2 = _mm256_loadu_ps(x + k + 16), x3 = _mm256_loadu_ps(x + k + 24);
      const Levels32 q = kLevels(r.words, k);
      qx0 = _mm256_fmadd_ps(q.v[0], x0, qx0);
      qx1 = _mm256_fmadd_ps(q.v[1], x1, qx1);
      qx2 = _mm256_fmadd_ps(q.v[2], x2, qx2);
      qx3 = _mm256_fmadd_ps(q.v[3], x3, qx3);
      xs0 = _mm256_add_ps(xs0, _mm256_add_ps(x0, x1));
      xs1 = _mm256_add_ps(xs1, _mm256_add_ps(x2, x3));
    }
    const __m256 qx_sum = _mm256_add_ps(_mm256_add_ps(qx0, qx1), _mm256_add_ps(qx2, qx3));
    acc_scale = _mm256_fmadd_ps(_mm256_set1_ps(mlx_load_scale(r.scales, w.scale_type, g)), qx_sum, acc_scale);
    acc_bias = _mm256_fmadd_ps(_mm256_set1_ps(mlx_load_scale(r.biases, w.scale_type, g)), _mm256_add_ps(xs0, xs1),
                               acc_bias);
  }
  return hsum(_mm256_add_ps(acc_scale, acc_bias));
}

}  // namespace

DotFn dot_avx2(DType type) {
  switch (type) {
    case DType::F32: return dot_float_rows<load_f32, scalar_f32>;
    case DType::F16: return dot_float_rows<load_f16, scalar_f16>;
    case DType::BF16: return dot_float_rows<load_bf16, scalar_bf16>;
    case DType::Q8_0: return dot_q32<BlockQ8_0, levels_q8_0, false>;
    case DType::Q4_0: return dot_q32<BlockQ4_0, levels_q4_0, false>;
    case DType::Q4_1: return dot_q32<BlockQ4_1, levels_q4_1, true>;
    case DType::Q5_0: return dot_q32<BlockQ5_0, levels_q5_0, false>;
    case DType::Q5_1: return dot_q32<BlockQ5_1, levels_q5_1, true>;
    case DType::IQ4_NL: return dot_q32<BlockIQ4_NL, levels_iq4_nl, false>;
    case DType::Q2_K: return avx2::dot_q2_k;
    case DType::Q3_K: return avx2::dot_q3_k;
    case DType::Q4_K: return avx2::dot_q4_k;
    case DType::Q5_K: return avx2::dot_q5_k;
    case DType::Q6_K: return avx2::dot_q6_k;
    case DType::IQ4_XS: return avx2::dot_iq4_xs;
    default: return nullptr;
  }
}

MlxDotFn mlx_dot_avx2(int bits) {
  if (bits == 4) return mlx_dot<mlx_levels4>;
  if (bits == 8) return mlx_dot<mlx_levels8>;
  return nullptr;
}

}  // namespace hearth::cpu::detail

#else  // no AVX2: every type uses its scalar kernel

namespace hearth::cpu::detail {
DotFn dot_avx2(DType) { return nullptr; }
MlxDotFn mlx_dot_avx2(int) { return nullptr; }
}  // namespace hearth::cpu::detail

#endif
