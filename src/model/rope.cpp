#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace hearth {

RopeTable build_rope_table(const ModelConfig& c, bool neox) {
  RopeTable table;
  table.neox = neox;
  const int64_t dim = c.head_dim;
  const int64_t half = dim / 2;
  const auto& rs = c.rope_scaling;
  table.inv_freq.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const double base_freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(dim));
    double f = base_freq;
    if (rs.rope_type == "linear") {
      f = base_freq / rs.factor;
    } else if (rs.rope_type == "llama3") {
      const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
      const double low_wavelen = old_ctx / rs.low_freq_factor;
      const double high_wavelen = old_ctx / rs.high_freq_factor;
      const double wavelen = 2 * std::numbers::pi / base_freq;
      if (wavelen < high_wavelen) {
        f = base_freq;
      } else if (wavelen > low_wavelen) {
        f = base_freq / rs.factor;
      } else {
        const double smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1 - smooth) * base_freq / rs.factor + smooth * base_freq;
      }
    } else if (rs.rope_type == "yarn") {
      const double orig = static_cast<double>(rs.original_max_position_embeddings);
      auto correction_dim = [&](double rotations) {
        return static_cast<double>(dim) * std::log(orig / (rotations * 2 * std::numbers::pi)) /
               (2 * std::log(c.rope_theta));
      };
      const double low = std::max(0.0, std::floor(correction_dim(rs.beta_fast)));
      double high = std::min(static_cast<double>(dim - 1), std::ceil(correction_dim(rs.beta_slow)));
      if (high == low) high += 0.001;
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      // ramp 0: keep the original frequency (extrapolate); ramp 1: interpolate by factor.
      const double extrapolation_factor = 1.0 - ramp;
      f = base_freq / rs.factor * (1 - extrapolation_factor) + base_freq * extrapolation_factor;
    }
    table.inv_freq[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  if (rs.rope_type == "yarn") {
    table.attn_factor = static_cast<float>(rs.attention_factor.value_or(
        rs.factor <= 1 ? 1.0 : 0.1 * std::log(rs.factor) + 1.0));
  }
  return table;
}

}  // namespace hearth
