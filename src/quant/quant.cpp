// Dispatch for the reference code (quant/quant.h), the plain float types, dot products
// against the reference, and the Weight helpers. Block types are handled in
// dequantize.cpp, quantize_simple.cpp and quantize_kquants.cpp; MLX packing in mlx.cpp.
#include "quant/quant.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/ref_internal.h"

namespace hearth::quant {
namespace {

// Elements per chunk when a row is dequantized piecewise: a multiple of every block size.
constexpr int64_t kChunk = 256;

bool is_block_type(DType type) {
  switch (type) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q8_1: case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K:
    case DType::Q6_K: case DType::Q8_K: case DType::IQ4_NL: case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

bool is_float_type(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::BF16; }

// Checks n against the type's block size and returns the number of blocks.
int64_t whole_blocks(DType type, int64_t n) {
  const auto& info = dtype_info(type);
  HEARTH_CHECK(n >= 0 && n % info.block_elems == 0, "row of " + std::to_string(n) +
                                                        " elements is not a whole number of " +
                                                        std::string(info.name) + " blocks");
  return n / info.block_elems;
}

}  // namespace

bool can_dequantize(DType type) { return is_float_type(type) || is_block_type(type); }

// Every block type hearth reads can also be written (Q8_1 and Q8_K for activations).
bool can_quantize(DType type) { return can_dequantize(type); }

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  HEARTH_CHECK(can_dequantize(type), "cannot dequantize tensors of type " + std::string(dtype_name(type)));
  const int64_t nb = whole_blocks(type, n);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    default:
      HEARTH_ASSERT(detail::dequantize_blocks(type, src, dst, nb));
  }
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  HEARTH_CHECK(can_quantize(type), "cannot quantize to type " + std::string(dtype_name(type)));
  const int64_t nb = whole_blocks(type, n);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    default:
      HEARTH_ASSERT(detail::quantize_blocks_simple(type, src, dst, nb) ||
                    detail::quantize_blocks_k(type, src, dst, nb));
  }
}

float dot_row_ref(DType type, const void* row, const float* x, int64_t n) {
  // Dequantize a chunk at a time and accumulate in double: the reference should carry
  // no rounding error of its own beyond the final conversion.
  const int64_t chunk_bytes = dtype_row_bytes(type, kChunk);
  whole_blocks(type, n);
  float buf[kChunk];
  double sum = 0.0;
  const auto* bytes = static_cast<const uint8_t*>(row);
  for (int64_t k = 0; k < n; k += kChunk) {
    const int64_t len = std::min(kChunk, n - k);
    dequantize_row(type, bytes + k / kChunk * chunk_bytes, buf, len);
    for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(buf[i]) * x[k + i];
  }
  return static_cast<float>(sum);
}

void dequantize_weight_row(const Weight& w, int64_t row, float* dst) {
  HEARTH_ASSERT(row >= 0 && row < w.rows);
  const auto* data = static_cast<const uint8_t*>(w.data) + row * w.row_bytes();
  if (w.type != DType::MLX_AFFINE) {
    dequantize_row(w.type, data, dst, w.cols);
    return;
  }
  const int64_t groups = w.cols / w.group_size;
  const int64_t scale_bytes = dtype_info(w.scale_type).block_bytes;
  const int64_t aux_offset = row * groups * scale_bytes;
  dequantize_row_mlx(reinterpret_cast<const uint32_t*>(data), static_cast<const uint8_t*>(w.scales) + aux_offset,
                     static_cast<const uint8_t*>(w.biases) + aux_offset, w.scale_type, w.bits, w.group_size, dst,
                     w.cols);
}

float dot_weight_row_ref(const Weight& w, int64_t row, const float* x) {
  if (w.type != DType::MLX_AFFINE) {
    HEARTH_ASSERT(row >= 0 && row < w.rows);
    return dot_row_ref(w.type, static_cast<const uint8_t*>(w.data) + row * w.row_bytes(), x, w.cols);
  }
  std::vector<float> values(static_cast<size_t>(w.cols));
  dequantize_weight_row(w, row, values.data());
  double sum = 0.0;
  for (int64_t k = 0; k < w.cols; ++k) sum += static_cast<double>(values[k]) * x[k];
  return static_cast<float>(sum);
}

}  // namespace hearth::quant

namespace hearth {

int64_t Weight::row_bytes() const {
  if (type != DType::MLX_AFFINE) return dtype_row_bytes(type, cols);
  HEARTH_CHECK(cols * bits % 32 == 0, describe() + ": row of " + std::to_string(cols) + " " + std::to_string(bits) +
                                          "-bit values does not fill whole uint32 words");
  return cols * bits / 8;
}

int64_t Weight::aux_bytes() const {
  if (type != DType::MLX_AFFINE) return 0;
  return 2 * rows * (cols / group_size) * dtype_info(scale_type).block_bytes;
}

std::string Weight::describe() const {
  const std::string shape = " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
  if (type == DType::MLX_AFFINE) return "mlx" + std::to_string(bits) + "g" + std::to_string(group_size) + shape;
  return std::string(dtype_name(type)) + shape;
}

}  // namespace hearth
