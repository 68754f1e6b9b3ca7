// Helpers for the CUDA backend tests: a CPU/GPU backend pair, random host data, tensors
// made from host vectors on either backend (outputs start as NaN, so an element the GPU
// never writes fails the comparison), and the comparison itself.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"

namespace hearth::test {

#define HEARTH_SKIP_WITHOUT_CUDA() \
  if (!::hearth::cuda_available()) GTEST_SKIP() << "no CUDA device"

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

}  // namespace hearth::test
