// Drawing, seeding, penalties and logprobs. Empirical frequencies of many seeded draws are
// compared with the probabilities the reference chain (reference.h) computes for the same
// settings; penalties with values worked out by hand; logprobs with a double-precision
// log-softmax over a full sort.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"
#include "reference.h"

using namespace hearth;

namespace {

Sampler make_sampler(const SamplingParams& params, int32_t n_vocab) {
  return Sampler(params, SamplerVocab{.n_vocab = n_vocab, .n_tokens = -1, .eog = {}});
}

// Draws n tokens from the same logits and checks every token's frequency against want.
void check_frequencies(Sampler& sampler, const std::vector<float>& logits, const std::vector<ref::Cand>& want,
                       int n, const std::string& what) {
  std::map<int32_t, int> hits;
  for (int i = 0; i < n; ++i) {
    auto copy = logits;
    ++hits[sampler.sample(copy.data())];
  }
  std::map<int32_t, double> p;
  for (const auto& c : want) p[c.id] = c.p;
  for (const auto& [id, count] : hits) EXPECT_TRUE(p.count(id)) << what << ": sampled token " << id << " outside the set";
  double chi2 = 0.0;
  for (const auto& [id, prob] : p) {
    const double f = static_cast<double>(hits[id]) / n;
    const double sigma = std::sqrt(prob * (1 - prob) / n);
    EXPECT_NEAR(f, prob, 5 * sigma + 1e-4) << what << " token " << id;
    chi2 += (hits[id] - n * prob) * (hits[id] - n * prob) / (n * prob);
  }
  // Mean of chi2 is dof = |set| - 1, sd sqrt(2 dof): 6 sd is far beyond chance.
  const double dof = static_cast<double>(p.size()) - 1;
  EXPECT_LT(chi2, dof + 6 * std::sqrt(2 * dof) + 10) << what;
}

}  // namespace

TEST(SamplerDraw, FrequenciesMatchTheReferenceAfterEachTransform) {
  // 61 tokens with a spread-out distribution; settings chosen so no cut-off is ambiguous
  // (checked below by running the reference at threshold +-1e-4).
  const auto logits = ref::random_logits(61, 2024, 1.5);
  struct Case {
    const char* name;
    int32_t top_k;
    double typical_p, top_p, min_p, temperature;
  };
  const Case cases[] = {
      {"temperature only", 0, 1.0, 1.0, 0.0, 1.0},
      {"hot", 0, 1.0, 1.0, 0.0, 1.8},
      {"top_k", 12, 1.0, 1.0, 0.0, 0.8},
      {"top_p", 0, 1.0, 0.75, 0.0, 1.0},
      {"min_p", 0, 1.0, 1.0, 0.12, 0.9},
      {"typical", 0, 0.6, 1.0, 0.0, 1.0},
      {"everything", 30, 0.95, 0.9, 0.05, 0.6},
  };
  for (const auto& cs : cases) {
    const ref::Chain chain{cs.top_k, cs.typical_p, cs.top_p, cs.min_p, cs.temperature};
    const auto want = ref::run(logits, chain);
    ref::Chain lo = chain, hi = chain;
    if (cs.typical_p < 1) lo.typical_p -= 1e-4, hi.typical_p += 1e-4;
    if (cs.top_p < 1) lo.top_p -= 1e-4, hi.top_p += 1e-4;
    if (cs.min_p > 0) lo.min_p += 1e-4, hi.min_p -= 1e-4;
    ASSERT_EQ(ref::ids(ref::run(logits, lo)), ref::ids(ref::run(logits, hi))) << cs.name << ": ambiguous test data";
    ASSERT_GT(want.size(), 2u) << cs.name;

    SamplingParams params;
    params.top_k = cs.top_k;
    params.typical_p = static_cast<float>(cs.typical_p);
    params.top_p = static_cast<float>(cs.top_p);
    params.min_p = static_cast<float>(cs.min_p);
    params.temperature = static_cast<float>(cs.temperature);
    params.seed = 77;
    Sampler sampler = make_sampler(params, 61);
    check_frequencies(sampler, logits, want, 200000, cs.name);
  }
}

// Temperature alone takes the dense 8-lane path (no candidates): over a row that is not a
// multiple of 8 long, with -inf and NaN in the vector part and in the tail, the draws
// match the reference over the finite tokens and never pick a non-finite one; a row with
// one finite token gives it (and, as the candidate path, draws nothing).
TEST(SamplerDraw, TemperatureOnlyDrawsMatchTheReferenceOverFiniteLogits) {
  auto logits = ref::random_logits(203, 11, 1.0);
  const float inf = std::numeric_limits<float>::infinity();
  logits[0] = -inf, logits[9] = -inf, logits[200] = -inf;
  logits[17] = std::numeric_limits<float>::quiet_NaN(), logits[202] = std::numeric_limits<float>::quiet_NaN();
  for (double t : {0.7, 1.3}) {
    const auto want = ref::run(logits, ref::Chain{.temperature = t});
    ASSERT_EQ(want.size(), 198u);
    Sampler sampler = make_sampler(SamplingParams{.temperature = static_cast<float>(t), .seed = 5}, 203);
    check_frequencies(sampler, logits, want, 200000, "temperature " + std::to_string(t));
  }
  std::vector<float> one(203, -inf);
  one[150] = 2.0f, one[3] = std::numeric_limits<float>::quiet_NaN();
  Sampler a = make_sampler(SamplingParams{.temperature = 0.8f, .seed = 9}, 203);
  Sampler b = make_sampler(SamplingParams{.temperature = 0.8f, .seed = 9}, 203);
  auto copy = one;
  EXPECT_EQ(a.sample(copy.data()), 150);
  auto row = ref::random_logits(203, 12, 1.0);
  auto ra = row, rb = row;
  EXPECT_EQ(a.sample(ra.data()), b.sample(rb.data()));  // the one-token row drew nothing
  std::vector<float> none(203, -inf);
  EXPECT_THROW(a.sample(none.data()), Error);
}

TEST(SamplerDraw, SameSeedSameTokensDifferentSeedDifferentTokens) {
  SamplingParams params{.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .repetition_penalty = 1.1f, .seed = 1234};
  auto run = [&](uint64_t seed) {
    params.seed = seed;
    Sampler sampler = make_sampler(params, 1003);
    std::vector<int32_t> out;
    for (int step = 0; step < 300; ++step) {
      auto logits = ref::random_logits(1003, static_cast<uint64_t>(step), 2.0);
      const int32_t token = sampler.sample(logits.data());
      sampler.accept(token);
      out.push_back(token);
    }
    return out;
  };
  const auto a = run(1234), b = run(1234), c = run(1235);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(make_sampler(params, 10).seed(), 1235u);
}

TEST(SamplerDraw, RngIsUniformAndReproducible) {
  SamplerRng a(7), b(7), c(8);
  double sum = 0.0;
  int buckets[10] = {};
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ASSERT_EQ(u, b.uniform());
    sum += u;
    ++buckets[static_cast<int>(u * 10)];
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  for (int count : buckets) EXPECT_NEAR(count, n / 10, 500);
  EXPECT_NE(SamplerRng(7).next(), c.next());
}

TEST(SamplerDraw, PenaltiesMatchHandComputedValues) {
  // Window of 4: after accepting 1 2 2 3 1 the window holds 2 2 3 1.
  SamplingParams params{.temperature = 0.0f,
                        .repetition_penalty = 2.0f,
                        .presence_penalty = 0.5f,
                        .frequency_penalty = 0.25f,
                        .penalty_last_n = 4,
                        .logit_bias = {{4, 1.5f}, {3, -1.0f}}};
  Sampler sampler = make_sampler(params, 6);
  for (int32_t t : {1, 2, 2, 3, 1}) sampler.accept(t);
  std::vector<float> logits = {0.5f, 3.0f, -2.0f, 1.0f, 0.25f, 1.0f};
  sampler.distribution(logits.data());
  EXPECT_FLOAT_EQ(logits[0], 0.5f);                        // never seen
  EXPECT_FLOAT_EQ(logits[1], 3.0f / 2 - 0.5f - 0.25f);     // once: 0.75
  EXPECT_FLOAT_EQ(logits[2], -2.0f * 2 - 0.5f - 0.5f);     // twice, negative: -5
  EXPECT_FLOAT_EQ(logits[3], (1.0f - 1.0f) * 2 - 0.75f);   // bias first: 0 <= 0 is multiplied
  EXPECT_FLOAT_EQ(logits[4], 1.75f);                       // bias only
  EXPECT_FLOAT_EQ(logits[5], 1.0f);

  // The oldest token (the first 1) left the window; penalty_last_n = 0 turns it all off.
  Sampler off = make_sampler(SamplingParams{.temperature = 0.0f, .repetition_penalty = 2.0f, .penalty_last_n = 0}, 6);
  for (int32_t t : {1, 1, 1}) off.accept(t);
  std::vector<float> plain = {0.5f, 3.0f, -2.0f, 1.0f, 0.25f, 1.0f};
  off.distribution(plain.data());
  EXPECT_FLOAT_EQ(plain[1], 3.0f);

  // Repetition penalty steers greedy away from a repeated token; reset() forgets it.
  Sampler rep = make_sampler(SamplingParams{.temperature = 0.0f, .repetition_penalty = 4.0f}, 6);
  rep.accept(1);
  std::vector<float> l2 = {0.5f, 3.0f, -2.0f, 1.0f, 0.25f, 1.0f};
  EXPECT_EQ(rep.sample(l2.data()), 3);  // 3/4 < 1.0, tie 3 vs 5 goes to 3
  rep.reset();
  l2 = {0.5f, 3.0f, -2.0f, 1.0f, 0.25f, 1.0f};
  EXPECT_EQ(rep.sample(l2.data()), 1);
}

TEST(SamplerDraw, LogprobsComeFromTheRawLogits) {
  const int32_t n = 151936;
  auto logits = ref::random_logits(n, 31337, 4.0);
  // Reference: log-softmax in double, full sort.
  double m = -INFINITY;
  for (float l : logits) m = std::max(m, static_cast<double>(l));
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - m);
  const double lse = m + std::log(sum);
  EXPECT_NEAR(log_sum_exp(logits.data(), n), lse, 1e-6);
  auto sorted = ref::all_finite(logits);
  ref::sort_by_logit(sorted);

  const auto top = top_logprobs(logits.data(), n, 5);
  ASSERT_EQ(top.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(top[i].id, sorted[i].id);
    EXPECT_NEAR(top[i].logprob, sorted[i].logit - lse, 1e-5);
  }

  // The sampled token's logprob ignores the bias and penalties that picked it.
  const int32_t forced = sorted[1000].id;
  SamplingParams params{.temperature = 0.0f, .repetition_penalty = 1.3f, .logit_bias = {{forced, 100.0f}}, .top_logprobs = 3};
  Sampler sampler = make_sampler(params, n);
  sampler.accept(forced);
  SampleLogprobs lp;
  auto copy = logits;
  EXPECT_EQ(sampler.sample(copy.data(), &lp), forced);
  EXPECT_EQ(lp.sampled.id, forced);
  EXPECT_NEAR(lp.sampled.logprob, logits[static_cast<size_t>(forced)] - lse, 1e-5);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].id, sorted[0].id);

  // Stable for huge logits.
  std::vector<float> big = {1000.0f, 1000.0f, -INFINITY};
  EXPECT_NEAR(log_sum_exp(big.data(), 3), 1000.0 + std::log(2.0), 1e-6);
}

// forced_start: the output must spell one of the sequences, whatever the logits favour;
// among the sequences the logits choose (greedy picks the best continuation), and after a
// sequence is complete sampling is free again.
TEST(SamplerDraw, ForcedStartSpellsOneOfTheSequences) {
  const int32_t n_vocab = 37;
  SamplerRng rng(7);
  std::vector<float> logits(n_vocab);
  for (auto& x : logits) x = static_cast<float>(rng.uniform() * 8.0 - 4.0);
  SamplingParams params;
  params.temperature = 0.0f;
  params.forced_start = {{5, 9, 30}, {5, 12}, {21}};
  // Greedy ranks the allowed first tokens 5 and 21; make 5 win, then 12 over 9.
  logits[5] = -3.0f;
  logits[21] = -3.5f;
  logits[9] = -1.0f;
  logits[12] = -0.5f;
  Sampler greedy = make_sampler(params, n_vocab);
  std::vector<int32_t> out;
  for (int i = 0; i < 4; ++i) {
    auto copy = logits;
    out.push_back(greedy.sample(copy.data()));
  }
  int32_t best = 0;
  for (int32_t i = 1; i < n_vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  EXPECT_EQ(out, (std::vector<int32_t>{5, 12, best, best}));

  // Random draws: every output starts with a complete sequence, and all three occur.
  params.temperature = 1.5f;
  params.seed = 11;
  std::map<std::vector<int32_t>, int> seen;
  for (int trial = 0; trial < 300; ++trial) {
    Sampler s = make_sampler(params, n_vocab);
    std::vector<int32_t> got;
    for (int i = 0; i < 3; ++i) {
      auto copy = logits;
      got.push_back(s.sample(copy.data()));
      bool complete = false;
      for (const auto& seq : params.forced_start) complete |= got == seq;
      if (complete) break;
    }
    bool matches = false;
    for (const auto& seq : params.forced_start) matches |= got == seq;
    EXPECT_TRUE(matches) << "trial " << trial;
    ++seen[got];
    params.seed = *params.seed + 1;
  }
  EXPECT_EQ(seen.size(), 3u);

  // A forced token whose logit is -inf (banned by a bias, say) is still the only way on.
  params.temperature = 0.0f;
  params.forced_start = {{3, 4}};
  Sampler banned = make_sampler(params, n_vocab);
  auto copy = logits;
  copy[3] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(banned.sample(copy.data()), 3);

  params.forced_start = {{}};
  EXPECT_THROW(make_sampler(params, n_vocab), Error);
  params.forced_start = {{n_vocab}};
  EXPECT_THROW(make_sampler(params, n_vocab), Error);
}
