// Sampler::sample_top (a row's best logits only, as a GPU hands them back) against
// Sampler::sample on the whole row: for each setting, two samplers with the same seed draw
// 60 tokens from random rows (exact ties, -inf and NaN mixed in) and must agree token for
// token, and can_sample_top must refuse the settings whose answer depends on the rest of
// the row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/sampler.h"

using namespace hearth;

namespace {

constexpr int32_t kVocab = 3000, kTokens = 2990, kTop = 128;

// Logits from few levels (ties) plus noise; the eog ids often near the top.
std::vector<float> random_row(std::mt19937& rng, const std::vector<int32_t>& eog) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<float> row(kVocab);
  for (auto& v : row) {
    const int p = pick(rng);
    v = p < 30 ? std::round(normal(rng)) : normal(rng);
    if (p == 98) v = -std::numeric_limits<float>::infinity();
    if (p == 99) v = std::nanf("");
  }
  for (int32_t id : eog)
    if (pick(rng) < 50) row[static_cast<size_t>(id)] = 9.0f;
  return row;
}

// The best kTop of ids [0, kTokens) by (logit desc, id asc), finite only, padded with -1:
// what Backend::read_top_rows returns (a full sort here, independent of the sampler).
void top_list(const std::vector<float>& row, std::vector<int32_t>& ids, std::vector<float>& values) {
  std::vector<int32_t> order;
  for (int32_t i = 0; i < kTokens; ++i)
    if (row[i] > -std::numeric_limits<float>::infinity()) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  ids.assign(kTop, -1);
  values.assign(kTop, 0.0f);
  for (size_t j = 0; j < order.size() && j < static_cast<size_t>(kTop); ++j) ids[j] = order[j], values[j] = row[order[j]];
}

void expect_same_tokens(SamplingParams params, const std::vector<int32_t>& eog, const std::string& what) {
  params.seed = 1234;
  const SamplerVocab vocab{.n_vocab = kVocab, .n_tokens = kTokens, .eog = eog};
  Sampler whole(params, vocab), top(params, vocab);
  std::mt19937 rng(99);
  for (int step = 0; step < 60; ++step) {
    auto row = random_row(rng, eog);
    std::vector<int32_t> ids;
    std::vector<float> values;
    top_list(row, ids, values);
    ASSERT_TRUE(top.can_sample_top(kTop, false)) << what;
    const int32_t want = whole.sample(row.data());
    // Every other step only as many as the sampler says it needs (what the engine reads).
    const int32_t n = step % 2 ? kTop : top.top_needed();
    const int32_t got = top.sample_top(ids.data(), values.data(), n);
    ASSERT_EQ(got, want) << what << " step " << step;
    whole.accept(want), top.accept(got);
  }
}

}  // namespace

TEST(SamplerTop, SameTokensAsTheWholeRow) {
  SamplingParams p;
  p.temperature = 0.0f;
  expect_same_tokens(p, {}, "greedy");
  p = {};
  p.temperature = 0.6f, p.top_k = 20, p.top_p = 0.95f;  // Qwen3's generation_config
  expect_same_tokens(p, {}, "qwen3 defaults");
  p = {};
  p.temperature = 1.3f, p.top_k = 40, p.min_p = 0.05f;
  expect_same_tokens(p, {}, "top_k + min_p");
  p = {};
  p.temperature = 0.8f, p.top_k = 100, p.typical_p = 0.9f, p.top_p = 0.8f;
  expect_same_tokens(p, {}, "top_k + typical_p + top_p");
  p = {};
  p.temperature = 1.0f, p.top_k = kTop;
  expect_same_tokens(p, {}, "top_k = the list's length");
  p = {};
  p.top_k = 1, p.temperature = 0.7f;
  expect_same_tokens(p, {}, "top_k 1 is greedy");
  // ignore_eos bans the end tokens, which the rows often rank first.
  p = {};
  p.temperature = 0.0f, p.ignore_eos = true;
  expect_same_tokens(p, {5, 2989}, "greedy, ignore_eos");
  p = {};
  p.temperature = 0.6f, p.top_k = 20, p.ignore_eos = true;
  expect_same_tokens(p, {5, 2989}, "top_k 20, ignore_eos");
  // Penalty settings with nothing accepted yet are neutral: the first token may use the list.
  p = {};
  p.temperature = 0.0f, p.repetition_penalty = 1.1f;
  const SamplerVocab vocab{.n_vocab = kVocab, .n_tokens = kTokens, .eog = {}};
  Sampler s(p, vocab);
  EXPECT_TRUE(s.can_sample_top(kTop, false));
  s.accept(3);
  EXPECT_FALSE(s.can_sample_top(kTop, false)) << "an active penalty changes logits the list does not hold";
}

TEST(SamplerTop, RefusesWhatNeedsTheWholeRow) {
  const SamplerVocab vocab{.n_vocab = kVocab, .n_tokens = kTokens, .eog = {7, 8}};
  auto can = [&](SamplingParams p, int32_t available = kTop, bool logprobs = false) {
    p.seed = 1;
    return Sampler(p, vocab).can_sample_top(available, logprobs);
  };
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  EXPECT_TRUE(can(greedy));
  EXPECT_FALSE(can(greedy, kTop, true)) << "logprobs need the whole row's normaliser";
  EXPECT_FALSE(can(greedy, 0));
  SamplingParams biased = greedy;
  biased.logit_bias = {{12, 5.0f}};
  EXPECT_FALSE(can(biased)) << "a bias can lift any token into the lead";
  SamplingParams forced = greedy;
  forced.forced_start = {{4, 5}};
  EXPECT_FALSE(can(forced));
  SamplingParams plain;
  plain.temperature = 0.7f, plain.top_k = 0, plain.top_p = 0.9f;
  EXPECT_FALSE(can(plain)) << "no top_k: top_p is over the whole row";
  SamplingParams wide;
  wide.temperature = 0.7f, wide.top_k = kTop + 1;
  EXPECT_FALSE(can(wide));
  SamplingParams narrow;
  narrow.temperature = 0.7f, narrow.top_k = kTop - 1;
  EXPECT_TRUE(can(narrow));
  narrow.ignore_eos = true;  // two banned ids may take places in the list
  EXPECT_FALSE(can(narrow));
  narrow.top_k = kTop - 2;
  EXPECT_TRUE(can(narrow));
}
