// Kernel tables behind quant_dot.h. Every weight type has a portable scalar kernel
// (quant_dot_generic.cpp, always compiled and tested); x86/quant_dot_avx2*.cpp provide
// AVX2 versions of all of them (MLX: 4 and 8 bits only) when the build targets
// AVX2 + FMA + F16C. quant_dot.cpp picks, per type, the SIMD kernel when there is one and
// the generic one otherwise. Tests call both tables directly so the generic kernels stay
// tested on machines that never use them.
//
// A DotFn takes one stored weight row of n elements and one activation row prepared by
// quantize_activation (vec_dot_type's format) and returns their dot product.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/half.h"
#include "quant/weight.h"

namespace hearth::cpu::detail {

using DotFn = float (*)(const void* w_row, const void* act, int64_t n);
// sum over groups of scale * sum(q * x) + bias * sum(x) for row `row` of an MLX weight.
using MlxDotFn = float (*)(const Weight& w, int64_t row, const float* x);

// The scalar kernel for `weight_type`, or nullptr when hearth has none.
DotFn dot_generic(DType weight_type);
// The AVX2 kernel, or nullptr (no SIMD version, or not an AVX2 build).
DotFn dot_avx2(DType weight_type);

// Every bits value and group size, any scale type.
float mlx_dot_generic(const Weight& w, int64_t row, const float* x);
// An AVX2 kernel for w.bits, or nullptr.
MlxDotFn mlx_dot_avx2(int bits);

// The branch-free f16 conversion of the generic kernels, exposed for its exhaustive test.
float half_to_float_generic(uint16_t h);

// Where one row of an MLX weight starts: its packed words and its scales and biases.
struct MlxRow {
  const uint32_t* words;  // [cols * bits / 32]
  const uint8_t* scales;  // [cols / group_size] of w.scale_type
  const uint8_t* biases;  // [cols / group_size] of w.scale_type
};
MlxRow mlx_row(const Weight& w, int64_t row);
// Group g's scale or bias as float (F16, BF16 or F32 storage). Inline: it runs once
// per group, often enough that a call would cost as much as the group's arithmetic.
inline float mlx_load_scale(const uint8_t* p, DType type, int64_t g) {
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

}  // namespace hearth::cpu::detail
