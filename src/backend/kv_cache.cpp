// The KV cache's element type: the user's choice on the Backend, the name --kv-cache-type
// takes, and the 8-bit row format (kv_quant.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "backend/kv_quant.h"
#include "core/error.h"
#include "core/half.h"

namespace hearth {

void Backend::set_kv_dtype(DType t) {
  HEARTH_CHECK(supports_kv_dtype(t), "--kv-cache-type " + std::string(dtype_name(t)) + ": the " + name() +
                                         " backend cannot keep its KV cache in that type");
  kv_dtype_ = t;
  kv_dtype_set_ = true;
}

DType parse_kv_cache_type(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "q8_0") return DType::Q8_0;
  fail("--kv-cache-type '" + name + "': expected f16, q8_0 or f32");
}

void quantize_kv_row_q8(const float* x, int64_t row, int64_t row_bytes, uint8_t* out) {
  auto* q = reinterpret_cast<int8_t*>(out);
  uint8_t* scales = out + row;
  for (int64_t g = 0; g < row / 32; ++g) {
    const float* xg = x + g * 32;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xg[i]));
    const uint16_t dh = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(dh);
    for (int i = 0; i < 32; ++i) {
      const float v = d > 0.0f ? std::nearbyint(xg[i] / d) : 0.0f;
      // fmax/fmin, not clamp: a NaN element (a broken model) becomes -127, never an
      // undefined float-to-int conversion.
      q[g * 32 + i] = static_cast<int8_t>(std::fmin(std::fmax(v, -127.0f), 127.0f));
    }
    std::memcpy(scales + 2 * g, &dh, 2);  // little-endian hosts, as the device reads it
  }
  std::memset(out + row + row / 32 * 2, 0, static_cast<size_t>(row_bytes - row - row / 32 * 2));
}

void dequantize_kv_q8(const uint8_t* in, int64_t row, int64_t begin, int64_t count, float* out) {
  const auto* q = reinterpret_cast<const int8_t*>(in);
  for (int64_t g = begin / 32; g < (begin + count) / 32; ++g) {
    uint16_t dh;
    std::memcpy(&dh, in + row + 2 * g, 2);
    const float d = f16_to_f32(dh);
    for (int i = 0; i < 32; ++i) out[g * 32 + i - begin] = static_cast<float>(q[g * 32 + i]) * d;
  }
}

}  // namespace hearth
