// Dequantizers against scripts/quant_reference.py: random blocks of every type, whose
// expected float32 values numpy computed independently from the format description,
// must dequantize to exactly the same bits. Also the block sizes and argument checks.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "fixture.h"

using namespace hearth;

namespace {

struct Case {
  DType type;
  std::string file;
};

const std::vector<Case> kCases = {
    {DType::F32, "f32.bin"},       {DType::F16, "f16.bin"},       {DType::BF16, "bf16.bin"},
    {DType::Q4_0, "q4_0.bin"},     {DType::Q4_1, "q4_1.bin"},     {DType::Q5_0, "q5_0.bin"},
    {DType::Q5_1, "q5_1.bin"},     {DType::Q8_0, "q8_0.bin"},     {DType::Q8_1, "q8_1.bin"},
    {DType::Q2_K, "q2_K.bin"},     {DType::Q3_K, "q3_K.bin"},     {DType::Q4_K, "q4_K.bin"},
    {DType::Q5_K, "q5_K.bin"},     {DType::Q6_K, "q6_K.bin"},     {DType::Q8_K, "q8_K.bin"},
    {DType::IQ4_NL, "iq4_nl.bin"}, {DType::IQ4_XS, "iq4_xs.bin"},
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file; }

class DequantizeFixture : public ::testing::TestWithParam<Case> {};

TEST_P(DequantizeFixture, MatchesNumpyBitExactly) {
  const Case& c = GetParam();
  test::FixtureReader in(c.file);
  in.expect_magic("HQFX");
  ASSERT_EQ(in.u32(), 1u);
  ASSERT_EQ(in.u32(), static_cast<uint32_t>(c.type));
  const uint32_t n_blocks = in.u32(), block_bytes = in.u32(), block_elems = in.u32();
  const auto& info = dtype_info(c.type);
  ASSERT_EQ(block_bytes, info.block_bytes);
  ASSERT_EQ(block_elems, info.block_elems);
  const std::vector<uint8_t> blocks = in.take(size_t{n_blocks} * block_bytes);
  const size_t n = size_t{n_blocks} * block_elems;
  const std::vector<float> want = in.take_array<float>(n);
  ASSERT_TRUE(in.at_end());

  ASSERT_TRUE(quant::can_dequantize(c.type));
  std::vector<float> got(n);
  quant::dequantize_row(c.type, blocks.data(), got.data(), static_cast<int64_t>(n));
  EXPECT_EQ(test::count_bit_mismatches(got.data(), want.data(), n, c.file), 0);

  // Row by row (one block at a time) gives the same values: no state crosses blocks.
  std::vector<float> one(block_elems);
  for (uint32_t b = 0; b < n_blocks; b += 7) {
    quant::dequantize_row(c.type, blocks.data() + size_t{b} * block_bytes, one.data(), block_elems);
    EXPECT_EQ(test::count_bit_mismatches(one.data(), want.data() + size_t{b} * block_elems, block_elems, c.file), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantizeFixture, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

}  // namespace

TEST(Blocks, SizesMatchTheTypeTable) {
  EXPECT_EQ(sizeof(quant::BlockQ4_0), dtype_info(DType::Q4_0).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ4_1), dtype_info(DType::Q4_1).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ5_0), dtype_info(DType::Q5_0).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ5_1), dtype_info(DType::Q5_1).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ8_0), dtype_info(DType::Q8_0).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ8_1), dtype_info(DType::Q8_1).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ2_K), dtype_info(DType::Q2_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ3_K), dtype_info(DType::Q3_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ4_K), dtype_info(DType::Q4_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ5_K), dtype_info(DType::Q5_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ6_K), dtype_info(DType::Q6_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockQ8_K), dtype_info(DType::Q8_K).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockIQ4_NL), dtype_info(DType::IQ4_NL).block_bytes);
  EXPECT_EQ(sizeof(quant::BlockIQ4_XS), dtype_info(DType::IQ4_XS).block_bytes);
}

TEST(Blocks, FieldOffsetsMatchTheFileLayout) {
  // The offsets formats.md lists; a reordered field would still pass the size checks.
  EXPECT_EQ(offsetof(quant::BlockQ5_0, qs), 6u);
  EXPECT_EQ(offsetof(quant::BlockQ5_1, qh), 4u);
  EXPECT_EQ(offsetof(quant::BlockQ2_K, d), 80u);
  EXPECT_EQ(offsetof(quant::BlockQ3_K, scales), 96u);
  EXPECT_EQ(offsetof(quant::BlockQ3_K, d), 108u);
  EXPECT_EQ(offsetof(quant::BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(quant::BlockQ5_K, qh), 16u);
  EXPECT_EQ(offsetof(quant::BlockQ5_K, qs), 48u);
  EXPECT_EQ(offsetof(quant::BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(quant::BlockQ6_K, d), 208u);
  EXPECT_EQ(offsetof(quant::BlockQ8_K, bsums), 260u);
  EXPECT_EQ(offsetof(quant::BlockIQ4_XS, scales_l), 4u);
  EXPECT_EQ(offsetof(quant::BlockIQ4_XS, qs), 8u);
}

TEST(Dequantize, RejectsPartialBlocksAndUnknownTypes) {
  std::vector<uint8_t> src(1024);
  std::vector<float> dst(512);
  EXPECT_THROW(quant::dequantize_row(DType::Q4_K, src.data(), dst.data(), 100), Error);
  EXPECT_THROW(quant::dequantize_row(DType::Q8_0, src.data(), dst.data(), 33), Error);
  EXPECT_THROW(quant::dequantize_row(DType::I32, src.data(), dst.data(), 4), Error);
  EXPECT_THROW(quant::dequantize_row(DType::MLX_AFFINE, src.data(), dst.data(), 32), Error);
  EXPECT_FALSE(quant::can_dequantize(DType::I8));
  EXPECT_FALSE(quant::can_dequantize(DType::MLX_AFFINE));
  EXPECT_TRUE(quant::can_dequantize(DType::IQ4_XS));
}

TEST(DotRowRef, EqualsDequantizedDotProduct) {
  // 3 super-blocks + a 32-block type over the same data: the chunked reference must not
  // skip or repeat a chunk boundary.
  const std::vector<float> w = test::gaussian(768, 7), x = test::gaussian(768, 8);
  for (DType type : {DType::Q4_K, DType::Q8_0, DType::F16}) {
    std::vector<uint8_t> row(static_cast<size_t>(dtype_row_bytes(type, 768)));
    quant::quantize_row(type, w.data(), row.data(), 768);
    std::vector<float> deq(768);
    quant::dequantize_row(type, row.data(), deq.data(), 768);
    double want = 0;
    for (int i = 0; i < 768; ++i) want += static_cast<double>(deq[i]) * x[i];
    EXPECT_NEAR(quant::dot_row_ref(type, row.data(), x.data(), 768), want, 1e-4) << dtype_name(type);
  }
}
