// One element of a stored weight row as float, for every type the CUDA backend uploads.
// Used where elements are wanted one at a time: embedding rows, and the f16 tiles that the
// prompt path hands to cuBLAS. Host and device (tests/cuda/test_quant_units.cpp checks it
// against quant::dequantize_row). The formulas follow quant/dequantize.cpp and quant/mlx.cpp.
#pragma once

#include <cstdint>

#include "backend/cuda/quant_units.cuh"
#include "core/dtype.h"

namespace hearth::cuda {

// Element k of row `row` (row index r, for MLX scales) of a weight of type `type`.
HEARTH_HD float dequant_elem(DType type, const uint8_t* row, int64_t r, int64_t k, const WAux& aux, int bits) {
  switch (type) {
    case DType::F32: return load_scale(row, 0, k);
    case DType::F16: return load_scale(row, 1, k);
    case DType::BF16: return load_scale(row, 2, k);
    case DType::Q4_0: {
      const uint8_t* p = row + 18 * (k / 32);
      const int j = static_cast<int>(k % 32);
      const int byte = p[2 + j % 16];
      const int q = (j < 16 ? byte & 0xF : byte >> 4) - 8;
      return half_bits_to_float(ld_u16(p)) * static_cast<float>(q);
    }
    case DType::Q8_0: {
      const uint8_t* p = row + 34 * (k / 32);
      return half_bits_to_float(ld_u16(p)) * static_cast<float>(static_cast<int8_t>(p[2 + k % 32]));
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool fifth = type == DType::Q5_K;
      const uint8_t* p = row + (fifth ? 176 : 144) * (k / 256);
      const int e = static_cast<int>(k % 256), s = e / 32, l = e % 32, c = s / 2;
      const uint8_t* sc = p + 4;
      uint32_t w0 = 0, w1 = 0, w2 = 0;
      for (int i = 0; i < 4; ++i) {
        w0 |= static_cast<uint32_t>(sc[i]) << (8 * i);
        w1 |= static_cast<uint32_t>(sc[4 + i]) << (8 * i);
        w2 |= static_cast<uint32_t>(sc[8 + i]) << (8 * i);
      }
      int scale = 0, m = 0;
      k4_scale_min_words(w0, w1, w2, s, &scale, &m);
      int q = (p[(fifth ? 48 : 16) + 32 * c + l] >> (4 * (s % 2))) & 0xF;
      if (fifth) q |= ((p[16 + l] >> s) & 1) << 4;
      const float d = half_bits_to_float(ld_u16(p)), dmin = half_bits_to_float(ld_u16(p + 2));
      return d * static_cast<float>(scale) * static_cast<float>(q) - dmin * static_cast<float>(m);
    }
    case DType::Q6_K: {
      const uint8_t* p = row + 210 * (k / 256);
      const int e = static_cast<int>(k % 256), h = e / 128, r4 = (e / 32) % 4, l = e % 32;
      const int lo = (p[64 * h + l + 32 * (r4 & 1)] >> (r4 < 2 ? 0 : 4)) & 0xF;
      const int hi = (p[128 + 32 * h + l] >> (2 * r4)) & 3;
      const int scale = static_cast<int8_t>(p[192 + 8 * h + 2 * r4 + l / 16]);
      return half_bits_to_float(ld_u16(p + 208)) * static_cast<float>(scale) * static_cast<float>((lo | hi << 4) - 32);
    }
    case DType::MLX_AFFINE: {
      // bits 4 or 8: values never straddle a word.
      const uint32_t word = load_word(row, (k * bits) / 32);
      const uint32_t q = (word >> ((k * bits) % 32)) & ((1u << bits) - 1);
      const int64_t g = r * aux.groups_per_row + k / aux.group_size;
      return load_scale(aux.scales, aux.scale_kind, g) * static_cast<float>(q) + load_scale(aux.biases, aux.scale_kind, g);
    }
    default: return 0.0f;
  }
}

}  // namespace hearth::cuda
