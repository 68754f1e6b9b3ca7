// Sampling parameters of one request, named as the OpenAI API (and llama.cpp's / vLLM's
// extensions of it) name them, so the server can fill them field by field from a JSON body.
// Defaults are "off" for every transform (OpenAI's temperature 1 / top_p 1); the model's
// generation_config.json is layered on top by apply_generation_config(), and the request's
// own fields on top of that. validate() rejects out-of-range values with hearth::Error, which
// the server turns into HTTP 400.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hearth {

struct SamplingParams {
  // Softmax temperature, applied last in the chain (see sampler.h). 0 means greedy argmax.
  // Range [0, 2] as in OpenAI.
  float temperature = 1.0f;
  // Keep the k most likely tokens; <= 0 turns it off (0 and -1 are both accepted).
  int32_t top_k = 0;
  // Nucleus: keep the smallest most-likely set whose mass reaches top_p; 1 = off. (0, 1].
  float top_p = 1.0f;
  // Drop tokens whose probability is below min_p * p(most likely token); 0 = off. [0, 1].
  float min_p = 0.0f;
  // Locally typical sampling mass; 1 = off. (0, 1].
  float typical_p = 1.0f;

  // Multiplicative penalty on tokens seen in the window (CTRL / llama.cpp style: positive
  // logits are divided by it, negative ones multiplied); 1 = off. (0, 10].
  float repetition_penalty = 1.0f;
  // Additive penalties (OpenAI): logit -= presence * (count > 0) + frequency * count. [-2, 2].
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // How many of the most recent accepted tokens the penalties look at; -1 = all of them,
  // 0 = penalties off.
  int32_t penalty_last_n = 64;

  // Added to the raw logit of each token id before anything else (OpenAI: [-100, 100]).
  std::map<int32_t, float> logit_bias;

  // The same seed and settings give the same tokens. Without a seed one is drawn from the OS.
  std::optional<uint64_t> seed;

  // Most tokens to generate; -1 = until the context is full (the server clamps it).
  int32_t max_tokens = -1;
  // Generation stops before the first occurrence of any of these strings (not emitted).
  std::vector<std::string> stop;
  // Generation stops after any of these tokens (not emitted), in addition to the model's
  // end-of-generation tokens unless ignore_eos is set.
  std::vector<int32_t> stop_token_ids;
  // Don't stop at (and never sample) the model's end-of-generation tokens.
  bool ignore_eos = false;

  // OpenAI logprobs: report the log-probability of each sampled token, and of the
  // top_logprobs most likely alternatives (0..20).
  bool logprobs = false;
  int32_t top_logprobs = 0;

  // Constrained start: when not empty, the first generated tokens must spell one of these
  // token sequences exactly. Each step may only pick a token that keeps the output a prefix
  // of at least one of them, until one is complete; then sampling is free again. The server
  // uses it to force a valid function name for tool_choice "required" with several tools.
  // No sequence may be a proper prefix of another (end each with a delimiter).
  std::vector<std::vector<int32_t>> forced_start;

  // Throws hearth::Error naming the first field that is out of range. n_vocab > 0 also
  // checks logit_bias and stop_token_ids ids against the vocabulary.
  void validate(int32_t n_vocab = 0) const;

  // True when sampling is deterministic argmax (temperature 0 or top_k 1).
  bool greedy() const { return temperature <= 0.0f || top_k == 1; }
};

// Copies the sampling keys present in a Hugging Face generation_config.json object
// (temperature, top_k, top_p, min_p, typical_p, repetition_penalty; do_sample=false means
// greedy) into params. Keys that are absent leave params alone; keys of the wrong type throw
// hearth::Error naming the key.
void apply_generation_config(const nlohmann::json& config, SamplingParams& params);

// The eos_token_id of a generation_config.json (an integer or a list), [] when absent.
std::vector<int32_t> generation_config_eos(const nlohmann::json& config);

}  // namespace hearth
