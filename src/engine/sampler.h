// Per-sequence token sampler: turns one row of logits into the next token.
//
// Order of operations (the llama.cpp default chain, minus the samplers we don't offer):
//   1. logit_bias is added to the raw logits;
//   2. penalties over the last penalty_last_n accepted tokens (repetition, then presence and
//      frequency);
//   3. greedy argmax if temperature is 0 (ties go to the lowest id); otherwise
//   4. top_k -> typical_p -> top_p -> min_p, each on the candidates left by the previous one,
//      with probabilities renormalised over those candidates at temperature 1;
//   5. temperature: softmax(logit / T) over what is left, and one draw from the seeded RNG.
// Temperature comes last, so the cut-offs see the untempered distribution (as in llama.cpp;
// HF/vLLM temper first).
//
// Cost per token: a few O(n_vocab) passes plus work on the survivors; temperature alone
// (no cut-off) skips the candidate list and draws from 8-lane passes over the row. top_k uses a bounded
// heap (or nth_element for big k); top_p and typical_p find their cut with one histogram
// pass over the candidates and sort only the bucket the cut falls in, so a 152k vocabulary
// is never fully sorted, however flat the distribution.
// Reproducibility: ties between equal scores are broken by token id and every reordering is
// either a sort by such a total order or stable, so results don't depend on the standard
// library; the RNG (xoshiro256**), the uniform draw and exp are our own, and sampler.cpp
// is compiled without FMA contraction, so a seed gives the same tokens on every platform
// (up to libm's log, used for min_p's threshold and the softmax normaliser).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "engine/sampling_params.h"

namespace hearth {

// What the sampler needs to know about the model's vocabulary.
struct SamplerVocab {
  int32_t n_vocab = 0;        // length of one logits row
  int32_t n_tokens = -1;      // ids >= n_tokens are padding rows, never sampled; -1 = n_vocab
  std::vector<int32_t> eog;   // end-of-generation ids (Qwen3: <|im_end|>, <|endoftext|>)
  // Ids that may be sampled: [0, sampled_ids()).
  int32_t sampled_ids() const { return n_tokens >= 0 && n_tokens <= n_vocab ? n_tokens : n_vocab; }
};

// A token still in the running. p is a probability normalised over the current candidates
// (valid after softmax), score a per-stage sort key (typical_p).
struct Candidate {
  int32_t id;
  float logit;
  float p;
  float score;
};

// Log-probability of one token under log_softmax of the raw logits.
struct TokenLogprob {
  int32_t id;
  float logprob;
};

// What OpenAI's logprobs report for one sampled token.
struct SampleLogprobs {
  TokenLogprob sampled{};
  std::vector<TokenLogprob> top;  // [top_logprobs], most likely first
};

// The chain stages, usable on their own (the tests run them against a full-sort reference).
// Each keeps a subset of cands and leaves p normalised over it; the order of what is kept
// is deterministic but not necessarily sorted.
void candidates_softmax(std::vector<Candidate>& cands);
void candidates_typical(std::vector<Candidate>& cands, float typical_p);
void candidates_top_p(std::vector<Candidate>& cands, float top_p);
void candidates_min_p(std::vector<Candidate>& cands, float min_p);
// The k best of logits[0, n) by (logit desc, id asc), skipping -inf/NaN; sorted best first.
void select_top_k(const float* logits, int32_t n, int32_t k, std::vector<Candidate>& out);

// log(sum(exp(logits[0, n)))), computed stably (max-shifted, summed in double); -inf if
// every logit is -inf.
double log_sum_exp(const float* logits, int32_t n);
// The k most likely tokens under log_softmax(logits[0, n)), most likely first.
std::vector<TokenLogprob> top_logprobs(const float* logits, int32_t n, int32_t k);

// xoshiro256** seeded through splitmix64 (Blackman & Vigna): small, fast, and the same
// stream on every platform, unlike std:: distributions.
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed);
  uint64_t next();
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  // Throws hearth::Error if params are out of range for this vocabulary.
  Sampler(const SamplingParams& params, SamplerVocab vocab);

  // Picks the next token from logits[n_vocab] (modified in place: bias and penalties). If
  // logprobs is given it is filled from the raw logits as they were on entry.
  int32_t sample(float* logits, SampleLogprobs* logprobs = nullptr);

  // Whether sample_top can pick this sampler's next token exactly, from a row's best
  // `available` logits alone (by the ByLogit order, as select_top_k gives them, -inf and NaN
  // left out): greedy or a top_k of at most `available`, with no logit_bias, no active
  // penalty, no forced start and no logprobs. Then the rest of the row cannot matter:
  // every later stage sees only top_k's candidates. ignore_eos's bans only drop entries.
  bool can_sample_top(int32_t available, bool want_logprobs) const;
  // The fewest best logits sample_top needs: 1 (greedy) or top_k, plus room for the ids
  // ignore_eos bans. Meaningful where can_sample_top(Backend::kMaxTopRows, ...) holds.
  int32_t top_needed() const;
  // The next token from the row's best logits: ids[n] best first, values[n] (ids padded with
  // -1 where the row has fewer). The same token, and the same RNG draws, as sample() on
  // the whole row. Call only when can_sample_top(n, false).
  int32_t sample_top(const int32_t* ids, const float* values, int32_t n);

  // Runs steps 1-5 without drawing: the final candidates with their probabilities, in the
  // order the draw walks them. Greedy gives one candidate with p = 1. For tests and tools.
  const std::vector<Candidate>& distribution(float* logits);

  // Tells the penalties about a token that is now part of the sequence (sampled ones, and
  // prompt tokens too if they should count, as llama.cpp's server does).
  void accept(int32_t token);
  // Forgets the accepted tokens (not the RNG state).
  void reset();

  // True if generation ends after this token: stop_token_ids, and the model's end-of-
  // generation tokens unless ignore_eos. The token's text is not emitted.
  bool is_stop_token(int32_t token) const;

  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  void modify_logits(float* logits, bool save_raw);
  void run_chain(const float* logits);
  void finish_chain();  // the stages after top_k, on cands_
  int32_t argmax(const float* logits) const;
  int32_t draw(double u) const;
  // Temperature alone (no cut-off applies): the draw from softmax(logits / T) computed
  // over contiguous floats (dense_p_) instead of candidates.
  bool plain_temperature() const;
  int32_t draw_dense(const float* logits);

  SamplingParams params_;
  SamplerVocab vocab_;
  uint64_t seed_;
  SamplerRng rng_;
  std::vector<int32_t> stop_ids_;                // sorted
  std::deque<int32_t> window_;                  // the last penalty_last_n accepted tokens
  std::unordered_map<int32_t, int32_t> counts_;  // token -> occurrences in window_
  std::vector<Candidate> cands_;                 // reused across calls
  std::vector<float> dense_p_;                   // [n_tokens] for draw_dense, reused
  std::vector<double> dense_blocks_;             // its sums per block of 256
  std::vector<std::pair<int32_t, float>> raw_;   // raw logits of modified ids, for logprobs
  // params_.forced_start progress: the tokens sampled so far while the constraint holds.
  std::vector<int32_t> forced_so_far_;
  bool forced_done_ = false;
  void mask_forced(float* logits);
  void advance_forced(int32_t token);
};

}  // namespace hearth
