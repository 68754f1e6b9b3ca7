// The numbers behind the report (report.h): per-system summaries, the use-case
// recommendations derived from them, the JSON summary, and shared formatting.
// Recommendations are rules over measured fields only; a use case whose deciding figure
// was not measured for any system says so instead of guessing.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "bench/endpoint.h"
#include "bench/report.h"

namespace hearth::bench {
namespace {

double mean(const std::vector<double>& v) {
  if (v.empty()) return -1;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

std::string mode_of(const RunResults& r, const CaseResult& c) {
  if (r.kind == "model") return "in-process";
  return c.stream ? "stream" : "non-stream";
}

// The system with the best `key` (higher or lower is better); -1 values never win. Ties
// keep the earlier system (the order of the files on the command line).
const SystemSummary* best_by(const std::vector<SystemSummary>& s, const std::function<double(const SystemSummary&)>& key,
                             bool higher, const std::function<bool(const SystemSummary&)>& eligible = nullptr) {
  const SystemSummary* best = nullptr;
  for (const auto& x : s) {
    if (eligible && !eligible(x)) continue;
    const double v = key(x);
    if (v < 0) continue;
    if (!best || (higher ? v > key(*best) : v < key(*best))) best = &x;
  }
  return best;
}

std::string pct(double v) { return fixed(v * 100, 0) + "%"; }

}  // namespace

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string or_dash(double v, int digits) { return v < 0 ? "—" : fixed(v, digits); }

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string human_size(int64_t bytes) {
  if (bytes < 0) return "—";
  const double b = static_cast<double>(bytes);
  if (b >= 1073741824.0) return fixed(b / 1073741824.0, 2) + " GiB";
  if (b >= 1048576.0) return fixed(b / 1048576.0, 1) + " MiB";
  return fixed(b / 1024.0, 1) + " KiB";
}

SystemSummary summarize(const RunResults& r) {
  SystemSummary s;
  s.label = r.label;
  s.kind = r.kind;
  std::vector<double> ttfts, case_speeds, case_decodes;
  for (const auto& c : r.cases) {
    CaseStat cs;
    cs.name = c.name;
    cs.mode = mode_of(r, c);
    std::vector<double> e2e, decode, ttft, total, tokens;
    for (const auto& q : c.requests) {
      ++cs.requests;
      if (q.outcome == Outcome::crash || q.outcome == Outcome::connection_reset) ++s.crashes;
      if (q.outcome != Outcome::ok) {
        const std::string name = outcome_name(q.outcome);
        ++cs.failures[name];
        ++s.failures[name];
        if (cs.first_error.empty()) cs.first_error = q.error;
        if (!s.first_error.count(name)) s.first_error[name] = q.error;
        continue;
      }
      ++cs.ok;
      if (q.usage_missing) s.usage_missing = true;
      if (q.e2e_tokens_per_s >= 0) e2e.push_back(q.e2e_tokens_per_s);
      if (q.decode_tokens_per_s >= 0) decode.push_back(q.decode_tokens_per_s);
      if (q.ttft_s >= 0) ttft.push_back(q.ttft_s), ttfts.push_back(q.ttft_s);
      total.push_back(q.total_s);
      if (q.completion_tokens >= 0) tokens.push_back(static_cast<double>(q.completion_tokens));
    }
    cs.e2e_tokens_per_s = mean(e2e);
    cs.decode_tokens_per_s = mean(decode);
    cs.ttft_s = mean(ttft);
    cs.total_s = mean(total);
    cs.completion_tokens = mean(tokens);
    if (cs.e2e_tokens_per_s >= 0) case_speeds.push_back(cs.e2e_tokens_per_s);
    if (cs.decode_tokens_per_s >= 0) case_decodes.push_back(cs.decode_tokens_per_s);
    s.requests += cs.requests;
    s.ok += cs.ok;
    s.cases.push_back(std::move(cs));
  }
  s.success_rate = s.requests > 0 ? static_cast<double>(s.ok) / s.requests : -1;
  s.speed = mean(case_speeds);
  s.decode_speed = mean(case_decodes);
  s.ttft_p50_s = percentile(ttfts, 50);
  s.ttft_p90_s = percentile(ttfts, 90);
  if (r.process.present) {
    if (r.process.died) s.process_death = r.process.exit_detail.empty() ? "died" : r.process.exit_detail;
    s.load_s = r.process.load_s;
    s.peak_rss_bytes = r.process.peak_rss_bytes;
    s.peak_gpu_bytes = r.process.peak_gpu_bytes;
  }
  if (r.direct) {
    s.load_s = r.direct->load_s;
    s.peak_rss_bytes = r.direct->peak_rss_bytes;
    s.weights_bytes = r.direct->weights_bytes;
    s.kv_cache_bytes = r.direct->kv_cache_bytes;
  }
  for (const auto& p : r.concurrency)
    if (p.ok > 0 && p.aggregate_tokens_per_s > s.best_aggregate_tokens_per_s)
      s.best_aggregate_tokens_per_s = p.aggregate_tokens_per_s, s.best_clients = p.clients;
  for (const auto& f : r.features) s.features[f.id] = f.status;
  return s;
}

std::vector<Recommendation> recommend(const std::vector<SystemSummary>& systems) {
  using Key = std::function<double(const SystemSummary&)>;
  using Filter = std::function<bool(const SystemSummary&)>;
  std::vector<Recommendation> out;
  auto feature = [](const SystemSummary& s, const char* id) {
    auto it = s.features.find(id);
    return it != s.features.end() && it->second == "pass";
  };
  // One rule: the best system by `key` among the eligible ones, every system whose key
  // equals the winner's named with it; `why` explains the winner's figure.
  auto rule = [&](const char* use_case, const Key& key, bool higher, const Filter& eligible,
                  const std::function<std::string(const SystemSummary&)>& why, const std::string& none) {
    const SystemSummary* best = best_by(systems, key, higher, eligible);
    if (!best) return out.push_back({use_case, "none measured", none});
    std::string names = best->label;
    int tied = 1;
    for (const auto& s : systems)
      if (&s != best && (!eligible || eligible(s)) && key(s) == key(*best)) names += " / " + s.label, ++tied;
    out.push_back({use_case, names, why(*best) + (tied > 1 ? " (tie)" : "")});
  };
  const Key ttft = [](const SystemSummary& s) { return s.ttft_p50_s; };
  auto ms = [](double s) { return fixed(s * 1000, 0) + " ms"; };

  // Coding agents need streaming and tool calls; among those, the quickest to answer.
  const Filter agent_ready = [&](const SystemSummary& s) {
    return feature(s, "streaming") && feature(s, "tool_calling") && feature(s, "tool_calling_stream");
  };
  const SystemSummary* streaming = best_by(systems, ttft, false, [&](const SystemSummary& s) { return feature(s, "streaming"); });
  rule("Coding agent (OpenCode, Continue.dev)", ttft, false, agent_ready,
       [&](const SystemSummary& s) { return "streaming and tool calls (plain and streamed) passed; TTFT p50 " + ms(s.ttft_p50_s); },
       streaming ? "no system passed the tool-calling probes; " + streaming->label + " streams (TTFT p50 " +
                       ms(streaming->ttft_p50_s) + ") but an agent's tool calls would fail"
                 : "no system passed the streaming and tool-calling probes");
  rule("Interactive chat", ttft, false, nullptr, [&](const SystemSummary& s) { return "lowest TTFT p50: " + ms(s.ttft_p50_s); },
       "no TTFT measured");
  rule("Fastest generation", [](const SystemSummary& s) { return s.speed; }, true, nullptr,
       [](const SystemSummary& s) { return "highest mean speed over the test cases: " + fixed(s.speed, 1) + " tok/s"; },
       "no successful request");
  // Batch work wants every answer, then speed: success rate first, speed breaks ties.
  rule("Batch processing",
       [](const SystemSummary& s) { return s.success_rate < 0 ? -1 : s.success_rate * 1e9 + std::max(0.0, s.speed); }, true,
       nullptr, [](const SystemSummary& s) { return "success rate " + pct(s.success_rate) + " at " + or_dash(s.speed, 1) + " tok/s"; },
       "no requests made");
  rule("Concurrent users", [](const SystemSummary& s) { return s.best_aggregate_tokens_per_s; }, true, nullptr,
       [](const SystemSummary& s) {
         return "highest aggregate throughput: " + fixed(s.best_aggregate_tokens_per_s, 1) + " tok/s with " +
                std::to_string(s.best_clients) + " client(s)";
       },
       "no concurrency sweep in these results");
  rule("Critical reliability",
       [](const SystemSummary& s) { return s.success_rate < 0 ? -1 : s.success_rate * 1e6 - s.crashes; }, true, nullptr,
       [](const SystemSummary& s) { return "success rate " + pct(s.success_rate) + ", " + std::to_string(s.crashes) + " crash(es)"; },
       "no requests made");
  rule("Smallest memory footprint",
       [](const SystemSummary& s) {
         return s.peak_rss_bytes < 0 ? -1.0 : static_cast<double>(s.peak_rss_bytes + std::max<int64_t>(0, s.peak_gpu_bytes));
       },
       false, nullptr,
       [](const SystemSummary& s) {
         return "peak resident memory " + human_size(s.peak_rss_bytes) +
                (s.peak_gpu_bytes > 0 ? " + GPU " + human_size(s.peak_gpu_bytes) : "");
       },
       "memory was not measured (no --pid/--spawn)");
  rule("Quick start", [](const SystemSummary& s) { return s.load_s; }, false, nullptr,
       [](const SystemSummary& s) { return "model load " + fixed(s.load_s, 2) + " s"; }, "load time was not measured");
  return out;
}

Json summary_json(const std::vector<SystemSummary>& systems, const std::vector<Recommendation>& recs) {
  auto num = [](double v) { return v < 0 ? Json(nullptr) : Json(std::round(v * 1e4) / 1e4); };
  auto big = [](int64_t v) { return v < 0 ? Json(nullptr) : Json(v); };
  Json sys = Json::array();
  for (const auto& s : systems) {
    Json cases = Json::array();
    for (const auto& c : s.cases)
      cases.push_back(Json{{"name", c.name}, {"mode", c.mode}, {"requests", c.requests}, {"ok", c.ok},
                           {"e2e_tokens_per_s", num(c.e2e_tokens_per_s)}, {"decode_tokens_per_s", num(c.decode_tokens_per_s)},
                           {"ttft_s", num(c.ttft_s)}, {"failures", c.failures}});
    sys.push_back(Json{{"label", s.label},
                       {"kind", s.kind},
                       {"speed_tokens_per_s", num(s.speed)},
                       {"decode_tokens_per_s", num(s.decode_speed)},
                       {"ttft_p50_s", num(s.ttft_p50_s)},
                       {"ttft_p90_s", num(s.ttft_p90_s)},
                       {"requests", s.requests},
                       {"ok", s.ok},
                       {"success_rate", num(s.success_rate)},
                       {"crashes", s.crashes},
                       {"failures", s.failures},
                       {"load_s", num(s.load_s)},
                       {"peak_rss_bytes", big(s.peak_rss_bytes)},
                       {"peak_gpu_bytes", big(s.peak_gpu_bytes)},
                       {"best_concurrency",
                        s.best_clients > 0 ? Json{{"clients", s.best_clients},
                                                  {"aggregate_tokens_per_s", num(s.best_aggregate_tokens_per_s)}}
                                           : Json(nullptr)},
                       {"features", s.features},
                       {"cases", cases}});
  }
  Json r = Json::array();
  for (const auto& x : recs) r.push_back(Json{{"use_case", x.use_case}, {"recommended", x.recommended}, {"why", x.why}});
  return Json{{"format_version", kFormatVersion}, {"systems", sys}, {"recommendations", r}};
}

}  // namespace hearth::bench
