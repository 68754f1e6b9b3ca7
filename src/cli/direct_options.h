// Flags shared by the direct-mode commands (run, chat, batch, bench model): which model to
// load and how (-m, -t, -c, -b), every sampling flag, and Ctrl-C handling.
//
// Sampling flags override the model's defaults (its generation_config.json) only when they
// are given; each is range-checked and a bad value is an Error naming the flag. Without
// -m the demo model (assets/demo/hearth-demo-coder-q8_0.gguf, committed; see its MODEL_CARD.md)
// is used.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "hearth/hearth.h"

namespace hearth::cli {

inline constexpr const char* kDemoModel = "assets/demo/hearth-demo-coder-q8_0.gguf";
// What the CLI says on stderr when it falls back to the demo model.
inline constexpr const char* kDemoModelNote = "a 14M-parameter coding model trained on Python's standard library";

struct ModelFlags {
  std::string model;
  int threads = 0;
  int64_t ctx = 0;
  int batch = 0;  // 0: Runtime::resolve_batch
  std::string device = "auto";
  std::string kv_cache_type;  // "" = the backend's default
};

// The help text of --kv-cache-type (run, chat, batch, perplexity, bench model, serve).
inline constexpr const char* kKvCacheTypeHelp =
    "KV cache element type: f16, q8_0 (8-bit, ~1.9x the tokens in the same memory) or f32 (default: f16 on a GPU, f32 on the CPU)";

// -m/--model, -t/--threads, -c/--ctx, -b/--batch, --device, --kv-cache-type.
void add_model_flags(CLI::App& app, ModelFlags& flags);
// The model path: -m as given, else the demo model (Error with a hint when it is missing).
std::string resolve_model(const std::string& given);
// Checks the flags, resolves the path and loads the model, logging the demo-model choice.
std::shared_ptr<LocalModel> load_model(const ModelFlags& flags);

struct SamplingFlags {
  float temp = 0, top_p = 0, min_p = 0, typical_p = 0;
  float repeat_penalty = 0, presence_penalty = 0, frequency_penalty = 0;
  int32_t top_k = 0, repeat_last_n = 0, max_tokens = 0;
  int64_t seed = 0;
  std::vector<std::string> logit_bias;  // "ID=BIAS"
  std::vector<std::string> stop;
  std::vector<int32_t> stop_tokens;
  bool ignore_eos = false;
  int logprobs = 0;  // top-K log-probabilities per step; 0 = none
  // Set by add_sampling_flags: which flags the command line gave.
  CLI::Option *o_temp = nullptr, *o_top_p = nullptr, *o_min_p = nullptr, *o_typical_p = nullptr;
  CLI::Option *o_repeat_penalty = nullptr, *o_presence = nullptr, *o_frequency = nullptr;
  CLI::Option *o_top_k = nullptr, *o_repeat_last_n = nullptr, *o_max_tokens = nullptr, *o_seed = nullptr;
};

// --temp --top-k --top-p --min-p --typical-p --repeat-penalty --presence-penalty
// --frequency-penalty --repeat-last-n --logit-bias --seed --stop --stop-token
// -n/--max-tokens --ignore-eos, and --logprobs when with_logprobs.
void add_sampling_flags(CLI::App& app, SamplingFlags& flags, bool with_logprobs = false);
// `defaults` with the given flags applied; validated against the vocabulary. Errors name
// the flag ("--temp: -1.000000 is out of range, expected [0.000000, 2.000000]").
SamplingParams sampling_params(const SamplingFlags& flags, SamplingParams defaults, int32_t n_vocab);

// Ctrl-C: the first SIGINT sets the flag (the current answer stops); a second one while it is
// still set ends the process (exit code 130). Blocking reads are interrupted (EINTR).
void install_interrupt_handler();
std::atomic<bool>& interrupted();

// True when the file descriptor is a terminal.
bool is_tty(int fd);

}  // namespace hearth::cli
