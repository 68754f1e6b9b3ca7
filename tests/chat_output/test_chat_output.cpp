// parse_chat_output on hand-written Qwen3 outputs (expected messages worked out from the
// rules in chat_output.h), the OpenAI JSON shapes, and tool_choice.
#include <gtest/gtest.h>

#include "core/error.h"
#include "server/chat_output.h"

using namespace hearth;
using json = nlohmann::ordered_json;

namespace {

ChatMessage parse(std::string_view text, ChatParseOptions options = {}) {
  options.id_seed = 1;
  return parse_chat_output(text, options);
}

const char* kRead = "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"filePath\": \"/a/b.txt\"}}\n</tool_call>";
const char* kGlob = "<tool_call>\n{\"name\": \"glob\", \"arguments\": {\"pattern\": \"**/*.md\", \"n\": [1, {\"x\": {}}]}}\n</tool_call>";

}  // namespace

TEST(ChatOutput, PlainContent) {
  const auto m = parse("Hello, world!\n");
  EXPECT_EQ(m.content, "Hello, world!\n");
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ChatOutput, ReasoningIsSplitAndStripped) {
  auto m = parse("<think>\nThe user wants 2+2.\nThat is 4.\n</think>\n\nThe answer is **4**.");
  EXPECT_EQ(m.reasoning_content, "The user wants 2+2.\nThat is 4.");
  EXPECT_EQ(m.content, "The answer is **4**.");

  m = parse("<think>\n\n</think>\n\nHi!");  // empty thought
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_EQ(m.content, "Hi!");

  m = parse("<think>\nStill thinking when max_tokens hit  \n");
  EXPECT_EQ(m.reasoning_content, "Still thinking when max_tokens hit");
  EXPECT_EQ(m.content, "");

  m = parse("No thinking here </think> at all");  // no <think> at the start: all content
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_EQ(m.content, "No thinking here </think> at all");

  m = parse("<think>a</think>b</think>c");  // only the first </think> ends reasoning
  EXPECT_EQ(m.reasoning_content, "a");
  EXPECT_EQ(m.content, "b</think>c");

  m = parse("<think>\nhidden\n</think>\n\nshown", {.reasoning = false});
  EXPECT_EQ(m.content, "<think>\nhidden\n</think>\n\nshown");
}

TEST(ChatOutput, StartsInsideThink) {
  const ChatParseOptions opened{.starts_in_reasoning = true};
  auto m = parse("Okay, the user asks...\n</think>\n\nSure.", opened);
  EXPECT_EQ(m.reasoning_content, "Okay, the user asks...");
  EXPECT_EQ(m.content, "Sure.");
  m = parse("<think>\nre-opened anyway\n</think>\nSure.", opened);  // tolerated
  EXPECT_EQ(m.reasoning_content, "re-opened anyway");
  EXPECT_EQ(m.content, "Sure.");
  m = parse("cut off", opened);
  EXPECT_EQ(m.reasoning_content, "cut off");
  EXPECT_EQ(m.content, "");
}

TEST(ChatOutput, SingleToolCallKeepsArgumentsAsWritten) {
  const auto m = parse(kRead);
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "read");
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"filePath\": \"/a/b.txt\"}");
  EXPECT_EQ(m.tool_calls[0].id.size(), 29u);
  EXPECT_EQ(m.tool_calls[0].id.rfind("call_", 0), 0u);
  for (char c : m.tool_calls[0].id.substr(5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << c;
}

TEST(ChatOutput, ThinkingThenTextThenParallelCalls) {
  const std::string text = std::string("<think>\nI should look at the files.\n</think>\n\nLet me look.\n\n") + kRead +
                           "\n" + kGlob + "\n";
  const auto m = parse(text);
  EXPECT_EQ(m.reasoning_content, "I should look at the files.");
  EXPECT_EQ(m.content, "Let me look.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[1].name, "glob");
  EXPECT_EQ(m.tool_calls[1].arguments, "{\"pattern\": \"**/*.md\", \"n\": [1, {\"x\": {}}]}");
  EXPECT_NE(m.tool_calls[0].id, m.tool_calls[1].id);
  EXPECT_TRUE(json::accept(m.tool_calls[1].arguments));
}

TEST(ChatOutput, MalformedBlocksStayContent) {
  for (std::string text : {"Look:\n<tool_call>\nnot json at all\n</tool_call>\nthanks",
                           "<tool_call>\n{\"name\": 5, \"arguments\": {}}\n</tool_call>",
                           "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>",
                           "<tool_call>\n{\"nam",  // cut off before the header matched
                           "x <tool_call>{\"name\": \"f\"} trailing"}) {
    const auto m = parse(text);
    EXPECT_EQ(m.content, text);
    EXPECT_TRUE(m.tool_calls.empty()) << text;
  }
}

TEST(ChatOutput, OtherValidShapesAreStillCalls) {
  // Keys in the other order: parsed whole, arguments re-serialised compactly.
  auto m = parse("<tool_call>\n{\"arguments\": {\"a\": 1, \"b\": \"x\"}, \"name\": \"f\"}\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "f");
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"a\":1,\"b\":\"x\"}");
  // Arguments given as a JSON string: used as the arguments text.
  m = parse("<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"a\": 1}");
  // No arguments at all (a tool without parameters).
  m = parse("<tool_call>\n{\"name\": \"now\"}\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{}");
  // Compact JSON matches the header too.
  m = parse("<tool_call>{\"name\":\"f\",\"arguments\":{\"k\":\"}\"}}</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"k\":\"}\"}");
}

TEST(ChatOutput, CutOffCallIsStillACall) {
  const auto m = parse("<tool_call>\n{\"name\": \"write\", \"arguments\": {\"content\": \"abc");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "write");
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"content\": \"abc");
}

TEST(ChatOutput, WhitespaceAroundCallsIsDropped) {
  const auto m = parse(std::string("A\n") + kRead + "\n\nB\n");
  EXPECT_EQ(m.content, "AB\n");
  ASSERT_EQ(m.tool_calls.size(), 1u);
}

TEST(ChatOutput, ToolsOffMeansPlainContent) {
  const auto m = parse(kRead, {.tool_calls = false});
  EXPECT_EQ(m.content, kRead);
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ChatOutput, PrefilledCallIsParsedWithItsPrefix) {
  const ToolChoice named{ToolChoice::Mode::Function, "read"};
  const std::string prefill = tool_choice_prefill(named);
  EXPECT_EQ(prefill, "<tool_call>\n{\"name\": \"read\", \"arguments\": ");
  const auto m = parse("{\"filePath\": \"x\"}}\n</tool_call>", {.starts_in_reasoning = true, .prefill = prefill});
  EXPECT_EQ(m.reasoning_content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "read");
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"filePath\": \"x\"}");

  const auto any = parse("glob\", \"arguments\": {}}\n</tool_call>",
                         {.prefill = tool_choice_prefill({ToolChoice::Mode::Required, ""})});
  ASSERT_EQ(any.tool_calls.size(), 1u);
  EXPECT_EQ(any.tool_calls[0].name, "glob");
  EXPECT_EQ(any.tool_calls[0].arguments, "{}");
}

TEST(ChatOutput, OpenAIJsonShapes) {
  auto m = parse(std::string("<think>\nr\n</think>\n\n") + kRead);
  const json msg = message_json(m);
  EXPECT_EQ(msg.dump(), "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r\",\"tool_calls\":[{\"id\":\"" +
                            m.tool_calls[0].id +
                            "\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":"
                            "\"{\\\"filePath\\\": \\\"/a/b.txt\\\"}\"}}]}");
  EXPECT_EQ(finish_reason(m, false), "tool_calls");
  EXPECT_EQ(finish_reason(m, true), "length");
  EXPECT_EQ(message_json(parse("hi")).dump(), "{\"role\":\"assistant\",\"content\":\"hi\"}");
  EXPECT_EQ(finish_reason(parse("hi"), false), "stop");

  using Kind = ChatDelta::Kind;
  EXPECT_EQ(delta_json({.kind = Kind::Content, .text = "a"}).dump(), "{\"content\":\"a\"}");
  EXPECT_EQ(delta_json({.kind = Kind::Reasoning, .text = "b"}).dump(), "{\"reasoning_content\":\"b\"}");
  EXPECT_EQ(delta_json({.kind = Kind::Reasoning, .text = "b"}, ReasoningField::Reasoning).dump(), "{\"reasoning\":\"b\"}");
  EXPECT_EQ(delta_json({.kind = Kind::Reasoning, .text = "b"}, ReasoningField::Both).dump(),
            "{\"reasoning_content\":\"b\",\"reasoning\":\"b\"}");
  EXPECT_EQ(message_json(parse("<think>r</think>x"), ReasoningField::Reasoning).dump(),
            "{\"role\":\"assistant\",\"content\":\"x\",\"reasoning\":\"r\"}");
  EXPECT_EQ(delta_json({.kind = Kind::ToolCallBegin, .index = 1, .id = "call_x", .name = "f"}).dump(),
            "{\"tool_calls\":[{\"index\":1,\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":\"f\","
            "\"arguments\":\"\"}}]}");
  EXPECT_EQ(delta_json({.kind = Kind::ToolCallArguments, .text = "{\"", .index = 1}).dump(),
            "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"\"}}]}");
  EXPECT_TRUE(delta_json({.kind = Kind::ToolCallEnd, .index = 1}).is_null());
}

TEST(ChatOutput, ToolChoice) {
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "read", "parameters": {}}},
                                     {"type": "function", "function": {"name": "glob"}}])");
  using Mode = ToolChoice::Mode;
  EXPECT_EQ(parse_tool_choice(json::object()).mode, Mode::None);
  EXPECT_EQ(parse_tool_choice({{"tools", tools}}).mode, Mode::Auto);
  EXPECT_EQ(parse_tool_choice({{"tools", tools}, {"tool_choice", "none"}}).mode, Mode::None);
  EXPECT_EQ(parse_tool_choice({{"tools", tools}, {"tool_choice", "auto"}}).mode, Mode::Auto);
  EXPECT_EQ(parse_tool_choice({{"tool_choice", "auto"}}).mode, Mode::None);
  EXPECT_EQ(parse_tool_choice({{"tools", tools}, {"tool_choice", "required"}}).mode, Mode::Required);
  const auto one = parse_tool_choice({{"tools", json::array({tools[1]})}, {"tool_choice", "required"}});
  EXPECT_EQ(one.mode, Mode::Function);
  EXPECT_EQ(one.name, "glob");
  const auto named = parse_tool_choice(
      {{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "glob"}}}}}});
  EXPECT_EQ(named.mode, Mode::Function);
  EXPECT_EQ(named.name, "glob");
  EXPECT_EQ(tool_choice_prefill(named), "<tool_call>\n{\"name\": \"glob\", \"arguments\": ");
  EXPECT_EQ(tool_choice_prefill({Mode::Auto, ""}), "");

  EXPECT_THROW(parse_tool_choice({{"tool_choice", "required"}}), Error);
  EXPECT_THROW(parse_tool_choice({{"tools", tools}, {"tool_choice", "sometimes"}}), Error);
  EXPECT_THROW(parse_tool_choice({{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "rm"}}}}}}),
               Error);
  EXPECT_THROW(parse_tool_choice({{"tools", tools}, {"tool_choice", 3}}), Error);
}

TEST(ChatOutput, HeaderMatcherOnEveryPrefix) {
  using namespace chat_detail;
  const std::string body = "\n{ \"name\" :\"read\",\n  \"arguments\":  {\"filePath\": \"x\"}}\n";
  const size_t brace = body.find("{\"filePath");
  for (size_t len = 0; len <= body.size(); ++len) {
    const ToolHeader h = match_tool_header(std::string_view(body).substr(0, len));
    if (len <= brace) {
      EXPECT_EQ(h.match, HeaderMatch::NeedMore) << len;
    } else {
      ASSERT_EQ(h.match, HeaderMatch::Matched) << len;
      EXPECT_EQ(h.name, "read");
      EXPECT_EQ(h.args_begin, brace);
    }
  }
  for (std::string bad : {"x", "{\"nam3\"", "{\"name\": 1", "{\"name\": \"a\\\"b\"", "{\"name\": \"\", ",
                          "{\"name\": \"f\"}", "{\"name\": \"f\", \"args\"", "{\"name\": \"f\", \"arguments\": [",
                          "{\"name\": \"f\", \"arguments\": \"{}\""}) {
    EXPECT_EQ(match_tool_header(bad).match, HeaderMatch::Failed) << bad;
  }
  EXPECT_EQ(partial_tag("abc</tool_c", kToolClose), 8u);
  EXPECT_EQ(partial_tag("abc</tool_call>", kToolClose), 0u);  // whole tags are found, not held
  EXPECT_EQ(partial_tag("<", kToolOpen), 1u);
  EXPECT_EQ(strip_outer_close("{\"a\": {}}} \n"), "{\"a\": {}}");  // the last } closes the call
  EXPECT_EQ(strip_outer_close("{\"a\": 1"), "{\"a\": 1");
}
