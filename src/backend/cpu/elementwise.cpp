// Elementwise ops and embedding lookup. These are memory-bound and tiny next to the
// matmuls, so they stay as plain loops the compiler vectorises.
#include <cmath>

#include "backend/cpu/ops.h"
#include "quant/quant.h"

namespace hearth::cpu {

void swiglu(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n) {
  pool.parallel_for(
      n,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const float g = gate[i];
          out[i] = g / (1.0f + std::exp(-g)) * up[i];
        }
      },
      16384);
}

void add(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void embed(ThreadPool& pool, float* out, const Weight& table, const int32_t* tokens, int64_t n) {
  pool.parallel_for(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int32_t id = tokens[t];
      HEARTH_CHECK(id >= 0 && id < table.rows, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                   std::to_string(table.rows) + " rows)");
      quant::dequantize_weight_row(table, id, out + t * table.cols);
    }
  });
}

}  // namespace hearth::cpu
