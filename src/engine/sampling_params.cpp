// Range checks for SamplingParams and the generation_config.json overlay. The ranges are
// OpenAI's where OpenAI defines the field, and the widest sensible ones elsewhere; every
// message names the request field so the server can return it verbatim in a 400.
#include "engine/sampling_params.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hearth {

namespace {

void check_range(const char* name, double value, double lo, double hi, bool lo_open = false) {
  const bool below = lo_open ? !(value > lo) : !(value >= lo);
  if (!std::isfinite(value) || below || value > hi) {
    fail(std::string(name) + ": " + std::to_string(value) + " is out of range, expected " +
         (lo_open ? "(" : "[") + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

double number_key(const nlohmann::json& config, const char* key) {
  const auto& value = config.at(key);
  if (!value.is_number()) fail(std::string("generation_config.json: ") + key + ": expected a number");
  return value.get<double>();
}

}  // namespace

void SamplingParams::validate(int32_t n_vocab) const {
  check_range("temperature", temperature, 0.0, 2.0);
  if (top_k < -1) fail("top_k: " + std::to_string(top_k) + " is out of range, expected -1, 0 (off) or a positive count");
  check_range("top_p", top_p, 0.0, 1.0, /*lo_open=*/true);
  check_range("min_p", min_p, 0.0, 1.0);
  check_range("typical_p", typical_p, 0.0, 1.0, /*lo_open=*/true);
  check_range("repetition_penalty", repetition_penalty, 0.0, 10.0, /*lo_open=*/true);
  check_range("presence_penalty", presence_penalty, -2.0, 2.0);
  check_range("frequency_penalty", frequency_penalty, -2.0, 2.0);
  if (penalty_last_n < -1) fail("penalty_last_n: " + std::to_string(penalty_last_n) + " is out of range, expected -1 or more");
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || (n_vocab > 0 && id >= n_vocab))
      fail("logit_bias: token id " + std::to_string(id) + " is not in the vocabulary");
    check_range("logit_bias", bias, -100.0, 100.0);
  }
  if (max_tokens != -1 && max_tokens < 1)
    fail("max_tokens: " + std::to_string(max_tokens) + " is out of range, expected at least 1");
  for (const auto& s : stop) {
    if (s.empty()) fail("stop: stop strings must not be empty");
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0 || (n_vocab > 0 && id >= n_vocab))
      fail("stop_token_ids: token id " + std::to_string(id) + " is not in the vocabulary");
  }
  if (top_logprobs < 0 || top_logprobs > 20)
    fail("top_logprobs: " + std::to_string(top_logprobs) + " is out of range, expected [0, 20]");
  for (const auto& seq : forced_start) {
    if (seq.empty()) fail("forced_start: a sequence is empty");
    for (int32_t id : seq) {
      if (id < 0 || (n_vocab > 0 && id >= n_vocab))
        fail("forced_start: token id " + std::to_string(id) + " is not in the vocabulary");
    }
  }
}

void apply_generation_config(const nlohmann::json& config, SamplingParams& params) {
  if (!config.is_object()) fail("generation_config.json: expected a JSON object");
  if (config.contains("temperature")) params.temperature = static_cast<float>(number_key(config, "temperature"));
  if (config.contains("top_k")) {
    const auto& value = config.at("top_k");
    if (!value.is_number_integer()) fail("generation_config.json: top_k: expected an integer");
    params.top_k = value.get<int32_t>();
  }
  if (config.contains("top_p")) params.top_p = static_cast<float>(number_key(config, "top_p"));
  if (config.contains("min_p")) params.min_p = static_cast<float>(number_key(config, "min_p"));
  if (config.contains("typical_p")) params.typical_p = static_cast<float>(number_key(config, "typical_p"));
  if (config.contains("repetition_penalty"))
    params.repetition_penalty = static_cast<float>(number_key(config, "repetition_penalty"));
  // Transformers ignores temperature & co. when do_sample is false: plain greedy search.
  if (config.contains("do_sample")) {
    const auto& value = config.at("do_sample");
    if (!value.is_boolean()) fail("generation_config.json: do_sample: expected true or false");
    if (!value.get<bool>()) params.temperature = 0.0f;
  }
}

std::vector<int32_t> generation_config_eos(const nlohmann::json& config) {
  std::vector<int32_t> ids;
  if (!config.is_object() || !config.contains("eos_token_id")) return ids;
  const auto& value = config.at("eos_token_id");
  auto push = [&](const nlohmann::json& v) {
    if (!v.is_number_integer()) fail("generation_config.json: eos_token_id: expected an integer or a list of integers");
    ids.push_back(v.get<int32_t>());
  };
  if (value.is_array()) {
    for (const auto& v : value) push(v);
  } else if (!value.is_null()) {
    push(value);
  }
  return ids;
}

}  // namespace hearth
