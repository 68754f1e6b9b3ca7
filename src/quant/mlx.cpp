// MLX affine packing (mode "affine" of mlx.core.quantize), one row at a time.
//
// A row of n values of `bits` bits is one little-endian bit stream: value k occupies
// stream bits [k * bits, (k + 1) * bits), lowest bit first, and stream bit b is bit b % 32
// of uint32 word b / 32. For 2/4/8 bits that is "32/bits values per word, lowest first";
// for 3/5/6 bits values straddle byte and word boundaries (mlx packs 8 values in 3 or 5
// bytes, or 4 in 3, which is the same stream). Each group of group_size values has one
// scale and one bias: w = scale * q + bias, evaluated in float32 in that order.
//
// The quantizer follows mlx's CPU quantize (read for facts): per group,
// scale = ±max((max - min) / (2^bits - 1), 1e-7), the larger-magnitude edge made exactly
// representable (scale = edge / rint(edge / scale), bias = edge), q = rint((w - bias) / scale)
// clamped; values are rounded against the unrounded float scale, which is then stored
// in scale_type.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "quant/quant.h"

namespace hearth::quant {
namespace {

void check_params(DType scale_type, int bits, int group_size, int64_t n) {
  HEARTH_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8,
               "mlx affine quantization: unsupported bits " + std::to_string(bits) + " (2, 3, 4, 5, 6 or 8)");
  HEARTH_CHECK(group_size == 32 || group_size == 64 || group_size == 128,
               "mlx affine quantization: unsupported group size " + std::to_string(group_size) + " (32, 64 or 128)");
  HEARTH_CHECK(n % group_size == 0, "mlx affine quantization: row of " + std::to_string(n) +
                                        " elements is not a whole number of groups of " + std::to_string(group_size));
  HEARTH_CHECK(scale_type == DType::F16 || scale_type == DType::BF16 || scale_type == DType::F32,
               "mlx affine quantization: scales must be f16, bf16 or f32, not " + std::string(dtype_name(scale_type)));
}

float load_scale(const void* p, DType type, int64_t i) {
  switch (type) {
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

void store_scale(void* p, DType type, int64_t i, float v) {
  switch (type) {
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// Value k of the bit stream.
uint32_t get_bits(const uint32_t* words, int64_t k, int bits) {
  const int64_t bit = k * bits;
  const int64_t word = bit / 32;
  const int off = static_cast<int>(bit % 32);
  uint64_t v = words[word] >> off;
  if (off + bits > 32) v |= static_cast<uint64_t>(words[word + 1]) << (32 - off);
  return static_cast<uint32_t>(v) & ((1u << bits) - 1);
}

// ORs value k into the (zeroed) bit stream.
void put_bits(uint32_t* words, int64_t k, int bits, uint32_t value) {
  const int64_t bit = k * bits;
  const int64_t word = bit / 32;
  const int off = static_cast<int>(bit % 32);
  words[word] |= value << off;
  if (off + bits > 32) words[word + 1] |= value >> (32 - off);
}

}  // namespace

void dequantize_row_mlx(const uint32_t* packed, const void* scales, const void* biases, DType scale_type, int bits,
                        int group_size, float* dst, int64_t n) {
  check_params(scale_type, bits, group_size, n);
  for (int64_t g = 0; g < n / group_size; ++g) {
    const float scale = load_scale(scales, scale_type, g);
    const float bias = load_scale(biases, scale_type, g);
    for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k)
      dst[k] = scale * static_cast<float>(get_bits(packed, k, bits)) + bias;
  }
}

void quantize_row_mlx(const float* src, uint32_t* packed, void* scales, void* biases, DType scale_type, int bits,
                      int group_size, int64_t n) {
  check_params(scale_type, bits, group_size, n);
  const float n_bins = static_cast<float>((1 << bits) - 1);
  std::memset(packed, 0, static_cast<size_t>(n * bits / 8));
  for (int64_t g = 0; g < n / group_size; ++g) {
    const float* w = src + g * group_size;
    float w_min = std::numeric_limits<float>::infinity(), w_max = -w_min;
    for (int j = 0; j < group_size; ++j) {
      w_min = std::min(w_min, w[j]);
      w_max = std::max(w_max, w[j]);
    }
    // The edge of larger magnitude gets q = 0 (so the scale is negative when it is the
    // max) and is represented exactly by the bias.
    const bool min_is_edge = std::fabs(w_min) > std::fabs(w_max);
    float scale = std::max((w_max - w_min) / n_bins, 1e-7f);
    if (!min_is_edge) scale = -scale;
    const float edge = min_is_edge ? w_min : w_max;
    const float q0 = std::rint(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = edge / q0;
      bias = edge;
    }
    for (int j = 0; j < group_size; ++j) {
      const float q = std::min(std::max(std::rint((w[j] - bias) / scale), 0.0f), n_bins);
      put_bits(packed, g * group_size + j, bits, static_cast<uint32_t>(q));
    }
    store_scale(scales, scale_type, g, scale);
    store_scale(biases, scale_type, g, bias);
  }
}

}  // namespace hearth::quant
