// Weight: a matrix as the model uses it, whatever its storage. Quantization is a property
// of the weight, not of the model: an architecture file asks for "q_proj" and gets a
// Weight whose `type` says how its rows are stored; backends dispatch on that type.
//
// Layout: `rows` rows of `cols` elements (PyTorch [out, in]); each row is stored
// contiguously in row_bytes() bytes, blocks running along the row. For MLX_AFFINE the
// data is uint32 words holding `bits`-bit values (lowest bits first) and each group of
// `group_size` elements of a row has one scale and one bias in `scales`/`biases`
// ([rows, cols/group_size] of `scale_type`, F16 or BF16 or F32):
//     w[r, k] = scales[r, k/gs] * q[r, k] + biases[r, k/gs]
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace hearth {

struct Weight {
  DType type = DType::F32;
  const void* data = nullptr;  // rows * row_bytes() bytes
  int64_t rows = 0;            // output features (or vocabulary rows of an embedding)
  int64_t cols = 0;            // input features
  // MLX_AFFINE only:
  const void* scales = nullptr;  // [rows, cols / group_size] of scale_type
  const void* biases = nullptr;  // [rows, cols / group_size] of scale_type
  DType scale_type = DType::F16;
  int bits = 0;                  // 2, 3, 4, 5, 6 or 8
  int group_size = 0;            // 32, 64 or 128

  int64_t row_bytes() const;
  int64_t nbytes() const { return rows * row_bytes(); }
  // Bytes of scales + biases (MLX) - part of the weight's memory footprint.
  int64_t aux_bytes() const;
  std::string describe() const;  // "q4_K [4096, 12288]" / "mlx4g64 [...]"
};

}  // namespace hearth
