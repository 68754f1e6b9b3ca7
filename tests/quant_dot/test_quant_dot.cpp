// CPU dot products (backend/cpu/quant_dot*) against the scalar reference of the quant
// module, for every weight type, odd row lengths, weights made by the quantizers and
// weights of random bytes (full code ranges, e.g. Q8_0's -128), generic and SIMD kernels.
//
// Tolerances, with l1 = sum_i |w_i * xq_i| over the dequantized weight w and the
// dequantized prepared activation xq:
//   * against dot_row_ref(w, xq) - the same integers, summed exactly in double - every
//     kernel is within 1e-5 * l1 (float accumulation only), and generic and SIMD agree
//     within the same;
//   * against dot_row_ref(w, x) with the original float activations, the activation
//     quantization adds error: each x_i moves by a rounding error e_i, |e_i| <= d/2, with
//     d = amax(x's block)/127 (32-element blocks for Q8_0, 256 for Q8_K), plus the f16
//     rounding of Q8_0's d (relative 2^-11). The worst case, 0.57 * sum |w_i| * d_i, is
//     ~20x the errors seen, so the test asserts the statistical bound instead:
//         |vec_dot - exact| <= 6 * sigma + 2^-11 * l1 + 1e-5 * l1,
//         sigma^2 = sum_i w_i^2 * d_i^2 / 12   (independent uniform rounding errors).
//     Measured worst |error| / sigma, printed by the test: ~0.55 for Q8_0 activations,
//     up to ~1.9 for Q8_K. F32 activations (float and MLX weights) get 1e-5 * l1 only.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_dot_kernels.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/quant.h"

using namespace hearth;

namespace {

constexpr double kAccumTol = 1e-5;

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Byte offsets of the f16 fields of each block type (quant/blocks.h).
std::vector<int> half_fields(DType type) {
  switch (type) {
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q2_K: return {80, 82};
    case DType::Q3_K: return {108};
    case DType::Q6_K: return {208};
    default: return {0};
  }
}

// A row of random bytes whose scale fields are finite f16 values in [2^-5, 2^3).
std::vector<uint8_t> random_row(DType type, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(static_cast<size_t>(dtype_row_bytes(type, n)));
  for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
  auto random_half = [&] { return static_cast<uint16_t>((rng() & 0x8000) | (10 + rng() % 8) << 10 | (rng() & 0x3ff)); };
  if (type == DType::F32) {
    const std::vector<float> v = gaussian(static_cast<size_t>(n), seed);
    std::memcpy(row.data(), v.data(), row.size());
  } else if (type == DType::F16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = random_half();
      std::memcpy(row.data() + 2 * i, &h, 2);
    }
  } else if (type == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_bf16(f16_to_f32(random_half()));
      std::memcpy(row.data() + 2 * i, &h, 2);
    }
  } else {
    const int64_t block_bytes = dtype_info(type).block_bytes;
    for (int64_t b = 0; b < static_cast<int64_t>(row.size()) / block_bytes; ++b)
      for (int off : half_fields(type)) {
        const uint16_t h = random_half();
        std::memcpy(row.data() + b * block_bytes + off, &h, 2);
      }
  }
  return row;
}

std::vector<uint8_t> quantized_row(DType type, int64_t n, uint32_t seed) {
  const std::vector<float> w = gaussian(static_cast<size_t>(n), seed);
  std::vector<uint8_t> row(static_cast<size_t>(dtype_row_bytes(type, n)));
  quant::quantize_row(type, w.data(), row.data(), n);
  return row;
}

// Activations with an outlier channel, as real hidden states have.
std::vector<float> activations(int64_t n, uint32_t seed) {
  std::vector<float> x = gaussian(static_cast<size_t>(n), seed);
  x[static_cast<size_t>(n / 3)] *= 20.0f;
  return x;
}

std::vector<int64_t> lengths(DType type) {
  const int64_t block = dtype_info(type).block_elems;
  if (block == 256) return {256, 3 * 256, 7 * 256, 11 * 256};
  if (block == 32) return {32, 3 * 32, 37 * 32, 101 * 32};
  return {1, 7, 33, 1000, 4099};  // float rows: exercise every SIMD tail
}

struct Case {
  DType type;
};
void PrintTo(const Case& c, std::ostream* os) { *os << dtype_name(c.type); }

class VecDot : public ::testing::TestWithParam<Case> {};

void check_row(DType type, const std::vector<uint8_t>& w_row, int64_t n, uint32_t seed, double* worst_ratio) {
  const std::string what = std::string(dtype_name(type)) + " n=" + std::to_string(n);
  const std::vector<float> x = activations(n, seed);
  const DType act_type = cpu::vec_dot_type(type);
  std::vector<uint8_t> act(static_cast<size_t>(cpu::activation_row_bytes(type, n)));
  cpu::quantize_activation(type, x.data(), act.data(), n);
  std::vector<float> xq(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  quant::dequantize_row(act_type, act.data(), xq.data(), n);
  quant::dequantize_row(type, w_row.data(), w.data(), n);

  double l1 = 0, sigma2 = 0;
  const int64_t block = act_type == DType::F32 ? 0 : dtype_info(act_type).block_elems;
  for (int64_t i = 0; i < n; ++i) {
    l1 += std::fabs(static_cast<double>(w[i]) * xq[i]);
    if (block == 0) continue;
    float amax = 0;
    for (int64_t j = i / block * block; j < (i / block + 1) * block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const double d = amax / 127.0;
    sigma2 += static_cast<double>(w[i]) * w[i] * d * d / 12;
  }
  const double tol = kAccumTol * l1 + 1e-6;
  const double sigma = std::sqrt(sigma2);
  const double exact_q = quant::dot_row_ref(type, w_row.data(), xq.data(), n);

  const cpu::detail::DotFn generic = cpu::detail::dot_generic(type);
  ASSERT_NE(generic, nullptr) << what;
  const float g = generic(w_row.data(), act.data(), n);
  EXPECT_NEAR(g, exact_q, tol) << what << " generic";
  if (const cpu::detail::DotFn simd = cpu::detail::dot_avx2(type)) {
    const float s = simd(w_row.data(), act.data(), n);
    EXPECT_NEAR(s, exact_q, tol) << what << " avx2";
    EXPECT_NEAR(s, g, tol) << what << " avx2 vs generic";
  }
  const float v = cpu::vec_dot(type, w_row.data(), act.data(), n);
  const double exact = quant::dot_row_ref(type, w_row.data(), x.data(), n);
  const double act_tol = block == 0 ? tol : 6 * sigma + std::ldexp(l1, -11) + tol;
  EXPECT_NEAR(v, exact, act_tol) << what << " against float activations";
  if (sigma > 0) *worst_ratio = std::max(*worst_ratio, std::fabs(v - exact) / sigma);
}

TEST_P(VecDot, QuantizedWeightsMatchReference) {
  const DType type = GetParam().type;
  double worst = 0;
  uint32_t seed = 1;
  for (int64_t n : lengths(type)) {
    check_row(type, quantized_row(type, n, seed), n, seed + 1, &worst);
    seed += 2;
  }
  if (worst > 0) std::printf("    %-7s worst |error| / sigma: %.2f\n", std::string(dtype_name(type)).c_str(), worst);
}

TEST_P(VecDot, RandomBlocksMatchReference) {
  const DType type = GetParam().type;
  double worst = 0;
  uint32_t seed = 100;  // same checks; the printed ratio comes from the quantizer-made rows
  for (int64_t n : lengths(type)) {
    check_row(type, random_row(type, n, seed), n, seed + 1, &worst);
    seed += 2;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, VecDot,
                         ::testing::Values(Case{DType::F32}, Case{DType::F16}, Case{DType::BF16}, Case{DType::Q4_0},
                                           Case{DType::Q4_1}, Case{DType::Q5_0}, Case{DType::Q5_1}, Case{DType::Q8_0},
                                           Case{DType::IQ4_NL}, Case{DType::Q2_K}, Case{DType::Q3_K}, Case{DType::Q4_K},
                                           Case{DType::Q5_K}, Case{DType::Q6_K}, Case{DType::IQ4_XS}),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

}  // namespace

TEST(VecDotMlx, AllBitsGroupsAndScaleTypes) {
  const int64_t rows = 3;
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int gs : {32, 64, 128}) {
      for (DType st : {DType::F16, DType::BF16, DType::F32}) {
        const int64_t cols = 5 * gs;
        const size_t sb = st == DType::F32 ? 4 : 2;
        const std::vector<float> src = gaussian(static_cast<size_t>(rows * cols), static_cast<uint32_t>(bits * gs));
        std::vector<uint32_t> q(static_cast<size_t>(rows * cols * bits / 32));
        std::vector<uint8_t> s(static_cast<size_t>(rows * cols / gs) * sb), b(s.size());
        for (int64_t r = 0; r < rows; ++r)
          quant::quantize_row_mlx(src.data() + r * cols, q.data() + r * cols * bits / 32,
                                  s.data() + r * (cols / gs) * sb, b.data() + r * (cols / gs) * sb, st, bits, gs, cols);
        const Weight w{.type = DType::MLX_AFFINE, .data = q.data(), .rows = rows, .cols = cols, .scales = s.data(),
                       .biases = b.data(), .scale_type = st, .bits = bits, .group_size = gs};
        const std::vector<float> x = activations(cols, 7);
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          quant::dequantize_weight_row(w, r, row.data());
          double l1 = 0;
          for (int64_t i = 0; i < cols; ++i) l1 += std::fabs(static_cast<double>(row[i]) * x[i]);
          const double tol = kAccumTol * l1 + 1e-6;
          const double exact = quant::dot_weight_row_ref(w, r, x.data());
          const std::string what = w.describe() + " " + std::string(dtype_name(st)) + " row " + std::to_string(r);
          const float g = cpu::detail::mlx_dot_generic(w, r, x.data());
          EXPECT_NEAR(g, exact, tol) << what << " generic";
          if (const cpu::detail::MlxDotFn simd = cpu::detail::mlx_dot_avx2(bits)) {
            EXPECT_NEAR(simd(w, r, x.data()), exact, tol) << what << " avx2";
            EXPECT_NEAR(simd(w, r, x.data()), g, tol) << what << " avx2 vs generic";
          }
          EXPECT_NEAR(cpu::vec_dot_mlx(w, r, x.data()), exact, tol) << what;
        }
      }
    }
  }
}

TEST(VecDotFormats, ActivationTypesAndSizes) {
  EXPECT_EQ(cpu::vec_dot_type(DType::Q4_0), DType::Q8_0);
  EXPECT_EQ(cpu::vec_dot_type(DType::Q5_1), DType::Q8_0);
  EXPECT_EQ(cpu::vec_dot_type(DType::IQ4_NL), DType::Q8_0);
  EXPECT_EQ(cpu::vec_dot_type(DType::Q4_K), DType::Q8_K);
  EXPECT_EQ(cpu::vec_dot_type(DType::IQ4_XS), DType::Q8_K);
  EXPECT_EQ(cpu::vec_dot_type(DType::BF16), DType::F32);
  EXPECT_EQ(cpu::vec_dot_type(DType::MLX_AFFINE), DType::F32);
  EXPECT_EQ(cpu::activation_row_bytes(DType::Q4_K, 512), 2 * 292);
  EXPECT_EQ(cpu::activation_row_bytes(DType::Q4_0, 64), 2 * 34);
  EXPECT_EQ(cpu::activation_row_bytes(DType::F16, 10), 40);
  EXPECT_EQ(cpu::activation_row_bytes(DType::MLX_AFFINE, 64), 256);
  EXPECT_THROW(cpu::vec_dot_type(DType::Q8_K), Error);
  EXPECT_THROW(cpu::vec_dot_type(DType::I32), Error);
  EXPECT_THROW(cpu::activation_row_bytes(DType::Q4_K, 100), Error);
}

TEST(VecDotFormats, GenericHalfConversionIsExact) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = f16_to_f32(static_cast<uint16_t>(h));
    const float got = cpu::detail::half_to_float_generic(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << h;
    }
  }
}

TEST(VecDotFormats, SimdKernelsPresentOnAvx2Builds) {
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                  DType::IQ4_NL, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS})
    EXPECT_NE(cpu::detail::dot_avx2(t), nullptr) << dtype_name(t);
  EXPECT_NE(cpu::detail::mlx_dot_avx2(4), nullptr);
  EXPECT_NE(cpu::detail::mlx_dot_avx2(8), nullptr);
#else
  GTEST_SKIP() << "not an AVX2 build";
#endif
}
