// The 8-bit KV cache format (KvCacheConfig::dtype Q8_0, layout at kv_row_bytes): the
// scalar quantizer every backend's store must match and the dequantizer the CPU's
// attention reads through. Kept here, not in quant/, because it is not a ggml block
// layout: the scales of a cache row sit after all its int8 values, so int8 loads stay
// aligned and a head's values are one contiguous run.
//
// One 32-group: amax = max |x|, d = f16(amax / 127) (rounded to nearest even), q =
// rint(x / d) in [-127, 127] (0 when d is 0; a NaN element -127). The CUDA kernels compute
// the same IEEE operations, so for finite inputs their stores are bit-identical to this one.
#pragma once

#include <cstdint>

namespace hearth {

// Writes one cache row of `row` elements (row % 32 == 0) to `out` (row_bytes bytes: int8
// values, f16 scales, zeros to the end).
void quantize_kv_row_q8(const float* x, int64_t row, int64_t row_bytes, uint8_t* out);

// Elements [begin, begin + count) of a quantized row of `row` elements, as floats
// (begin and count multiples of 32).
void dequantize_kv_q8(const uint8_t* in, int64_t row, int64_t begin, int64_t count, float* out);

}  // namespace hearth
