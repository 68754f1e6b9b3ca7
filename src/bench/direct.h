// The suite run in-process, for `hearth bench model --out`: the same prompts, chat
// template, greedy decoding and max_tokens as `bench endpoint`, on a Sequence with the
// engine's generate(), so "Direct" and "Server" runs of one model sit in one report.
// Cases are recorded with stream = false (there is no HTTP); TTFT and decode speed come
// from the generation's own clock (GenerationStats).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bench/endpoint.h"
#include "bench/results.h"
#include "engine/runtime.h"

namespace hearth::bench {

struct DirectSuiteOptions {
  std::vector<SuiteCase> suite;
  int max_tokens = 200;
  int repetitions = 3;
  int warmup = 1;
  std::function<void(const std::string&)> progress;  // one line each; null: silent
};

std::vector<CaseResult> run_direct_suite(Runtime& rt, const DirectSuiteOptions& o);

// A whole `bench model --out` run: the suite above plus the micro-benchmark figures the
// caller measured, the model's memory and load time, as a kind "model" RunResults.
struct ModelRunOptions {
  DirectSuiteOptions suite;
  std::string label;             // default "hearth (Direct)"
  std::string note;              // machine note
  std::vector<DirectTest> tests; // pp/tg figures of the micro-benchmark
  int threads = 0;
  int64_t kv_cache_bytes = -1;   // as allocated by the micro-benchmark
};
RunResults run_model(Runtime& rt, const ModelRunOptions& o);

}  // namespace hearth::bench
