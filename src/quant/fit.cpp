// Scale searches for the K-quant and IQ4 quantizers; see ref_internal.h for the model each one
// fits. All of them work in double internally: they run once per weight when a file is
// written, so accuracy matters more than speed.
#include "quant/ref_internal.h"

#include <algorithm>
#include <cmath>

#include "quant/blocks.h"

namespace hearth::quant::detail {
namespace {

// Candidate inverse scales are base * (1 + k * kStep) for k in [-kFan, kFan].
constexpr int kFan = 12;
constexpr double kStep = 0.02;

int clamp_round(double v, int lo, int hi) { return std::clamp(static_cast<int>(std::lround(v)), lo, hi); }

}  // namespace

AsymFit fit_asymmetric(const float* x, int n, int nmax) {
  double lo = 0.0, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, static_cast<double>(x[i]));
    hi = std::max(hi, static_cast<double>(x[i]));
  }
  AsymFit best{0.0f, static_cast<float>(-lo)};
  if (hi <= lo) return best;  // all values equal and <= 0: the offset alone
  double best_err = INFINITY;
  uint8_t trial[256];
  for (int k = -kFan; k <= kFan; ++k) {
    const double iscale = nmax / (hi - lo) * (1.0 + k * kStep);
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<uint8_t>(clamp_round((x[i] - lo) * iscale, 0, nmax));
      sq += trial[i];
      sqq += trial[i] * trial[i];
      sx += x[i];
      sqx += trial[i] * static_cast<double>(x[i]);
    }
    // Least squares for x ≈ s * q + b, then b clamped to <= 0 (mins are stored >= 0).
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double s = (n * sqx - sq * sx) / det;
    double b = (sx - s * sq) / n;
    if (b > 0) {
      b = 0;
      s = sqx / sqq;
    }
    if (s <= 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * trial[i] + b - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best = {static_cast<float>(s), static_cast<float>(-b)};
    }
  }
  if (best_err == INFINITY) best = {static_cast<float>((hi - lo) / nmax), static_cast<float>(-lo)};
  return best;
}

float fit_symmetric(const float* x, int n, int nneg, int npos) {
  double max = 0.0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
  if (max == 0.0) return 0.0f;
  double best_err = INFINITY, best_scale = 0.0;
  int8_t trial[256];
  for (int k = -kFan; k <= kFan; ++k) {
    // The largest value maps near -nneg, the level with no positive twin.
    const double iscale = -nneg / max * (1.0 + k * kStep);
    double sxq = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<int8_t>(clamp_round(x[i] * iscale, -nneg, npos));
      sxq += x[i] * static_cast<double>(trial[i]);
      sqq += trial[i] * trial[i];
    }
    if (sqq == 0) continue;
    const double s = sxq / sqq;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * trial[i] - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = s;
    }
  }
  return static_cast<float>(best_scale);
}

int nearest_grid_index(float v) {
  // The grid is sorted: the answer is the first value past v or the one before it.
  int hi = 0;
  while (hi < 16 && kIQ4NLValues[hi] < v) ++hi;
  if (hi == 0) return 0;
  if (hi == 16) return 15;
  return (v - kIQ4NLValues[hi - 1] <= kIQ4NLValues[hi] - v) ? hi - 1 : hi;
}

float fit_grid(const float* x, int n) {
  double max = 0.0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
  if (max == 0.0) return 0.0f;
  double best_err = INFINITY, best_scale = 0.0;
  uint8_t trial[256];
  for (int k = -kFan; k <= kFan; ++k) {
    // The largest value maps near the grid's end value -127 (the larger-magnitude end).
    const double scale = max / kIQ4NLValues[0] * (1.0 + k * kStep);
    double sxk = 0, skk = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<uint8_t>(nearest_grid_index(static_cast<float>(x[i] / scale)));
      const double g = kIQ4NLValues[trial[i]];
      sxk += x[i] * g;
      skk += g * g;
    }
    const double s = sxk / skk;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * kIQ4NLValues[trial[i]] - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = s;
    }
  }
  return static_cast<float>(best_scale);
}

}  // namespace hearth::quant::detail
