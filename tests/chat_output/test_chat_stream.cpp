// ChatStreamParser against parse_chat_output: for realistic Qwen3 outputs and for random
// soups of markup fragments, many random cuttings of the same text must give deltas that
// add up to exactly the whole-text message, while at every step
//   - what has been sent is a prefix of the final content / reasoning / arguments (so no
//     markup or held-back whitespace ever leaks and has to be taken back),
//   - each call opens with a ToolCallBegin carrying id and name,
//   - the accumulated arguments never parse as JSON before the call's ToolCallEnd.
#include <gtest/gtest.h>

#include <random>

#include "server/chat_output.h"

using namespace hearth;
using Kind = ChatDelta::Kind;

namespace {

void expect_same(const ChatMessage& got, const ChatMessage& want, const std::string& what) {
  EXPECT_EQ(got.reasoning_content, want.reasoning_content) << what;
  EXPECT_EQ(got.content, want.content) << what;
  ASSERT_EQ(got.tool_calls.size(), want.tool_calls.size()) << what;
  for (size_t i = 0; i < got.tool_calls.size(); ++i) {
    EXPECT_EQ(got.tool_calls[i].id, want.tool_calls[i].id) << what;
    EXPECT_EQ(got.tool_calls[i].name, want.tool_calls[i].name) << what;
    EXPECT_EQ(got.tool_calls[i].arguments, want.tool_calls[i].arguments) << what;
  }
}

bool is_prefix(const std::string& a, const std::string& b) { return b.compare(0, a.size(), a) == 0; }

// Streams text cut into the given pieces, checking the invariants after every delta, and
// returns the message rebuilt from the deltas alone.
ChatMessage stream(const std::vector<std::string>& pieces, const ChatParseOptions& options, const ChatMessage& want,
                   const std::string& what, int* n_arg_deltas = nullptr) {
  ChatStreamParser parser(options);
  ChatMessage got;
  std::vector<bool> ended;
  auto check = [&](const std::vector<ChatDelta>& deltas) {
    for (size_t k = 0; k < deltas.size(); ++k) {
      const ChatDelta& d = deltas[k];
      switch (d.kind) {
        case Kind::Reasoning: got.reasoning_content += d.text; break;
        case Kind::Content: got.content += d.text; break;
        case Kind::ToolCallBegin:
          ASSERT_EQ(d.index, static_cast<int>(got.tool_calls.size())) << what;
          ASSERT_FALSE(d.id.empty()) << what;
          ASSERT_FALSE(d.name.empty()) << what;
          got.tool_calls.push_back({d.id, d.name, ""});
          ended.push_back(false);
          break;
        case Kind::ToolCallArguments: {
          ASSERT_TRUE(d.index >= 0 && d.index < static_cast<int>(got.tool_calls.size())) << what;
          ASSERT_FALSE(ended[static_cast<size_t>(d.index)]) << what;
          auto& args = got.tool_calls[static_cast<size_t>(d.index)].arguments;
          args += d.text;
          if (n_arg_deltas) ++*n_arg_deltas;
          const bool ends_now = k + 1 < deltas.size() && deltas[k + 1].kind == Kind::ToolCallEnd;
          ASSERT_TRUE(ends_now || !nlohmann::json::accept(args))
              << what << ": arguments parse before the call is complete: " << args;
          break;
        }
        case Kind::ToolCallEnd:
          ASSERT_TRUE(d.index >= 0 && d.index < static_cast<int>(ended.size())) << what;
          ended[static_cast<size_t>(d.index)] = true;
          break;
      }
    }
    ASSERT_TRUE(is_prefix(got.reasoning_content, want.reasoning_content)) << what << ": reasoning " << got.reasoning_content;
    ASSERT_TRUE(is_prefix(got.content, want.content)) << what << ": content " << got.content;
    ASSERT_LE(got.tool_calls.size(), want.tool_calls.size()) << what;
    for (size_t i = 0; i < got.tool_calls.size(); ++i)
      ASSERT_TRUE(is_prefix(got.tool_calls[i].arguments, want.tool_calls[i].arguments)) << what << ": arguments";
  };
  for (const auto& piece : pieces) {
    check(parser.feed(piece));
    if (testing::Test::HasFatalFailure()) return got;
  }
  check(parser.finish());
  for (size_t i = 0; i < ended.size(); ++i) EXPECT_TRUE(ended[i]) << what << ": call " << i << " never ended";
  expect_same(parser.message(), got, what + " (parser's own accumulation)");
  return got;
}

std::vector<std::string> random_cut(const std::string& text, std::mt19937_64& gen, size_t max_len) {
  std::vector<std::string> pieces;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = 1 + gen() % max_len;
    pieces.push_back(text.substr(pos, len));
    pos += len;
  }
  return pieces;
}

void check_all_cuttings(const std::string& text, ChatParseOptions options, std::mt19937_64& gen, int n_cuts) {
  options.id_seed = 99;
  const ChatMessage want = parse_chat_output(text, options);
  const std::string what = "text: " + text;
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  expect_same(stream(bytes, options, want, what + " [bytes]"), want, what + " [bytes]");
  expect_same(stream({text}, options, want, what + " [whole]"), want, what + " [whole]");
  for (int cut = 0; cut < n_cuts && !testing::Test::HasFatalFailure(); ++cut) {
    const auto pieces = random_cut(text, gen, 1 + gen() % 12);
    expect_same(stream(pieces, options, want, what), want, what);
  }
}

const std::vector<std::string> kRealistic = {
    "Hello, world!\n",
    "<think>\nThe user wants 2+2.\nThat is 4.\n</think>\n\nThe answer is **4**.",
    "<think>\n\n</think>\n\nHi! 你好 — ünïcödé.",
    "<think>\nLet me check the file first.\n</think>\n\nI'll read it.\n<tool_call>\n{\"name\": \"read\", "
    "\"arguments\": {\"filePath\": \"/home/user/project/hello.txt\"}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -la | grep '}'\", \"timeout\": 120000, "
    "\"description\": \"List files\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"glob\", \"arguments\": "
    "{\"pattern\": \"**/*.{ts,tsx}\", \"opts\": {\"a\": [1, {\"b\": {}}]}}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"todowrite\", \"arguments\": {\"todos\": [{\"content\": \"x\", \"status\": "
    "\"pending\"}]}}\n</tool_call>\n\nDone.\n",
    "Look: <tool_call>\nnot json\n</tool_call> and <tool_call>{\"arguments\": {}, \"name\": \"now\"}</tool_call>",
    "<tool_call>\n{\"name\": \"write\", \"arguments\": {\"content\": \"cut off mid-str",
    "Partial markers at the end: <tool_ca",
    "<think>\nthinking about <tool_call> tags\n</thi",
    "  \n<think>x</think>   \n\n  y  \n  ",
    "text with a } and }} and </tool and <think> in it",
};

}  // namespace

TEST(ChatStream, RealisticOutputsAgreeWithWholeParse) {
  std::mt19937_64 gen(1);
  for (const auto& text : kRealistic) {
    check_all_cuttings(text, {}, gen, 200);
    check_all_cuttings(text, {.tool_calls = false}, gen, 20);
    check_all_cuttings(text, {.reasoning = false}, gen, 20);
    check_all_cuttings(text, {.starts_in_reasoning = true}, gen, 20);
  }
}

TEST(ChatStream, RandomMarkupSoupsAgreeWithWholeParse) {
  const std::vector<std::string> fragments = {
      "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_call>\n", "\n</tool_call>", "\n", "\n\n", " ",
      "{", "}", "}}", "\"name\"", "\"arguments\"", ":", ",", "\"f\"", "\"x\\\"y\"", "[1, 2]", "abc", "é", "<",
      "</", "<tool", "</think", "{\"name\": \"f\", \"arguments\": ", "{\"a\": 1}", "{\"name\": \"g\", \"arguments\": {}}",
      "{\"arguments\": {\"k\": \"v\"}, \"name\": \"h\"}", "\"", "\\",
  };
  std::mt19937_64 gen(2024);
  for (int trial = 0; trial < 1500 && !testing::Test::HasFatalFailure(); ++trial) {
    std::string text;
    const size_t n = 1 + gen() % 14;
    for (size_t i = 0; i < n; ++i) text += fragments[gen() % fragments.size()];
    ChatParseOptions options;
    options.starts_in_reasoning = trial % 5 == 1;
    options.tool_calls = trial % 7 != 3;
    check_all_cuttings(text, options, gen, 8);
  }
}

TEST(ChatStream, ArgumentsAreStreamedIncrementally) {
  const std::string text =
      "<tool_call>\n{\"name\": \"write\", \"arguments\": {\"filePath\": \"a.txt\", \"content\": \"line one\\nline "
      "two\\n\"}}\n</tool_call>";
  ChatParseOptions options{.id_seed = 5};
  const ChatMessage want = parse_chat_output(text, options);
  std::vector<std::string> pieces;  // a few characters per "token"
  for (size_t pos = 0; pos < text.size(); pos += 3) pieces.push_back(text.substr(pos, 3));
  int n_arg_deltas = 0;
  expect_same(stream(pieces, options, want, "incremental", &n_arg_deltas), want, "incremental");
  EXPECT_GT(n_arg_deltas, 10);
}

TEST(ChatStream, PrefillIsPartOfTheParse) {
  const std::string prefill = tool_choice_prefill({ToolChoice::Mode::Function, "read"});
  const ChatParseOptions options{.prefill = prefill, .id_seed = 3};
  const std::string generated = "{\"filePath\": \"x\"}}\n</tool_call>";
  const ChatMessage want = parse_chat_output(generated, options);
  ASSERT_EQ(want.tool_calls.size(), 1u);
  std::mt19937_64 gen(7);
  for (int cut = 0; cut < 50; ++cut) expect_same(stream(random_cut(generated, gen, 4), options, want, "prefill"), want, "prefill");
  // The call opens on the first piece even though the name was in the prefill.
  ChatStreamParser parser(options);
  const auto first = parser.feed("{");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first[0].kind, Kind::ToolCallBegin);
  EXPECT_EQ(first[0].name, "read");
}

TEST(ChatStream, MarkupSplitAcrossPiecesNeverLeaks) {
  ChatStreamParser parser({.id_seed = 1});
  std::string content;
  for (const char* piece : {"Sure", ".\n<", "tool", "_c", "all>\n{\"na"}) {
    for (const auto& d : parser.feed(piece)) {
      ASSERT_EQ(d.kind, Kind::Content);
      content += d.text;
    }
  }
  EXPECT_EQ(content, "Sure.");
}
