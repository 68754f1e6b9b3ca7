// The sampler's candidate sets against the full-sort reference (reference.h) on random
// logits with odd vocabulary sizes, including Qwen3's 151936. Mass cut-offs computed in
// float and in double can legitimately differ by one token when the cumulative mass lands
// within rounding of the threshold, so each set is checked to lie between the reference's
// sets at threshold -eps and +eps (all stages are monotone in their threshold).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "engine/sampler.h"
#include "reference.h"

using namespace hearth;

namespace {

constexpr double kEps = 1e-5;

std::set<int32_t> ids_of(const std::vector<Candidate>& c) {
  std::set<int32_t> s;
  for (const auto& x : c) s.insert(x.id);
  return s;
}

std::vector<Candidate> all_candidates(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<int32_t>(i), logits[i], 0.0f, 0.0f});
  return c;
}

// lo ⊆ got ⊆ hi, with a readable failure.
void expect_between(const std::set<int32_t>& lo, const std::set<int32_t>& got, const std::set<int32_t>& hi,
                    const std::string& what) {
  EXPECT_TRUE(std::includes(got.begin(), got.end(), lo.begin(), lo.end()))
      << what << ": kept " << got.size() << ", reference at -eps keeps " << lo.size();
  EXPECT_TRUE(std::includes(hi.begin(), hi.end(), got.begin(), got.end()))
      << what << ": kept " << got.size() << ", reference at +eps keeps " << hi.size();
  EXPECT_FALSE(got.empty()) << what;
}

Sampler make_sampler(const SamplingParams& params, int32_t n_vocab) {
  return Sampler(params, SamplerVocab{.n_vocab = n_vocab, .n_tokens = -1, .eog = {}});
}

}  // namespace

TEST(SamplerChain, TopKMatchesFullSortOnBothPaths) {
  for (size_t n : {1003u, 151936u}) {
    const auto logits = ref::random_logits(n, 11 + n);
    for (int32_t k : {1, 20, 40, 700, 5000}) {  // heap path up to 1024, nth_element above
      if (static_cast<size_t>(k) > n) continue;
      std::vector<Candidate> got;
      select_top_k(logits.data(), static_cast<int32_t>(n), k, got);
      auto want = ref::all_finite(logits);
      ref::top_k(want, k);
      ASSERT_EQ(got.size(), want.size()) << n << " " << k;
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].id, want[i].id) << "n=" << n << " k=" << k << " rank " << i;
      }
    }
  }
}

TEST(SamplerChain, TopKBreaksTiesByLowestIdAndSkipsNonFinite) {
  std::vector<float> logits = {1.0f, 3.0f, -INFINITY, 3.0f, NAN, 2.0f, 3.0f, 0.5f};
  std::vector<Candidate> got;
  select_top_k(logits.data(), static_cast<int32_t>(logits.size()), 3, got);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].id, 1);
  EXPECT_EQ(got[1].id, 3);
  EXPECT_EQ(got[2].id, 6);
  select_top_k(logits.data(), static_cast<int32_t>(logits.size()), 100, got);
  EXPECT_EQ(got.size(), 6u);  // -inf and NaN are never candidates
}

TEST(SamplerChain, StagesKeepTheReferenceSets) {
  for (size_t n : {1003u, 4099u, 151936u}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      const auto logits = ref::random_logits(n, seed * 7919 + n, seed == 3 ? 1.0 : 3.0);
      for (double p : {0.3, 0.8, 0.95}) {
        const std::string what = "n=" + std::to_string(n) + " seed=" + std::to_string(seed) + " p=" + std::to_string(p);
        {
          auto got = all_candidates(logits);
          candidates_top_p(got, static_cast<float>(p));
          auto lo = ref::all_finite(logits), hi = lo;
          ref::top_p(lo, p - kEps);
          ref::top_p(hi, p + kEps);
          expect_between(ref::ids(lo), ids_of(got), ref::ids(hi), "top_p " + what);
          double sum = 0;
          for (const auto& c : got) sum += c.p;
          EXPECT_NEAR(sum, 1.0, 1e-5) << "top_p renormalises";
        }
        {
          auto got = all_candidates(logits);
          candidates_typical(got, static_cast<float>(p));
          auto lo = ref::all_finite(logits), hi = lo;
          ref::typical(lo, p - kEps);
          ref::typical(hi, p + kEps);
          expect_between(ref::ids(lo), ids_of(got), ref::ids(hi), "typical " + what);
        }
        {
          const double mp = p / 10;  // 0.03 .. 0.095
          auto got = all_candidates(logits);
          candidates_min_p(got, static_cast<float>(mp));
          auto lo = ref::all_finite(logits), hi = lo;
          ref::min_p(lo, mp + kEps);
          ref::min_p(hi, mp - kEps);
          expect_between(ref::ids(lo), ids_of(got), ref::ids(hi), "min_p " + what);
        }
      }
    }
  }
}

// The whole chain through Sampler::distribution, with the min_p-before-top_p shortcut, and
// the final probabilities after temperature compared with the reference's.
TEST(SamplerChain, DistributionMatchesReferenceChain) {
  struct Case {
    int32_t top_k;
    double typical_p, top_p, min_p, temperature;
  };
  const Case cases[] = {
      {0, 1.0, 0.9, 0.0, 0.7},   {40, 1.0, 0.95, 0.0, 0.6},  {0, 1.0, 0.8, 0.02, 1.3},
      {20, 1.0, 0.95, 0.05, 0.6}, {0, 0.9, 1.0, 0.0, 1.0},    {50, 0.7, 1.0, 0.0, 0.8},
      {0, 1.0, 1.0, 0.1, 1.0},    {0, 1.0, 1.0, 0.0, 1.0},    {3000, 1.0, 0.99, 0.0, 0.5},
  };
  for (size_t n : {1003u, 151936u}) {
    const auto logits = ref::random_logits(n, 99 + n, 2.5);
    for (const auto& cs : cases) {
      SamplingParams params;
      params.top_k = cs.top_k;
      params.typical_p = static_cast<float>(cs.typical_p);
      params.top_p = static_cast<float>(cs.top_p);
      params.min_p = static_cast<float>(cs.min_p);
      params.temperature = static_cast<float>(cs.temperature);
      params.seed = 1;
      Sampler sampler = make_sampler(params, static_cast<int32_t>(n));
      auto copy = logits;
      const auto& got = sampler.distribution(copy.data());

      ref::Chain lo{cs.top_k, cs.typical_p - kEps, cs.top_p - kEps, cs.min_p + kEps, cs.temperature};
      ref::Chain hi{cs.top_k, cs.typical_p + kEps, cs.top_p + kEps, std::max(0.0, cs.min_p - kEps), cs.temperature};
      if (cs.typical_p >= 1.0) lo.typical_p = hi.typical_p = 1.0;
      if (cs.top_p >= 1.0) lo.top_p = hi.top_p = 1.0;
      if (cs.min_p <= 0.0) lo.min_p = 0.0;
      const auto want_lo = ref::run(logits, lo), want_hi = ref::run(logits, hi);
      const std::string what = "n=" + std::to_string(n) + " top_k=" + std::to_string(cs.top_k) +
                               " typical=" + std::to_string(cs.typical_p) + " top_p=" + std::to_string(cs.top_p) +
                               " min_p=" + std::to_string(cs.min_p);
      expect_between(ref::ids(want_lo), ids_of(got), ref::ids(want_hi), what);
      if (ref::ids(want_lo) == ids_of(got)) {
        std::map<int32_t, double> want_p;
        for (const auto& c : want_lo) want_p[c.id] = c.p;
        for (const auto& c : got) EXPECT_NEAR(c.p, want_p[c.id], 2e-6 + 1e-4 * want_p[c.id]) << what << " id " << c.id;
      }
    }
  }
}

TEST(SamplerChain, GreedyIsArgmaxWithLowestIdOnTies) {
  for (size_t n : {1003u, 151936u}) {
    auto logits = ref::random_logits(n, 5 + n);
    const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    for (SamplingParams params : {SamplingParams{.temperature = 0.0f}, SamplingParams{.top_k = 1}}) {
      Sampler sampler = make_sampler(params, static_cast<int32_t>(n));
      auto copy = logits;
      EXPECT_EQ(sampler.sample(copy.data()), best);
    }
  }
  std::vector<float> ties = {0.0f, 2.0f, 1.0f, 2.0f, NAN, 2.0f};
  Sampler sampler = make_sampler(SamplingParams{.temperature = 0.0f}, 6);
  EXPECT_EQ(sampler.sample(ties.data()), 1);
  // Long rows (argmax runs in 16 lanes, then a tail): NaN before and among the maxima,
  // ties in different lanes and in the tail, -inf elsewhere; all -inf/NaN is an error.
  for (int32_t n : {1000, 1013}) {
    std::vector<float> row(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) row[static_cast<size_t>(i)] = static_cast<float>((i * 7919) % 97) * 0.01f;
    row[3] = NAN, row[500] = NAN, row[10] = -INFINITY;
    row[700] = 9.0f, row[37] = 9.0f, row[static_cast<size_t>(n - 1)] = 9.0f;
    Sampler s = make_sampler(SamplingParams{.temperature = 0.0f}, n);
    EXPECT_EQ(s.sample(row.data()), 37) << n;
    std::vector<float> none(static_cast<size_t>(n), -INFINITY);
    none[5] = NAN;
    EXPECT_THROW(s.sample(none.data()), Error);
  }
}

TEST(SamplerChain, PaddingRowsAndBannedEosAreNeverSampled) {
  // 10 real tokens, 4 padding rows with the highest logits.
  std::vector<float> logits = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 50, 50, 50};
  SamplingParams params{.temperature = 0.0f, .ignore_eos = true};
  Sampler sampler(params, SamplerVocab{.n_vocab = 14, .n_tokens = 10, .eog = {9}});
  auto copy = logits;
  EXPECT_EQ(sampler.sample(copy.data()), 8);  // 9 is eog, banned by ignore_eos
  EXPECT_FALSE(sampler.is_stop_token(9));

  Sampler normal(SamplingParams{.temperature = 0.0f, .stop_token_ids = {3}},
                 SamplerVocab{.n_vocab = 14, .n_tokens = 10, .eog = {9}});
  copy = logits;
  EXPECT_EQ(normal.sample(copy.data()), 9);
  EXPECT_TRUE(normal.is_stop_token(9));
  EXPECT_TRUE(normal.is_stop_token(3));
  EXPECT_FALSE(normal.is_stop_token(8));
}

TEST(SamplerChain, AllTokensBannedIsAnError) {
  std::vector<float> logits(8, -INFINITY);
  Sampler sampler = make_sampler(SamplingParams{.seed = 3}, 8);
  EXPECT_THROW(sampler.sample(logits.data()), Error);
}
