// The feature probe (endpoint.h): each API capability a coding agent relies on is tried
// for real and recorded as pass or fail with the status and the start of the answer.
// Tool and reasoning checks depend on the model as much as on the server: a random-weight
// model fails them on any server, and the detail line says what came back instead.
#include <algorithm>
#include <chrono>
#include <thread>

#include "bench/endpoint.h"

namespace hearth::bench {
namespace {

constexpr int kProbeMaxTokens = 400;  // room for a thinking model to reach its tool call

Json weather_tool() {
  return Json::array({Json{{"type", "function"},
                           {"function",
                            {{"name", "get_weather"},
                             {"description", "Current weather of a city"},
                             {"parameters",
                              {{"type", "object"},
                               {"properties", {{"city", {{"type", "string"}, {"description", "city name"}}}}},
                               {"required", Json::array({"city"})}}}}}}});
}

Json body_of(const EndpointOptions& o, const std::string& text, int max_tokens, bool stream) {
  Json b{{"model", o.model},
         {"messages", Json::array({Json{{"role", "user"}, {"content", text}}})},
         {"max_tokens", max_tokens},
         {"temperature", 0}};
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

FeatureCheck check(const std::string& id, bool pass, int status, const std::string& detail, const std::string& excerpt) {
  return FeatureCheck{id, pass ? "pass" : "fail", status, detail, excerpt_of(excerpt)};
}

std::string failure_of(const ChatResult& r) {
  return std::string(outcome_name(r.record.outcome)) + ": " + r.record.error;
}

// An OpenAI error body: {"error": {"message": "...", ...}}.
bool openai_error_shape(const std::string& body) {
  const Json j = Json::parse(body, nullptr, false);
  return j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message") &&
         j["error"]["message"].is_string() && !j["error"]["message"].get<std::string>().empty();
}

FeatureCheck check_tools(const EndpointOptions& o, bool stream) {
  Json b = body_of(o, "What is the weather in Paris right now? Use the get_weather tool.", kProbeMaxTokens, stream);
  b["tools"] = weather_tool();
  b["tool_choice"] = "auto";
  const ChatResult r = run_chat(o.endpoint, b);
  const std::string id = stream ? "tool_calling_stream" : "tool_calling";
  if (r.record.outcome != Outcome::ok) return check(id, false, r.record.http_status, failure_of(r), r.excerpt);
  if (r.tool_calls.empty())
    return check(id, false, r.record.http_status,
                 "no tool call in the answer (finish_reason \"" + r.record.finish_reason + "\", " +
                     std::to_string(r.content.size()) + " bytes of content)",
                 r.content.empty() ? r.excerpt : r.content);
  const Json& call = r.tool_calls[0];
  const std::string args = call["arguments"].get<std::string>();
  const Json parsed = Json::parse(args, nullptr, false);
  if (call["name"] != "get_weather")
    return check(id, false, r.record.http_status, "tool call names \"" + call["name"].get<std::string>() + "\"", args);
  if (!parsed.is_object())
    return check(id, false, r.record.http_status, "arguments are not a JSON object: " + excerpt_of(args, 80), args);
  return check(id, true, r.record.http_status,
               "get_weather called with " + excerpt_of(parsed.dump(), 80) + ", finish_reason \"" + r.record.finish_reason + "\"",
               call.dump());
}

}  // namespace

std::vector<FeatureCheck> probe_features(const EndpointOptions& o) {
  // Each check is reported as soon as it is done: the tool and reasoning ones can take a while.
  struct Reporting : std::vector<FeatureCheck> {
    const EndpointOptions* opts;
    void push_back(FeatureCheck f) {
      if (opts->progress) opts->progress("feature " + f.id + ": " + f.status + " (" + f.detail + ")");
      std::vector<FeatureCheck>::push_back(std::move(f));
    }
  } out;
  out.opts = &o;

  // /v1/models, and the served context for the overflow check.
  int64_t n_ctx = 0;
  {
    const HttpResponse r = http_get(o.endpoint, "/models");
    const Json j = Json::parse(r.body, nullptr, false);
    bool listed = false;
    std::vector<std::string> ids;
    if (j.is_object() && j.contains("data") && j["data"].is_array())
      for (const auto& m : j["data"]) {
        if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
        ids.push_back(m["id"]);
        listed |= m["id"] == o.model;
        for (const char* key : {"context_length", "max_model_len", "loaded_context_length"})
          if (m.contains(key) && m[key].is_number_integer() && n_ctx == 0) n_ctx = m[key].get<int64_t>();
        if (n_ctx == 0 && m.contains("meta") && m["meta"].is_object() && m["meta"].contains("n_ctx") &&
            m["meta"]["n_ctx"].is_number_integer())
          n_ctx = m["meta"]["n_ctx"].get<int64_t>();
      }
    std::string detail = r.outcome != Outcome::ok ? std::string(outcome_name(r.outcome)) + ": " + r.error
                         : ids.empty()            ? "HTTP " + std::to_string(r.status) + ", no model list"
                                                  : std::to_string(ids.size()) + " model(s), \"" + o.model + "\" " +
                                                        (listed ? "listed" : "not listed");
    out.push_back(check("models", r.status == 200 && listed, r.status, detail, r.body));
  }

  // Streaming and usage in streams, from one streamed request.
  {
    const ChatResult r = run_chat(o.endpoint, body_of(o, "Name three prime numbers.", 16, true));
    const bool ok = r.record.outcome == Outcome::ok;
    const bool output = r.record.content_chars + r.record.reasoning_chars > 0 || r.record.tool_calls > 0;
    out.push_back(check("streaming", ok && output, r.record.http_status,
                        ok ? (output ? "SSE stream with " + std::to_string(r.record.completion_tokens) +
                                           " tokens, TTFT " + std::to_string(static_cast<int>(r.record.ttft_s * 1000)) + " ms, [DONE]"
                                     : "stream completed without any output")
                           : failure_of(r),
                        r.excerpt));
    out.push_back(check("usage_in_stream", ok && r.saw_usage_in_stream && r.record.completion_tokens > 0,
                        r.record.http_status,
                        !ok                     ? failure_of(r)
                        : r.saw_usage_in_stream ? "usage chunk: " + std::to_string(r.record.prompt_tokens) + " prompt + " +
                                                      std::to_string(r.record.completion_tokens) + " completion tokens"
                                                : "no usage in the stream despite stream_options.include_usage",
                        r.excerpt));
  }

  out.push_back(check_tools(o, false));
  out.push_back(check_tools(o, true));

  // Reasoning separated from content.
  {
    const ChatResult r =
        run_chat(o.endpoint, body_of(o, "Think step by step: what is 17 * 23? Give only the number at the end.", kProbeMaxTokens, false));
    const bool ok = r.record.outcome == Outcome::ok;
    const bool inline_think = r.content.find("<think>") != std::string::npos || r.content.find("</think>") != std::string::npos;
    const bool pass = ok && r.record.reasoning_chars > 0 && !inline_think;
    std::string detail = !ok ? failure_of(r)
                         : pass ? std::to_string(r.record.reasoning_chars) + " bytes of reasoning in its own field, " +
                                      std::to_string(r.record.content_chars) + " bytes of content"
                         : inline_think ? "`<think>` tags left inside content"
                                        : "no reasoning field in the answer (the model did not think, or the server drops it)";
    out.push_back(check("reasoning_separated", pass, r.record.http_status, detail, r.excerpt));
  }

  // Several clients at once: all must succeed; the detail says whether they overlapped.
  {
    constexpr int kClients = 4;
    std::vector<ChatResult> rs(kClients);
    std::vector<double> begin(kClients);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i)
      threads.emplace_back([&, i] {
        begin[static_cast<size_t>(i)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rs[static_cast<size_t>(i)] = run_chat(o.endpoint, body_of(o, "Count from 1 to 10.", 24, true));
      });
    for (auto& t : threads) t.join();
    int ok = 0;
    double last_first_token = 0, first_end = 1e30;
    std::string failure;
    for (int i = 0; i < kClients; ++i) {
      const ChatResult& r = rs[static_cast<size_t>(i)];
      if (r.record.outcome == Outcome::ok) ++ok;
      else failure = failure_of(r);
      last_first_token = std::max(last_first_token, begin[static_cast<size_t>(i)] + std::max(0.0, r.record.ttft_s));
      first_end = std::min(first_end, begin[static_cast<size_t>(i)] + r.record.total_s);
    }
    std::string detail = std::to_string(ok) + "/" + std::to_string(kClients) + " streamed requests at once succeeded";
    if (ok == kClients)
      detail += last_first_token < first_end ? "; all were answering at the same time" : "; served one after another (queued)";
    else
      detail += "; " + failure;
    out.push_back(check("parallel_clients", ok == kClients, 200, detail, rs[0].excerpt));
  }

  // Error shape of a bad request.
  {
    const HttpResponse r = http_post(o.endpoint, "/chat/completions", Json{{"model", o.model}, {"messages", "not an array"}}.dump());
    const bool pass = r.status >= 400 && r.status < 500 && openai_error_shape(r.body);
    std::string detail = r.outcome != Outcome::ok ? std::string(outcome_name(r.outcome)) + ": " + r.error
                         : "HTTP " + std::to_string(r.status) +
                               (openai_error_shape(r.body) ? ", {\"error\": {\"message\": ...}}" : ", not an OpenAI error object");
    out.push_back(check("error_shape", pass, r.status, detail, r.body));
  }

  // A prompt longer than the context must be refused with a 4xx error, not truncated.
  {
    const int64_t words = n_ctx > 0 ? n_ctx + 64 : 40000;
    std::string text;
    text.reserve(static_cast<size_t>(words) * 6);
    for (int64_t i = 0; i < words; ++i) text += "hello ";
    const ChatResult r = run_chat(o.endpoint, body_of(o, text, 1, false));
    const int s = r.record.http_status;
    const std::string size = std::to_string(words) + "-word prompt" +
                             (n_ctx > 0 ? " (context " + std::to_string(n_ctx) + " from /v1/models)" : " (context not reported; assumed < 40000)");
    const bool is_4xx = r.record.outcome == Outcome::http_error && s >= 400 && s < 500;
    std::string detail = is_4xx ? size + " refused: " + excerpt_of(r.record.error, 120)
                         : r.record.outcome == Outcome::ok ? size + " accepted (HTTP 200): truncated or not checked"
                                                           : size + ": " + failure_of(r);
    out.push_back(check("context_overflow", is_4xx, s, detail, r.excerpt));
  }
  return out;  // moved into the base vector (C++20 implicit move)
}

}  // namespace hearth::bench
