// read_top_rows on the GPU (top_k.cu) against a full sort on the host (the cases of
// tests/backend/top_k_cases.h: ties, -inf, NaN, -0, ignored columns, short rows, up to
// 250,000 columns and 40 rows), ids and values bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "../backend/top_k_cases.h"
#include "backend/backend.h"
#include "cuda_test_util.h"

namespace hearth {
namespace {

TEST(CudaTopK, MatchesFullSort) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto be = make_cuda_backend(0);
  uint32_t seed = 100;
  for (const auto& s : test::top_k_shapes()) {
    for (int32_t k : {s.k, 1, 128}) {
      const auto c = test::make_top_k_case(s.rows, s.cols, s.n_valid, k, s.kind, seed++);
      Tensor x = be->upload_f32(c.x, {c.rows, c.cols});
      std::vector<int32_t> ids(static_cast<size_t>(c.rows * c.k), -7), want_ids;
      std::vector<float> values(ids.size(), -7.0f), want_values;
      be->read_top_rows(x, c.n_valid, c.k, ids.data(), values.data());
      test::top_k_reference(c, want_ids, want_values);
      ASSERT_EQ(ids, want_ids) << s.rows << "x" << s.cols << " valid " << s.n_valid << " k " << k << " kind " << s.kind;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] >= 0) {
          ASSERT_EQ(std::memcmp(&values[i], &want_values[i], sizeof(float)), 0) << i;
        }
      }
    }
  }
}

// A view that starts inside a larger tensor (the engine reads the step's logit rows of a
// scratch tensor sized for more) and a row length that is not a multiple of anything.
TEST(CudaTopK, RowsOfALargerTensor) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto be = make_cuda_backend(0);
  const auto c = test::make_top_k_case(9, 12345, 12001, 33, 1, 7);
  Tensor x = be->upload_f32(c.x, {c.rows, c.cols});
  Tensor part = x;
  part.shape[0] = 4;
  part.data = x.f32() + 3 * c.cols;
  std::vector<int32_t> ids(4 * 33);
  std::vector<float> values(ids.size());
  be->read_top_rows(part, c.n_valid, c.k, ids.data(), values.data());
  std::vector<int32_t> want_ids;
  std::vector<float> want_values;
  test::top_k_reference(c, want_ids, want_values);
  EXPECT_EQ(ids, std::vector<int32_t>(want_ids.begin() + 3 * 33, want_ids.begin() + 7 * 33));
}

}  // namespace
}  // namespace hearth
