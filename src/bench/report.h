// `hearth bench report`: results files -> a Markdown report in the seed's structure
// (docs/bench/README.md), SVG charts next to it and a JSON summary. Everything is derived
// from the files alone and printed with fixed precision, so the same files always give
// byte-identical output (the golden tests rely on it).
// Speed means end-to-end tokens/s (completion tokens over the whole request, as the seed
// measured it); decode speed after the first token and TTFT come from streams and
// in-process runs. Averages over test cases are means of the per-case means.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bench/results.h"

namespace hearth::bench {

// One test case in one mode of one system, over its repetitions.
struct CaseStat {
  std::string name;
  std::string mode;              // "non-stream", "stream", "in-process"
  int requests = 0, ok = 0;
  double e2e_tokens_per_s = -1;  // mean over ok requests with a token count
  double decode_tokens_per_s = -1;
  double ttft_s = -1;            // mean over ok requests with a TTFT
  double total_s = -1;           // mean over ok requests
  double completion_tokens = -1; // mean over ok requests with a count
  std::map<std::string, int> failures;  // outcome -> count
  std::string first_error;
};

struct SystemSummary {
  std::string label, kind;
  std::vector<CaseStat> cases;
  int requests = 0, ok = 0;
  int crashes = 0;                    // requests whose connection broke (crash or connection_reset)
  std::string process_death;          // "" or how the server process ended during the run
  double success_rate = -1;           // ok / requests (suite requests only)
  double speed = -1;                  // mean of the cases' e2e_tokens_per_s
  double decode_speed = -1;           // mean of the cases' decode_tokens_per_s
  double ttft_p50_s = -1, ttft_p90_s = -1;  // over every request with a TTFT
  std::map<std::string, int> failures;
  std::map<std::string, std::string> first_error;  // outcome -> first message
  double load_s = -1;
  int64_t peak_rss_bytes = -1, peak_gpu_bytes = -1, weights_bytes = -1, kv_cache_bytes = -1;
  int best_clients = 0;
  double best_aggregate_tokens_per_s = -1;
  std::map<std::string, std::string> features;  // id -> pass | fail | skip
  bool usage_missing = false;         // some ok request had no usage
};

struct Recommendation {
  std::string use_case, recommended, why;
};

SystemSummary summarize(const RunResults& r);
std::vector<Recommendation> recommend(const std::vector<SystemSummary>& systems);
Json summary_json(const std::vector<SystemSummary>& systems, const std::vector<Recommendation>& recs);

struct ReportFiles {
  std::string markdown;
  std::string speed_svg, ttft_svg, concurrency_svg;
  std::string summary_json;  // pretty-printed, ending in '\n'
};

// chart_prefix: the file name stem the Markdown links the charts by ("report" ->
// "report-speed.svg").
ReportFiles build_report(const std::vector<RunResults>& runs, const std::string& chart_prefix);
// Writes out_md and, next to it, STEM-speed.svg, STEM-ttft.svg, STEM-concurrency.svg and
// STEM.summary.json. Throws Error when a file cannot be written.
void write_report(const std::vector<RunResults>& runs, const std::string& out_md);

// Charts (charts.cpp).
std::string speed_chart_svg(const std::vector<SystemSummary>& systems);
std::string ttft_chart_svg(const std::vector<SystemSummary>& systems);
std::string concurrency_chart_svg(const std::vector<RunResults>& runs);

// Shared formatting: "%.*f"; "—" for -1.
std::string fixed(double v, int digits);
std::string or_dash(double v, int digits);
std::string xml_escape(const std::string& s);
std::string human_size(int64_t bytes);  // "1.23 GiB", "—" for -1

}  // namespace hearth::bench
