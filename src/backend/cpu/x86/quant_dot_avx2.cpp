// AVX2 + FMA + F16C dot products (see quant_dot_kernels.h): F32, F16, BF16, Q8_0, Q4_0,
// IQ4_NL, Q4_K, Q5_K, Q6_K and MLX 4/8-bit rows. Without those extensions this file
// compiles to empty tables and the scalar kernels are used.
//
// Integer blocks use the usual x86 idiom for int8 products: _mm256_maddubs_epi16 takes
// an unsigned and a signed operand, so signed weights are split into |w| and the sign
// moved onto the activation (_mm256_sign_epi8). It saturates at ±32767 per pair of
// products: |w| <= 128 (Q8_0) or <= 63 (Q6_K levels) times |x| <= 127 (Q8 activations
// never hold -128) keeps every pair below 32512. Per-block int32 sums stay below 2^31
// by a wide margin (Q6_K worst case ~3.4e7).
#include "backend/cpu/quant_dot_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include "quant/blocks.h"

namespace hearth::cpu::detail {
namespace {

using namespace hearth::quant;

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float half(uint16_t h) { return _cvtsh_ss(h); }

__m256i ones16() { return _mm256_set1_epi16(1); }

// 8 int32 partial sums of a[j] * b[j] for 32 signed bytes each (a may be -128).
__m256i dot_i8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)), ones16());
}

// 16 bytes of nibbles -> 32 bytes in element order: low nibbles (elements 0..15) in the
// low lane, high nibbles (16..31) in the high lane.
__m256i unpack_nibbles_q4_0(const uint8_t* qs) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
}

__m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ---- float rows ----------------------------------------------------------------------

// Shared loop: kLoad(w, i) gives 8 weights as floats; 4 accumulators hide FMA latency.
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

__m256 load_f16(const void* w, int64_t i) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
}
float scalar_f16(const void* w, int64_t i) { return half(static_cast<const uint16_t*>(w)[i]); }

__m256 load_bf16(const void* w, int64_t i) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
float scalar_bf16(const void* w, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// ---- 32-blocks against Q8_0 -----------------------------------------------------------

// kLevels(block) gives the block's 32 signed levels in element order.
template <typename Block, __m256i (*kLevels)(const Block&)>
float dot_q32(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(act);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / kQK;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {  // two blocks per step: independent dependency chains
    const __m256i p0 = dot_i8(kLevels(b[i]), load256(y[i].qs));
    const __m256i p1 = dot_i8(kLevels(b[i + 1]), load256(y[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i].d) * half(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i + 1].d) * half(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < nb; ++i) {
    const __m256i p = dot_i8(kLevels(b[i]), load256(y[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(b[i].d) * half(y[i].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

__m256i levels_q8_0(const BlockQ8_0& b) { return load256(b.qs); }
__m256i levels_q4_0(const BlockQ4_0& b) { return _mm256_sub_epi8(unpack_nibbles_q4_0(b.qs), _mm256_set1_epi8(8)); }
__m256i levels_iq4_nl(const BlockIQ4_NL& b) {
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  return _mm256_shuffle_epi8(grid, unpack_nibbles_q4_0(b.qs));
}

// ---- K-quants against Q8_K ------------------------------------------------------------

// Q4_K and Q5_K: chunk c holds sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles).
template <typename Block, bool kFifthBit>
float dot_q45_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int sc[8], m[8], imin = 0;
    for (int s = 0; s < 8; ++s) {
      k4_scale_min(b[i].scales, s, &sc[s], &m[s]);
      imin += m[s] * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    __m256i isum = _mm256_setzero_si256();
    [[maybe_unused]] __m256i qh;
    if constexpr (kFifthBit) qh = load256(b[i].qh);
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = load256(b[i].qs + 32 * c);
      __m256i lo = _mm256_and_si256(bytes, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
      if constexpr (kFifthBit) {
        const __m256i bit_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
        const __m256i bit_hi = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1)));
        const __m256i sixteen = _mm256_set1_epi8(16);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen));
      }
      const __m256i plo = _mm256_maddubs_epi16(lo, load256(y[i].qs + 64 * c));
      const __m256i phi = _mm256_maddubs_epi16(hi, load256(y[i].qs + 64 * c + 32));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c]))));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c + 1]))));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * half(b[i].d)), _mm256_cvtepi32_ps(isum), acc);
    mins += y[i].d * half(b[i].dmin) * static_cast<float>(imin);
  }
  return hsum(acc) - mins;
}

// Q6_K: levels 0..63 go through maddubs unsigned; the -32 offset is applied afterwards
// as 32 * sum_s (scale_s * bsum_s).
float dot_q6_k(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  float offsets = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int ioff = 0;
    for (int s = 0; s < 16; ++s) ioff += b[i].scales[s] * y[i].bsums[s];
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(b[i].ql + 64 * h), ql1 = load256(b[i].ql + 64 * h + 32);
      const __m256i qh = load256(b[i].qh + 32 * h);
      for (int r = 0; r < 4; ++r) {
        const __m256i src = (r & 1) ? ql1 : ql0;
        const __m256i lo = r < 2 ? _mm256_and_si256(src, low4) : _mm256_and_si256(_mm256_srli_epi16(src, 4), low4);
        const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), low2), 4);
        const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(lo, hi), load256(y[i].qs + 128 * h + 32 * r));
        const int s = 8 * h + 2 * r;  // elements l < 16 use scale s, l >= 16 use s + 1
        const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(b[i].scales[s + 1]), _mm_set1_epi16(b[i].scales[s]));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scales));
      }
    }
    const float d = y[i].d * half(b[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
    offsets += d * static_cast<float>(32 * ioff);
  }
  return hsum(acc) - offsets;
}

// ---- MLX affine rows ------------------------------------------------------------------

// 8 levels starting at element k of a 4-bit or 8-bit row, as floats.
__m256 mlx_levels4(const uint32_t* words, int64_t k) {
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(words[k / 8])), shifts);
  return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(0xF)));
}
__m256 mlx_levels8(const uint32_t* words, int64_t k) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(words) + k;
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes))));
}

// Per group: scale * sum(q x) + bias * sum(x), folded into one accumulator.
template <__m256 (*kLevels)(const uint32_t*, int64_t)>
float mlx_dot(const Weight& w, int64_t row, const float* x) {
  const MlxRow r = mlx_row(w, row);
  const int64_t gs = w.group_size;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < w.cols / gs; ++g) {
    __m256 qx0 = _mm256_setzero_ps(), qx1 = _mm256_setzero_ps(), xs = _mm256_setzero_ps();
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      qx0 = _mm256_fmadd_ps(kLevels(r.words, k), x0, qx0);
      qx1 = _mm256_fmadd_ps(kLevels(r.words, k + 8), x1, qx1);
      xs = _mm256_add_ps(xs, _mm256_add_ps(x0, x1));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(mlx_load_scale(r.scales, w.scale_type, g)), _mm256_add_ps(qx0, qx1), acc);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(mlx_load_scale(r.biases, w.scale_type, g)), xs, acc);
  }
  return hsum(acc);
}

}  // namespace

DotFn dot_avx2(DType type) {
  switch (type) {
    case DType::F32: return dot_float_rows<load_f32, scalar_f32>;
    case DType::F16: return dot_float_rows<load_f16, scalar_f16>;
    case DType::BF16: return dot_float_rows<load_bf16, scalar_bf16>;
    case DType::Q8_0: return dot_q32<BlockQ8_0, levels_q8_0>;
    case DType::Q4_0: return dot_q32<BlockQ4_0, levels_q4_0>;
    case DType::IQ4_NL: return dot_q32<BlockIQ4_NL, levels_iq4_nl>;
    case DType::Q4_K: return dot_q45_k<BlockQ4_K, false>;
    case DType::Q5_K: return dot_q45_k<BlockQ5_K, true>;
    case DType::Q6_K: return dot_q6_k;
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
