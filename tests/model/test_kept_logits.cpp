// Model::forward with no host buffer leaves a step's logits in the backend, and
// read_logits / read_top_logits read them back (what the engine does on a GPU; here on the
// CPU backend, so every build runs it): the same floats forward copies out, and each
// row's best k in the order of a full sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "backend/step.h"
#include "model/writer.h"
#include "model_test_util.h"

using namespace hearth;
using namespace hearth::test;

TEST(KeptLogits, ReadsMatchTheCopiedRows) {
  ModelConfig c = qwen3_shape("tiny");
  c.num_hidden_layers = 2;
  c.vocab_size = 700;
  c.tie_word_embeddings = false;
  const std::string path = temp_dir("kept_logits") + "/m.gguf";
  WriteOptions o;
  o.type = "q8_0";
  write_model(c, random_tensors(c, 11), o, path);
  auto be = make_cpu_backend(2);
  auto model = Model::load(path, *be);
  be->init_kv_cache(model->kv_cache_config(4, 16));
  const int64_t vocab = c.vocab_size;
  const std::vector<int32_t> tokens = {3, 141, 59, 265, 35};
  const StepBatch batch = StepBatch::single(tokens, 0, 16, /*all_logits=*/true);
  std::vector<float> copied(tokens.size() * static_cast<size_t>(vocab));
  model->forward(batch, copied.data());
  // The same step again over the same cache slots, this time kept.
  model->forward(batch, nullptr);
  std::vector<float> rows(2 * static_cast<size_t>(vocab));
  model->read_logits(2, 2, rows.data());
  EXPECT_TRUE(std::equal(rows.begin(), rows.end(), copied.begin() + 2 * vocab));
  const int32_t k = 9, n_valid = 650;
  std::vector<int32_t> ids(tokens.size() * k);
  std::vector<float> values(ids.size());
  model->read_top_logits(n_valid, k, ids.data(), values.data());
  for (size_t r = 0; r < tokens.size(); ++r) {
    const float* row = copied.data() + r * static_cast<size_t>(vocab);
    std::vector<int32_t> order(static_cast<size_t>(n_valid));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int32_t j = 0; j < k; ++j) {
      EXPECT_EQ(ids[r * k + static_cast<size_t>(j)], order[static_cast<size_t>(j)]) << "row " << r;
      EXPECT_EQ(values[r * k + static_cast<size_t>(j)], row[order[static_cast<size_t>(j)]]);
    }
  }
  EXPECT_THROW(model->read_logits(4, 2, rows.data()), Error) << "rows past the step's";
}
