// RMSNorm and rotary position embeddings on the CPU. Both accumulate in double where a
// sum runs over a whole row, so the reference stays well inside the parity bounds
// against PyTorch's float64 logits.
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"

namespace hearth::cpu {

void rms_norm(ThreadPool& pool, float* out, const float* x, const float* weight, int64_t rows, int64_t dim,
              float eps) {
  pool.parallel_for(
      rows,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const float* xr = x + r * dim;
          float* yr = out + r * dim;
          double sum = 0;
          for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
          const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
          for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv * weight[i];
        }
      },
      std::max<int64_t>(1, 4096 / std::max<int64_t>(1, dim)));
}

void rope(ThreadPool& pool, float* x, const int32_t* positions, int64_t n, int64_t heads, int64_t head_dim,
          const RopeTable& table) {
  const int64_t half = static_cast<int64_t>(table.inv_freq.size());  // rotated pairs per head
  pool.parallel_for(n, [&](int64_t begin, int64_t end, int) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t t = begin; t < end; ++t) {
      const double pos = positions[t];
      for (int64_t i = 0; i < half; ++i) {
        // Angle in double: positions reach 10^5 and float angles would lose the phase.
        const double angle = pos * static_cast<double>(table.inv_freq[static_cast<size_t>(i)]);
        cos_t[static_cast<size_t>(i)] = static_cast<float>(std::cos(angle)) * table.attn_factor;
        sin_t[static_cast<size_t>(i)] = static_cast<float>(std::sin(angle)) * table.attn_factor;
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t ia = table.neox ? i : 2 * i;
          const int64_t ib = table.neox ? i + half : 2 * i + 1;
          const float a = v[ia], b = v[ib];
          const float c = cos_t[static_cast<size_t>(i)], s = sin_t[static_cast<size_t>(i)];
          v[ia] = a * c - b * s;
          v[ib] = a * s + b * c;
        }
      }
    }
  });
}

}  // namespace hearth::cpu
