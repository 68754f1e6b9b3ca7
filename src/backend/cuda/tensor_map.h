// Tensor maps (CUtensorMap) for sm_90's tensor copy engine, made on the host: the encoder
// comes from the driver through the runtime, so nothing links libcuda. mma_f16.cu's
// weight boxes use it.
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace hearth::cuda {

// The map of a row-major byte matrix (rows x row_bytes, both 16-byte aligned: data and
// row_bytes) as 16-bit elements, for boxes of box_bytes x box_rows (rows and bytes past
// the ends arrive as zeros; L2 promotion of 256 bytes). False where the driver has no
// encoder or the matrix does not qualify.
bool encode_rows_map(CUtensorMap* map, const uint8_t* data, int64_t rows, int64_t row_bytes, int box_bytes,
                     int box_rows);

}  // namespace hearth::cuda
