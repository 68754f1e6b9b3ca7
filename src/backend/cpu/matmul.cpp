// Matrix products against stored weights: out[n, rows] = x[n, cols] @ w^T.
//
// Activations are first converted once into the format the weight type's dot product
// consumes (quant_dot.h: Q8_0/Q8_K blocks for quantized weights, floats otherwise), then
// output rows are split across threads. Each thread walks a tile of weight rows and, for
// each, every token: the weight row (the large operand) is read from memory once per
// tile while the activations stay in cache. No weight is ever expanded to floats.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant_dot.h"
#include "quant/quant.h"

namespace hearth::cpu {
namespace {
constexpr int64_t kRowTile = 16;  // weight rows per task
}

void matmul_ref(ThreadPool& pool, float* out, const float* x, int64_t n, const Weight& w) {
  pool.parallel_for(w.rows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t r = begin; r < end; ++r) {
      quant::dequantize_weight_row(w, r, row.data());
      for (int64_t t = 0; t < n; ++t) {
        const float* xt = x + t * w.cols;
        double acc = 0;
        for (int64_t i = 0; i < w.cols; ++i) acc += static_cast<double>(row[static_cast<size_t>(i)]) * xt[i];
        out[t * w.rows + r] = static_cast<float>(acc);
      }
    }
  });
}

void matmul(ThreadPool& pool, float* out, const float* x, int64_t n, const Weight& w) {
  const int64_t rows = w.rows, cols = w.cols;
  if (w.type == DType::MLX_AFFINE) {
    pool.parallel_for((rows + kRowTile - 1) / kRowTile, [&](int64_t begin, int64_t end, int) {
      for (int64_t r = begin * kRowTile; r < std::min(rows, end * kRowTile); ++r)
        for (int64_t t = 0; t < n; ++t) out[t * rows + r] = vec_dot_mlx(w, r, x + t * cols);
    });
    return;
  }
  const int64_t act_bytes = activation_row_bytes(w.type, cols);
  // Thread-local scratch would save an allocation per call; a vector is simpler and the
  // cost is negligible next to reading the weights.
  std::vector<uint8_t> act(static_cast<size_t>(n * act_bytes));
  pool.parallel_for(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t)
      quantize_activation(w.type, x + t * cols, act.data() + t * act_bytes, cols);
  });
  const int64_t row_bytes = w.row_bytes();
  const auto* data = static_cast<const uint8_t*>(w.data);
  pool.parallel_for((rows + kRowTile - 1) / kRowTile, [&](int64_t begin, int64_t end, int) {
    const int64_t r_end = std::min(rows, end * kRowTile);
    for (int64_t r = begin * kRowTile; r < r_end; ++r) {
      const uint8_t* w_row = data + r * row_bytes;
      for (int64_t t = 0; t < n; ++t) out[t * rows + r] = vec_dot(w.type, w_row, act.data() + t * act_bytes, cols);
    }
  });
}

}  // namespace hearth::cpu
