// Type table. Block sizes follow ggml's on-disk layouts (see quant/blocks.h).
#include "core/dtype.h"

#include <array>
#include <string>

#include "core/error.h"

namespace hearth {
namespace {

constexpr std::array kTypes = {
    DTypeInfo{DType::F32, "f32", 1, 4, false},
    DTypeInfo{DType::F16, "f16", 1, 2, false},
    DTypeInfo{DType::BF16, "bf16", 1, 2, false},
    DTypeInfo{DType::F64, "f64", 1, 8, false},
    DTypeInfo{DType::I8, "i8", 1, 1, false},
    DTypeInfo{DType::I16, "i16", 1, 2, false},
    DTypeInfo{DType::I32, "i32", 1, 4, false},
    DTypeInfo{DType::I64, "i64", 1, 8, false},
    DTypeInfo{DType::U8, "u8", 1, 1, false},
    DTypeInfo{DType::U32, "u32", 1, 4, false},
    DTypeInfo{DType::Q4_0, "q4_0", 32, 18, true},
    DTypeInfo{DType::Q4_1, "q4_1", 32, 20, true},
    DTypeInfo{DType::Q5_0, "q5_0", 32, 22, true},
    DTypeInfo{DType::Q5_1, "q5_1", 32, 24, true},
    DTypeInfo{DType::Q8_0, "q8_0", 32, 34, true},
    DTypeInfo{DType::Q8_1, "q8_1", 32, 36, true},
    DTypeInfo{DType::Q2_K, "q2_K", 256, 84, true},
    DTypeInfo{DType::Q3_K, "q3_K", 256, 110, true},
    DTypeInfo{DType::Q4_K, "q4_K", 256, 144, true},
    DTypeInfo{DType::Q5_K, "q5_K", 256, 176, true},
    DTypeInfo{DType::Q6_K, "q6_K", 256, 210, true},
    DTypeInfo{DType::Q8_K, "q8_K", 256, 292, true},
    DTypeInfo{DType::IQ4_NL, "iq4_nl", 32, 18, true},
    DTypeInfo{DType::IQ4_XS, "iq4_xs", 256, 136, true},
};

}  // namespace

const DTypeInfo& dtype_info(DType type) {
  for (const auto& info : kTypes)
    if (info.type == type) return info;
  fail("internal error: no fixed block layout for type id " + std::to_string(static_cast<int>(type)));
}

std::optional<DType> dtype_from_ggml(int64_t ggml_type) {
  if (ggml_type < 0 || ggml_type >= 1000) return std::nullopt;
  for (const auto& info : kTypes)
    if (static_cast<int64_t>(info.type) == ggml_type) return info.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  if (name == "F64") return DType::F64;
  if (name == "I8") return DType::I8;
  if (name == "I16") return DType::I16;
  if (name == "I32") return DType::I32;
  if (name == "I64") return DType::I64;
  if (name == "U8") return DType::U8;
  if (name == "U32") return DType::U32;
  return std::nullopt;
}

std::string_view dtype_name(DType type) {
  if (type == DType::MLX_AFFINE) return "mlx_affine";
  return dtype_info(type).name;
}

int64_t dtype_row_bytes(DType type, int64_t n) {
  const auto& info = dtype_info(type);
  HEARTH_CHECK(n % info.block_elems == 0, "row of " + std::to_string(n) + " elements is not a whole number of " +
                                              std::string(info.name) + " blocks");
  return n / info.block_elems * info.block_bytes;
}

}  // namespace hearth
