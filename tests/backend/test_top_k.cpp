// Backend::read_top_rows on the CPU against a full sort (top_k_cases.h): the order
// (value desc, id asc), ties, -inf/NaN left out, -0 == +0, columns past n_valid ignored,
// padding where a row has fewer than k finite values, and the ids exactly.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.h"
#include "top_k_cases.h"

namespace hearth {
namespace {

TEST(TopK, CpuMatchesFullSort) {
  auto be = make_cpu_backend(2);
  uint32_t seed = 1;
  for (const auto& s : test::top_k_shapes()) {
    const auto c = test::make_top_k_case(s.rows, s.cols, s.n_valid, s.k, s.kind, seed++);
    Tensor x = be->upload_f32(c.x, {c.rows, c.cols});
    std::vector<int32_t> ids(static_cast<size_t>(c.rows * c.k), -7), want_ids;
    std::vector<float> values(ids.size(), -7.0f), want_values;
    be->read_top_rows(x, c.n_valid, c.k, ids.data(), values.data());
    test::top_k_reference(c, want_ids, want_values);
    ASSERT_EQ(ids, want_ids) << s.rows << "x" << s.cols << " k " << s.k << " kind " << s.kind;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= 0) {
        ASSERT_EQ(std::memcmp(&values[i], &want_values[i], sizeof(float)), 0) << i;
      }
    }
  }
}

}  // namespace
}  // namespace hearth
