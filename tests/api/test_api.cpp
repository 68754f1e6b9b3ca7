// The public C++ API (include/hearth/hearth.h) on the tiny synthetic model: loading,
// conversations (history, reuse of the cache across turns, system prompt, thinking
// switch, JSON), the per-token callback against the reply, stopping from the callback and
// from a cancel flag, raw completion and token prompts, and the errors a caller can cause.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "direct_test_util.h"
#include "hearth/hearth.h"

using namespace hearth;

namespace {

class Api : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = test::tiny_model();
    if (path.empty()) GTEST_SKIP() << "the Qwen3 tokenizer is not installed (scripts/setup.sh)";
    if (!model_) {
      LoadOptions o;
      o.threads = 2;
      o.context = 1024;
      model_ = LocalModel::load(path, o);
    }
  }
  static void TearDownTestSuite() { model_.reset(); }

  static SamplingParams greedy(int n) {
    SamplingParams p = model_->default_params();
    p.temperature = 0;
    p.max_tokens = n;
    p.ignore_eos = true;
    return p;
  }
  static std::shared_ptr<LocalModel> model_;
};
std::shared_ptr<LocalModel> Api::model_;

TEST_F(Api, LoadReportsTheModel) {
  EXPECT_EQ(model_->context_length(), 1024);
  EXPECT_EQ(model_->trained_context(), 4096);
  EXPECT_EQ(model_->vocab_size(), 151936);
  EXPECT_TRUE(model_->has_tokenizer());
  EXPECT_GT(model_->load_seconds(), 0);
  const MemoryStats m = model_->memory();
  EXPECT_GT(m.weights_bytes, 1 << 20);
  EXPECT_GT(m.kv_cache_bytes, 0);
  EXPECT_EQ(model_->detokenize(model_->tokenize("Hello, world")), "Hello, world");
}

TEST_F(Api, ConversationKeepsHistoryAndReusesTheCache) {
  Conversation chat(model_, "You are terse.");
  std::string streamed;
  int calls = 0;
  GenerateControl control;
  control.on_token = [&](int32_t, std::string_view) { return ++calls > 0; };
  control.on_text = [&](std::string_view s) { streamed += s; };
  const Reply first = chat.send("Hello", greedy(6), control);
  EXPECT_EQ(first.tokens.size(), 6u);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(streamed, first.text);
  EXPECT_EQ(first.finish_reason, "length");
  ASSERT_EQ(chat.messages().size(), 2u);
  EXPECT_EQ(chat.messages()[1].role, "assistant");
  EXPECT_EQ(chat.messages()[1].content, first.text);

  const Reply second = chat.send("And then?", greedy(4));
  EXPECT_EQ(chat.messages().size(), 4u);
  EXPECT_GT(second.stats.cached_tokens, 5);  // the system prompt and the first question at least
  EXPECT_LT(second.stats.cached_tokens, second.stats.prompt_tokens);

  // The same conversation answered from a cold cache gives the same tokens.
  Conversation replay(model_, "You are terse.");
  replay.add("user", "Hello");
  replay.add("assistant", first.text);
  replay.add("user", "And then?");
  model_->generate(model_->tokenize("unrelated text to evict the cache"), greedy(1));
  const Reply cold = replay.answer(greedy(4));
  EXPECT_EQ(cold.tokens, second.tokens);
  EXPECT_EQ(replay.messages().size(), 3u);  // answer() adds nothing

  const auto saved = nlohmann::json::parse(chat.to_json());
  ASSERT_EQ(saved["messages"].size(), 5u);
  EXPECT_EQ(saved["messages"][0]["role"], "system");
  chat.reset();
  EXPECT_TRUE(chat.messages().empty());
  EXPECT_EQ(chat.system_prompt(), "You are terse.");
}

TEST_F(Api, ThinkingSwitchReachesTheTemplate) {
  Conversation chat(model_);
  chat.add("user", "Hi");
  const std::string on = model_->render_chat(chat.messages());
  const std::string off = model_->render_chat(chat.messages(), true, R"({"enable_thinking": false})");
  EXPECT_EQ(on, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(off, on + "<think>\n\n</think>\n\n");
  chat.set_thinking(false);
  EXPECT_EQ(chat.prompt_tokens(), model_->tokenize(off));
  EXPECT_THROW(chat.set_template_kwargs("[1, 2]"), Error);
}

TEST_F(Api, StoppingFromTheCallbackAndTheFlag) {
  Conversation chat(model_);
  GenerateControl control;
  control.on_token = [n = 0](int32_t, std::string_view) mutable { return ++n < 2; };
  const Reply r = chat.send("Count to ten", greedy(20), control);
  EXPECT_EQ(r.finish_reason, "cancelled");
  EXPECT_EQ(r.tokens.size(), 2u);
  EXPECT_EQ(chat.messages().size(), 2u);  // a stopped answer is kept as far as it got

  std::atomic<bool> cancel{true};
  GenerateControl flag;
  flag.cancel = &cancel;
  EXPECT_EQ(model_->complete("Once upon a time", greedy(20), flag).finish_reason, "cancelled");
}

TEST_F(Api, SeededSamplingAndRawPrompts) {
  SamplingParams p = model_->default_params();
  p.temperature = 0.8f;
  p.max_tokens = 10;
  p.seed = 99;
  const Reply a = model_->complete("The weather today", p);
  const Reply b = model_->complete("The weather today", p);
  EXPECT_EQ(a.tokens, b.tokens);
  const Reply t = model_->generate(model_->tokenize("The weather today"), p);
  EXPECT_EQ(t.tokens, a.tokens);  // Qwen adds no BOS: the same prompt
  EXPECT_EQ(t.stats.completion_tokens, 10);
  EXPECT_GT(t.stats.load_s, 0);
  EXPECT_EQ(t.stats.memory.kv_cache_bytes, model_->memory().kv_cache_bytes);
}

TEST_F(Api, CallerErrorsThrowAndLeaveTheConversationAlone) {
  Conversation chat(model_);
  SamplingParams p = greedy(2000);  // more than the 1024-token context
  try {
    chat.send("Hi", p);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context length exceeded"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(chat.messages().empty());
  p = greedy(4);
  p.temperature = -1;
  EXPECT_THROW(chat.send("Hi", p), Error);
  EXPECT_THROW(chat.add("robot", "beep"), Error);
  EXPECT_THROW(LocalModel::load("/nonexistent/model.gguf"), Error);
  LoadOptions huge;
  huge.context = 1 << 20;
  EXPECT_THROW(LocalModel::load(test::tiny_model(), huge), Error);
}

}  // namespace
