// /v1/chat/completions: the response shapes, streaming rules (role only in the first
// delta, [DONE], include_usage with the details objects), streamed == non-streamed,
// usage against /tokenize of the same messages, enforced tool_choice (a named function
// always yields that call, streamed with id/type/name first), tool_choice none, and
// request bodies as real clients send them.
#include <algorithm>
#include <map>
#include <set>

#include "server_fixture.h"

namespace hearth::test {
namespace {

class ServerChat : public SharedServerTest<ServerChat> {};

const Json kWeatherTool = Json::parse(R"({"type": "function", "function": {"name": "get_weather",
  "description": "Weather in a city", "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 0,
  "maximum": 9007199254740991}}, "required": ["city"]}}})");

// What the deltas of a stream add up to.
struct Streamed {
  std::string content, reasoning, finish;
  std::vector<Json> calls;  // {id, name, arguments}
  Json usage;
  int role_deltas = 0;
};

Streamed accumulate(const SseResult& s) {
  Streamed out;
  for (const Json& e : s.events) {
    if (e.contains("usage") && e["choices"].empty()) {
      out.usage = e["usage"];
      continue;
    }
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    const Json& c = e["choices"][0];
    const Json& d = c["delta"];
    if (d.contains("role")) {
      ++out.role_deltas;
      EXPECT_EQ(d["role"], "assistant");
    }
    if (d.contains("content") && d["content"].is_string()) out.content += d["content"].get<std::string>();
    if (d.contains("reasoning_content")) out.reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("tool_calls")) {
      for (const Json& tc : d["tool_calls"]) {
        const size_t idx = tc["index"];
        if (idx >= out.calls.size()) {
          // The first delta of a call carries id, type and name.
          EXPECT_TRUE(tc.contains("id") && tc["id"].is_string()) << tc.dump();
          EXPECT_EQ(tc["type"], "function");
          out.calls.push_back({{"id", tc["id"]}, {"name", tc["function"]["name"]}, {"arguments", ""}});
        }
        if (tc["function"].contains("arguments"))
          out.calls[idx]["arguments"] = out.calls[idx]["arguments"].get<std::string>() + tc["function"]["arguments"].get<std::string>();
      }
    }
    if (!c["finish_reason"].is_null()) out.finish = c["finish_reason"];
  }
  return out;
}

TEST_F(ServerChat, NonStreamedShapeAndUsage) {
  const Json body = chat_body("Write a haiku about the sea.", 16);
  const auto r = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["object"], "chat.completion");
  EXPECT_EQ(r.json["model"], "tiny");
  EXPECT_EQ(r.json["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  const Json& msg = r.json["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_TRUE(msg["content"].is_string());
  const auto tok = srv().post("/tokenize", Json{{"messages", body["messages"]}});
  EXPECT_EQ(r.json["usage"]["prompt_tokens"], tok.json["count"]);
  EXPECT_LE(r.json["usage"]["completion_tokens"].get<int>(), 16);
  EXPECT_EQ(r.json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_TRUE(r.json["usage"]["completion_tokens_details"].contains("reasoning_tokens"));
  // The greedy text is what direct mode generates for the same prompt.
  const auto want = reference_greedy(tok.json["tokens"].get<std::vector<int32_t>>(), 16);
  EXPECT_EQ(r.json["usage"]["completion_tokens"], want.size());
}

TEST_F(ServerChat, StreamFollowsTheOpenAIRulesAndMatchesNonStreamed) {
  Json body = chat_body("List three colours.", 20);
  const auto whole = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto s = srv().stream("/v1/chat/completions", body);
  ASSERT_EQ(s.status, 200);
  EXPECT_TRUE(s.done);
  EXPECT_NE(s.raw.find("data: [DONE]\n\n"), std::string::npos);
  ASSERT_FALSE(s.events.empty());
  EXPECT_TRUE(s.events[0]["choices"][0]["delta"].contains("role"));
  const Streamed st = accumulate(s);
  EXPECT_EQ(st.role_deltas, 1);
  const Json& msg = whole.json["choices"][0]["message"];
  EXPECT_EQ(st.content, msg["content"].is_string() ? msg["content"].get<std::string>() : "");
  EXPECT_EQ(st.reasoning, msg.value("reasoning_content", ""));
  EXPECT_EQ(st.finish, whole.json["choices"][0]["finish_reason"]);
  EXPECT_EQ(st.usage, whole.json["usage"]);
  EXPECT_TRUE(st.usage["prompt_tokens_details"].contains("cached_tokens"));
  EXPECT_TRUE(st.usage["completion_tokens_details"].contains("reasoning_tokens"));
}

TEST_F(ServerChat, NamedToolChoiceAlwaysCallsThatFunction) {
  Json body = chat_body("What's the weather in Paris?", 24);
  body["tools"] = Json::array({kWeatherTool});
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  const auto r = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& choice = r.json["choices"][0];
  // A random model never closes the call, so max_tokens cuts it: "length", but still a call.
  EXPECT_TRUE(choice["finish_reason"] == "tool_calls" || choice["finish_reason"] == "length") << r.body;
  ASSERT_TRUE(choice["message"].contains("tool_calls")) << r.body;
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r.body;
  EXPECT_TRUE(choice["message"]["content"].is_null()) << r.body;
  const Json& call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
  body["stream"] = true;
  const Streamed st = accumulate(srv().stream("/v1/chat/completions", body));
  ASSERT_EQ(st.calls.size(), 1u);
  EXPECT_EQ(st.calls[0]["name"], "get_weather");
  EXPECT_EQ(st.calls[0]["arguments"], call["function"]["arguments"]);
  EXPECT_EQ(st.calls[0]["arguments"].get<std::string>().substr(0, 1), "{");
  EXPECT_EQ(st.finish, choice["finish_reason"]);
}

TEST_F(ServerChat, RequiredWithOneToolCallsIt) {
  // A random model writes no valid tool name of its own; with one tool the name is forced.
  Json body = chat_body("Weather?", 16);
  body["tools"] = Json::array({kWeatherTool});
  body["tool_choice"] = "required";
  const auto r = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json["choices"][0]["message"]["tool_calls"].size(), 1u) << r.body;
  EXPECT_EQ(r.json["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
}

TEST_F(ServerChat, RequiredWithSeveralToolsCallsOneOfThem) {
  // With several tools the model picks the name, but sampling only allows the tools' names
  // (a random model left alone writes none). Names share prefixes on purpose ("get_weather"
  // and "get_weather_alerts"); sampled at temperature 1 over several seeds, more than one
  // tool gets called, and streamed equals non-streamed for the same seed.
  const std::vector<std::string> names = {"get_weather", "get_weather_alerts", "read_file"};
  Json tools = Json::array();
  for (const auto& n : names) {
    Json t = kWeatherTool;
    t["function"]["name"] = n;
    tools.push_back(t);
  }
  std::set<std::string> called;
  for (int seed = 1; seed <= 8; ++seed) {
    Json body = chat_body("Which tool?", 12);
    body["tools"] = tools;
    body["tool_choice"] = "required";
    body["temperature"] = 1.0;
    body["seed"] = seed;
    const auto r = srv().post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const Json& calls = r.json["choices"][0]["message"]["tool_calls"];
    ASSERT_GE(calls.size(), 1u) << r.body;
    const std::string name = calls[0]["function"]["name"];
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    EXPECT_EQ(calls[0]["function"]["arguments"].get<std::string>().substr(0, 1), "{");
    called.insert(name);
    if (seed == 1) {
      body["stream"] = true;
      const Streamed st = accumulate(srv().stream("/v1/chat/completions", body));
      ASSERT_GE(st.calls.size(), 1u);
      EXPECT_EQ(st.calls[0]["name"], name);
      EXPECT_EQ(st.calls[0]["arguments"], calls[0]["function"]["arguments"]);
    }
  }
  EXPECT_GE(called.size(), 2u);
}

TEST_F(ServerChat, TemplateGetsThinkingSwitchAndReasoningReplay) {
  // What the template rendered, read back through /tokenize and /detokenize.
  auto rendered = [&](const Json& body) {
    const auto t = srv().post("/tokenize", body);
    EXPECT_EQ(t.status, 200) << t.body;
    return srv().post("/detokenize", Json{{"tokens", t.json["tokens"]}}).json["content"].get<std::string>();
  };
  const Json user = Json::array({Json{{"role", "user"}, {"content", "hi"}}});
  const std::string thinking = rendered(Json{{"messages", user}});
  const std::string no_thinking = rendered(Json{{"messages", user}, {"chat_template_kwargs", {{"enable_thinking", false}}}});
  EXPECT_EQ(no_thinking, thinking + "<think>\n\n</think>\n\n");
  // Qwen3 replays the reasoning of assistant turns after the last user message; content
  // may be null beside tool_calls.
  const Json turn = Json::parse(R"([{"role": "user", "content": "weather?"},
    {"role": "assistant", "content": null, "reasoning_content": "Need the weather tool.",
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "rain"}])");
  const std::string replay = rendered(Json{{"messages", turn}, {"tools", Json::array({kWeatherTool})}});
  EXPECT_NE(replay.find("<think>\nNeed the weather tool.\n</think>"), std::string::npos) << replay;
  Json body = chat_body("x", 4);
  body["messages"] = turn;
  body["tools"] = Json::array({kWeatherTool});
  EXPECT_EQ(srv().post("/v1/chat/completions", body).status, 200);
}

TEST_F(ServerChat, ToolChoiceNoneAndBadToolChoices) {
  Json body = chat_body("Weather?", 8);
  body["tools"] = Json::array({kWeatherTool});
  body["tool_choice"] = "none";
  const auto r = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.json["choices"][0]["message"].contains("tool_calls"));
  Json required = chat_body("x", 4);
  required["tool_choice"] = "required";
  EXPECT_EQ(srv().post("/v1/chat/completions", required).status, 400);
  Json unknown = chat_body("x", 4);
  unknown["tools"] = Json::array({kWeatherTool});
  unknown["tool_choice"] = "sometimes";
  const auto u = srv().post("/v1/chat/completions", unknown);
  EXPECT_EQ(u.status, 400);
  EXPECT_EQ(u.json["error"]["param"], "tool_choice");
  Json other = chat_body("x", 4);
  other["tools"] = Json::array({kWeatherTool});
  other["tool_choice"] = {{"type", "function"}, {"function", {{"name", "nope"}}}};
  EXPECT_EQ(srv().post("/v1/chat/completions", other).status, 400);
}

TEST_F(ServerChat, RequestsAsRealClientsSendThem) {
  // OpenCode's second agent request: reasoning replay, content "" beside tool_calls, a
  // tool result, model options copied into the body, tool schemas with $schema.
  const Json body = Json::parse(R"({
    "model": "tiny", "max_tokens": 32000, "temperature": 0, "top_p": 0.95, "top_k": 20,
    "chat_template_kwargs": {"enable_thinking": false}, "tool_choice": "auto",
    "stream": false, "stream_options": {"include_usage": true},
    "messages": [
      {"role": "system", "content": "You are opencode."},
      {"role": "user", "content": [{"type": "text", "text": "Read hello.txt"}]},
      {"role": "assistant", "content": "", "reasoning_content": "Thinking about it...",
       "tool_calls": [{"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
      {"role": "user", "content": null}
    ]})");
  Json b = body;
  b["tools"] = Json::array({kWeatherTool});
  b["max_tokens"] = 8;  // keep it short; 32000 is clamped (tested on /v1/completions)
  const auto r = srv().post("/v1/chat/completions", b);
  EXPECT_EQ(r.status, 200) << r.body;
  b["max_tokens"] = 32000;
  b["max_completion_tokens"] = 4;
  EXPECT_EQ(srv().post("/v1/chat/completions", b).status, 200);
}

TEST_F(ServerChat, ChatLogprobs) {
  Json body = chat_body("Count to five.", 6);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  body["ignore_eos"] = true;
  const auto r = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& content = r.json["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  for (const Json& e : content) {
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    ASSERT_EQ(e["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_NEAR(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>(), 1e-6);
  }
}

TEST_F(ServerChat, SeveralChoicesStreamSideBySide) {
  Json body = chat_body("Pick a number.", 5);
  body["n"] = 2;
  body["temperature"] = 1.0;
  body["seed"] = 11;
  body["ignore_eos"] = true;
  const auto whole = srv().post("/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  ASSERT_EQ(whole.json["choices"].size(), 2u);
  EXPECT_EQ(whole.json["usage"]["completion_tokens"], 10);
  body["stream"] = true;
  const auto s = srv().stream("/v1/chat/completions", body);
  std::map<int, int> roles, finishes;
  std::map<int, std::string> text;
  for (const Json& e : s.events) {
    const Json& c = e["choices"][0];
    const int i = c["index"];
    if (c["delta"].contains("role")) ++roles[i];
    if (c["delta"].contains("content")) text[i] += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) ++finishes[i];
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(roles[i], 1);
    EXPECT_EQ(finishes[i], 1);
    // Seeded: the streamed choice i is the non-streamed choice i.
    EXPECT_EQ(text[i], whole.json["choices"][i]["message"]["content"]);
  }
}

TEST_F(ServerChat, BadMessagesAre400s) {
  auto post = [&](const std::string& body) { return srv().post("/v1/chat/completions", body); };
  EXPECT_EQ(post(R"({"messages": []})").status, 400);
  EXPECT_EQ(post(R"({"messages": "hi"})").json["error"]["param"], "messages");
  EXPECT_EQ(post(R"({"messages": [{"content": "no role"}]})").json["error"]["param"], "messages[0].role");
  EXPECT_EQ(post(R"({"messages": [5]})").status, 400);
  EXPECT_EQ(post(R"({"messages": [{"role": "user", "content": "x"}], "tools": "all"})").json["error"]["param"], "tools");
  EXPECT_EQ(post(R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})").json["error"]["param"], "stream");
  const auto rf = post(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}})");
  EXPECT_EQ(rf.status, 400);
  EXPECT_EQ(rf.json["error"]["param"], "response_format");
  // Not the overflow wording, which agents answer by compacting and retrying.
  EXPECT_EQ(rf.json["error"]["message"].get<std::string>().find("context length"), std::string::npos);
  EXPECT_NE(rf.json["error"]["message"].get<std::string>().find("\"json_schema\" is not supported"), std::string::npos);
  EXPECT_EQ(post(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1, "response_format": {"type": "text"}})").status, 200);
}

}  // namespace
}  // namespace hearth::test
