// AVX2 dot products of super-block weights (Q2_K … Q6_K, IQ4_XS) with Q8_K activations.
// Layouts as in quant/dequantize.cpp; the scalar versions are in quant_dot_generic.cpp.
//
// Pattern: unpack 32 weight levels at a time into bytes, multiply with 32 activation
// bytes (maddubs: int16 pairs), apply the sub-block scales with _mm256_madd_epi16 into
// int32 lanes, and convert once per super-block. Level offsets (Q3_K's -4, Q6_K's -32)
// and minimums (Q2_K, Q4_K, Q5_K) are applied through Q8_K's per-16 sums (bsums), so
// levels stay unsigned for maddubs. int32 lanes stay far from overflow: the largest,
// Q6_K, is at most 8 * 2 * 16002 * 128 ~ 3.3e7.
#include "backend/cpu/quant_dot_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <type_traits>

#include "backend/cpu/x86/avx2_common.h"
#include "quant/blocks.h"

namespace hearth::cpu::detail::avx2 {
namespace {

using namespace hearth::quant;

// Q2_K and Q3_K: for half h and shift j, bytes qs[32h .. 32h + 31] give 32 levels whose
// first and last 16 belong to sub-blocks 8h + 2j and 8h + 2j + 1.
template <bool kQ3>
float dot_q23(const void* w, const void* act, int64_t n) {
  using Block = std::conditional_t<kQ3, BlockQ3_K, BlockQ2_K>;
  const auto* b = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  const __m256i low2 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  float extra = 0.0f;  // Q2_K: dmin * mins; Q3_K: the -4 offsets
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int sc[16], ioff = 0;
    for (int s = 0; s < 16; ++s) {
      if constexpr (kQ3) {
        sc[s] = q3k_scale(b[i].scales, s);
        ioff += sc[s] * y[i].bsums[s];
      } else {
        sc[s] = b[i].scales[s] & 0xF;
        ioff += (b[i].scales[s] >> 4) * y[i].bsums[s];
      }
    }
    [[maybe_unused]] __m256i hmask;
    if constexpr (kQ3) hmask = load256(b[i].hmask);
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load256(b[i].qs + 32 * h);
      for (int j = 0; j < 4; ++j) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), low2);
        if constexpr (kQ3) {  // a set high bit adds 4: levels 0..7 here, -4 applied via bsums
          const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (4 * h + j)));
          const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
          q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(4)));
        }
        const __m256i p = _mm256_maddubs_epi16(q, load256(y[i].qs + 128 * h + 32 * j));
        const int s = 8 * h + 2 * j;
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, lane_scales(sc[s], sc[s + 1])));
      }
    }
    const float d = y[i].d * half(b[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
    if constexpr (kQ3) {
      extra += d * static_cast<float>(4 * ioff);
    } else {
      extra += y[i].d * half(b[i].dmin) * static_cast<float>(ioff);
    }
  }
  return hsum(acc) - extra;
}

// Q4_K and Q5_K: chunk c holds sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles);
// Q5_K's fifth bits are bits 2c and 2c + 1 of qh[l].
template <bool kQ5>
float dot_q45(const void* w, const void* act, int64_t n) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
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
    [[maybe_unused]] __m256i qh;
    if constexpr (kQ5) qh = load256(b[i].qh);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = load256(b[i].qs + 32 * c);
      __m256i lo = _mm256_and_si256(bytes, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
      if constexpr (kQ5) {
        const __m256i sixteen = _mm256_set1_epi8(16);
        const __m256i bit_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
        const __m256i bit_hi = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1)));
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

}  // namespace

float dot_q2_k(const void* w, const void* act, int64_t n) { return dot_q23<false>(w, act, n); }
float dot_q3_k(const void* w, const void* act, int64_t n) { return dot_q23<true>(w, act, n); }
float dot_q4_k(const void* w, const void* act, int64_t n) { return dot_q45<false>(w, act, n); }
float dot_q5_k(const void* w, const void* act, int64_t n) { return dot_q45<true>(w, act, n); }

// Q6_K: half h, quarter r: low 4 bits from ql[64h + 32(r & 1) + l] (low nibble for r < 2),
// high 2 bits from qh[32h + l] at bit 2r; levels 0..63, -32 applied via bsums.
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
        const int s = 8 * h + 2 * r;
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, lane_scales(b[i].scales[s], b[i].scales[s + 1])));
      }
    }
    const float d = y[i].d * half(b[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
    offsets += d * static_cast<float>(32 * ioff);
  }
  return hsum(acc) - offsets;
}

// IQ4_XS: sub-block s is an IQ4_NL body (grid values via a byte shuffle) with a 6-bit
// signed scale; grid values are signed, so the sign trick of dot_i8 applies.
float dot_iq4_xs(const void* w, const void* act, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(act);
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    __m256i isum = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      const __m256i v = _mm256_shuffle_epi8(grid, unpack_nibbles(b[i].qs + 16 * s));
      const __m256i x = load256(y[i].qs + 32 * s);
      const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(x, v));
      const __m256i scale = _mm256_set1_epi16(static_cast<int16_t>(iq4xs_scale(b[i], s)));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scale));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * half(b[i].d)), _mm256_cvtepi32_ps(isum), acc);
  }
  return hsum(acc);
}

}  // namespace hearth::cpu::detail::avx2

#endif
