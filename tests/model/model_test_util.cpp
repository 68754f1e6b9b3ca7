#include "model_test_util.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "engine/sequence.h"

namespace fs = std::filesystem;

namespace hearth::test {

std::string fixture_model(const std::string& name) { return std::string(HEARTH_SOURCE_DIR) + "/fixtures/models/" + name; }

std::vector<RefPrompt> load_reference(const std::string& model_dir) {
  std::ifstream in(model_dir + "/reference.json");
  const auto j = nlohmann::json::parse(in);
  std::vector<RefPrompt> out;
  for (const auto& p : j["prompts"]) {
    RefPrompt rp;
    rp.prompt = p["prompt"].get<std::vector<int32_t>>();
    for (const auto& s : p["steps"])
      rp.steps.push_back({s["token"].get<int32_t>(), s["top_ids"].get<std::vector<int32_t>>(),
                          s["top_logprobs"].get<std::vector<double>>()});
    out.push_back(std::move(rp));
  }
  return out;
}

std::vector<RefStep> greedy(Model& model, const std::vector<int32_t>& prompt, int n, int k, int n_batch) {
  Sequence seq(model, static_cast<int32_t>(prompt.size()) + n);
  const std::vector<float>* logits = &seq.feed(prompt, n_batch);
  std::vector<RefStep> steps;
  for (int i = 0; i < n; ++i) {
    const auto& l = *logits;
    double max = -INFINITY;
    for (float v : l) max = std::max(max, static_cast<double>(v));
    double sum = 0;
    for (float v : l) sum += std::exp(static_cast<double>(v) - max);
    const double log_z = max + std::log(sum);
    std::vector<int32_t> idx(l.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    RefStep step;
    step.token = idx[0];
    for (int j = 0; j < k; ++j) {
      step.top_ids.push_back(idx[j]);
      step.top_logprobs.push_back(static_cast<double>(l[idx[j]]) - log_z);
    }
    step.all_logprobs.resize(l.size());
    for (size_t j = 0; j < l.size(); ++j) step.all_logprobs[j] = static_cast<double>(l[j]) - log_z;
    steps.push_back(step);
    if (i + 1 < n) logits = &seq.feed(std::span<const int32_t>(&step.token, 1));
  }
  return steps;
}

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace hearth::test
