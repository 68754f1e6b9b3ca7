// Internal seams of the quant module, not included outside src/quant.
//
// The block-type halves of the reference code live in their own files (dequantize.cpp,
// quantize_simple.cpp, quantize_kquants.cpp) and quant.cpp dispatches to them: each takes
// a count of whole blocks and returns false when `type` is not one it handles.
//
// The scale searches of fit.cpp serve the K-quant and IQ4 quantizers. Each fits one
// sub-block of n values with integer levels, trying a small fan of candidate scales
// around the obvious one and refitting the scale (and offset) by least squares for each
// assignment of levels; the candidate with the lowest squared error wins. This is
// hearth's own search, simpler than llama.cpp's make_q*_quants: no importance weights,
// so files differ from llama-quantize's but are equally valid.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace hearth::quant::detail {

// dst gets n_blocks * block_elems floats.
bool dequantize_blocks(DType type, const void* src, float* dst, int64_t n_blocks);
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q8_K: llama.cpp's *_ref rounding rules.
bool quantize_blocks_simple(DType type, const float* src, void* dst, int64_t n_blocks);
// Q2_K … Q6_K, IQ4_NL, IQ4_XS: hearth's own scale searches (not llama.cpp's).
bool quantize_blocks_k(DType type, const float* src, void* dst, int64_t n_blocks);

// Round to nearest, halves away from zero (roundf), as an int.
inline int round_int(float x) { return static_cast<int>(std::lround(x)); }

// ---- scale searches (fit.cpp) ----

// Callers re-round every value once the sub-block scales have themselves been quantized,
// so the searches return only the fitted scales. n <= 256.

// x ≈ scale * q - min with q in [0, nmax], scale >= 0, min >= 0 (the offset is
// negative or zero, as Q2_K/Q4_K/Q5_K store it).
struct AsymFit {
  float scale = 0.0f;
  float min = 0.0f;
};
AsymFit fit_asymmetric(const float* x, int n, int nmax);

// x ≈ scale * q with q in [-nneg, npos] (Q3_K: -4..3, Q6_K: -32..31); scale may be
// negative so the larger-magnitude side can use the extra negative level.
float fit_symmetric(const float* x, int n, int nneg, int npos);

// x ≈ scale * kIQ4NLValues[q] with q in [0, 16).
float fit_grid(const float* x, int n);

// Index of the grid value nearest to v (kIQ4NLValues is sorted).
int nearest_grid_index(float v);

}  // namespace hearth::quant::detail
