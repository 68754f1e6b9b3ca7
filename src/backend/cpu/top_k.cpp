// Backend::read_top_rows on the CPU: the k best columns of each row by (value desc,
// column asc), -inf and NaN left out. A partial sort of the row's finite entries; the
// logits are already in host memory, so this only saves the engine a copy of the row.
#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "backend/cpu/ops.h"

namespace hearth::cpu {

void top_k_rows(const float* x, int64_t rows, int64_t ld, int32_t n_valid, int32_t k, int32_t* ids, float* values) {
  std::vector<std::pair<float, int32_t>> row;
  const auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);  // -0 == +0
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * ld;
    row.clear();
    for (int32_t c = 0; c < n_valid; ++c)
      if (v[c] > -std::numeric_limits<float>::infinity()) row.emplace_back(v[c], c);  // NaN compares false
    const auto keep = std::min<size_t>(row.size(), static_cast<size_t>(k));
    std::partial_sort(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(keep), row.end(), better);
    for (int32_t j = 0; j < k; ++j) {
      const bool have = static_cast<size_t>(j) < keep;
      ids[r * k + j] = have ? row[static_cast<size_t>(j)].second : -1;
      values[r * k + j] = have ? row[static_cast<size_t>(j)].first : 0.0f;
    }
  }
}

}  // namespace hearth::cpu
