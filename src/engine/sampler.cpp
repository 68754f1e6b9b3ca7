// Sampler implementation; the chain order and its reasons are in sampler.h. Probabilities
// are float per candidate with sums in double. Orderings are total (ties broken by token id)
// so that nth_element/sort give the same candidate lists on every standard library.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"

namespace hearth {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// a ranks before b: higher logit first, lower id on ties.
bool by_logit(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// a ranks before b: smaller score first, lower id on ties.
bool by_score(const Candidate& a, const Candidate& b) {
  return a.score < b.score || (a.score == b.score && a.id < b.id);
}

// Moves the smallest prefix (in `before` order) whose probability mass reaches `mass` to the
// front of cands, sorted, and returns its length (at least 1, the crossing token included).
// Only growing chunks of the best candidates are sorted, so when the prefix is short the
// cost is a few O(n) nth_element passes rather than an O(n log n) sort.
template <class Before>
size_t mass_prefix(std::vector<Candidate>& cands, double mass, Before before) {
  const size_t n = cands.size();
  double cum = 0.0;
  size_t done = 0;
  size_t chunk = 64;
  while (done < n) {
    const size_t end = std::min(n, done + chunk);
    const auto first = cands.begin() + static_cast<std::ptrdiff_t>(done);
    const auto mid = cands.begin() + static_cast<std::ptrdiff_t>(end);
    if (end < n) std::nth_element(first, mid, cands.end(), before);
    std::sort(first, mid, before);
    for (size_t i = done; i < end; ++i) {
      cum += cands[i].p;
      if (cum >= mass) return i + 1;
    }
    done = end;
    chunk *= 4;
  }
  return n;
}

float max_logit(const std::vector<Candidate>& cands) {
  float m = kNegInf;
  for (const auto& c : cands) m = std::max(m, c.logit);
  return m;
}

// Keeps candidates whose probability is at least min_p times the largest, compared on logits
// (l >= l_max + log(min_p)) so no softmax is needed. Order and p are left as they were.
void filter_min_p(std::vector<Candidate>& cands, float min_p) {
  const float threshold = max_logit(cands) + std::log(min_p);
  std::erase_if(cands, [&](const Candidate& c) { return c.logit < threshold; });
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t os_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(device());
}

}  // namespace

// ---- chain stages ----------------------------------------------------------------------

void candidates_softmax(std::vector<Candidate>& cands) {
  const float m = max_logit(cands);
  double sum = 0.0;
  for (auto& c : cands) {
    c.p = std::exp(c.logit - m);
    sum += c.p;
  }
  for (auto& c : cands) c.p = static_cast<float>(c.p / sum);
}

void candidates_typical(std::vector<Candidate>& cands, float typical_p) {
  if (typical_p >= 1.0f || cands.size() <= 1) return;
  candidates_softmax(cands);
  double entropy = 0.0;
  for (const auto& c : cands) {
    if (c.p > 0.0f) entropy -= static_cast<double>(c.p) * std::log(static_cast<double>(c.p));
  }
  // Distance of each token's surprisal from the expected surprisal (the entropy).
  for (auto& c : cands) {
    c.score = c.p > 0.0f ? static_cast<float>(std::fabs(-std::log(static_cast<double>(c.p)) - entropy))
                         : std::numeric_limits<float>::infinity();
  }
  cands.resize(mass_prefix(cands, typical_p, by_score));
  candidates_softmax(cands);
}

void candidates_top_p(std::vector<Candidate>& cands, float top_p) {
  if (top_p >= 1.0f || cands.size() <= 1) return;
  candidates_softmax(cands);
  cands.resize(mass_prefix(cands, top_p, by_logit));
  candidates_softmax(cands);
}

void candidates_min_p(std::vector<Candidate>& cands, float min_p) {
  if (min_p <= 0.0f || cands.size() <= 1) return;
  filter_min_p(cands, min_p);
  candidates_softmax(cands);
}

void select_top_k(const float* logits, int32_t n, int32_t k, std::vector<Candidate>& out) {
  out.clear();
  if (k <= 0 || k > n) k = n;
  // Small k: one pass with a bounded heap whose front is the worst candidate kept so far.
  if (k <= 1024 && k < n / 4) {
    out.reserve(static_cast<size_t>(k));
    for (int32_t i = 0; i < n; ++i) {
      const float l = logits[i];
      if (!(l > kNegInf)) continue;  // -inf and NaN never compete
      const Candidate c{i, l, 0.0f, 0.0f};
      if (out.size() < static_cast<size_t>(k)) {
        out.push_back(c);
        std::push_heap(out.begin(), out.end(), by_logit);
      } else if (by_logit(c, out.front())) {
        std::pop_heap(out.begin(), out.end(), by_logit);
        out.back() = c;
        std::push_heap(out.begin(), out.end(), by_logit);
      }
    }
    std::sort_heap(out.begin(), out.end(), by_logit);
    return;
  }
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    if (logits[i] > kNegInf) out.push_back({i, logits[i], 0.0f, 0.0f});
  }
  const size_t keep = std::min(out.size(), static_cast<size_t>(k));
  const auto mid = out.begin() + static_cast<std::ptrdiff_t>(keep);
  if (keep < out.size()) std::nth_element(out.begin(), mid, out.end(), by_logit);
  out.resize(keep);
  std::sort(out.begin(), out.end(), by_logit);
}

// ---- logprobs --------------------------------------------------------------------------

double log_sum_exp(const float* logits, int32_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int32_t i = 0; i < n; ++i) {
    if (logits[i] > m) m = logits[i];
  }
  if (std::isinf(m) && m < 0) return m;
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    if (logits[i] > kNegInf) sum += std::exp(static_cast<double>(logits[i]) - m);
  }
  return m + std::log(sum);
}

std::vector<TokenLogprob> top_logprobs(const float* logits, int32_t n, int32_t k) {
  std::vector<TokenLogprob> out;
  if (k <= 0) return out;
  std::vector<Candidate> best;
  select_top_k(logits, n, k, best);
  const double lse = log_sum_exp(logits, n);
  out.reserve(best.size());
  for (const auto& c : best) out.push_back({c.id, static_cast<float>(c.logit - lse)});
  return out;
}

// ---- RNG -------------------------------------------------------------------------------

SamplerRng::SamplerRng(uint64_t seed) {
  uint64_t state = seed;
  for (auto& word : s_) word = splitmix64(state);
}

uint64_t SamplerRng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

// ---- Sampler ---------------------------------------------------------------------------

Sampler::Sampler(const SamplingParams& params, SamplerVocab vocab)
    : params_(params),
      vocab_(std::move(vocab)),
      seed_(params.seed ? *params.seed : os_seed()),
      rng_(seed_) {
  if (vocab_.n_vocab <= 0) fail("sampler: the vocabulary is empty");
  if (vocab_.n_tokens < 0 || vocab_.n_tokens > vocab_.n_vocab) vocab_.n_tokens = vocab_.n_vocab;
  params_.validate(vocab_.n_tokens);
  stop_ids_ = params_.stop_token_ids;
  if (!params_.ignore_eos) stop_ids_.insert(stop_ids_.end(), vocab_.eog.begin(), vocab_.eog.end());
  std::sort(stop_ids_.begin(), stop_ids_.end());
}

bool Sampler::is_stop_token(int32_t token) const {
  return std::binary_search(stop_ids_.begin(), stop_ids_.end(), token);
}

void Sampler::accept(int32_t token) {
  HEARTH_ASSERT(token >= 0 && token < vocab_.n_vocab);
  if (params_.penalty_last_n == 0) return;
  window_.push_back(token);
  ++counts_[token];
  if (params_.penalty_last_n > 0 && window_.size() > static_cast<size_t>(params_.penalty_last_n)) {
    const int32_t old = window_.front();
    window_.pop_front();
    if (--counts_[old] == 0) counts_.erase(old);
  }
}

void Sampler::reset() {
  window_.clear();
  counts_.clear();
}

void Sampler::modify_logits(float* logits, bool save_raw) {
  raw_.clear();
  auto save = [&](int32_t id) {
    if (save_raw) raw_.emplace_back(id, logits[id]);
  };
  for (const auto& [id, bias] : params_.logit_bias) {
    save(id);
    logits[id] += bias;
  }
  // With ignore_eos the end tokens are banned outright (as llama.cpp does), so the text
  // continues naturally instead of running on past an end-of-turn.
  if (params_.ignore_eos) {
    for (int32_t id : vocab_.eog) {
      if (id < 0 || id >= vocab_.n_vocab) continue;
      save(id);
      logits[id] = kNegInf;
    }
  }
  const float rep = params_.repetition_penalty;
  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  if (rep == 1.0f && presence == 0.0f && frequency == 0.0f) return;
  for (const auto& [id, count] : counts_) {
    save(id);
    float l = logits[id];
    // Dividing a negative logit would make the token more likely, so those are multiplied.
    l = l <= 0.0f ? l * rep : l / rep;
    logits[id] = l - static_cast<float>(count) * frequency - presence;
  }
}

int32_t Sampler::argmax(const float* logits) const {
  int32_t best = -1;
  float best_logit = kNegInf;
  for (int32_t i = 0; i < vocab_.n_tokens; ++i) {
    if (logits[i] > best_logit) {  // strict: the lowest id wins ties; NaN never wins
      best_logit = logits[i];
      best = i;
    }
  }
  if (best < 0) fail("sampler: no token can be sampled, every logit is -inf or NaN");
  return best;
}

void Sampler::run_chain(const float* logits) {
  const int32_t n = vocab_.n_tokens;
  cands_.clear();
  if (params_.greedy()) {
    const int32_t id = argmax(logits);
    cands_.push_back({id, logits[id], 1.0f, 0.0f});
    return;
  }
  if (params_.top_k > 0 && params_.top_k < n) {
    select_top_k(logits, n, params_.top_k, cands_);
  } else {
    cands_.reserve(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      if (logits[i] > kNegInf) cands_.push_back({i, logits[i], 0.0f, 0.0f});
    }
  }
  if (cands_.empty()) fail("sampler: no token can be sampled, every logit is -inf or NaN");

  candidates_typical(cands_, params_.typical_p);
  if (params_.top_p < 1.0f && cands_.size() > 1) {
    candidates_softmax(cands_);
    // min_p comes after top_p, and both keep a best-first prefix of the same order (the
    // renormalisation in between doesn't change ratios), so the result is the shorter of
    // the two prefixes. Cutting by min_p first leaves top_p far fewer candidates to sort;
    // p stays normalised over the set top_p was given, as top_p needs.
    if (params_.min_p > 0.0f) filter_min_p(cands_, params_.min_p);
    cands_.resize(mass_prefix(cands_, params_.top_p, by_logit));
  }
  if (params_.min_p > 0.0f) filter_min_p(cands_, params_.min_p);

  // Temperature last: softmax(logit / T) over the survivors.
  const float m = max_logit(cands_);
  const float inv_t = 1.0f / params_.temperature;
  double sum = 0.0;
  for (auto& c : cands_) {
    c.p = std::exp((c.logit - m) * inv_t);
    sum += c.p;
  }
  for (auto& c : cands_) c.p = static_cast<float>(c.p / sum);
}

const std::vector<Candidate>& Sampler::distribution(float* logits) {
  modify_logits(logits, /*save_raw=*/false);
  run_chain(logits);
  return cands_;
}

int32_t Sampler::sample(float* logits, SampleLogprobs* logprobs) {
  const int32_t n = vocab_.n_tokens;
  double lse = 0.0;
  if (logprobs) {
    lse = log_sum_exp(logits, n);
    logprobs->top = top_logprobs(logits, n, params_.top_logprobs);
  }
  modify_logits(logits, logprobs != nullptr);
  run_chain(logits);

  int32_t token = cands_.front().id;
  if (cands_.size() > 1) {
    double total = 0.0;
    for (const auto& c : cands_) total += c.p;
    const double target = rng_.uniform() * total;
    double cum = 0.0;
    token = cands_.back().id;  // if rounding leaves target unreached
    for (const auto& c : cands_) {
      cum += c.p;
      if (target < cum) {
        token = c.id;
        break;
      }
    }
  }
  if (logprobs) {
    float raw = logits[token];
    for (const auto& [id, value] : raw_) {
      if (id == token) {
        raw = value;
        break;
      }
    }
    logprobs->sampled = {token, static_cast<float>(raw - lse)};
  }
  return token;
}

}  // namespace hearth
