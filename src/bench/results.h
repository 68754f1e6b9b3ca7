// The raw results of one benchmark run (`hearth bench endpoint` or `hearth bench model
// --out`), as plain data, and its JSON file format: "format_version": 1, documented by
// docs/bench/results.schema.json. The report generator reads only these files, so runs
// made on different machines or days sit side by side in one report.
// Units: times in seconds, sizes in bytes, speeds in tokens per second. A figure that was
// not measured is -1 (never 0, which is a measurement), and is written as null.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth::bench {

using Json = nlohmann::ordered_json;

inline constexpr int kFormatVersion = 1;

// What became of one request. connection_reset: the connection broke after it was
// accepted; crash: the same while the server process (--pid/--spawn) died.
enum class Outcome { ok, http_error, timeout, connection_refused, connection_reset, crash, malformed_stream };
const char* outcome_name(Outcome o);
Outcome parse_outcome(const std::string& name);  // throws Error on an unknown name

struct RequestRecord {
  int repetition = 0;            // 0-based; warm-up requests are not recorded
  Outcome outcome = Outcome::ok;
  int http_status = 0;           // 0: no response status
  std::string error;             // one line; empty when ok
  double ttft_s = -1;            // request sent -> first content/reasoning/tool delta (streams)
  double total_s = 0;            // request sent -> response complete (or failed)
  int64_t prompt_tokens = -1;    // from usage; -1 unknown
  int64_t completion_tokens = -1;  // from usage, else counted stream deltas; -1 unknown
  bool usage_missing = false;    // the response had no usage object
  std::string finish_reason;     // "stop", "length", "tool_calls", ... ("" when none came)
  double decode_tokens_per_s = -1;  // (completion_tokens - 1) / (total_s - ttft_s), streams
  double e2e_tokens_per_s = -1;     // completion_tokens / total_s
  int64_t content_chars = 0;     // bytes of content text received
  int64_t reasoning_chars = 0;   // bytes of reasoning text (reasoning_content / reasoning)
  int tool_calls = 0;            // tool calls in the answer
};

// One test case of the suite in one mode (streamed or not) with all its repetitions.
struct CaseResult {
  std::string name;    // "SQL Injection"
  std::string prompt;  // the user message (or the last one of a custom suite's messages)
  bool stream = false;
  int max_tokens = 0;
  std::vector<RequestRecord> requests;
};

// The concurrency sweep at one level: `clients` clients each sending requests in a loop.
struct SweepPoint {
  int clients = 0;
  int requests = 0;                       // sent, all clients together
  int ok = 0;
  double wall_s = 0;                      // first request sent -> last one finished
  int64_t completion_tokens = 0;          // of the ok requests
  double aggregate_tokens_per_s = 0;      // completion_tokens / wall_s
  double latency_p50_s = -1, latency_p90_s = -1, latency_p99_s = -1;  // total_s of ok requests
  double ttft_p50_s = -1;
  std::map<std::string, int> failures;    // outcome name -> count
};

// One API capability checked for real: pass or fail with what the server answered.
struct FeatureCheck {
  std::string id;          // "streaming", "tool_calling_stream", ...
  std::string status;      // "pass" | "fail" | "skip"
  int http_status = 0;
  std::string detail;      // one line: why pass or fail
  std::string excerpt;     // the start of the answer, as evidence (at most ~300 bytes)
};

// The server process, when it runs here (--pid or --spawn).
struct ProcessMetrics {
  bool present = false;          // false: no --pid/--spawn, nothing below was measured
  int64_t pid = 0;
  std::string command;           // --spawn's command ("" with --pid)
  double load_s = -1;            // spawn -> first successful GET /models (spawn only)
  int64_t peak_rss_bytes = -1;   // max VmRSS over the samples
  int64_t peak_gpu_bytes = -1;   // max nvidia-smi used_memory of the pid; -1 unavailable
  int samples = 0;
  bool died = false;             // the process ended while the benchmark ran
  std::string exit_detail;       // "exit status 1", "signal 9", ...
};

// `hearth bench model` runs: the model in-process and its micro-benchmarks.
struct DirectTest {
  std::string test;              // "pp512", "tg128", "tg128 @ batch 4"
  double tokens_per_s = 0;
  double stddev = 0;
};
struct DirectInfo {
  std::string model_path;
  std::string backend;           // "cpu", "cuda"
  int threads = 0;
  double load_s = -1;
  int64_t weights_bytes = -1, kv_cache_bytes = -1, peak_rss_bytes = -1;
  std::vector<DirectTest> tests;
};

struct Machine {
  std::string cpu;
  int cores = 0;
  int64_t memory_bytes = -1;
  std::string gpu;               // "" when none was found
  std::string note;              // free text (--note): "2 cores shared with other builds"
};

struct Settings {
  int max_tokens = 0;
  int repetitions = 0;
  int warmup = 0;                // warm-up requests per case, not recorded
  double timeout_s = 0;          // per request, overall
  std::vector<int> concurrency;  // client counts of the sweep
};

struct RunResults {
  std::string kind = "endpoint";  // "endpoint" (HTTP server) | "model" (in-process)
  std::string label;              // the system's name in reports: "hearth (Server)"
  std::string created;            // UTC, ISO 8601
  std::string tool;               // "hearth 0.1.0"
  Machine machine;
  std::string url;                // endpoint runs
  std::string model;              // the model name sent (endpoint) or the file (model runs)
  Settings settings;
  std::vector<CaseResult> cases;
  std::vector<SweepPoint> concurrency;
  std::vector<FeatureCheck> features;
  ProcessMetrics process;
  std::optional<DirectInfo> direct;  // model runs
};

Json to_json(const RunResults& r);
// Throws Error naming `where` (the file) and the field when the JSON is not a valid
// format_version 1 results document.
RunResults results_from_json(const Json& j, const std::string& where);
RunResults read_results(const std::string& path);
void write_results(const RunResults& r, const std::string& path);

// This machine: CPU model, cores, memory, GPU name (nvidia-smi when present).
Machine describe_machine();
// "2026-11-25T21:45:00Z"
std::string utc_now_iso();

}  // namespace hearth::bench
