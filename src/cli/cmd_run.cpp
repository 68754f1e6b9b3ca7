// hearth run: generate from a prompt given as token ids (--prompt-tokens) or as text.
//   hearth run -m MODEL --raw --prompt-tokens 1,2,3 -n 24 --temp 0 --json --logprobs 5
// prints {"tokens": [...], "logprobs": [...], "finish_reason": ..., "stats": {...}}.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/sequence.h"
#include "model/model.h"

namespace hearth::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt_tokens;
  bool raw = false;
  bool json = false;
  int n_predict = 128;
  float temperature = 0.0f;
  int logprobs = 0;
  int threads = 0;
  int ctx = 0;
  int batch = 512;
};

std::vector<int32_t> parse_token_list(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      fail("--prompt-tokens: '" + item + "' is not a token id");
    }
    HEARTH_CHECK(used == item.size() || item.find_first_not_of(" ", used) == std::string::npos,
                 "--prompt-tokens: '" + item + "' is not a token id");
    HEARTH_CHECK(v >= 0 && v < vocab, "--prompt-tokens: token id " + std::to_string(v) + " is outside the vocabulary (0.." +
                                          std::to_string(vocab - 1) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  HEARTH_CHECK(!ids.empty(), "--prompt-tokens: empty list");
  return ids;
}

// Log-softmax of the top k logits, highest first (ties: lower id first).
nlohmann::ordered_json top_logprobs(const std::vector<float>& logits, int k) {
  double max = -INFINITY;
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
  const double log_z = max + std::log(sum);
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  const size_t kk = std::min(idx.size(), static_cast<size_t>(k));
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kk), idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  auto top = nlohmann::ordered_json::array();
  for (size_t i = 0; i < kk; ++i)
    top.push_back({{"id", idx[i]}, {"logprob", static_cast<double>(logits[idx[i]]) - log_z}});
  return top;
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int run_run(const RunOptions& o) {
  using clock = std::chrono::steady_clock;
  HEARTH_CHECK(!o.model.empty(), "run: no model given (-m MODEL)");
  HEARTH_CHECK(o.n_predict >= 0, "-n must not be negative");
  HEARTH_CHECK(o.logprobs >= 0 && o.logprobs <= 100, "--logprobs must be between 0 and 100");
  HEARTH_CHECK(o.temperature == 0.0f, "run: sampling with temperature > 0 needs the sampler (use --temp 0)");
  HEARTH_CHECK(o.raw && !o.prompt_tokens.empty(), "run: only --raw --prompt-tokens is supported so far");
  const auto t_load = clock::now();
  auto backend = make_cpu_backend(o.threads);
  auto model = Model::load(o.model, *backend);
  const auto& c = model->config();
  const std::vector<int32_t> prompt = parse_token_list(o.prompt_tokens, c.vocab_size);
  const int64_t want_ctx = o.ctx > 0 ? o.ctx : static_cast<int64_t>(prompt.size()) + o.n_predict;
  HEARTH_CHECK(static_cast<int64_t>(prompt.size()) + o.n_predict <= want_ctx,
               "prompt (" + std::to_string(prompt.size()) + " tokens) plus -n " + std::to_string(o.n_predict) +
                   " does not fit in --ctx " + std::to_string(want_ctx));
  Sequence seq(*model, static_cast<int32_t>(want_ctx));
  const double load_s = std::chrono::duration<double>(clock::now() - t_load).count();

  nlohmann::ordered_json out;
  auto tokens = nlohmann::ordered_json::array();
  auto logprobs = nlohmann::ordered_json::array();
  const auto t_prompt = clock::now();
  const std::vector<float>* logits = &seq.feed(prompt, o.batch);
  const double prompt_s = std::chrono::duration<double>(clock::now() - t_prompt).count();
  const auto t_gen = clock::now();
  for (int i = 0; i < o.n_predict; ++i) {
    const int32_t next = argmax(*logits);
    tokens.push_back(next);
    if (o.logprobs > 0) {
      auto top = top_logprobs(*logits, o.logprobs);
      logprobs.push_back({{"token", next}, {"top", top}});
    }
    if (!o.json) {
      std::printf("%d%s", next, i + 1 < o.n_predict ? "," : "\n");
      std::fflush(stdout);
    }
    if (i + 1 < o.n_predict) logits = &seq.feed(std::span<const int32_t>(&next, 1));
  }
  const double gen_s = std::chrono::duration<double>(clock::now() - t_gen).count();
  out["tokens"] = tokens;
  if (o.logprobs > 0) out["logprobs"] = logprobs;
  out["finish_reason"] = "length";
  out["stats"] = {{"load_s", load_s},
                  {"prompt_tokens", prompt.size()},
                  {"prompt_s", prompt_s},
                  {"prompt_tokens_per_s", prompt_s > 0 ? static_cast<double>(prompt.size()) / prompt_s : 0.0},
                  {"completion_tokens", o.n_predict},
                  {"decode_s", gen_s},
                  {"decode_tokens_per_s", o.n_predict > 1 && gen_s > 0 ? (o.n_predict - 1) / gen_s : 0.0}};
  if (o.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  app.add_option("-m,--model", o->model, "a .gguf file or a model folder");
  app.add_option("--prompt-tokens", o->prompt_tokens, "prompt as comma-separated token ids");
  app.add_flag("--raw", o->raw, "do not apply the chat template");
  app.add_flag("--json", o->json, "print one JSON object");
  app.add_option("-n,--n-predict", o->n_predict, "tokens to generate");
  app.add_option("--temp", o->temperature, "sampling temperature (0 = greedy)");
  app.add_option("--logprobs", o->logprobs, "report the top-K log-probabilities of every step");
  app.add_option("-t,--threads", o->threads, "CPU threads (default: all)");
  app.add_option("-c,--ctx", o->ctx, "context size in tokens");
  app.add_option("-b,--batch", o->batch, "prompt tokens per forward pass");
  return [o] { return run_run(*o); };
}

}  // namespace hearth::cli
