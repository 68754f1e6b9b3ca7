// Dot products for the CPU matmul: one stored weight row against one activation row.
// Activations are prepared once per token in the format the weight type pairs with
// (vec_dot_type), so a quantized dot product is integer arithmetic within each block:
//   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL  -> Q8_0 activations (32-element blocks)
//   Q2_K … Q6_K, IQ4_XS                   -> Q8_K activations (256-element blocks)
//   F32, F16, BF16, MLX_AFFINE            -> F32 activations (the row as given)
// Quantizing activations costs accuracy: |vec_dot - exact| is at most about
// 0.57 * sum_i |w_i| * amax(x's block containing i) / 127 (tests/quant_dot states it).
//
// Each type has a scalar kernel and, on AVX2 builds, an AVX2 kernel (quant_dot_kernels.h);
// the choice is made at compile time (-march=native).
//
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "quant/weight.h"

namespace hearth::cpu {

// The activation format for rows of weight_type. Throws hearth::Error for a type with
// no dot product (e.g. Q8_K, I32).
DType vec_dot_type(DType weight_type);
// Bytes of one prepared activation row of n elements.
int64_t activation_row_bytes(DType weight_type, int64_t n);
// Prepares x[0..n) for dot products with rows of weight_type (n a whole number of the
// weight's blocks); dst holds activation_row_bytes(weight_type, n) bytes.
void quantize_activation(DType weight_type, const float* x, void* dst, int64_t n);
// Dot product of one stored weight row (n elements) with a prepared activation row.
float vec_dot(DType weight_type, const void* w_row, const void* act, int64_t n);
// MLX affine rows (float activations): sum over groups of scale*sum(q*x) + bias*sum(x).
float vec_dot_mlx(const Weight& w, int64_t row, const float* x);

}  // namespace hearth::cpu
