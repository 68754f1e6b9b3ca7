// Public dot-product entry points (quant_dot.h): activation formats and the per-type
// choice between the SIMD and the scalar kernels, made once into a table.
#include "backend/cpu/quant_dot.h"

#include <array>
#include <cstring>
#include <string>

#include "backend/cpu/quant_dot_kernels.h"
#include "core/error.h"
#include "quant/quant.h"

namespace hearth::cpu {
namespace {

// GGUF type ids are below 64; the table covers all of them.
constexpr int kTableSize = 64;

struct Kernels {
  std::array<detail::DotFn, kTableSize> dot{};
  std::array<detail::MlxDotFn, 9> mlx{};  // by bits
};

const Kernels& kernels() {
  static const Kernels table = [] {
    Kernels k;
    for (int t = 0; t < kTableSize; ++t) {
      const auto type = static_cast<DType>(t);
      k.dot[t] = detail::dot_avx2(type) ? detail::dot_avx2(type) : detail::dot_generic(type);
    }
    for (int bits = 0; bits <= 8; ++bits)
      k.mlx[bits] = detail::mlx_dot_avx2(bits) ? detail::mlx_dot_avx2(bits) : detail::mlx_dot_generic;
    return k;
  }();
  return table;
}

detail::DotFn dot_for(DType type) {
  const int t = static_cast<int>(type);
  detail::DotFn fn = t >= 0 && t < kTableSize ? kernels().dot[t] : nullptr;
  HEARTH_CHECK(fn != nullptr, "CPU matmul: no dot product for weights of type " + std::string(dtype_name(type)));
  return fn;
}

}  // namespace

DType vec_dot_type(DType weight_type) {
  if (weight_type == DType::MLX_AFFINE) return DType::F32;
  dot_for(weight_type);  // rejects types without a kernel
  switch (weight_type) {
    case DType::F32: case DType::F16: case DType::BF16:
      return DType::F32;
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::IQ4_NL:
      return DType::Q8_0;
    default:
      return DType::Q8_K;
  }
}

int64_t activation_row_bytes(DType weight_type, int64_t n) {
  if (weight_type == DType::MLX_AFFINE) return n * static_cast<int64_t>(sizeof(float));
  return dtype_row_bytes(vec_dot_type(weight_type), n);
}

void quantize_activation(DType weight_type, const float* x, void* dst, int64_t n) {
  if (weight_type == DType::MLX_AFFINE) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  quant::quantize_row(vec_dot_type(weight_type), x, dst, n);
}

float vec_dot(DType weight_type, const void* w_row, const void* act, int64_t n) {
  return dot_for(weight_type)(w_row, act, n);
}

float vec_dot_mlx(const Weight& w, int64_t row, const float* x) {
  HEARTH_ASSERT(w.type == DType::MLX_AFFINE && w.bits >= 2 && w.bits <= 8);
  return kernels().mlx[w.bits](w, row, x);
}

}  // namespace hearth::cpu
