// Shared direct-mode flags: registration, range checks with messages that name the flag,
// the demo-model fallback, and the SIGINT handler (a lock-free atomic store only).
#include "cli/direct_options.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "core/error.h"

namespace fs = std::filesystem;

namespace hearth::cli {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");

void on_sigint(int) {
  if (g_interrupted.load()) _exit(130);
  g_interrupted.store(true);
}

// SamplingParams::validate names request fields; the CLI names its flags.
std::string flag_message(const std::string& msg) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"temperature", "--temp"},          {"top_k", "--top-k"},
      {"top_p", "--top-p"},               {"min_p", "--min-p"},
      {"typical_p", "--typical-p"},       {"repetition_penalty", "--repeat-penalty"},
      {"presence_penalty", "--presence-penalty"}, {"frequency_penalty", "--frequency-penalty"},
      {"penalty_last_n", "--repeat-last-n"},      {"logit_bias", "--logit-bias"},
      {"max_tokens", "-n/--max-tokens"},  {"stop_token_ids", "--stop-token"},
      {"stop", "--stop"},                 {"top_logprobs", "--logprobs"},
  };
  for (const auto& [field, flag] : kNames) {
    const std::string prefix = std::string(field) + ":";
    if (msg.rfind(prefix, 0) == 0) return std::string(flag) + msg.substr(std::string(field).size());
  }
  return msg;
}

// "ID=BIAS" -> (id, bias).
std::pair<int32_t, float> parse_bias(const std::string& text) {
  const auto eq = text.find('=');
  HEARTH_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(),
               "--logit-bias '" + text + "': expected TOKEN_ID=BIAS, e.g. 1234=-5");
  size_t used = 0;
  long long id = -1;
  float bias = 0;
  try {
    id = std::stoll(text.substr(0, eq), &used);
    HEARTH_CHECK(used == eq, "");
    const std::string b = text.substr(eq + 1);
    bias = std::stof(b, &used);
    HEARTH_CHECK(used == b.size(), "");
  } catch (const std::exception&) {
    fail("--logit-bias '" + text + "': expected TOKEN_ID=BIAS, e.g. 1234=-5");
  }
  HEARTH_CHECK(id >= 0 && id <= INT32_MAX, "--logit-bias '" + text + "': token id " + std::to_string(id) + " is not in the vocabulary");
  return {static_cast<int32_t>(id), bias};
}

}  // namespace

std::atomic<bool>& interrupted() { return g_interrupted; }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
  sigaction(SIGINT, &sa, nullptr);
}

bool is_tty(int fd) { return isatty(fd) == 1; }

void add_model_flags(CLI::App& app, ModelFlags& f) {
  app.add_option("-m,--model", f.model, std::string("a .gguf file or a model folder (default: ") + kDemoModel + ")");
  app.add_option("-t,--threads", f.threads, "CPU threads (default: all)");
  app.add_option("-c,--ctx", f.ctx, "context size in tokens (default: the model's, capped by free memory)");
  app.add_option("-b,--batch", f.batch, "prompt tokens per forward pass (default 2048 on a GPU, 512 on the CPU)");
  app.add_option("--device", f.device, "cuda, cpu or auto (default auto: cuda when a GPU is present)");
  app.add_option("--kv-cache-type", f.kv_cache_type, kKvCacheTypeHelp);
}

std::string resolve_model(const std::string& given) {
  if (!given.empty()) return given;
  for (const fs::path& base : {fs::path("."), fs::path(HEARTH_SOURCE_DIR)}) {
    const fs::path p = base / kDemoModel;
    if (fs::exists(p)) return p.lexically_normal().string();
  }
  fail(std::string("no model given (-m MODEL) and the demo model ") + kDemoModel +
       " is missing (it is part of the source tree; run hearth from the checkout or pass -m)");
}

std::shared_ptr<LocalModel> load_model(const ModelFlags& f) {
  HEARTH_CHECK(f.threads >= 0 && f.threads <= 1024,
               "-t/--threads " + std::to_string(f.threads) + ": expected 0 (all) to 1024");
  HEARTH_CHECK(f.batch >= 0 && f.batch <= 65536, "-b/--batch " + std::to_string(f.batch) + ": expected 1 to 65536");
  HEARTH_CHECK(f.ctx >= 0, "-c/--ctx " + std::to_string(f.ctx) + ": the context size must be positive");
  const std::string path = resolve_model(f.model);
  if (f.model.empty()) std::fprintf(stderr, "hearth: using the demo model %s (%s)\n", path.c_str(), kDemoModelNote);
  LoadOptions lo;
  lo.threads = f.threads;
  lo.context = f.ctx;
  lo.batch = f.batch;
  lo.device = f.device;
  lo.kv_cache_type = f.kv_cache_type;
  return LocalModel::load(path, lo);
}

void add_sampling_flags(CLI::App& app, SamplingFlags& f, bool with_logprobs) {
  f.o_temp = app.add_option("--temp,--temperature", f.temp, "temperature, 0 = greedy (default: the model's, else 1)");
  f.o_top_k = app.add_option("--top-k", f.top_k, "keep the K most likely tokens (0 = off)");
  f.o_top_p = app.add_option("--top-p", f.top_p, "nucleus sampling mass (1 = off)");
  f.o_min_p = app.add_option("--min-p", f.min_p, "drop tokens below P x the best one's probability (0 = off)");
  f.o_typical_p = app.add_option("--typical-p", f.typical_p, "locally typical sampling mass (1 = off)");
  f.o_repeat_penalty = app.add_option("--repeat-penalty", f.repeat_penalty, "repetition penalty (1 = off)");
  f.o_presence = app.add_option("--presence-penalty", f.presence_penalty, "presence penalty, -2..2");
  f.o_frequency = app.add_option("--frequency-penalty", f.frequency_penalty, "frequency penalty, -2..2");
  f.o_repeat_last_n = app.add_option("--repeat-last-n", f.repeat_last_n, "tokens the penalties look at (-1 = all, default 64)");
  app.add_option("--logit-bias", f.logit_bias, "ID=BIAS added to a token's logit (repeatable)");
  f.o_seed = app.add_option("--seed", f.seed, "random seed: the same seed and settings give the same tokens");
  app.add_option("--stop", f.stop, "stop before this string (repeatable)");
  app.add_option("--stop-token", f.stop_tokens, "stop after this token id (repeatable)");
  f.o_max_tokens = app.add_option("-n,--max-tokens,--n-predict", f.max_tokens, "most tokens to generate (default: until the end)");
  app.add_flag("--ignore-eos", f.ignore_eos, "don't stop at end-of-generation tokens");
  if (with_logprobs) app.add_option("--logprobs", f.logprobs, "report the top-K log-probabilities of every step (0-20)");
}

SamplingParams sampling_params(const SamplingFlags& f, SamplingParams p, int32_t n_vocab) {
  auto given = [](const CLI::Option* o) { return o != nullptr && o->count() > 0; };
  if (given(f.o_temp)) p.temperature = f.temp;
  if (given(f.o_top_k)) {
    HEARTH_CHECK(f.top_k >= 0, "--top-k " + std::to_string(f.top_k) + ": must not be negative (0 = off)");
    p.top_k = f.top_k;
  }
  if (given(f.o_top_p)) p.top_p = f.top_p;
  if (given(f.o_min_p)) p.min_p = f.min_p;
  if (given(f.o_typical_p)) p.typical_p = f.typical_p;
  if (given(f.o_repeat_penalty)) p.repetition_penalty = f.repeat_penalty;
  if (given(f.o_presence)) p.presence_penalty = f.presence_penalty;
  if (given(f.o_frequency)) p.frequency_penalty = f.frequency_penalty;
  if (given(f.o_repeat_last_n)) p.penalty_last_n = f.repeat_last_n;
  if (given(f.o_seed)) {
    HEARTH_CHECK(f.seed >= 0, "--seed " + std::to_string(f.seed) + ": must not be negative");
    p.seed = static_cast<uint64_t>(f.seed);
  }
  if (given(f.o_max_tokens)) {
    HEARTH_CHECK(f.max_tokens >= 1, "-n/--max-tokens " + std::to_string(f.max_tokens) +
                                        ": must be at least 1 (leave it out to generate until the end)");
    p.max_tokens = f.max_tokens;
  }
  for (const auto& b : f.logit_bias) {
    const auto [id, bias] = parse_bias(b);
    p.logit_bias[id] = bias;
  }
  p.stop.insert(p.stop.end(), f.stop.begin(), f.stop.end());
  p.stop_token_ids.insert(p.stop_token_ids.end(), f.stop_tokens.begin(), f.stop_tokens.end());
  if (f.ignore_eos) p.ignore_eos = true;
  if (f.logprobs != 0) {
    HEARTH_CHECK(f.logprobs > 0 && f.logprobs <= 20, "--logprobs " + std::to_string(f.logprobs) + ": expected 0 to 20");
    p.logprobs = true;
    p.top_logprobs = f.logprobs;
  }
  try {
    p.validate(n_vocab);
  } catch (const Error& e) {
    fail(flag_message(e.what()));
  }
  return p;
}

}  // namespace hearth::cli
