// Helpers shared by the model tests: reading reference fixtures, greedy generation with
// top-k log-probabilities, and temporary directories.
#pragma once

#include <string>
#include <vector>

#include "model/model.h"

namespace hearth::test {

struct RefStep {
  int32_t token;
  std::vector<int32_t> top_ids;
  std::vector<double> top_logprobs;
  std::vector<double> all_logprobs;  // [vocab] (hearth's runs only)
};
struct RefPrompt {
  std::vector<int32_t> prompt;
  std::vector<RefStep> steps;
};

// fixtures/models/NAME/reference.json
std::vector<RefPrompt> load_reference(const std::string& model_dir);
std::string fixture_model(const std::string& name);  // absolute path of fixtures/models/NAME

// Greedy generation of n tokens; each step records the top-k log-softmax.
std::vector<RefStep> greedy(Model& model, const std::vector<int32_t>& prompt, int n, int k, int n_batch = 512);

// A fresh directory under the build tree, removed at exit of the test process.
std::string temp_dir(const std::string& name);

}  // namespace hearth::test
