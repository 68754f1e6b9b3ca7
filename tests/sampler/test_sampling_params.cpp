// SamplingParams::validate (each out-of-range field is named in the error, so the server's
// 400 says what to fix) and the generation_config.json overlay.
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/sampling_params.h"

using namespace hearth;

namespace {

// Expects validate() to throw an Error whose message starts with field.
void expect_rejected(const std::function<void(SamplingParams&)>& change, const std::string& field) {
  SamplingParams params;
  change(params);
  try {
    params.validate(1000);
    ADD_FAILURE() << field << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(field + ":", 0), 0u) << e.what();
  }
}

}  // namespace

TEST(SamplingParams, DefaultsAndEdgesAreValid) {
  SamplingParams params;
  EXPECT_NO_THROW(params.validate(1000));
  params.temperature = 0.0f;
  params.top_p = 1.0f;
  params.min_p = 1.0f;
  params.top_k = -1;
  params.penalty_last_n = -1;
  params.presence_penalty = -2.0f;
  params.frequency_penalty = 2.0f;
  params.logit_bias = {{0, -100.0f}, {999, 100.0f}};
  params.top_logprobs = 20;
  params.max_tokens = 1;
  EXPECT_NO_THROW(params.validate(1000));
  EXPECT_TRUE(params.greedy());
}

TEST(SamplingParams, OutOfRangeValuesNameTheField) {
  expect_rejected([](auto& p) { p.temperature = -0.1f; }, "temperature");
  expect_rejected([](auto& p) { p.temperature = 2.5f; }, "temperature");
  expect_rejected([](auto& p) { p.temperature = NAN; }, "temperature");
  expect_rejected([](auto& p) { p.top_p = 0.0f; }, "top_p");
  expect_rejected([](auto& p) { p.top_p = 1.01f; }, "top_p");
  expect_rejected([](auto& p) { p.top_k = -2; }, "top_k");
  expect_rejected([](auto& p) { p.min_p = -0.5f; }, "min_p");
  expect_rejected([](auto& p) { p.typical_p = 0.0f; }, "typical_p");
  expect_rejected([](auto& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty");
  expect_rejected([](auto& p) { p.presence_penalty = 2.5f; }, "presence_penalty");
  expect_rejected([](auto& p) { p.frequency_penalty = -3.0f; }, "frequency_penalty");
  expect_rejected([](auto& p) { p.penalty_last_n = -5; }, "penalty_last_n");
  expect_rejected([](auto& p) { p.logit_bias = {{5, 101.0f}}; }, "logit_bias");
  expect_rejected([](auto& p) { p.logit_bias = {{1000, 1.0f}}; }, "logit_bias");
  expect_rejected([](auto& p) { p.logit_bias = {{-1, 1.0f}}; }, "logit_bias");
  expect_rejected([](auto& p) { p.max_tokens = 0; }, "max_tokens");
  expect_rejected([](auto& p) { p.stop = {"ok", ""}; }, "stop");
  expect_rejected([](auto& p) { p.stop_token_ids = {1000}; }, "stop_token_ids");
  expect_rejected([](auto& p) { p.top_logprobs = 21; }, "top_logprobs");
}

TEST(SamplingParams, GenerationConfigOverlay) {
  // Qwen3-8B's generation_config.json.
  const auto qwen = nlohmann::json::parse(R"({
    "bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
    "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
    "transformers_version": "4.51.0"})");
  SamplingParams params;
  params.min_p = 0.05f;
  apply_generation_config(qwen, params);
  EXPECT_FLOAT_EQ(params.temperature, 0.6f);
  EXPECT_EQ(params.top_k, 20);
  EXPECT_FLOAT_EQ(params.top_p, 0.95f);
  EXPECT_FLOAT_EQ(params.min_p, 0.05f);  // absent: left alone
  EXPECT_EQ(generation_config_eos(qwen), (std::vector<int32_t>{151645, 151643}));

  const auto llama = nlohmann::json::parse(R"({"eos_token_id": 128009, "do_sample": false,
                                              "temperature": 0.7, "repetition_penalty": 1.1})");
  SamplingParams greedy;
  apply_generation_config(llama, greedy);
  EXPECT_EQ(greedy.temperature, 0.0f);  // do_sample false wins
  EXPECT_FLOAT_EQ(greedy.repetition_penalty, 1.1f);
  EXPECT_EQ(generation_config_eos(llama), (std::vector<int32_t>{128009}));
  EXPECT_TRUE(generation_config_eos(nlohmann::json::object()).empty());

  SamplingParams bad;
  EXPECT_THROW(apply_generation_config(nlohmann::json::parse(R"({"top_k": 2.5})"), bad), Error);
  EXPECT_THROW(apply_generation_config(nlohmann::json::parse(R"({"temperature": "hot"})"), bad), Error);
  EXPECT_THROW(generation_config_eos(nlohmann::json::parse(R"({"eos_token_id": ["x"]})")), Error);
}
