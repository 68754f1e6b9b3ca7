// The server's plain routes and /v1/completions: health, models, tokenize/detokenize,
// metrics, text completions (greedy output equal to direct mode, echo with prompt
// logprobs against direct-mode log-softmax, streaming equal to non-streaming, usage),
// the error policy (400 naming the field, context_length_exceeded, 401, 404, 405, 413)
// and the request log line.
#include <cmath>

#include "core/log.h"

#include "server_fixture.h"

namespace hearth::test {
namespace {

class ServerApi : public SharedServerTest<ServerApi> {};

std::vector<int32_t> ids_of(const Json& arr) { return arr.get<std::vector<int32_t>>(); }

TEST_F(ServerApi, HealthAndModels) {
  const auto h = srv().get("/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json["status"], "ok");
  const auto m = srv().get("/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.json["object"], "list");
  ASSERT_EQ(m.json["data"].size(), 1u);
  EXPECT_EQ(m.json["data"][0]["id"], "tiny");
  EXPECT_EQ(m.json["data"][0]["context_length"], 512);
  EXPECT_EQ(srv().get("/v1/models/tiny").json["id"], "tiny");
  const auto missing = srv().get("/v1/models/gpt-4");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json["error"]["code"], "model_not_found");
}

TEST_F(ServerApi, TokenizeAndDetokenizeRoundTrip) {
  const std::string text = "Hello, world! Ünïcödé 你好 <|im_end|>";
  const auto t = srv().post("/tokenize", Json{{"content", text}});
  ASSERT_EQ(t.status, 200) << t.body;
  const auto ids = ids_of(t.json["tokens"]);
  EXPECT_EQ(ids, srv().runtime().tokenizer->encode(text));
  EXPECT_EQ(t.json["count"], ids.size());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *srv().runtime().tokenizer->find_token("<|im_end|>")), 1);
  const auto d = srv().post("/detokenize", Json{{"tokens", ids}});
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.json["content"], text);
  const auto pieces = srv().post("/tokenize", Json{{"prompt", "ab cd"}, {"with_pieces", true}});
  ASSERT_EQ(pieces.status, 200);
  EXPECT_TRUE(pieces.json["tokens"][0].contains("piece"));
  const auto chat = srv().post("/tokenize", Json{{"messages", Json::array({Json{{"role", "user"}, {"content", "hi"}}})}});
  ASSERT_EQ(chat.status, 200);
  EXPECT_GT(chat.json["count"].get<int>(), 3);
  EXPECT_EQ(srv().post("/detokenize", Json{{"tokens", Json::array({-1})}}).status, 400);
  EXPECT_EQ(srv().post("/tokenize", Json{{"content", 5}}).status, 400);
}

TEST_F(ServerApi, CompletionIsDirectModeGreedy) {
  const std::string prompt = "The quick brown fox";
  const auto r = srv().post("/v1/completions", Json{{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 12},
                                                    {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["object"], "text_completion");
  const auto prompt_ids = srv().runtime().tokenizer->encode(prompt);
  const auto want = reference_greedy(prompt_ids, 12);
  std::vector<int32_t> visible = want;
  if (!visible.empty() && srv().runtime().tokenizer->is_eog(visible.back())) visible.pop_back();
  EXPECT_EQ(r.json["choices"][0]["text"], srv().runtime().tokenizer->decode(visible, /*skip_special=*/true));
  EXPECT_EQ(r.json["usage"]["prompt_tokens"], prompt_ids.size());
  EXPECT_EQ(r.json["usage"]["completion_tokens"], want.size());
  EXPECT_EQ(r.json["usage"]["total_tokens"], prompt_ids.size() + want.size());
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], want.size() == 12 && !srv().runtime().tokenizer->is_eog(want.back()) ? "length" : "stop");
}

TEST_F(ServerApi, EchoWithLogprobsOnATokenIdPrompt) {
  const std::vector<int32_t> prompt{785, 3974, 13876, 38835, 34208, 916};
  const auto r = srv().post("/v1/completions", Json{{"prompt", prompt}, {"max_tokens", 3}, {"temperature", 0},
                                                    {"echo", true}, {"logprobs", 2}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& lp = r.json["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), prompt.size() + 3);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  const auto ref = reference_prompt_logprobs(prompt);
  for (size_t i = 1; i < prompt.size(); ++i) {
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), ref[i - 1][static_cast<size_t>(prompt[i])], 2e-3) << i;
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
  }
  const std::string prompt_text = srv().runtime().tokenizer->decode(prompt);
  const std::string text = r.json["choices"][0]["text"];
  EXPECT_EQ(text.rfind(prompt_text, 0), 0u) << "echo puts the prompt first";
  EXPECT_EQ(lp["text_offset"][1], srv().runtime().tokenizer->token_to_piece(prompt[0]).size());
}

TEST_F(ServerApi, StreamedCompletionEqualsNonStreamed) {
  Json body{{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}, {"ignore_eos", true}};
  const auto whole = srv().post("/v1/completions", body);
  ASSERT_EQ(whole.status, 200);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto s = srv().stream("/v1/completions", body);
  ASSERT_EQ(s.status, 200);
  ASSERT_TRUE(s.done);
  ASSERT_GE(s.events.size(), 2u);
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 1 < s.events.size(); ++i) {
    text += s.events[i]["choices"][0]["text"].get<std::string>();
    if (!s.events[i]["choices"][0]["finish_reason"].is_null()) finish = s.events[i]["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole.json["choices"][0]["text"]);
  EXPECT_EQ(finish, "length");
  const Json& usage = s.events.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], whole.json["usage"]);
}

TEST_F(ServerApi, SeveralPromptsAndChoices) {
  const auto r = srv().post("/v1/completions", Json{{"prompt", Json::array({"a b c", "x y"})}, {"n", 2}, {"max_tokens", 4},
                                                    {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json["choices"].size(), 4u);
  // Greedy: the two choices of a prompt agree.
  EXPECT_EQ(r.json["choices"][0]["text"], r.json["choices"][1]["text"]);
  EXPECT_EQ(r.json["choices"][2]["text"], r.json["choices"][3]["text"]);
  EXPECT_EQ(r.json["usage"]["completion_tokens"], 16);
}

TEST_F(ServerApi, MaxTokensIsClampedToTheContext) {
  const auto r = srv().post("/v1/completions", Json{{"prompt", "hi"}, {"max_tokens", 32000}, {"temperature", 0},
                                                    {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["usage"]["total_tokens"], 512);
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "length");
}

TEST_F(ServerApi, ClientMistakesAre400sNamingTheField) {
  auto expect_400 = [&](const std::string& body, const std::string& param) {
    const auto r = srv().post("/v1/completions", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    ASSERT_TRUE(r.json.is_object()) << r.body;
    EXPECT_EQ(r.json["error"]["type"], "invalid_request_error") << body;
    if (!param.empty()) {
      EXPECT_EQ(r.json["error"]["param"], param) << body;
    }
    EXPECT_TRUE(r.json["error"].contains("code"));
  };
  expect_400("{not json", "");
  expect_400("[1, 2]", "");
  expect_400(R"({"prompt": "x", "max_tokens": "many"})", "max_tokens");
  expect_400(R"({"prompt": "x", "max_tokens": 0})", "max_tokens");
  expect_400(R"({"prompt": "x", "temperature": "hot"})", "temperature");
  expect_400(R"({"prompt": "x", "temperature": 7})", "temperature");
  expect_400(R"({"prompt": "x", "top_p": 0})", "top_p");
  expect_400(R"({"prompt": "x", "logit_bias": {"abc": 1}})", "logit_bias");
  expect_400(R"({"prompt": "x", "stop": 5})", "stop");
  expect_400(R"({"prompt": [1, "a"]})", "prompt");
  expect_400(R"({"prompt": [999999999]})", "prompt");
  expect_400(R"({"max_tokens": 5})", "prompt");
  expect_400(R"({"prompt": "x", "n": 0})", "n");
  // Unknown fields are ignored.
  const auto ok = srv().post("/v1/completions", R"({"prompt": "x", "max_tokens": 1, "frobnicate": {"a": [1]}, "top_k": 20})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ServerApi, ContextOverflowIsReportedAsSuch) {
  std::vector<int32_t> prompt(600, 1000);
  const auto r = srv().post("/v1/completions", Json{{"prompt", prompt}, {"max_tokens", 5}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json["error"]["code"], "context_length_exceeded");
  EXPECT_NE(r.json["error"]["message"].get<std::string>().find("maximum context length is 512 tokens"), std::string::npos);
  std::string long_text;
  for (int i = 0; i < 700; ++i) long_text += " word";
  const auto c = srv().post("/v1/chat/completions", chat_body(long_text, 5));
  EXPECT_EQ(c.status, 400);
  EXPECT_EQ(c.json["error"]["code"], "context_length_exceeded");
}

TEST_F(ServerApi, UnknownRoutesAre404JsonAndWrongMethods405) {
  const auto r = srv().post("/v1/embeddings", Json{{"input", "x"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json["error"]["type"], "not_found_error");
  EXPECT_EQ(srv().get("/nothing/here").status, 404);
  const auto get_chat = srv().get("/v1/chat/completions");
  EXPECT_EQ(get_chat.status, 405);
  EXPECT_EQ(get_chat.headers.find("Allow")->second, "POST");
  EXPECT_NE(get_chat.json["error"]["message"].get<std::string>().find("use POST"), std::string::npos) << get_chat.body;
  const auto post_models = srv().post("/v1/models", Json::object());
  EXPECT_EQ(post_models.status, 405);
  EXPECT_EQ(post_models.headers.find("Allow")->second, "GET");
  EXPECT_EQ(srv().post("/health", Json::object()).status, 405);
}

TEST_F(ServerApi, OneLogLinePerRequestWithStatusAndTokens) {
  const LogLevel before = log_level();
  set_log_level(LogLevel::Info);
  testing::internal::CaptureStderr();
  srv().post("/v1/completions", Json{{"prompt", "log me"}, {"max_tokens", 3}, {"temperature", 0}, {"ignore_eos", true}});
  srv().post("/v1/completions", Json{{"prompt", "x"}, {"temperature", "hot"}});
  srv().get("/v1/nothing");
  const std::string log = testing::internal::GetCapturedStderr();
  set_log_level(before);
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = log.find('\n', at)) != std::string::npos; at = nl + 1)
    if (log.compare(at, 22, "hearth: info: request ") == 0) lines.push_back(log.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 3u) << log;
  for (const char* field : {"id=cmpl-", "route=/v1/completions", "status=200", "prompt_tokens=2 ", "completion_tokens=3 ",
                            "ttft_ms=", "tokens_per_s=", "finish=length"})
    EXPECT_NE(lines[0].find(field), std::string::npos) << field << " in " << lines[0];
  EXPECT_NE(lines[1].find("status=400 error=\"temperature: expected a number\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("route=/v1/nothing status=404"), std::string::npos) << lines[2];
}

TEST_F(ServerApi, MetricsCountRequestsAndTokens) {
  srv().post("/v1/completions", Json{{"prompt", "metrics"}, {"max_tokens", 2}});
  const auto m = srv().get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("hearth_http_responses_total{route=\"/v1/completions\",status=\"200\"}"), std::string::npos) << m.status << m.body.substr(0, 400);
  EXPECT_NE(m.body.find("hearth_time_to_first_token_seconds_count"), std::string::npos);
  EXPECT_NE(m.body.find("hearth_requests_waiting 0"), std::string::npos);
  EXPECT_NE(m.body.find("hearth_kv_cache_blocks_total 32"), std::string::npos);
}

TEST(ServerOptions, ApiKeyIsRequiredWhenSet) {
  TestServer::Options o;
  o.server.api_key = "sk-secret";
  TestServer srv(o);
  EXPECT_EQ(srv.get("/v1/models").status, 401);
  const auto wrong = srv.get("/v1/models", {{"Authorization", "Bearer sk-wrong"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.json["error"]["code"], "invalid_api_key");
  EXPECT_EQ(srv.get("/v1/models", {{"Authorization", "Bearer sk-secret"}}).status, 200);
  EXPECT_EQ(srv.get("/v1/models", {{"X-Api-Key", "sk-secret"}}).status, 200);
  EXPECT_EQ(srv.post("/v1/completions", Json{{"prompt", "x"}}).status, 401);
  EXPECT_EQ(srv.get("/health").status, 200);
}

TEST(ServerOptions, CorsIsOffUnlessConfigured) {
  {
    TestServer srv({});
    auto c = srv.client();
    const auto pre = c.Options("/v1/chat/completions");
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->status, 405);
    const auto r = c.Get("/health");
    EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  }
  TestServer::Options o;
  o.server.cors_origin = "http://localhost:3000";
  TestServer srv(o);
  auto c = srv.client();
  const auto pre = c.Options("/v1/chat/completions");
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(c.Get("/v1/models")->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
}

TEST(ServerOptions, OversizedBodiesAre413) {
  TestServer::Options o;
  o.server.max_body_bytes = 4096;
  TestServer srv(o);
  const auto r = srv.post("/v1/completions", Json{{"prompt", std::string(10000, 'a')}});
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.json.contains("error")) << r.body;
  EXPECT_EQ(srv.get("/health").status, 200);
}

}  // namespace
}  // namespace hearth::test
