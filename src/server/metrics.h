// Server metrics in Prometheus' text format (GET /metrics): responses by route and
// status, finished requests by finish reason, prompt/cached/generated tokens, histograms
// of time to first token, inter-token latency and request duration, and the engine's
// gauges (running and waiting requests, KV cache blocks in use), and the prefix cache
// (hit ratio, tokens saved, blocks cached in the pool, in host memory and on disk,
// evictions, loads, rejected files). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace hearth::server {

// A Prometheus histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Appends name_bucket{le=...}, name_sum and name_count lines.
  void render(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // [bounds + 1], the last one is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_response(const std::string& route, int status);
  // A generation that ended: its figures and OpenAI finish reason.
  void observe_generation(const RequestStats& s, const std::string& finish_reason);
  std::string render(const EngineStats& engine) const;

 private:
  static void render_prefix_cache(std::string& out, const EngineStats& e);
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> responses_;
  std::map<std::string, int64_t> finishes_;
  int64_t prompt_tokens_ = 0, cached_tokens_ = 0, completion_tokens_ = 0;
  Histogram ttft_, itl_, duration_;
};

}  // namespace hearth::server
