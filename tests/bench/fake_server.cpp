// bench_fake_server PORT: a scripted OpenAI-compatible server for the bench tests that
// misbehaves on purpose. The request's "model" picks the behaviour:
//   good       8 tokens "w0 w1 ... w7" with usage; tool calls when tools are sent (the
//              arguments split over two stream deltas), reasoning_content when the
//              prompt contains "Think"; 400 in OpenAI's error shape for a bad body or a
//              prompt over 2000 characters (the context /v1/models reports)
//   no_usage   as good, without usage anywhere
//   http500    HTTP 500 with an error object
//   drop       3 tokens, then the connection is closed mid-response
//   stall      streams: 1 token, then silence; whole: silence before the headers (5 s)
//   malformed  streams: an event that is not JSON; whole: a body that is not JSON
//   crash      the process exits (status 3) mid-response
// Plain cpp-httplib; nothing here is shared with hearth's server.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

using Json = nlohmann::ordered_json;

namespace {

constexpr int kTokens = 8;
constexpr size_t kContextChars = 2000;

std::string chunk(const Json& delta, const Json& finish = nullptr) {
  Json c{{"id", "fake-1"}, {"object", "chat.completion.chunk"}, {"created", 1}, {"model", "fake"},
         {"choices", Json::array({Json{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}})}};
  return "data: " + c.dump() + "\n\n";
}

std::string usage_chunk(int completion) {
  Json c{{"id", "fake-1"}, {"object", "chat.completion.chunk"}, {"created", 1}, {"model", "fake"}, {"choices", Json::array()},
         {"usage", {{"prompt_tokens", 5}, {"completion_tokens", completion}, {"total_tokens", 5 + completion}}}};
  return "data: " + c.dump() + "\n\n";
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  res.status = status;
  res.set_content(Json{{"error", {{"message", msg}, {"type", "invalid_request_error"}, {"param", nullptr}, {"code", nullptr}}}}.dump(),
                  "application/json");
}

void handle_chat(const httplib::Request& req, httplib::Response& res) {
  const Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    return send_error(res, 400, "messages: expected a non-empty array");
  const std::string mode = body.value("model", "good");
  const bool stream = body.value("stream", false);
  const std::string text = body["messages"].back().value("content", "");
  const bool tools = body.contains("tools");
  const bool think = text.find("Think") != std::string::npos;
  const bool usage = mode != "no_usage";
  if (text.size() > kContextChars) return send_error(res, 400, "prompt exceeds the context of 2000 characters");
  if (mode == "http500") return send_error(res, 500, "internal failure (scripted)");
  if (mode == "stall" && !stream) std::this_thread::sleep_for(std::chrono::seconds(5));
  if (mode == "crash" && !stream) _exit(3);
  if (mode == "malformed" && !stream) return res.set_content("this is not json", "application/json");
  if (mode == "drop" && !stream) {
    // Promise 1000 bytes, send 10, hang up.
    res.set_content_provider(1000, "application/json", [](size_t, size_t, httplib::DataSink& sink) {
      sink.write("{\"choices\"", 10);
      return false;
    });
    return;
  }

  std::string content;
  for (int i = 0; i < kTokens; ++i) content += "w" + std::to_string(i) + (i + 1 < kTokens ? " " : "");
  if (!stream) {
    Json msg{{"role", "assistant"}, {"content", tools ? Json(nullptr) : Json(content)}};
    if (think) msg["reasoning_content"] = "17 * 23 = 391";
    if (tools)
      msg["tool_calls"] = Json::array({Json{{"id", "call_1"}, {"type", "function"},
                                            {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}});
    Json out{{"id", "fake-1"}, {"object", "chat.completion"}, {"created", 1}, {"model", mode},
             {"choices", Json::array({Json{{"index", 0}, {"message", msg}, {"finish_reason", tools ? "tool_calls" : "length"}}})}};
    if (usage) out["usage"] = {{"prompt_tokens", 5}, {"completion_tokens", kTokens}, {"total_tokens", 5 + kTokens}};
    return res.set_content(out.dump(), "application/json");
  }
  res.set_chunked_content_provider("text/event-stream", [=](size_t, httplib::DataSink& sink) {
    auto put = [&](const std::string& s) { sink.write(s.data(), s.size()); };
    put(chunk(Json{{"role", "assistant"}, {"content", ""}}));
    if (mode == "malformed") {
      put("data: {\"choices\": [ this is not json\n\n");
      sink.done();
      return true;
    }
    if (tools) {
      put(chunk(Json{{"tool_calls", Json::array({Json{{"index", 0}, {"id", "call_1"}, {"type", "function"},
                                                       {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": "}}}}})}}));
      put(chunk(Json{{"tool_calls", Json::array({Json{{"index", 0}, {"function", {{"arguments", "\"Paris\"}"}}}}})}},
                "tool_calls"));
      if (usage) put(usage_chunk(2));
      put("data: [DONE]\n\n");
      sink.done();
      return true;
    }
    if (think) put(chunk(Json{{"reasoning_content", "17 * 23 = 391"}}));
    for (int i = 0; i < kTokens; ++i) {
      if (mode == "drop" && i == 3) return false;  // httplib closes the connection
      if (mode == "crash" && i == 3) _exit(3);
      if (mode == "stall" && i == 1) std::this_thread::sleep_for(std::chrono::seconds(5));
      put(chunk(Json{{"content", "w" + std::to_string(i) + (i + 1 < kTokens ? " " : "")}}, i + 1 == kTokens ? Json("length") : Json(nullptr)));
    }
    if (usage) put(usage_chunk(kTokens));
    put("data: [DONE]\n\n");
    sink.done();
    return true;
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bench_fake_server PORT\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  httplib::Server srv;
  srv.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    for (const char* id : {"good", "no_usage", "http500", "drop", "stall", "malformed", "crash"})
      data.push_back(Json{{"id", id}, {"object", "model"}, {"context_length", kContextChars / 6}});
    res.set_content(Json{{"object", "list"}, {"data", data}}.dump(), "application/json");
  });
  srv.Post("/v1/chat/completions", handle_chat);
  std::printf("bench_fake_server: listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  return srv.listen("127.0.0.1", port) ? 0 : 1;
}
