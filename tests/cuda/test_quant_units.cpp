// The CUDA kernels' decoding code (backend/cuda/quant_units.cuh, dequant_elem.cuh),
// compiled for the host: every unit's load/dot/elem and dequant_elem against the scalar
// reference (quant::dequantize_row / dequantize_row_mlx) on random rows. Needs no GPU, so
// the bit tricks of the quantized dot products are checked on every build.
//
// The tensor-core pieces (part()) are checked the same way, element by element.
//
// Bounds: elements must match the reference to float rounding (1e-6 relative); a row's
// dot product with 32-block int8 activations must equal the double-precision dot of the
// dequantized weight with the dequantized activations to 1e-5 of sum |w * x|, since the
// kernels' only rounding is in f32 scale products and the final sums.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cuda/dequant_elem.cuh"
#include "core/half.h"
#include "quant/quant.h"

using namespace hearth;
using namespace hearth::cuda;

namespace {

struct QuantX {
  std::vector<int8_t> q;
  std::vector<float> d, s, f, deq;  // deq: the values the int8 blocks stand for
  XRow row() const { return XRow{q.data(), d.data(), s.data(), f.data()}; }
};

// The same rule as quantize_x_kernel (matmul.cu): d = amax / 127, q = rint(x / d).
QuantX quantize_x(const std::vector<float>& x) {
  QuantX r;
  r.f = x;
  const size_t n = x.size(), nb = n / 32;
  r.q.resize(n), r.d.resize(nb), r.s.resize(nb), r.deq.resize(n);
  for (size_t b = 0; b < nb; ++b) {
    float amax = 0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[32 * b + i]));
    const float d = amax / 127.0f;
    int sum = 0;
    for (size_t i = 0; i < 32; ++i) {
      const int q = amax > 0 ? static_cast<int>(std::nearbyint(x[32 * b + i] / d)) : 0;
      r.q[32 * b + i] = static_cast<int8_t>(q);
      r.deq[32 * b + i] = d * static_cast<float>(q);
      sum += q;
    }
    r.d[b] = d;
    r.s[b] = d * static_cast<float>(sum);
  }
  return r;
}

std::vector<float> random_values(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A weight stored as `type` (or MLX affine when bits > 0), with its dequantized rows.
struct TestWeight {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales, biases;  // MLX, f16
  std::vector<float> ref;                // [rows, cols]
  int bits = 0, group_size = 0;
  const uint8_t* row(int64_t r) const { return data.data() + r * (data.size() / rows); }
  WAux aux() const { return WAux{scales.data(), biases.data(), 1, group_size, group_size ? cols / group_size : 0}; }
  // Row r's scales as the first row's (the stream kernel's view of a row in its slot).
  WAux aux_at(int64_t r) const {
    const int64_t g = group_size ? cols / group_size : 0;
    return WAux{scales.data() + r * g, biases.data() + r * g, 1, group_size, g};
  }
};

TestWeight make_weight(DType type, int64_t rows, int64_t cols, std::mt19937& rng, int bits = 0, int group_size = 0) {
  TestWeight w{type, rows, cols};
  w.bits = bits, w.group_size = group_size;
  const auto src = random_values(static_cast<size_t>(rows * cols), rng, 0.5f);
  w.ref.resize(src.size());
  if (type == DType::MLX_AFFINE) {
    const int64_t words = cols * bits / 32, groups = cols / group_size;
    w.data.resize(static_cast<size_t>(rows * words * 4));
    w.scales.resize(static_cast<size_t>(rows * groups)), w.biases.resize(static_cast<size_t>(rows * groups));
    for (int64_t r = 0; r < rows; ++r) {
      auto* packed = reinterpret_cast<uint32_t*>(w.data.data() + r * words * 4);
      quant::quantize_row_mlx(src.data() + r * cols, packed, w.scales.data() + r * groups, w.biases.data() + r * groups,
                              DType::F16, bits, group_size, cols);
      quant::dequantize_row_mlx(packed, w.scales.data() + r * groups, w.biases.data() + r * groups, DType::F16, bits,
                                group_size, w.ref.data() + r * cols, cols);
    }
    return w;
  }
  const int64_t row_bytes = dtype_row_bytes(type, cols);
  w.data.resize(static_cast<size_t>(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    quant::quantize_row(type, src.data() + r * cols, w.data.data() + r * row_bytes, cols);
    quant::dequantize_row(type, w.data.data() + r * row_bytes, w.ref.data() + r * cols, cols);
  }
  return w;
}

int bits_of(const TestWeight& w) { return w.bits; }

template <class U>
void check_units(const TestWeight& w, std::mt19937& rng) {
  const auto x = quantize_x(random_values(static_cast<size_t>(w.cols), rng, 1.0f));
  const bool float_x = w.type == DType::F32 || w.type == DType::F16 || w.type == DType::BF16;
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* ref = w.ref.data() + r * w.cols;
    // dequant_elem, element by element.
    for (int64_t k = 0; k < w.cols; ++k) {
      const float got = dequant_elem(w.type, w.row(r), r, k, w.aux(), bits_of(w));
      ASSERT_NEAR(got, ref[k], 1e-6f * std::max(1.0f, std::fabs(ref[k]))) << "row " << r << " element " << k;
    }
    // The units' dot products and (quantized types) their elements.
    double dot = 0, want = 0, mag = 0;
    std::vector<float> elems(static_cast<size_t>(w.cols), NAN);
    for (int u = 0; u < static_cast<int>(w.cols / U::kElems); ++u) {
      U unit;
      unit.load(w.row(r), r, u, w.aux());
      dot += unit.dot(x.row(), u);
      // The decode products' fused forms (matmul_stream.cu): the very same float, indexing
      // the row at r = 0 as those kernels do.
      if constexpr (requires { U::load_dot; }) {
        const auto xb = gather_x<U>(x.row(), u);
        U at0;
        at0.load(w.row(r), 0, u, w.aux_at(r));
        EXPECT_EQ(U::load_dot(w.row(r), u, w.aux_at(r), xb), at0.dot(xb)) << "load_dot, row " << r << " unit " << u;
      }
      if constexpr (requires { U::pair_x; }) {
        const auto xb = gather_x<U>(x.row(), u);
        U at0;
        at0.load(w.row(r), 0, u, w.aux_at(r));
        auto px = xb;
        U::pair_x(px);
        EXPECT_EQ(U::load_dot_paired(w.row(r), u, w.aux_at(r), px), at0.dot(xb)) << "paired, row " << r << " unit " << u;
      }
      if constexpr (requires { U::part_offset(0, 0); }) {
        for (int i = 0; i < U::kElems; ++i) elems[static_cast<size_t>(U::part_offset(u, i / 32) + i % 32)] = unit.elem(i);
        // The tensor-core pieces: int8 words and their affine map give the same elements.
        for (int p = 0; p < U::kElems / 32; ++p) {
          uint32_t q[8];
          float sc[2], mn;
          unit.part(p, q, sc, mn);
          for (int i = 0; i < 32; ++i) {
            const float got = sc[i / 16] * static_cast<float>(sbyte(q[i / 4], i % 4)) + mn;
            const float want = ref[U::part_offset(u, p) + i];
            ASSERT_NEAR(got, want, 1e-6f * std::max(1.0f, std::fabs(want))) << "piece " << p << " of unit " << u << ", element " << i;
          }
        }
      }
    }
    for (int64_t k = 0; k < w.cols; ++k) {
      const double xv = float_x ? x.f[static_cast<size_t>(k)] : x.deq[static_cast<size_t>(k)];
      want += static_cast<double>(ref[k]) * xv;
      mag += std::fabs(static_cast<double>(ref[k]) * xv);
      if constexpr (requires { U::part_offset(0, 0); }) {
        ASSERT_NEAR(elems[static_cast<size_t>(k)], ref[k], 1e-6f * std::max(1.0f, std::fabs(ref[k])))
            << "unit element " << k << " of row " << r;
      }
    }
    EXPECT_NEAR(dot, want, 1e-5 * mag + 1e-6) << "row " << r;
  }
}

class UnitsTest : public ::testing::Test {
 protected:
  std::mt19937 rng{1234};
};

TEST_F(UnitsTest, Q4_0) { check_units<UnitQ4_0>(make_weight(DType::Q4_0, 5, 320, rng), rng); }
TEST_F(UnitsTest, Q8_0) { check_units<UnitQ8_0>(make_weight(DType::Q8_0, 5, 320, rng), rng); }
TEST_F(UnitsTest, Q4_K) { check_units<UnitQ4_K>(make_weight(DType::Q4_K, 5, 768, rng), rng); }
TEST_F(UnitsTest, Q5_K) { check_units<UnitQ5_K>(make_weight(DType::Q5_K, 5, 768, rng), rng); }
TEST_F(UnitsTest, Q6_K) { check_units<UnitQ6_K>(make_weight(DType::Q6_K, 5, 768, rng), rng); }
TEST_F(UnitsTest, Mlx4) {
  for (int gs : {32, 64, 128}) check_units<UnitMlx4>(make_weight(DType::MLX_AFFINE, 3, 512, rng, 4, gs), rng);
}
TEST_F(UnitsTest, Mlx8) {
  for (int gs : {32, 64, 128}) check_units<UnitMlx8>(make_weight(DType::MLX_AFFINE, 3, 512, rng, 8, gs), rng);
}
TEST_F(UnitsTest, FloatTypes) {
  check_units<UnitFloat<0, 8>>(make_weight(DType::F32, 3, 96, rng), rng);
  check_units<UnitFloat<1, 8>>(make_weight(DType::F16, 3, 96, rng), rng);
  check_units<UnitFloat<2, 8>>(make_weight(DType::BF16, 3, 96, rng), rng);
  check_units<UnitFloat<0, 1>>(make_weight(DType::F32, 3, 37, rng), rng);
  check_units<UnitFloat<1, 1>>(make_weight(DType::F16, 3, 37, rng), rng);
  check_units<UnitFloat<2, 1>>(make_weight(DType::BF16, 3, 37, rng), rng);
}

// The host stand-ins for the device intrinsics, on values whose answers are known.
TEST(UnitsIntrinsics, HostFallbacks) {
  EXPECT_EQ(dp4a(0x0201FF80u, 0x01010101, 5), 5 + 2 + 1 - 1 - 128);
  EXPECT_EQ(vsub4(0x00102030u, 0x20202020u), 0xE0F00010u);
  EXPECT_EQ(byte_perm(0x03020100u, 0x07060504u, 0x5140), 0x05010400u);
  EXPECT_EQ(byte_perm(0x03020100u, 0x07060504u, 0x7362), 0x07030602u);
}

}  // namespace
