// The 8-bit KV cache (KvCacheConfig::dtype Q8_0) on the CPU: the row format and its
// quantizer (kv_quant.h), the CPU backend's attention through it against the same
// backend with an f32 cache, block copies, and the type's choice and refusal.
//
// Bounds, from the quantization alone: an element of a 32-group with scale d (the f16 of
// amax / 127) is stored within d / 2 of its value. Attention is a convex combination of
// values, so the values' error moves an output by at most max d_v / 2 (checked with q = 0,
// where the weights are uniform and exact). The keys' error moves a score by at most
// eps = scale * ||q||_1 * max d_k / 2; weights p_i e^(ds_i) / sum p_j e^(ds_j) then stay
// within a factor e^(+-2 eps) of the exact ones, so sum |dp| <= e^(2 eps) - 1 and the
// output moves by at most (e^(2 eps) - 1) * max |v| more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "backend/backend.h"
#include "backend/kv_quant.h"
#include "core/error.h"
#include "core/half.h"

namespace hearth {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

float scale_of(const uint8_t* row, int64_t n, int64_t group) {
  uint16_t h;
  std::memcpy(&h, row + n + 2 * group, 2);
  return f16_to_f32(h);
}

TEST(KvQ8, RowFormatAndQuantizationError) {
  std::mt19937 rng(1);
  const KvCacheConfig c{1, 1, 16, 3, 64, DType::Q8_0};  // 192 values + 6 f16 scales = 204 bytes, padded to 208
  const int64_t n = 192, rb = kv_row_bytes(c);
  ASSERT_EQ(rb, 208);
  EXPECT_EQ(kv_row_bytes(KvCacheConfig{1, 1, 16, 8, 128, DType::Q8_0}), 1088);  // 8B shape: 1.88x f16's 2048
  EXPECT_EQ(kv_block_bytes(c), 2 * 16 * 208);
  auto x = random_vector(static_cast<size_t>(n), rng);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] *= std::pow(10.0f, static_cast<float>(i / 32 % 3) - 1.0f);
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero group
  std::vector<uint8_t> row(static_cast<size_t>(rb), 0xCD);
  quantize_kv_row_q8(x.data(), n, rb, row.data());
  std::vector<float> back(static_cast<size_t>(n));
  dequantize_kv_q8(row.data(), n, 0, n, back.data());
  for (int64_t g = 0; g < n / 32; ++g) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[static_cast<size_t>(g * 32 + i)]));
    const float d = scale_of(row.data(), n, g);
    EXPECT_EQ(d, f16_to_f32(f32_to_f16(amax / 127.0f))) << g;
    bool at_127 = false;
    for (int i = 0; i < 32; ++i) {
      const auto at = static_cast<size_t>(g * 32 + i);
      EXPECT_LE(std::fabs(back[at] - x[at]), d / 2 * (1 + 1e-6f)) << at;
      at_127 |= std::abs(static_cast<int8_t>(row[at])) == 127;
    }
    EXPECT_EQ(at_127, amax > 0) << "the largest element of group " << g << " maps to +-127";
  }
  for (int64_t i = 32; i < 64; ++i) EXPECT_EQ(row[static_cast<size_t>(i)], 0);
  for (int64_t i = n + n / 16; i < rb; ++i) EXPECT_EQ(row[static_cast<size_t>(i)], 0) << "padding byte " << i;
  std::vector<float> head(64);
  dequantize_kv_q8(row.data(), n, 128, 64, head.data());  // one head alone
  EXPECT_TRUE(std::equal(head.begin(), head.end(), back.begin() + 128));
}

// A CPU backend with an f32 cache and one with a q8_0 cache, fed the same keys and values.
struct Pair {
  std::unique_ptr<Backend> f32 = make_cpu_backend(2), q8 = make_cpu_backend(2);
  KvCacheConfig kv;
  Pair(int32_t kv_heads, int32_t head_dim) : kv{2, 8, 16, kv_heads, head_dim, DType::F32} {
    f32->init_kv_cache(kv);
    kv.dtype = DType::Q8_0;
    q8->init_kv_cache(kv);
  }
  void begin(const StepBatch& b) { f32->begin_step(b), q8->begin_step(b); }
};

StepBatch one_sequence(const std::vector<int32_t>& table, int32_t start, int32_t n) {
  StepBatch b;
  b.seqs.push_back({.block_table = table, .n_ctx = start + n});
  for (int32_t p = start; p < start + n; ++p) {
    b.tokens.push_back(0), b.positions.push_back(p), b.seq_of.push_back(0);
    b.slots.push_back(static_cast<int64_t>(table[static_cast<size_t>(p / 16)]) * 16 + p % 16);
  }
  return b;
}

std::vector<float> attend(Backend& be, const std::vector<float>& q, int64_t n, int64_t heads, int64_t hd, float scale) {
  std::vector<float> qc = q;
  Tensor qt(qc.data(), DType::F32, {n, heads * hd});
  std::vector<float> out(static_cast<size_t>(n * heads * hd), NAN);
  Tensor ot(out.data(), DType::F32, {n, heads * hd});
  be.attention(ot, qt, 1, heads, scale);
  return out;
}

// Non-finite activations (a broken model) stay inside their own 32-group: a NaN element
// stores -127, an infinite one makes its group's scale infinite, and the other groups are
// quantized as if they were alone. (The float-to-int8 conversion must never see a NaN.)
TEST(KvQ8, NonFiniteElementsStayInTheirGroup) {
  std::mt19937 rng(7);
  const int64_t n = 128, rb = kv_row_bytes(KvCacheConfig{1, 1, 16, 1, 128, DType::Q8_0});
  auto x = random_vector(static_cast<size_t>(n), rng);
  auto clean = x;
  x[5] = std::nanf("");
  x[40] = INFINITY;
  std::vector<uint8_t> row(static_cast<size_t>(rb)), ref(static_cast<size_t>(rb));
  quantize_kv_row_q8(x.data(), n, rb, row.data());
  quantize_kv_row_q8(clean.data(), n, rb, ref.data());
  EXPECT_EQ(static_cast<int8_t>(row[5]), -127);
  EXPECT_TRUE(std::isinf(scale_of(row.data(), n, 1)));
  for (int64_t i = 64; i < n; ++i) EXPECT_EQ(row[static_cast<size_t>(i)], ref[static_cast<size_t>(i)]) << i;
  for (int64_t g = 2; g < n / 32; ++g) EXPECT_EQ(scale_of(row.data(), n, g), scale_of(ref.data(), n, g)) << g;
}

TEST(KvQ8, CpuAttentionWithinTheQuantizationBound) {
  for (const auto& [kv_heads, heads, hd] : {std::tuple{2, 6, 64}, std::tuple{1, 2, 128}, std::tuple{4, 4, 32}}) {
    std::mt19937 rng(static_cast<uint32_t>(hd));
    Pair p(kv_heads, hd);
    const std::vector<int32_t> table = {5, 2};
    const int32_t n = 23;  // keys 0..22, across two blocks
    const int64_t kvd = int64_t{kv_heads} * hd;
    p.begin(one_sequence(table, 0, n));
    auto k = random_vector(static_cast<size_t>(n * kvd), rng), v = random_vector(static_cast<size_t>(n * kvd), rng);
    for (auto* be : {p.f32.get(), p.q8.get()}) {
      Tensor kt(k.data(), DType::F32, {n, kvd}), vt(v.data(), DType::F32, {n, kvd});
      be->kv_store(1, kt, vt);
    }
    // Largest d / 2 of any group, from the quantizer's own scales.
    auto half_step = [&](const std::vector<float>& x) {
      float worst = 0;
      std::vector<uint8_t> row(static_cast<size_t>(kv_row_bytes(p.kv)));
      for (int32_t t = 0; t < n; ++t) {
        quantize_kv_row_q8(x.data() + t * kvd, kvd, static_cast<int64_t>(row.size()), row.data());
        for (int64_t g = 0; g < kvd / 32; ++g) worst = std::max(worst, scale_of(row.data(), kvd, g) / 2);
      }
      return worst;
    };
    const float dk = half_step(k), dv = half_step(v);
    float vmax = 0;
    for (float x : v) vmax = std::max(vmax, std::fabs(x));
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::string what = "kv heads " + std::to_string(kv_heads) + ", heads " + std::to_string(heads) + ", hd " + std::to_string(hd);

    // q = 0: uniform weights, so only the values' error shows, at most dv.
    const std::vector<float> zero(static_cast<size_t>(n * heads * hd), 0.0f);
    const auto a0 = attend(*p.f32, zero, n, heads, hd, scale), b0 = attend(*p.q8, zero, n, heads, hd, scale);
    double worst0 = 0;
    for (size_t i = 0; i < a0.size(); ++i) worst0 = std::max(worst0, std::fabs(static_cast<double>(a0[i]) - b0[i]));
    EXPECT_LE(worst0, dv * 1.0001) << what;
    EXPECT_GT(worst0, 0.0) << what << ": the q8 cache must not be exact";

    // Random queries: per (token, head), dv + (e^(2 eps) - 1) * max |v|.
    const auto q = random_vector(static_cast<size_t>(n * heads * hd), rng);
    const auto a = attend(*p.f32, q, n, heads, hd, scale), b = attend(*p.q8, q, n, heads, hd, scale);
    double worst_ratio = 0;
    for (int64_t th = 0; th < n * heads; ++th) {
      double l1 = 0;
      for (int64_t i = 0; i < hd; ++i) l1 += std::fabs(q[static_cast<size_t>(th * hd + i)]);
      const double eps = scale * l1 * dk;
      const double bound = dv + std::expm1(2 * eps) * vmax;
      for (int64_t i = 0; i < hd; ++i) {
        const auto at = static_cast<size_t>(th * hd + i);
        const double err = std::fabs(static_cast<double>(a[at]) - b[at]);
        EXPECT_LE(err, bound) << what << " token-head " << th;
        worst_ratio = std::max(worst_ratio, err / bound);
      }
    }
    std::printf("[ %s ] worst error / bound = %.3f (q = 0: %.3g <= %.3g)\n", what.c_str(), worst_ratio, worst0, dv);
  }
}

TEST(KvQ8, BlocksCopyAndRestoreOnTheCpu) {
  std::mt19937 rng(4);
  Pair p(2, 64);
  const int64_t kvd = 128;
  const int32_t n = 20;
  p.begin(one_sequence({3, 6}, 0, n));
  auto k = random_vector(static_cast<size_t>(n * kvd), rng), v = random_vector(static_cast<size_t>(n * kvd), rng);
  Tensor kt(k.data(), DType::F32, {n, kvd}), vt(v.data(), DType::F32, {n, kvd});
  for (int32_t layer = 0; layer < 2; ++layer) p.q8->kv_store(layer, kt, vt);
  const auto bytes = static_cast<size_t>(kv_block_bytes(p.q8->kv_cache_config()));
  ASSERT_EQ(bytes, size_t{2} * 2 * 16 * 144);  // rows of 128 + 8 bytes, padded to 144
  // The documented layout: layer 1's keys of block 3 are the quantized rows of tokens 0..15.
  std::vector<uint8_t> block(bytes);
  p.q8->read_kv_block(3, block.data());
  std::vector<uint8_t> row(144);
  quantize_kv_row_q8(k.data() + 5 * kvd, kvd, 144, row.data());
  EXPECT_EQ(std::memcmp(block.data() + bytes / 2 + 5 * 144, row.data(), 144), 0);
  p.q8->write_kv_block(1, block.data());
  p.q8->copy_kv_block(6, 7);
  const auto q = random_vector(static_cast<size_t>(n * 4 * 64), rng);
  p.q8->begin_step(one_sequence({3, 6}, 0, n));
  const auto want = attend(*p.q8, q, n, 4, 64, 0.125f);
  p.q8->begin_step(one_sequence({1, 7}, 0, n));
  EXPECT_EQ(attend(*p.q8, q, n, 4, 64, 0.125f), want);
}

TEST(KvQ8, TypeChoiceAndRefusal) {
  EXPECT_EQ(parse_kv_cache_type("q8_0"), DType::Q8_0);
  EXPECT_EQ(parse_kv_cache_type("f16"), DType::F16);
  EXPECT_EQ(parse_kv_cache_type("f32"), DType::F32);
  try {
    parse_kv_cache_type("q4_0");
    ADD_FAILURE() << "q4_0 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-cache-type 'q4_0'"), std::string::npos) << e.what();
  }
  auto cpu = make_cpu_backend(1);
  EXPECT_EQ(cpu->kv_dtype(), DType::F32);
  try {
    cpu->set_kv_dtype(DType::F16);
    ADD_FAILURE() << "the CPU backend accepted an f16 cache";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-cache-type f16"), std::string::npos) << e.what();
  }
  cpu->set_kv_dtype(DType::Q8_0);
  EXPECT_EQ(cpu->kv_dtype(), DType::Q8_0);
  // head_dim not a multiple of 32 cannot be held in 32-groups.
  EXPECT_THROW(cpu->init_kv_cache(KvCacheConfig{1, 1, 16, 1, 48, DType::Q8_0}), Error);
}

}  // namespace
}  // namespace hearth
