// The suite and the concurrency sweep of `hearth bench endpoint` (endpoint.h).
// A request that fails while the server process (--pid/--spawn) is dead is a crash; after
// a crash the remaining requests are still sent and fail fast as connection_refused, so
// the reliability table shows what a client would have seen.
#include "bench/endpoint.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench/process.h"
#include "core/error.h"

namespace hearth::bench {
namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

Json user_messages(const std::string& text) { return Json::array({Json{{"role", "user"}, {"content", text}}}); }

std::string last_user_text(const Json& messages) {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it)
    if (it->is_object() && it->value("role", "") == "user" && (*it)["content"].is_string()) return (*it)["content"];
  return "";
}

Json chat_body(const EndpointOptions& o, const Json& messages, int max_tokens, bool stream, const Json& tools = nullptr) {
  Json b{{"model", o.model}, {"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (!tools.is_null()) b["tools"] = tools;
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

// Marks a failed request as a crash when the server process is known to be dead.
void mark_crash(const EndpointOptions& o, RequestRecord& r) {
  if (r.outcome == Outcome::ok || r.outcome == Outcome::http_error || !o.process) return;
  // A dying server breaks its connections a moment before it is reaped: give it 0.5 s.
  bool alive = o.process->alive();
  for (int i = 0; i < 10 && alive; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    alive = o.process->alive();
  }
  if (!alive) {
    r.outcome = Outcome::crash;
    r.error = "server process died: " + o.process->metrics().exit_detail + " (" + r.error + ")";
  }
}

std::string figure_of(const RequestRecord& r) {
  if (r.outcome != Outcome::ok) return std::string(outcome_name(r.outcome)) + ": " + r.error;
  std::string s = r.e2e_tokens_per_s >= 0 ? fixed(r.e2e_tokens_per_s, 1) + " tok/s" : "tokens unknown (no usage)";
  if (r.ttft_s >= 0) s += ", TTFT " + fixed(r.ttft_s * 1000, 0) + " ms";
  s += ", " + (r.completion_tokens >= 0 ? std::to_string(r.completion_tokens) : std::string("?")) + " tokens in " +
       fixed(r.total_s, 2) + " s";
  if (r.usage_missing) s += " (no usage: tokens counted)";
  return s;
}

SweepPoint sweep_level(const EndpointOptions& o, const Json& body, int clients) {
  SweepPoint p;
  p.clients = clients;
  std::mutex mu;
  std::vector<RequestRecord> records;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      for (int k = 0; k < o.sweep_requests; ++k) {
        ChatResult r = run_chat(o.endpoint, body);
        mark_crash(o, r.record);
        std::lock_guard lk(mu);
        records.push_back(r.record);
      }
    });
  for (auto& t : threads) t.join();
  p.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> latency, ttft;
  for (const auto& r : records) {
    ++p.requests;
    if (r.outcome != Outcome::ok) {
      ++p.failures[outcome_name(r.outcome)];
      continue;
    }
    ++p.ok;
    p.completion_tokens += std::max<int64_t>(0, r.completion_tokens);
    latency.push_back(r.total_s);
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s);
  }
  p.aggregate_tokens_per_s = p.wall_s > 0 ? static_cast<double>(p.completion_tokens) / p.wall_s : 0;
  p.latency_p50_s = percentile(latency, 50);
  p.latency_p90_s = percentile(latency, 90);
  p.latency_p99_s = percentile(latency, 99);
  p.ttft_p50_s = percentile(ttft, 50);
  return p;
}

}  // namespace

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return -1;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const size_t i = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(values.size()))) - 1;
  return values[i];
}

std::vector<SuiteCase> default_suite() {
  // The seed report's prompts (FINAL_PERFORMANCE_TABLE.md); only the buffer-overflow one
  // is quoted there, the other three are written in the same form.
  const std::pair<const char*, const char*> cases[] = {
      {"SQL Injection", "Explain a SQL injection attack and provide a vulnerable code example with its fix"},
      {"XSS Attacks", "Explain cross-site scripting (XSS) attacks and provide an example payload with its mitigation"},
      {"CSRF Testing", "Explain how to test a web application for CSRF vulnerabilities and provide an example"},
      {"Buffer Overflow", "Explain a buffer overflow attack and provide a C code example"},
  };
  std::vector<SuiteCase> out;
  for (const auto& [name, prompt] : cases) out.push_back({name, user_messages(prompt), 0, true, true});
  return out;
}

std::vector<SuiteCase> load_suite(const std::string& path) {
  std::ifstream in(path);
  HEARTH_CHECK(in.good(), "--suite " + path + ": cannot read the file");
  std::vector<SuiteCase> out;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const Json j = Json::parse(line, nullptr, false);
    HEARTH_CHECK(j.is_object(), where + ": expected one JSON object per line");
    SuiteCase c;
    HEARTH_CHECK(j.contains("name") && j["name"].is_string() && !j["name"].get<std::string>().empty(),
                 where + ": \"name\" must be a non-empty string");
    c.name = j["name"];
    if (j.contains("messages")) {
      HEARTH_CHECK(j["messages"].is_array() && !j["messages"].empty(), where + ": \"messages\" must be a non-empty array");
      c.messages = j["messages"];
    } else {
      HEARTH_CHECK(j.contains("prompt") && j["prompt"].is_string(), where + ": needs \"prompt\" (a string) or \"messages\"");
      c.messages = user_messages(j["prompt"]);
    }
    if (j.contains("tools")) {
      HEARTH_CHECK(j["tools"].is_array(), where + ": \"tools\" must be an array of tool schemas");
      c.tools = j["tools"];
    }
    if (j.contains("max_tokens")) {
      HEARTH_CHECK(j["max_tokens"].is_number_integer() && j["max_tokens"].get<int64_t>() >= 1 &&
                       j["max_tokens"].get<int64_t>() <= 1000000,
                   where + ": \"max_tokens\" must be an integer from 1 to 1000000");
      c.max_tokens = j["max_tokens"];
    }
    if (j.contains("stream")) {
      const Json& s = j["stream"];
      HEARTH_CHECK(s.is_boolean() || s == "both", where + ": \"stream\" must be true, false or \"both\"");
      if (s.is_boolean()) c.stream = s.get<bool>(), c.non_stream = !s.get<bool>();
    }
    out.push_back(std::move(c));
  }
  HEARTH_CHECK(!out.empty(), "--suite " + path + ": no test cases");
  return out;
}

RunResults run_endpoint(const EndpointOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  RunResults r;
  r.kind = "endpoint";
  r.label = o.label;
  r.created = utc_now_iso();
  r.tool = "hearth 0.1.0";
  r.machine = describe_machine();
  r.machine.note = o.note;
  r.url = o.endpoint.url();
  r.model = o.model;
  r.settings = {o.max_tokens, o.repetitions, o.warmup, o.endpoint.timeout_s, o.concurrency};
  if (o.process) o.process->start_sampling();

  for (const SuiteCase& sc : o.suite) {
    for (const bool stream : {false, true}) {
      if ((stream && !sc.stream) || (!stream && !sc.non_stream)) continue;
      const int max_tokens = sc.max_tokens > 0 ? sc.max_tokens : o.max_tokens;
      CaseResult c{sc.name, last_user_text(sc.messages), stream, max_tokens, {}};
      const Json body = chat_body(o, sc.messages, max_tokens, stream, sc.tools);
      const std::string tag = sc.name + (stream ? " (stream)" : " (non-stream)");
      for (int rep = -o.warmup; rep < o.repetitions; ++rep) {
        ChatResult res = run_chat(o.endpoint, body);
        mark_crash(o, res.record);
        say(tag + (rep < 0 ? " warm-up" : " rep " + std::to_string(rep + 1) + "/" + std::to_string(o.repetitions)) +
            ": " + figure_of(res.record));
        if (rep < 0) continue;
        res.record.repetition = rep;
        c.requests.push_back(res.record);
      }
      r.cases.push_back(std::move(c));
    }
  }

  if (!o.suite.empty()) {
    const SuiteCase& first = o.suite.front();
    const int max_tokens = first.max_tokens > 0 ? first.max_tokens : o.max_tokens;
    const Json body = chat_body(o, first.messages, max_tokens, true);
    for (int clients : o.concurrency) {
      SweepPoint p = sweep_level(o, body, clients);
      say("concurrency " + std::to_string(clients) + ": " + fixed(p.aggregate_tokens_per_s, 1) + " tok/s aggregate, " +
          std::to_string(p.ok) + "/" + std::to_string(p.requests) + " ok, latency p50 " +
          (p.latency_p50_s >= 0 ? fixed(p.latency_p50_s, 2) + " s" : std::string("n/a")));
      r.concurrency.push_back(std::move(p));
    }
  }

  if (o.probe) r.features = probe_features(o);
  if (o.process) r.process = o.process->metrics();
  return r;
}

}  // namespace hearth::bench
