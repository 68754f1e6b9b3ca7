// Scalar reference code for every stored type: dequantize, quantize and dot products.
// These are the definitions every fast path (CPU SIMD, CUDA) is tested against, so
// they favour clarity over speed, and they stay compiled in every build.
//
// Layouts follow ggml's blocks (see blocks.h) and mlx's affine packing (see weight.h).
// n is always a whole number of blocks of the type.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "quant/weight.h"

namespace hearth::quant {

// True if dequantize_row supports `type` (every GGUF type hearth loads).
bool can_dequantize(DType type);
// True if quantize_row can produce `type` (used by the synthetic model writer).
bool can_quantize(DType type);

// dst[0..n) = the n elements stored at src.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// Stores src[0..n) at dst as `type` (row_bytes(type, n) bytes). Q4_0…Q8_1 and Q8_K use
// the rounding rules of llama.cpp's *_ref quantizers; the K-quants and IQ4 types use
// hearth's own scale search (quant/fit.cpp), valid blocks but not byte-identical to
// llama-quantize's.
void quantize_row(DType type, const float* src, void* dst, int64_t n);

// One row of a weight, as floats (cols elements).
void dequantize_weight_row(const Weight& w, int64_t row, float* dst);

// sum_k row[k] * x[k] for one stored row of n elements: the reference for matmul.
float dot_row_ref(DType type, const void* row, const float* x, int64_t n);
// The same for row `row` of any Weight, MLX_AFFINE included.
float dot_weight_row_ref(const Weight& w, int64_t row, const float* x);

// MLX affine packing of one row (n elements, n % group_size == 0).
void dequantize_row_mlx(const uint32_t* packed, const void* scales, const void* biases, DType scale_type, int bits,
                        int group_size, float* dst, int64_t n);
// Quantizes one row the way mlx.core.quantize does (affine mode); scales and biases are
// written as scale_type.
void quantize_row_mlx(const float* src, uint32_t* packed, void* scales, void* biases, DType scale_type, int bits,
                      int group_size, int64_t n);

}  // namespace hearth::quant
