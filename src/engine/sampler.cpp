// Sampler implementation; the chain order and its reasons are in sampler.h. Probabilities
// are float per candidate with sums in double. Orderings are total (ties broken by token id)
// so that nth_element/sort give the same candidate lists on every standard library.
#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"

namespace hearth {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The two orders the chain ranks by. before(a, b): a ranks first (ties: lower id first).
// key(c): the same order as a number, smaller first, for bucketing (ties aside).
struct ByLogit {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
  static float key(const Candidate& c) { return -c.logit; }
};
struct ByScore {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.id < b.id);
  }
  static float key(const Candidate& c) { return c.score; }
};
constexpr ByLogit by_logit;

// e^x for x <= 0, which is all softmax needs once the max is subtracted: x = n ln2 + r with
// |r| <= ln2/2, e^r by its Taylor series to r^7 (truncation < 1e-8 relative), 2^n through
// the exponent bits; below -87 (under FLT_MIN) it is 0. About as accurate as libm's expf,
// several times faster, and, being ours (sampler.cpp is built with -ffp-contract=off), the
// same bits on every platform, so seeded sampling doesn't depend on the C library.
constexpr float kLog2e = 1.44269504f;
constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so n * kLn2Hi is exact
constexpr float kLn2Lo = -2.12194440e-4f;

// poly = e^r of the reduction (xc = n ln2 + r), for a float or, lane by lane, a vector of
// them (by reference: see exp_nonpos8).
template <class T>
inline void exp_reduced(const T& xc, const T& n, T& poly) {
  const T r = (xc - n * kLn2Hi) - n * kLn2Lo;
  poly = T{} + 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
}

inline float exp_nonpos(float x) {
  const float xc = std::max(x, -87.0f);
  const float n = std::floor(xc * kLog2e + 0.5f);
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  float poly;
  exp_reduced(xc, n, poly);
  return x < -87.0f ? 0.0f : poly * scale;
}

// exp_nonpos on 8 lanes at once (GCC/Clang vector extensions, which the compiler maps to
// the machine's SIMD registers or splits): the same operations in the same order, so each
// lane gives the scalar function's bits. floor is truncation corrected by one where it
// rounded up, exact for |t| < 2^31 (here t is in [-126, 1]). In place through a reference:
// a 32-byte vector passed or returned by value would change the ABI on x86-64 without AVX
// (a -Wpsabi error in builds with HEARTH_NATIVE=OFF).
using Float8 = float __attribute__((vector_size(32)));
using Int8 = int32_t __attribute__((vector_size(32)));

inline void exp_nonpos8(Float8& x) {
  const Float8 floor_x = Float8{} - 87.0f;
  const Float8 xc = x < floor_x ? floor_x : x;  // std::max(x, -87.0f), lane by lane
  const Float8 t = xc * kLog2e + 0.5f;
  Int8 ni = __builtin_convertvector(t, Int8);
  ni += __builtin_convertvector(ni, Float8) > t;  // -1 where truncation went up
  const Float8 n = __builtin_convertvector(ni, Float8);
  const auto scale = reinterpret_cast<Float8>((ni + 127) << 23);
  Float8 poly;
  exp_reduced(xc, n, poly);
  x = x < floor_x ? Float8{} : poly * scale;
}

// Moves the smallest prefix (in `before` order) whose probability mass reaches `mass` to the
// front of cands and returns its length (at least 1, the crossing token included). Small
// lists are sorted. Large ones get one histogram pass over the key: buckets wholly before
// the crossing bucket are kept as they are, only the crossing bucket is sorted, so a 152k
// vocabulary costs a few O(n) passes even when the prefix holds most of it. The kept
// tokens stay in their incoming order (a stable partition), then the crossing bucket's in
// sorted order: deterministic on every standard library, not sorted.
template <class Order>
size_t mass_prefix(std::vector<Candidate>& cands, double mass, Order before) {
  const size_t n = cands.size();
  auto walk = [&](size_t from, double cum) {
    for (size_t i = from; i < cands.size(); ++i) {
      cum += cands[i].p;
      if (cum >= mass) return i + 1;
    }
    return cands.size();  // rounding kept the mass just short: keep everything
  };
  if (n <= 512) {
    std::sort(cands.begin(), cands.end(), before);
    return walk(0, 0.0);
  }
  constexpr int kBuckets = 4096;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (const auto& c : cands) {
    const float k = Order::key(c);
    if (std::isfinite(k)) lo = std::min(lo, k), hi = std::max(hi, k);
  }
  const float scale = hi > lo ? static_cast<float>(kBuckets) / (hi - lo) : 0.0f;
  // Bucket of each candidate, monotone in the key; non-finite keys (typical's p = 0) go in
  // an extra last bucket.
  std::vector<uint16_t> bucket(n);
  std::vector<double> bucket_mass(kBuckets + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const float k = Order::key(cands[i]);
    const int b = std::isfinite(k) ? std::min(kBuckets - 1, static_cast<int>((k - lo) * scale)) : kBuckets;
    bucket[i] = static_cast<uint16_t>(b);
    bucket_mass[static_cast<size_t>(b)] += cands[i].p;
  }
  uint16_t cross = kBuckets;
  double cum_before = 0.0;
  for (int b = 0; b <= kBuckets; ++b) {
    if (cum_before + bucket_mass[static_cast<size_t>(b)] >= mass) {
      cross = static_cast<uint16_t>(b);
      break;
    }
    cum_before += bucket_mass[static_cast<size_t>(b)];
  }
  // Stable partition: before the crossing bucket, in it, after it (dropped).
  std::vector<Candidate> parts;
  parts.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (bucket[i] < cross) parts.push_back(cands[i]);
  }
  const size_t n_before = parts.size();
  for (size_t i = 0; i < n; ++i) {
    if (bucket[i] == cross) parts.push_back(cands[i]);
  }
  const size_t n_cross = parts.size() - n_before;
  cands.swap(parts);
  const auto first = cands.begin() + static_cast<std::ptrdiff_t>(n_before);
  std::sort(first, first + static_cast<std::ptrdiff_t>(n_cross), before);
  return walk(n_before, cum_before);
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

// Sums run over 4 accumulators in a fixed pattern: 4x shorter dependency chains than one
// running double, and still the same bits everywhere.
constexpr size_t kLanes = 4;

double sum_p(const Candidate* c, size_t n) {
  double acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) acc[j] += c[i + j].p;
  }
  for (; i < n; ++i) acc[0] += c[i].p;
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// p = softmax(logit / temperature) over cands; returns log of the normaliser
// sum(exp((logit - max) / temperature)).
double softmax(std::vector<Candidate>& cands, float temperature = 1.0f) {
  const float m = max_logit(cands);
  const float inv_t = 1.0f / temperature;
  for (auto& c : cands) c.p = exp_nonpos((c.logit - m) * inv_t);
  const double sum = sum_p(cands.data(), cands.size());
  const float inv_sum = static_cast<float>(1.0 / sum);
  for (auto& c : cands) c.p *= inv_sum;
  return std::log(sum);
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

void candidates_softmax(std::vector<Candidate>& cands) { softmax(cands); }

void candidates_typical(std::vector<Candidate>& cands, float typical_p) {
  if (typical_p >= 1.0f || cands.size() <= 1) return;
  const double log_sum = softmax(cands);
  const float m = max_logit(cands);
  // Surprisal -log p = log_sum - (logit - max), without a log per token.
  double entropy = 0.0;
  for (auto& c : cands) {
    c.score = static_cast<float>(log_sum - static_cast<double>(c.logit - m));
    entropy += static_cast<double>(c.p) * c.score;
  }
  // Distance of each token's surprisal from the expected surprisal (the entropy).
  for (auto& c : cands) c.score = static_cast<float>(std::fabs(c.score - entropy));
  cands.resize(mass_prefix(cands, typical_p, ByScore{}));
  candidates_softmax(cands);
}

void candidates_top_p(std::vector<Candidate>& cands, float top_p) {
  if (top_p >= 1.0f || cands.size() <= 1) return;
  candidates_softmax(cands);
  cands.resize(mass_prefix(cands, top_p, ByLogit{}));
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
  float m = kNegInf;
  for (int32_t i = 0; i < n; ++i) m = logits[i] > m ? logits[i] : m;  // NaN never wins
  if (m == kNegInf) return -std::numeric_limits<double>::infinity();
  // Terms in float (each is within an ulp), the sum in double.
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    if (logits[i] > kNegInf) sum += exp_nonpos(logits[i] - m);
  }
  return m + std::log(sum);
}

namespace {

std::vector<TokenLogprob> top_logprobs_lse(const float* logits, int32_t n, int32_t k, double lse) {
  std::vector<TokenLogprob> out;
  if (k <= 0) return out;
  std::vector<Candidate> best;
  select_top_k(logits, n, k, best);
  out.reserve(best.size());
  for (const auto& c : best) out.push_back({c.id, static_cast<float>(c.logit - lse)});
  return out;
}

}  // namespace

std::vector<TokenLogprob> top_logprobs(const float* logits, int32_t n, int32_t k) {
  return top_logprobs_lse(logits, n, k, k > 0 ? log_sum_exp(logits, n) : 0.0);
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
  vocab_.n_tokens = vocab_.sampled_ids();
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

// Two passes the compiler vectorises (a branchy one-pass loop cost ~160 us on a 152k row
// of a slow core): the largest logit over kLanes independent maxima (a comparison with
// NaN is false, so NaN never wins), then the first id holding it (ties: the lowest id).
int32_t Sampler::argmax(const float* logits) const {
  constexpr int32_t kLanes = 16;
  const int32_t n = vocab_.n_tokens;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, kNegInf);
  int32_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int32_t j = 0; j < kLanes; ++j) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
  float best = kNegInf;
  for (float v : lane) best = v > best ? v : best;
  for (; i < n; ++i) best = logits[i] > best ? logits[i] : best;
  if (best > kNegInf)
    for (int32_t k = 0; k < n; ++k)
      if (logits[k] == best) return k;
  fail("sampler: no token can be sampled, every logit is -inf or NaN");
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
  finish_chain();
}

void Sampler::finish_chain() {
  if (cands_.empty()) fail("sampler: no token can be sampled, every logit is -inf or NaN");

  candidates_typical(cands_, params_.typical_p);
  if (params_.top_p < 1.0f && cands_.size() > 1) {
    candidates_softmax(cands_);
    // min_p comes after top_p, and both keep a best-first prefix of the same order (the
    // renormalisation in between doesn't change ratios), so the result is the shorter of
    // the two prefixes. Cutting by min_p first leaves top_p far fewer candidates to sort;
    // p stays normalised over the set top_p was given, as top_p needs.
    if (params_.min_p > 0.0f) filter_min_p(cands_, params_.min_p);
    cands_.resize(mass_prefix(cands_, params_.top_p, ByLogit{}));
  }
  if (params_.min_p > 0.0f) filter_min_p(cands_, params_.min_p);

  softmax(cands_, params_.temperature);  // temperature last
}

// Inverse CDF: the first candidate whose cumulative p exceeds u * total, found block by
// block so the long running sum is over block sums (see sum_p).
int32_t Sampler::draw(double u) const {
  constexpr size_t kBlock = 256;
  const size_t n = cands_.size();
  const double target = u * sum_p(cands_.data(), n);
  double cum = 0.0;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t len = std::min(kBlock, n - b);
    const double block = sum_p(&cands_[b], len);
    if (cum + block <= target && b + len < n) {
      cum += block;
      continue;
    }
    for (size_t i = b; i < b + len; ++i) {
      cum += cands_[i].p;
      if (target < cum) return cands_[i].id;
    }
    return cands_[b + len - 1].id;  // rounding left the target just out of reach
  }
  return cands_.back().id;
}

bool Sampler::plain_temperature() const {
  return !params_.greedy() && (params_.top_k <= 0 || params_.top_k >= vocab_.n_tokens) && params_.typical_p >= 1.0f &&
         params_.top_p >= 1.0f && params_.min_p <= 0.0f;
}

// Temperature alone (OpenAI clients often send only that): the distribution of run_chain +
// draw, softmax(finite logits / T), but from contiguous floats 8 lanes at a time instead
// of 16-byte candidates, which cost 1.2 ms for a 152k row on the 2-vCPU VM. p is left
// unnormalised; non-finite logits get p = 0 and are never drawn. Sums: 4-lane doubles per
// block of 256, then over the blocks.
int32_t Sampler::draw_dense(const float* logits) {
  constexpr int32_t kW = 8;
  const int32_t n = vocab_.n_tokens;
  const Float8 neg_inf = Float8{} + kNegInf;
  Float8 m8 = neg_inf;
  Int8 finite8{};
  int32_t i = 0;
  for (; i + kW <= n; i += kW) {
    Float8 v;
    std::memcpy(&v, logits + i, sizeof(v));
    m8 = v > m8 ? v : m8;  // NaN never wins
    finite8 -= v > neg_inf;
  }
  float m = kNegInf;
  int64_t n_finite = 0;
  for (int32_t j = 0; j < kW; ++j) m = m8[j] > m ? m8[j] : m, n_finite += finite8[j];
  for (; i < n; ++i) m = logits[i] > m ? logits[i] : m, n_finite += logits[i] > kNegInf ? 1 : 0;
  if (n_finite == 0) fail("sampler: no token can be sampled, every logit is -inf or NaN");
  if (n_finite == 1) return argmax(logits);  // one candidate: no draw, as run_chain's path
  const double u = rng_.uniform();
  dense_p_.resize(static_cast<size_t>(n));
  const float inv_t = 1.0f / params_.temperature;
  for (i = 0; i + kW <= n; i += kW) {
    Float8 v;
    std::memcpy(&v, logits + i, sizeof(v));
    Float8 e = (v - m) * inv_t;
    exp_nonpos8(e);
    const Float8 p = v > neg_inf ? e : Float8{};
    std::memcpy(dense_p_.data() + i, &p, sizeof(p));
  }
  for (; i < n; ++i) dense_p_[static_cast<size_t>(i)] = logits[i] > kNegInf ? exp_nonpos((logits[i] - m) * inv_t) : 0.0f;

  constexpr size_t kBlock = 256;
  const auto count = static_cast<size_t>(n);
  auto block_sum = [&](size_t b, size_t len) {
    double acc[kLanes] = {};
    size_t k = 0;
    for (; k + kLanes <= len; k += kLanes)
      for (size_t j = 0; j < kLanes; ++j) acc[j] += dense_p_[b + k + j];
    for (; k < len; ++k) acc[0] += dense_p_[b + k];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  };
  dense_blocks_.clear();
  double total = 0.0;
  for (size_t b = 0; b < count; b += kBlock) {
    dense_blocks_.push_back(block_sum(b, std::min(kBlock, count - b)));
    total += dense_blocks_.back();
  }
  const double target = u * total;
  double cum = 0.0;
  int32_t last = -1;  // the last token with p > 0 so far: the answer if rounding leaves the target out of reach
  for (size_t k = 0; k < dense_blocks_.size(); ++k) {
    const size_t b = k * kBlock, len = std::min(kBlock, count - b);
    if (cum + dense_blocks_[k] <= target && k + 1 < dense_blocks_.size()) {
      cum += dense_blocks_[k];
      for (size_t j = b + len; j-- > b;)
        if (dense_p_[j] > 0.0f) {
          last = static_cast<int32_t>(j);
          break;
        }
      continue;
    }
    for (size_t j = b; j < b + len; ++j) {
      if (!(dense_p_[j] > 0.0f)) continue;
      cum += dense_p_[j];
      last = static_cast<int32_t>(j);
      if (target < cum) return last;
    }
  }
  return last;
}

const std::vector<Candidate>& Sampler::distribution(float* logits) {
  modify_logits(logits, /*save_raw=*/false);
  mask_forced(logits);
  run_chain(logits);
  return cands_;
}

// forced_start: every token that does not continue one of the sequences still matching
// the output so far gets -inf, so the chain (greedy or not) can only pick a continuation.
// The mask comes after bias and penalties, which therefore only rank the allowed tokens.
void Sampler::mask_forced(float* logits) {
  if (params_.forced_start.empty() || forced_done_) return;
  const size_t at = forced_so_far_.size();
  std::vector<int32_t> allowed;
  for (const auto& seq : params_.forced_start) {
    if (seq.size() > at && std::equal(forced_so_far_.begin(), forced_so_far_.end(), seq.begin()))
      allowed.push_back(seq[at]);
  }
  HEARTH_ASSERT(!allowed.empty());
  std::vector<float> keep(allowed.size());
  for (size_t i = 0; i < allowed.size(); ++i) keep[i] = logits[allowed[i]];
  std::fill(logits, logits + vocab_.n_vocab, -std::numeric_limits<float>::infinity());
  // A token whose logit is -inf or NaN must still be pickable: it is the only way on.
  for (size_t i = 0; i < allowed.size(); ++i)
    logits[allowed[i]] = std::isfinite(keep[i]) ? keep[i] : -1e30f;
}

void Sampler::advance_forced(int32_t token) {
  if (params_.forced_start.empty() || forced_done_) return;
  forced_so_far_.push_back(token);
  for (const auto& seq : params_.forced_start) {
    if (seq == forced_so_far_) forced_done_ = true;
  }
}

bool Sampler::can_sample_top(int32_t available, bool want_logprobs) const {
  if (want_logprobs || !params_.logit_bias.empty()) return false;
  if (!params_.forced_start.empty() && !forced_done_) return false;
  const bool penalties = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                         params_.frequency_penalty != 0.0f;
  if (penalties && !counts_.empty()) return false;
  if (!params_.greedy() && (params_.top_k <= 0 || params_.top_k >= vocab_.n_tokens)) return false;
  return top_needed() <= available;
}

int32_t Sampler::top_needed() const {
  // ignore_eos's banned ids may take places in the list: room for them too.
  const auto banned = params_.ignore_eos ? static_cast<int32_t>(vocab_.eog.size()) : 0;
  return (params_.greedy() ? 1 : std::max(params_.top_k, 1)) + banned;
}

int32_t Sampler::sample_top(const int32_t* ids, const float* values, int32_t n) {
  HEARTH_ASSERT(can_sample_top(n, false));
  // ignore_eos bans the end tokens (-inf): they leave the list, and what stays is still the
  // best of the row without them (can_sample_top asked for room for them).
  const bool banned = params_.ignore_eos && !vocab_.eog.empty();
  const int32_t want = params_.greedy() ? 1 : params_.top_k;
  cands_.clear();
  for (int32_t j = 0; j < n && ids[j] >= 0 && static_cast<int32_t>(cands_.size()) < want; ++j) {
    if (banned && std::find(vocab_.eog.begin(), vocab_.eog.end(), ids[j]) != vocab_.eog.end()) continue;
    cands_.push_back({ids[j], values[j], 0.0f, 0.0f});
  }
  if (params_.greedy()) {
    if (cands_.empty()) fail("sampler: no token can be sampled, every logit is -inf or NaN");
    cands_.front().p = 1.0f;
  } else {
    finish_chain();
  }
  const int32_t token = cands_.size() > 1 ? draw(rng_.uniform()) : cands_.front().id;
  advance_forced(token);
  return token;
}

int32_t Sampler::sample(float* logits, SampleLogprobs* logprobs) {
  const int32_t n = vocab_.n_tokens;
  double lse = 0.0;
  if (logprobs) {
    lse = log_sum_exp(logits, n);
    logprobs->top = top_logprobs_lse(logits, n, params_.top_logprobs, lse);
  }
  modify_logits(logits, logprobs != nullptr);
  mask_forced(logits);
  int32_t token = -1;
  if (plain_temperature()) {
    token = draw_dense(logits);
  } else {
    run_chain(logits);
    token = cands_.size() > 1 ? draw(rng_.uniform()) : cands_.front().id;
  }
  advance_forced(token);
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
