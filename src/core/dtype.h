// Element and block types. The numeric values of the GGUF types equal ggml's type ids so
// that a GGUF tensor's type field converts with a table lookup; types that only exist
// outside GGUF (MLX's affine packing) take ids above 1000.
//
// A "block" type stores `block_elems` consecutive elements of a row in `block_bytes`
// bytes; plain types are blocks of one element. MLX affine weights are packed uint32
// words with separate per-group scales and biases: see quant/weight.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hearth {

enum class DType : int32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  // Not GGUF types:
  U8 = 1001,
  U32 = 1002,
  MLX_AFFINE = 1003,  // uint32-packed 2..8-bit values with per-group scale and bias
};

struct DTypeInfo {
  DType type;
  std::string_view name;  // as llama.cpp prints it: "f32", "q4_K", ...
  int64_t block_elems;    // elements per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
  bool quantized;
};

// Facts about a type. Throws hearth::Error for MLX_AFFINE, whose row size depends on bits.
const DTypeInfo& dtype_info(DType type);

// The type for a ggml type id read from a file, or nothing if hearth does not know it.
std::optional<DType> dtype_from_ggml(int64_t ggml_type);

// The type for a safetensors dtype string ("F32", "BF16", "U32", ...), or nothing.
std::optional<DType> dtype_from_safetensors(std::string_view name);

std::string_view dtype_name(DType type);

// Bytes of a row of n elements; n must be a multiple of the block size.
int64_t dtype_row_bytes(DType type, int64_t n);

}  // namespace hearth
