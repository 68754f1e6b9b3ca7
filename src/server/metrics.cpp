// Metrics: counters, histograms and the Prometheus text rendering (metrics.h).
#include "server/metrics.h"

#include <cstdio>

namespace hearth::server {

namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
void line(std::string& out, const std::string& name, double v) { out += name + " " + num(v) + "\n"; }
}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  line(out, name + "_sum", sum_);
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}),
      itl_({0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5}),
      duration_({0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}) {}

void Metrics::count_response(const std::string& route, int status) {
  std::lock_guard lk(mu_);
  ++responses_[{route, status}];
}

void Metrics::observe_generation(const RequestStats& s, const std::string& finish_reason) {
  std::lock_guard lk(mu_);
  ++finishes_[finish_reason];
  prompt_tokens_ += s.prompt_tokens;
  cached_tokens_ += s.cached_tokens;
  completion_tokens_ += s.completion_tokens;
  if (s.completion_tokens > 0) ttft_.observe(s.ttft_s);
  if (s.completion_tokens > 1) itl_.observe(s.decode_s / static_cast<double>(s.completion_tokens - 1));
  duration_.observe(s.total_s);
}

// The prefix cache (issue 9): how often and how much it saves, and what it holds.
void Metrics::render_prefix_cache(std::string& out, const EngineStats& e) {
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    header(out, name, type, help);
    line(out, name, v);
  };
  metric("hearth_prefix_cache_enabled", "gauge", "1 when requests reuse cached prompt prefixes.", e.prefix_cache ? 1 : 0);
  metric("hearth_prefix_cache_hit_ratio", "gauge", "Prompt tokens found in the cache over prompt tokens scheduled.",
         e.prompt_tokens_total > 0 ? static_cast<double>(e.cached_tokens_total) / static_cast<double>(e.prompt_tokens_total) : 0.0);
  metric("hearth_prefix_cache_hits_total", "counter", "Requests that found at least one cached block.",
         static_cast<double>(e.cache_hits_total));
  metric("hearth_prefix_cache_tokens_saved_total", "counter", "Prompt tokens not computed because they were cached.",
         static_cast<double>(e.cached_tokens_total));
  metric("hearth_prefix_cache_tokens_loaded_total", "counter", "Cached prompt tokens restored from host memory or disk.",
         static_cast<double>(e.loaded_tokens_total));
  metric("hearth_kv_cache_blocks_cached", "gauge", "KV pool blocks holding a reusable prefix (in use or free).",
         e.kv_blocks_cached);
  metric("hearth_kv_cache_evictions_total", "counter", "Reusable blocks of the KV pool handed out again.",
         static_cast<double>(e.kv_evictions_total));
  metric("hearth_prefix_cache_ram_blocks", "gauge", "Evicted blocks kept in host memory (--cache-ram).",
         static_cast<double>(e.tier.ram_blocks));
  metric("hearth_prefix_cache_disk_blocks", "gauge", "Blocks in the cache folder (--cache-dir).",
         static_cast<double>(e.tier.disk_blocks));
  metric("hearth_prefix_cache_disk_bytes", "gauge", "Bytes of block files in the cache folder.",
         static_cast<double>(e.tier.disk_bytes));
  metric("hearth_prefix_cache_ram_loads_total", "counter", "Blocks restored from host memory.",
         static_cast<double>(e.tier.loaded_ram_total));
  metric("hearth_prefix_cache_disk_loads_total", "counter", "Blocks restored from the cache folder.",
         static_cast<double>(e.tier.loaded_disk_total));
  metric("hearth_prefix_cache_disk_writes_total", "counter", "Block files written.", static_cast<double>(e.tier.written_total));
  metric("hearth_prefix_cache_rejected_files_total", "counter", "Corrupt, truncated or foreign cache files removed.",
         static_cast<double>(e.tier.rejected_files_total));
  metric("hearth_prefix_cache_dropped_blocks_total", "counter", "Evicted blocks forgotten for lack of room.",
         static_cast<double>(e.tier.dropped_total));
}

std::string Metrics::render(const EngineStats& e) const {
  std::lock_guard lk(mu_);
  std::string out;
  header(out, "hearth_http_responses_total", "counter", "HTTP responses by route and status.");
  for (const auto& [key, n] : responses_)
    out += "hearth_http_responses_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  header(out, "hearth_requests_finished_total", "counter", "Generations finished, by finish reason.");
  for (const auto& [reason, n] : finishes_)
    out += "hearth_requests_finished_total{finish_reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
  header(out, "hearth_prompt_tokens_total", "counter", "Prompt tokens of finished generations.");
  line(out, "hearth_prompt_tokens_total", static_cast<double>(prompt_tokens_));
  header(out, "hearth_cached_prompt_tokens_total", "counter", "Prompt tokens found in the prefix cache.");
  line(out, "hearth_cached_prompt_tokens_total", static_cast<double>(cached_tokens_));
  header(out, "hearth_generated_tokens_total", "counter", "Tokens generated by finished generations.");
  line(out, "hearth_generated_tokens_total", static_cast<double>(completion_tokens_));
  header(out, "hearth_time_to_first_token_seconds", "histogram", "From request to first generated token.");
  ttft_.render(out, "hearth_time_to_first_token_seconds");
  header(out, "hearth_inter_token_latency_seconds", "histogram", "Mean time between generated tokens, per request.");
  itl_.render(out, "hearth_inter_token_latency_seconds");
  header(out, "hearth_request_duration_seconds", "histogram", "From request to the last token.");
  duration_.render(out, "hearth_request_duration_seconds");
  header(out, "hearth_requests_running", "gauge", "Requests in the running batch.");
  line(out, "hearth_requests_running", e.running);
  header(out, "hearth_requests_waiting", "gauge", "Requests queued for the running batch.");
  line(out, "hearth_requests_waiting", e.waiting);
  header(out, "hearth_kv_cache_blocks_used", "gauge", "KV cache blocks held by requests.");
  line(out, "hearth_kv_cache_blocks_used", e.kv_blocks_used);
  header(out, "hearth_kv_cache_blocks_total", "gauge", "KV cache blocks in the pool.");
  line(out, "hearth_kv_cache_blocks_total", e.kv_blocks_total);
  header(out, "hearth_kv_cache_usage_ratio", "gauge", "Fraction of the KV cache in use.");
  line(out, "hearth_kv_cache_usage_ratio",
       e.kv_blocks_total > 0 ? static_cast<double>(e.kv_blocks_used) / e.kv_blocks_total : 0.0);
  header(out, "hearth_engine_steps_total", "counter", "Forward passes run by the engine.");
  line(out, "hearth_engine_steps_total", static_cast<double>(e.steps_total));
  header(out, "hearth_engine_preemptions_total", "counter", "Requests preempted for lack of KV blocks.");
  line(out, "hearth_engine_preemptions_total", static_cast<double>(e.preemptions_total));
  header(out, "hearth_engine_prompt_tokens_total", "counter", "Prompt tokens submitted to the engine.");
  line(out, "hearth_engine_prompt_tokens_total", static_cast<double>(e.prompt_tokens_total));
  header(out, "hearth_engine_generated_tokens_total", "counter", "Tokens sampled by the engine.");
  line(out, "hearth_engine_generated_tokens_total", static_cast<double>(e.generated_tokens_total));
  render_prefix_cache(out, e);
  return out;
}

}  // namespace hearth::server
