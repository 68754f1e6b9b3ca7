// The chat path end to end with scripted model output: a step runner that answers every
// request with a given text (tokenized with the real Qwen3 tokenizer) after its generation
// prompt, so reasoning, tool calls, parallel_tool_calls, stop strings and the reasoning
// field options go through the engine, the stream parser and both response encoders
// exactly as a real model's output would. Random tiny models never write these.
#include "scripted_runner.h"
#include "server_fixture.h"

namespace hearth::test {
namespace {

class ServerScripted : public ::testing::Test {
 protected:
  static TestServer::Options options(server::ReasoningField field) {
    TestServer::Options o;
    o.server.reasoning_field = field;
    o.runner = [](Runtime& rt) {
      auto r = std::make_unique<ScriptedRunner>(static_cast<int32_t>(rt.model->config().vocab_size),
                                                rt.tokenizer->encode("<|im_start|>assistant\n"),
                                                *rt.tokenizer->find_token("<|im_end|>"));
      runner_ = r.get();
      return r;
    };
    return o;
  }
  static void SetUpTestSuite() { server_ = new TestServer(options(server::ReasoningField::ReasoningContent)); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override { runner_->step_sleep_ms = 0; }
  // The model's next answer (the same for every request until changed).
  void script(const std::string& text) { runner_->set_script(server_->runtime().tokenizer->encode(text)); }
  static TestServer* server_;
  static ScriptedRunner* runner_;
};
TestServer* ServerScripted::server_ = nullptr;
ScriptedRunner* ServerScripted::runner_ = nullptr;

const Json kTools = Json::parse(R"([{"type": "function", "function": {"name": "get_weather",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");

// Sums a chat stream's deltas into a message; checks the streaming rules on the way.
Json stream_message(const SseResult& s, std::string& finish) {
  Json msg = {{"content", ""}, {"reasoning_content", ""}, {"tool_calls", Json::array()}};
  EXPECT_TRUE(s.done);
  for (const Json& e : s.events) {
    if (e["choices"].empty()) continue;
    const Json& c = e["choices"][0];
    const Json& d = c["delta"];
    if (d.contains("content") && d["content"].is_string()) msg["content"] = msg["content"].get<std::string>() + d["content"].get<std::string>();
    if (d.contains("reasoning_content"))
      msg["reasoning_content"] = msg["reasoning_content"].get<std::string>() + d["reasoning_content"].get<std::string>();
    for (const Json& tc : d.value("tool_calls", Json::array())) {
      const size_t i = tc["index"];
      if (i == msg["tool_calls"].size()) {
        EXPECT_TRUE(tc.contains("id") && tc.contains("type") && tc["function"].contains("name")) << tc.dump();
        msg["tool_calls"].push_back({{"id", tc["id"]}, {"name", tc["function"]["name"]}, {"arguments", ""}});
      }
      std::string& args = msg["tool_calls"][i]["arguments"].get_ref<std::string&>();
      args += tc["function"].value("arguments", "");
      // OpenCode runs a call as soon as its arguments parse: only the last delta may complete them.
      if (!Json::accept(args)) continue;
      EXPECT_FALSE(msg["tool_calls"][i].contains("complete")) << "arguments were valid JSON before the call ended";
      msg["tool_calls"][i]["complete"] = true;
    }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  return msg;
}

TEST_F(ServerScripted, ReasoningIsSplitFromContent) {
  script("<think>\nSix times seven.\n</think>\n\nThe answer is 42.");
  const auto r = server_->post("/v1/chat/completions", chat_body("What is 6*7?", 64));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["reasoning_content"], "Six times seven.");
  EXPECT_EQ(m["content"], "The answer is 42.");
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
  const auto think = server_->runtime().tokenizer->encode("<think>\nSix times seven.\n</think>");
  EXPECT_EQ(r.json["usage"]["completion_tokens_details"]["reasoning_tokens"], think.size());
  std::string finish;
  const Json sm = stream_message(server_->stream("/v1/chat/completions", chat_body("What is 6*7?", 64, true)), finish);
  EXPECT_EQ(sm["reasoning_content"], m["reasoning_content"]);
  EXPECT_EQ(sm["content"], m["content"]);
  EXPECT_EQ(finish, "stop");
}

TEST_F(ServerScripted, CutOffMidThoughtIsAllReasoning) {
  script("<think>\nStill thinking about this one for a long while");
  const auto r = server_->post("/v1/chat/completions", chat_body("Hmm?", 6));
  ASSERT_EQ(r.status, 200);
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["content"], "");
  EXPECT_NE(m["reasoning_content"].get<std::string>().find("Still"), std::string::npos);
  EXPECT_EQ(m["reasoning_content"].get<std::string>().find("<think>"), std::string::npos);
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.json["usage"]["completion_tokens_details"]["reasoning_tokens"], 6);
}

const char* kTwoCalls =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>";

TEST_F(ServerScripted, ParallelToolCallsStreamedAndWhole) {
  script(kTwoCalls);
  Json body = chat_body("Weather in Paris and Rome?", 100);
  body["tools"] = kTools;
  const auto r = server_->post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(m["content"].is_null());
  ASSERT_EQ(m["tool_calls"].size(), 2u);
  EXPECT_EQ(Json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(Json::parse(m["tool_calls"][1]["function"]["arguments"].get<std::string>())["city"], "Rome");
  EXPECT_NE(m["tool_calls"][0]["id"], m["tool_calls"][1]["id"]);
  body["stream"] = true;
  std::string finish;
  const Json sm = stream_message(server_->stream("/v1/chat/completions", body), finish);
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_EQ(sm["tool_calls"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(sm["tool_calls"][i]["arguments"], m["tool_calls"][i]["function"]["arguments"]);
    EXPECT_TRUE(sm["tool_calls"][i].value("complete", false));
  }
}

TEST_F(ServerScripted, ParallelToolCallsFalseStopsAfterTheFirstCall) {
  script(kTwoCalls);
  // The cut is a cancel from the handler: with instant steps the 40-token script could
  // end before it lands (seen once in CI), so steps take 2 ms here.
  runner_->step_sleep_ms = 2;
  Json body = chat_body("Weather in Paris and Rome?", 100);
  body["tools"] = kTools;
  body["parallel_tool_calls"] = false;
  const auto r = server_->post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json["choices"][0]["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "tool_calls");
  const auto all = server_->runtime().tokenizer->encode(kTwoCalls);
  EXPECT_LT(r.json["usage"]["completion_tokens"].get<size_t>(), all.size()) << "generation went on after the call";
  body["stream"] = true;
  std::string finish;
  const Json sm = stream_message(server_->stream("/v1/chat/completions", body), finish);
  EXPECT_EQ(sm["tool_calls"].size(), 1u);
  EXPECT_EQ(finish, "tool_calls");
}

TEST_F(ServerScripted, ToolChoiceNoneKeepsTheMarkupAsContent) {
  script(kTwoCalls);
  Json body = chat_body("Weather?", 100);
  body["tools"] = kTools;
  body["tool_choice"] = "none";
  const auto r = server_->post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.json["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerScripted, StopStringsEndTheAnswer) {
  script("Hello there. STOP and more text");
  Json body = chat_body("Hi", 50);
  body["stop"] = Json::array({"STOP", "never"});
  const auto r = server_->post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json["choices"][0]["message"]["content"], "Hello there. ");
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  std::string finish;
  EXPECT_EQ(stream_message(server_->stream("/v1/chat/completions", body), finish)["content"], "Hello there. ");
}

TEST(ServerScriptedOptions, ReasoningFieldBoth) {
  ScriptedRunner* runner = nullptr;
  TestServer::Options o;
  o.server.reasoning_field = server::ReasoningField::Both;
  o.runner = [&runner](Runtime& rt) {
    auto r = std::make_unique<ScriptedRunner>(static_cast<int32_t>(rt.model->config().vocab_size),
                                              rt.tokenizer->encode("<|im_start|>assistant\n"),
                                              *rt.tokenizer->find_token("<|im_end|>"));
    runner = r.get();
    return r;
  };
  TestServer srv(o);
  runner->set_script(srv.runtime().tokenizer->encode("<think>\nhm\n</think>\n\nok"));
  const auto r = srv.post("/v1/chat/completions", chat_body("x", 20));
  EXPECT_EQ(r.json["choices"][0]["message"]["reasoning"], "hm");
  EXPECT_EQ(r.json["choices"][0]["message"]["reasoning_content"], "hm");
  const auto s = srv.stream("/v1/chat/completions", chat_body("x", 20, true));
  bool saw_reasoning = false;
  for (const Json& e : s.events)
    if (!e["choices"].empty() && e["choices"][0]["delta"].contains("reasoning")) saw_reasoning = true;
  EXPECT_TRUE(saw_reasoning);
}

}  // namespace
}  // namespace hearth::test
