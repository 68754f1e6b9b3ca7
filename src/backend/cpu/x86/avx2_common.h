// Helpers shared by the AVX2 dot-product files (quant_dot_avx2.cpp for float rows,
// 32-blocks and MLX; quant_dot_avx2_kquants.cpp for the super-block types). Only
// included when the build targets AVX2 + FMA + F16C.
//
// int8 products use _mm256_maddubs_epi16, which multiplies an unsigned byte by a signed
// byte and adds adjacent pairs into int16 with saturation. Signed weights are split into
// |w| and the sign moved onto the activation (_mm256_sign_epi8). With |w| <= 128 and
// |x| <= 127 (Q8 activations never hold -128) a pair stays below 32512, so nothing
// saturates; unsigned levels (at most 63 here) are fed in directly.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace hearth::cpu::detail::avx2 {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 int32 partial sums of a[j] * b[j] over 32 signed bytes (a may be -128, b not).
inline __m256i dot_i8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)),
                           _mm256_set1_epi16(1));
}

// 8 int32 partial sums of u[j] * b[j]: u unsigned bytes (< 128), b signed.
inline __m256i dot_u8(__m256i u, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, b), _mm256_set1_epi16(1));
}

// 16 bytes of nibbles in Q4_0 order -> 32 bytes in element order: low nibbles
// (elements 0..15) in the low lane, high nibbles (16..31) in the high lane.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
}

// Two int16 multipliers: `lo` for the low 128-bit lane (elements 0..15 of a 32-byte
// vector), `hi` for the high lane; used with _mm256_madd_epi16 to apply per-16 scales.
inline __m256i lane_scales(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)), _mm_set1_epi16(static_cast<int16_t>(lo)));
}

// The super-block kernels (quant_dot_avx2_kquants.cpp).
float dot_q2_k(const void* w, const void* act, int64_t n);
float dot_q3_k(const void* w, const void* act, int64_t n);
float dot_q4_k(const void* w, const void* act, int64_t n);
float dot_q5_k(const void* w, const void* act, int64_t n);
float dot_q6_k(const void* w, const void* act, int64_t n);
float dot_iq4_xs(const void* w, const void* act, int64_t n);

}  // namespace hearth::cpu::detail::avx2
