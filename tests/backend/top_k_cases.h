// Logits rows for Backend::read_top_rows tests, and the answer by a full sort: random
// values with many exact ties, -inf, NaN, -0 and +0 mixed in, columns past n_valid that
// would win if they counted (padding rows), and rows with fewer finite values than k.
// Shared by the CPU test (test_top_k.cpp) and the CUDA one (tests/cuda).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace hearth::test {

struct TopKCase {
  int64_t rows = 0, cols = 0;
  int32_t n_valid = 0, k = 0;
  std::vector<float> x;  // [rows, cols]
};

// kind 0: normal values; 1: values from a few levels (ties everywhere); 2: mostly -inf/NaN
// (fewer finite than k); 3: all equal; 4: the best values in the columns c with c % 256 <
// 128, rising with c / 256 (the CUDA kernel's threads hold columns 256 apart: its
// threshold then passes thousands of keys, and its radix select takes over).
inline TopKCase make_top_k_case(int64_t rows, int64_t cols, int32_t n_valid, int32_t k, int kind, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> level(-3, 3), pick(0, 99);
  TopKCase c{rows, cols, n_valid, k, std::vector<float>(static_cast<size_t>(rows * cols))};
  const float inf = std::numeric_limits<float>::infinity();
  for (auto& v : c.x) {
    const int p = pick(rng);
    if (kind == 0) v = normal(rng);
    else if (kind == 1) v = 0.5f * static_cast<float>(level(rng));  // includes 0: signs below
    else if (kind == 2) v = p < 2 ? normal(rng) : (p < 60 ? -inf : std::nanf(""));
    else if (kind == 3) v = 1.25f;
    else v = normal(rng);
    if (kind != 2 && p == 0) v = -inf;
    if (kind != 2 && p == 1) v = std::nanf("");
    if (v == 0.0f && pick(rng) < 50) v = -0.0f;
  }
  if (kind == 4)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j)
        if (j % 256 < 128)
          c.x[static_cast<size_t>(r * cols + j)] =
              1000.0f + static_cast<float>(j % 256) + 0.001f * static_cast<float>(j / 256);
  // Columns past n_valid hold the largest values: they must never be chosen.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = n_valid; j < cols; ++j) c.x[static_cast<size_t>(r * cols + j)] = 1e30f;
  return c;
}

// The expected ids and values: every finite column < n_valid sorted by (value desc, id
// asc), the first k, padded with id -1 (value 0).
inline void top_k_reference(const TopKCase& c, std::vector<int32_t>& ids, std::vector<float>& values) {
  ids.assign(static_cast<size_t>(c.rows * c.k), -1);
  values.assign(static_cast<size_t>(c.rows * c.k), 0.0f);
  for (int64_t r = 0; r < c.rows; ++r) {
    std::vector<int32_t> order;
    for (int32_t j = 0; j < c.n_valid; ++j) {
      const float v = c.x[static_cast<size_t>(r * c.cols + j)];
      if (!std::isnan(v) && v != -std::numeric_limits<float>::infinity()) order.push_back(j);
    }
    const float* row = c.x.data() + r * c.cols;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (size_t j = 0; j < order.size() && j < static_cast<size_t>(c.k); ++j) {
      ids[static_cast<size_t>(r * c.k) + j] = order[j];
      values[static_cast<size_t>(r * c.k) + j] = row[order[j]];
    }
  }
}

// The shapes every backend is checked on: (rows, cols, n_valid, k, kind).
struct TopKShape {
  int64_t rows, cols;
  int32_t n_valid, k;
  int kind;
};
inline std::vector<TopKShape> top_k_shapes() {
  return {{1, 151936, 151669, 128, 0}, {3, 151936, 151669, 20, 1}, {32, 151936, 151669, 128, 1},
          {5, 1000, 997, 1, 0},        {2, 1000, 1000, 64, 3},      {7, 333, 300, 128, 2},
          {4, 8193, 8193, 40, 1},      {2, 16384, 16000, 128, 0},   {1, 5, 3, 128, 0},
          {2, 250000, 250000, 128, 0}, {40, 4097, 4001, 50, 1},     {3, 128256, 128256, 7, 0},
          {2, 151936, 151669, 128, 4}, {3, 20000, 19999, 100, 4}};
}

}  // namespace hearth::test
