// Straightforward reference for the sampler chain, used only by the tests: double precision,
// a full sort of every candidate at every stage, min_p compared on probabilities (the
// sampler compares logits). Written independently of src/engine/sampler.cpp so the two can
// disagree when one is wrong.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace ref {

struct Cand {
  int32_t id;
  double logit;
  double p;
  double score = 0.0;  // typical_p's sort key
};

inline std::vector<Cand> all_finite(const std::vector<float>& logits, int32_t n_tokens = -1) {
  std::vector<Cand> out;
  const int32_t n = n_tokens < 0 ? static_cast<int32_t>(logits.size()) : n_tokens;
  for (int32_t i = 0; i < n; ++i) {
    if (std::isfinite(logits[static_cast<size_t>(i)])) out.push_back({i, logits[static_cast<size_t>(i)], 0.0, 0.0});
  }
  return out;
}

inline void softmax(std::vector<Cand>& c, double temperature = 1.0) {
  double m = -INFINITY;
  for (const auto& x : c) m = std::max(m, x.logit);
  double sum = 0.0;
  for (auto& x : c) sum += (x.p = std::exp((x.logit - m) / temperature));
  for (auto& x : c) x.p /= sum;
}

inline void sort_by_logit(std::vector<Cand>& c) {
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  });
}

inline void top_k(std::vector<Cand>& c, int32_t k) {
  sort_by_logit(c);
  if (k > 0 && static_cast<size_t>(k) < c.size()) c.resize(static_cast<size_t>(k));
}

// Keeps the shortest prefix of the (already ordered) list whose mass reaches p.
inline void keep_mass(std::vector<Cand>& c, double p) {
  double cum = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      c.resize(i + 1);
      return;
    }
  }
}

inline void typical(std::vector<Cand>& c, double p) {
  if (p >= 1.0) return;
  softmax(c);
  double h = 0.0;
  for (const auto& x : c) h -= x.p > 0 ? x.p * std::log(x.p) : 0.0;
  for (auto& x : c) x.score = std::fabs(-std::log(x.p) - h);
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) {
    return a.score != b.score ? a.score < b.score : a.id < b.id;
  });
  keep_mass(c, p);
}

inline void top_p(std::vector<Cand>& c, double p) {
  if (p >= 1.0) return;
  softmax(c);
  sort_by_logit(c);
  keep_mass(c, p);
}

inline void min_p(std::vector<Cand>& c, double p) {
  if (p <= 0.0) return;
  softmax(c);
  double pmax = 0.0;
  for (const auto& x : c) pmax = std::max(pmax, x.p);
  std::erase_if(c, [&](const Cand& x) { return x.p < p * pmax; });
}

struct Chain {
  int32_t top_k = 0;
  double typical_p = 1.0, top_p = 1.0, min_p = 0.0, temperature = 1.0;
};

// The whole chain; returns the final candidates with p after temperature.
inline std::vector<Cand> run(const std::vector<float>& logits, const Chain& chain, int32_t n_tokens = -1) {
  auto c = all_finite(logits, n_tokens);
  top_k(c, chain.top_k);
  typical(c, chain.typical_p);
  top_p(c, chain.top_p);
  min_p(c, chain.min_p);
  softmax(c, chain.temperature);
  return c;
}

inline std::set<int32_t> ids(const std::vector<Cand>& c) {
  std::set<int32_t> s;
  for (const auto& x : c) s.insert(x.id);
  return s;
}

inline std::vector<float> random_logits(size_t n, uint64_t seed, double scale = 3.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<float> out(n);
  for (auto& x : out) x = static_cast<float>(normal(gen));
  return out;
}

}  // namespace ref
