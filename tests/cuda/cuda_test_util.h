// Helpers for the CUDA backend tests: a CPU/GPU backend pair, random host data, tensors
// made from host vectors on either backend (outputs start as NaN, so an element the GPU
// never writes fails the comparison), the comparison itself, quantized host weights and
// the per-element check of a matrix product against the exact dequantized product.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "quant/quant.h"

namespace hearth::test {

#define HEARTH_SKIP_WITHOUT_CUDA() \
  if (!::hearth::cuda_available()) GTEST_SKIP() << "no CUDA device"

// An experiment switch set to "0" (HEARTH_CUDA_FUSE=0 and the like): a test that counts
// launches of a fused or special kernel skips that count under it.
inline bool switched_off(const char* name) {
  const char* e = std::getenv(name);
  return e && std::string(e) == "0";
}

inline std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A tensor on `be` holding `host` (upload_f32 gives a writable device copy).
inline Tensor make_tensor(Backend& be, const std::vector<float>& host, std::initializer_list<int64_t> shape) {
  return be.upload_f32(host, shape);
}
inline Tensor make_output(Backend& be, std::initializer_list<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return be.upload_f32(std::vector<float>(static_cast<size_t>(n), NAN), shape);
}
inline std::vector<float> read(Backend& be, Tensor t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  be.read_rows(t, out.data());
  return out;
}

// max |got - want| <= tol * max(max |want|, floor); NaN never passes. Returns the ratio
// of the worst error to max |want| (for printing).
inline double expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                           const std::string& what, double floor = 1e-6) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double scale = floor, worst = 0;
  for (float w : want) scale = std::max(scale, static_cast<double>(std::fabs(w)));
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= tol * scale)) {
      if (bad++ == 0) first_bad = i;
    }
    if (std::isnan(err)) worst = INFINITY;
    else worst = std::max(worst, err);
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements off, first at " << first_bad << " (got "
                     << (got.empty() ? 0.0f : got[first_bad]) << ", want " << (want.empty() ? 0.0f : want[first_bad])
                     << "), worst " << worst << " vs bound " << tol * scale;
  return worst / scale;
}

// A weight in host memory that both backends can take (the CPU keeps pointing at it).
struct HostWeight {
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales, biases;
  Weight w;
};

struct WeightSpec {
  const char* name;
  DType type;
  int64_t cols;
  int bits = 0, group_size = 0;
};

inline HostWeight make_weight(const WeightSpec& spec, int64_t rows, std::mt19937& rng) {
  HostWeight h;
  const int64_t cols = spec.cols;
  const auto src = random_vector(static_cast<size_t>(rows * cols), rng, 1.0f / std::sqrt(static_cast<float>(cols)));
  h.w.type = spec.type;
  h.w.rows = rows;
  h.w.cols = cols;
  if (spec.type == DType::MLX_AFFINE) {
    h.w.bits = spec.bits, h.w.group_size = spec.group_size, h.w.scale_type = DType::F16;
    const int64_t words = cols * spec.bits / 32, groups = cols / spec.group_size;
    h.data.resize(static_cast<size_t>(rows * words * 4));
    h.scales.resize(static_cast<size_t>(rows * groups)), h.biases.resize(static_cast<size_t>(rows * groups));
    for (int64_t r = 0; r < rows; ++r)
      quant::quantize_row_mlx(src.data() + r * cols, reinterpret_cast<uint32_t*>(h.data.data() + r * words * 4),
                              h.scales.data() + r * groups, h.biases.data() + r * groups, DType::F16, spec.bits,
                              spec.group_size, cols);
    h.w.scales = h.scales.data(), h.w.biases = h.biases.data();
  } else {
    const int64_t rb = dtype_row_bytes(spec.type, cols);
    h.data.resize(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) quant::quantize_row(spec.type, src.data() + r * cols, h.data.data() + r * rb, cols);
  }
  h.w.data = h.data.data();
  return h;
}

// The attention tests' o_proj-like weight (37 q8_0 rows of `cols`), made and uploaded
// again when the row length (or, after reset(), the backend) changes.
struct ProjectionWeight {
  HostWeight host;
  Weight gpu;
  const Weight& get(Backend& be, int64_t cols, std::mt19937& rng) {
    if (host.w.cols != cols) {
      host = make_weight(WeightSpec{"q8_0", DType::Q8_0, cols}, 37, rng);
      gpu = be.upload_weight(host.w);
    }
    return gpu;
  }
  void reset() { host = HostWeight{}; }
};

// out[t, r] against the double-precision product of the dequantized weight (the scalar
// reference the CPU backend is tested against; the CPU's own fast matmul rounds its
// activations to 8 bits too, so it is no reference here). The GPU's error is bounded per
// element by the size of that sum's terms: tol * sqrt(sum_k (w[r,k] x[t,k])^2) for
// rounded operands (int8 activations: 5%, about six times the rounding's standard
// deviation; f16 operands: 0.5%), tol * sum_k |w[r,k] x[t,k]| for f32 arithmetic (1e-5).
inline void check_matmul(const std::vector<float>& got, const Weight& w, const std::vector<float>& x, int64_t n,
                  double tol, bool l1, const std::string& what) {
  const int64_t rows = w.rows, cols = w.cols;
  std::vector<float> row(static_cast<size_t>(cols));
  int64_t bad = 0;
  std::string first;
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_weight_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double sum = 0, m1 = 0, m2 = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double term = static_cast<double>(row[static_cast<size_t>(k)]) * x[static_cast<size_t>(t * cols + k)];
        sum += term, m1 += std::fabs(term), m2 += term * term;
      }
      const double bound = tol * (l1 ? m1 : std::sqrt(m2)) + 1e-30;
      const double err = std::fabs(got[static_cast<size_t>(t * rows + r)] - sum);
      if (!(err <= bound) && bad++ == 0)
        first = "row " + std::to_string(r) + " token " + std::to_string(t) + ": got " +
                std::to_string(got[static_cast<size_t>(t * rows + r)]) + ", want " + std::to_string(sum) + ", bound " +
                std::to_string(bound);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements off, first " << first;
}

}  // namespace hearth::test
