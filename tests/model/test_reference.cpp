// Logits parity with Hugging Face transformers (fixtures/models/*, made by
// scripts/make_reference_models.py in float64). Each model is loaded as its safetensors
// folder and as GGUF F32 and F16 written by hearth's converter; the 24-token greedy
// continuation must match exactly and the reference's top-5 log-probabilities must be
// reproduced within 2e-3. The fixture weights are float16-representable, so all three
// exports hold identical values.
#include <gtest/gtest.h>

#include <cmath>

#include "model/writer.h"
#include "model_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

struct Case {
  std::string model;
  std::string format;  // "hf", "gguf-f32", "gguf-f16"
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string s = info.param.model + "_" + info.param.format;
  for (auto& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

class ReferenceParity : public testing::TestWithParam<Case> {};

std::string model_path(const Case& c) {
  const std::string dir = fixture_model(c.model);
  if (c.format == "hf") return dir;
  const std::string type = c.format.substr(5);
  const std::string out = temp_dir("ref_" + c.model + "_" + type) + "/model.gguf";
  ModelConfig config;
  auto tensors = folder_tensors(dir, config);
  WriteOptions o;
  o.format = OutputFormat::GGUF;
  o.type = type;
  write_model(config, tensors, o, out);
  return out;
}

TEST_P(ReferenceParity, GreedyAndTop5MatchTransformers) {
  const Case& c = GetParam();
  auto backend = make_cpu_backend(2);
  auto model = Model::load(model_path(c), *backend);
  const double bound = 2e-3;
  const auto reference = load_reference(fixture_model(c.model));
  ASSERT_GE(reference.size(), 3u);
  double worst = 0;
  for (size_t p = 0; p < reference.size(); ++p) {
    const auto& ref = reference[p];
    // Odd prompt batch sizes exercise chunked prefill too.
    const auto got = greedy(*model, ref.prompt, static_cast<int>(ref.steps.size()), 5, 1 + static_cast<int>(p) * 4);
    for (size_t s = 0; s < ref.steps.size(); ++s) {
      ASSERT_EQ(got[s].token, ref.steps[s].token) << "prompt " << p << " step " << s;
      for (size_t j = 0; j < ref.steps[s].top_ids.size(); ++j) {
        const double ours = got[s].all_logprobs[static_cast<size_t>(ref.steps[s].top_ids[j])];
        const double diff = std::fabs(ours - ref.steps[s].top_logprobs[j]);
        worst = std::max(worst, diff);
        EXPECT_LE(diff, bound) << "prompt " << p << " step " << s << " rank " << j;
      }
    }
  }
  RecordProperty("max_abs_logprob_diff", std::to_string(worst));
  std::printf("[ %s ] max |logprob - reference| over top-5 = %.3g\n", case_name({c, 0}).c_str(), worst);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* m : {"qwen3-a", "qwen3-b", "qwen3-yarn", "qwen2", "llama3"})
    for (const char* f : {"hf", "gguf-f32", "gguf-f16"}) cases.push_back({m, f});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceParity, testing::ValuesIn(all_cases()), case_name);

}  // namespace
