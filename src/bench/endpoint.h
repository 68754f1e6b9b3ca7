// `hearth bench endpoint`: the suite, the concurrency sweep and the feature probe against
// one OpenAI-compatible server, producing a RunResults (results.h).
// The default suite is the seed report's four security prompts; a custom suite is a JSONL
// file, one case per line: {"name": "...", "prompt": "..."} or {"name": "...",
// "messages": [...]}, optionally "tools" (OpenAI tool schemas, sent as they are),
// "max_tokens" and "stream" (true, false or "both", the default). Each case runs `warmup` unrecorded requests, then `repetitions` recorded ones,
// with temperature 0 so repeated runs do the same work.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/results.h"

namespace hearth::bench {

class ServerProcess;

struct SuiteCase {
  std::string name;
  Json messages;           // OpenAI chat messages
  int max_tokens = 0;      // 0: the run's --max-tokens
  bool stream = true, non_stream = true;
  Json tools;              // OpenAI tool schemas sent with the case; null: none
};

std::vector<SuiteCase> default_suite();
// Throws Error naming the file and line for a bad line.
std::vector<SuiteCase> load_suite(const std::string& path);

struct EndpointOptions {
  Endpoint endpoint;
  std::string model;             // "model" of every request
  std::string label;
  std::vector<SuiteCase> suite;
  int max_tokens = 200;
  int repetitions = 3;
  int warmup = 1;
  std::vector<int> concurrency = {1, 2, 4, 8};
  int sweep_requests = 2;        // requests per client at each sweep level
  bool probe = true;
  std::string note;              // machine note for the report
  ServerProcess* process = nullptr;  // sampled while running (null: none)
  std::function<void(const std::string&)> progress;  // one line each; null: silent
};

RunResults run_endpoint(const EndpointOptions& o);

// The feature probe alone (run_endpoint calls it); probe.cpp lists the checks.
std::vector<FeatureCheck> probe_features(const EndpointOptions& o);

// Nearest-rank percentile of unsorted values (p in 0..100); -1 when empty.
double percentile(std::vector<double> values, double p);

}  // namespace hearth::bench
