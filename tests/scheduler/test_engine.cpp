// Engine tests with fake step runners (no model): concurrent submission from several
// threads matches per-request sequential runs, context errors and max_tokens clamping,
// stop tokens and stop strings, cancellation, the bounded queue, prompt logprobs, a
// failing forward pass that fails only its own requests, and sampling from a runner that
// keeps its logits and hands back each row's best.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine.h"

namespace hearth {
namespace {

constexpr int32_t kVocab = 500;
using namespace std::chrono_literals;

// Reads each sequence's context back from a fake KV cache (as the scheduler tests do) and
// gives logits that favour one token: predict(context), or a scripted continuation.
class FakeRunner : public StepRunner {
 public:
  static int32_t predict(const std::vector<int32_t>& ctx) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t : ctx) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull + (h >> 31);
    return static_cast<int32_t>(h % 400);  // ids 400.. are left for stop tokens
  }
  // Contexts starting with `first` continue with script (after a prompt of n_prompt).
  void set_script(int32_t first, int32_t n_prompt, std::vector<int32_t> script) {
    scripts_[first] = {n_prompt, std::move(script)};
  }
  std::atomic<int> step_sleep_ms{0};
  std::atomic<bool> fail_next{false};

  int32_t n_vocab() const override { return kVocab; }
  void init_kv_cache(int32_t n_blocks, int32_t block_size) override {
    block_size_ = block_size;
    kv_.assign(static_cast<size_t>(n_blocks) * block_size, -1);
  }
  void forward(const StepBatch& b, float* logits) override {
    if (step_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_sleep_ms.load()));
    if (fail_next.exchange(false)) throw Error("fake device failure");
    for (size_t t = 0; t < b.tokens.size(); ++t) kv_.at(static_cast<size_t>(b.slots[t])) = b.tokens[t];
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      const auto t = static_cast<size_t>(b.logit_rows[r]);
      const StepSequence& s = b.seqs[static_cast<size_t>(b.seq_of[t])];
      std::vector<int32_t> ctx;
      for (int32_t p = 0; p <= b.positions[t]; ++p)
        ctx.push_back(kv_.at(static_cast<size_t>(s.block_table[static_cast<size_t>(p / block_size_)]) * block_size_ +
                             static_cast<size_t>(p % block_size_)));
      int32_t want = predict(ctx);
      if (auto it = scripts_.find(ctx[0]); it != scripts_.end()) {
        const size_t k = ctx.size() - static_cast<size_t>(it->second.first);
        if (k < it->second.second.size()) want = it->second.second[k];
      }
      float* row = logits + r * kVocab;
      for (int32_t v = 0; v < kVocab; ++v) row[v] = static_cast<float>((v * 37 + static_cast<int32_t>(ctx.size())) % 11) * 0.1f;
      row[want] = 5.0f;
    }
  }

 private:
  int32_t block_size_ = 16;
  std::vector<int32_t> kv_;
  std::map<int32_t, std::pair<int32_t, std::vector<int32_t>>> scripts_;
};

struct Output {
  std::vector<int32_t> tokens;
  std::string text;
  EngineEvent finish;
  std::vector<SampleLogprobs> prompt_lps;
};

Output collect(RequestStream& s) {
  Output out;
  for (;;) {
    auto e = s.next(10s);
    if (!e) {
      ADD_FAILURE() << "no event within 10 s";
      return out;
    }
    if (e->kind == EngineEvent::Kind::Prompt) out.prompt_lps = e->prompt_logprobs;
    if (e->kind == EngineEvent::Kind::Token) out.tokens.push_back(e->token);
    out.text += e->text;
    if (e->kind == EngineEvent::Kind::Finish) {
      out.finish = *e;
      return out;
    }
  }
}

EngineRequest greedy_request(std::vector<int32_t> prompt, int32_t max_tokens) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  return r;
}

std::vector<int32_t> alone(std::vector<int32_t> ctx, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(FakeRunner::predict(ctx));
    ctx.push_back(out.back());
  }
  return out;
}

struct Fixture {
  FakeRunner* runner;
  std::unique_ptr<Engine> engine;
  explicit Fixture(EngineConfig cfg, std::vector<int32_t> eog = {}) {
    auto r = std::make_unique<FakeRunner>();
    runner = r.get();
    engine = std::make_unique<Engine>(std::move(r), nullptr, SamplerVocab{.n_vocab = kVocab, .eog = eog}, cfg);
  }
};

TEST(Engine, ConcurrentClientsMatchSequentialRuns) {
  Fixture f({.n_ctx = 128, .n_kv_tokens = 256, .block_size = 4, .max_seqs = 3, .max_batch_tokens = 24});
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 12; ++i) {
    std::vector<int32_t> p;
    for (int k = 0; k < 5 + 7 * i % 40; ++k) p.push_back((i * 131 + k * 17) % 400);
    prompts.push_back(p);
  }
  std::vector<Output> outs(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] {
      auto s = f.engine->submit(greedy_request(prompts[i], 10 + static_cast<int32_t>(i)));
      outs[i] = collect(*s);
    });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(outs[i].tokens, alone(prompts[i], 10 + static_cast<int>(i))) << "client " << i;
    EXPECT_EQ(outs[i].finish.finish, FinishReason::Length);
    EXPECT_EQ(outs[i].finish.stats.prompt_tokens, static_cast<int64_t>(prompts[i].size()));
    EXPECT_EQ(outs[i].finish.stats.completion_tokens, 10 + static_cast<int64_t>(i));
    EXPECT_GE(outs[i].finish.stats.total_s, outs[i].finish.stats.ttft_s);
  }
  const EngineStats st = f.engine->stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.requests_total, 12);
}

// Rows of one step are sampled in parallel (one sampler per request): seeded sampling at
// temperature 1 over the fake runner's spread of logits gives each client the tokens it
// gets when it runs alone.
TEST(Engine, SeededSamplingOfConcurrentClientsMatchesRunsAlone) {
  auto request = [](int i) {
    EngineRequest r;
    for (int k = 0; k < 6 + i % 5; ++k) r.prompt.push_back((i * 97 + k * 13) % 400);
    r.params.temperature = 1.0f;
    r.params.top_p = i % 2 ? 0.9f : 1.0f;
    r.params.seed = 1000 + static_cast<uint64_t>(i);
    r.params.max_tokens = 12;
    return r;
  };
  constexpr int kClients = 10;
  std::vector<std::vector<int32_t>> expected(kClients);
  {
    Fixture f({.n_ctx = 64, .n_kv_tokens = 1024, .block_size = 4, .max_seqs = 1, .max_batch_tokens = 64});
    for (int i = 0; i < kClients; ++i) expected[static_cast<size_t>(i)] = collect(*f.engine->submit(request(i))).tokens;
  }
  std::set<int32_t> distinct;
  for (const auto& e : expected) distinct.insert(e.begin(), e.end());
  ASSERT_GT(distinct.size(), 20u) << "the draws should spread over many tokens";
  Fixture f({.n_ctx = 64, .n_kv_tokens = 1024, .block_size = 4, .max_seqs = kClients, .max_batch_tokens = 128});
  f.runner->step_sleep_ms = 2;  // let the clients' requests gather into shared steps
  std::vector<Output> outs(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] { outs[static_cast<size_t>(i)] = collect(*f.engine->submit(request(i))); });
  for (auto& t : clients) t.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(outs[static_cast<size_t>(i)].tokens, expected[static_cast<size_t>(i)]) << "client " << i;
}

TEST(Engine, ContextOverflowIsAClearErrorAndMaxTokensIsClamped) {
  Fixture f({.n_ctx = 16, .block_size = 4});
  EXPECT_THROW(f.engine->submit(greedy_request(std::vector<int32_t>(16, 1), 1)), ContextLengthError);
  try {
    f.engine->submit(greedy_request(std::vector<int32_t>(20, 1), 1));
  } catch (const ContextLengthError& e) {
    EXPECT_NE(std::string(e.what()).find("maximum context length is 16 tokens"), std::string::npos);
  }
  auto s = f.engine->submit(greedy_request(std::vector<int32_t>(10, 1), 32000));
  EXPECT_EQ(s->max_tokens(), 6);
  const Output o = collect(*s);
  EXPECT_EQ(o.tokens.size(), 6u);
  EXPECT_EQ(o.finish.finish, FinishReason::Length);
  EXPECT_THROW(f.engine->submit(greedy_request({}, 1)), Error);
  EXPECT_THROW(f.engine->submit(greedy_request({kVocab}, 1)), Error);
  EngineRequest bad = greedy_request({1}, 1);
  bad.params.top_p = 5;
  EXPECT_THROW(f.engine->submit(bad), Error);
}

TEST(Engine, StopTokenEndsWithoutBeingEmitted) {
  Fixture f({.n_ctx = 64, .block_size = 4}, /*eog=*/{450});
  f.runner->set_script(7, 3, {11, 12, 450, 13});
  const Output o = collect(*f.engine->submit(greedy_request({7, 8, 9}, 10)));
  EXPECT_EQ(o.tokens, (std::vector<int32_t>{11, 12}));
  EXPECT_EQ(o.finish.finish, FinishReason::Stop);
  EXPECT_EQ(o.finish.stop_token, 450);
  EXPECT_EQ(o.finish.stats.completion_tokens, 3);
}

TEST(Engine, CancelStopsWithinAStepAndFreesTheBlocks) {
  Fixture f({.n_ctx = 256, .block_size = 4, .max_seqs = 2});
  f.runner->step_sleep_ms = 5;
  auto s = f.engine->submit(greedy_request(std::vector<int32_t>(30, 3), -1));
  auto first = s->next(10s);
  ASSERT_TRUE(first.has_value());
  f.engine->cancel(*s);
  const Output o = collect(*s);
  EXPECT_EQ(o.finish.finish, FinishReason::Cancelled);
  EXPECT_LT(o.tokens.size(), 5u);
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);
  // The engine keeps serving.
  EXPECT_EQ(collect(*f.engine->submit(greedy_request({1, 2}, 3))).tokens, alone({1, 2}, 3));
}

TEST(Engine, BoundedQueueRefusesWhenFull) {
  Fixture f({.n_ctx = 64, .block_size = 4, .max_seqs = 1, .max_queue = 2});
  f.runner->step_sleep_ms = 20;
  std::vector<std::shared_ptr<RequestStream>> streams;
  streams.push_back(f.engine->submit(greedy_request({1, 2}, 20)));
  std::this_thread::sleep_for(100ms);  // the first one is running now
  streams.push_back(f.engine->submit(greedy_request({3}, 2)));
  streams.push_back(f.engine->submit(greedy_request({4}, 2)));
  EXPECT_THROW(f.engine->submit(greedy_request({5}, 2)), QueueFullError);
  for (auto& s : streams) s->cancel();
  for (auto& s : streams) EXPECT_EQ(collect(*s).finish.finish, FinishReason::Cancelled);
}

TEST(Engine, PromptLogprobsMatchLogSoftmaxOfTheRunnersLogits) {
  Fixture f({.n_ctx = 64, .block_size = 4, .max_batch_tokens = 5});
  EngineRequest r = greedy_request({5, 6, 7, 8, 9, 10, 11, 12}, 2);
  r.prompt_logprobs = true;
  r.params.logprobs = true;
  r.params.top_logprobs = 2;
  const Output o = collect(*f.engine->submit(r));
  ASSERT_EQ(o.prompt_lps.size(), 7u);
  // Recompute each row the way the fake runner fills it.
  for (size_t p = 0; p + 1 < r.prompt.size(); ++p) {
    std::vector<int32_t> ctx(r.prompt.begin(), r.prompt.begin() + static_cast<std::ptrdiff_t>(p) + 1);
    std::vector<float> row(kVocab);
    for (int32_t v = 0; v < kVocab; ++v) row[static_cast<size_t>(v)] = static_cast<float>((v * 37 + static_cast<int32_t>(ctx.size())) % 11) * 0.1f;
    row[static_cast<size_t>(FakeRunner::predict(ctx))] = 5.0f;
    double z = 0;
    for (float x : row) z += std::exp(static_cast<double>(x));
    const int32_t target = r.prompt[p + 1];
    EXPECT_EQ(o.prompt_lps[p].sampled.id, target);
    EXPECT_NEAR(o.prompt_lps[p].sampled.logprob, row[static_cast<size_t>(target)] - std::log(z), 1e-4);
    ASSERT_EQ(o.prompt_lps[p].top.size(), 2u);
    EXPECT_EQ(o.prompt_lps[p].top[0].id, FakeRunner::predict(ctx));
  }
}

// A runner that keeps its logits (as the model does on a GPU): the engine reads back each
// row's best kMaxTopRows, or the whole row for a sampler that needs it. The lists come
// from a full sort here, independent of the sampler.
class KeepingRunner : public FakeRunner {
 public:
  std::atomic<int> whole_rows{0}, top_reads{0};
  bool keeps_logits() const override { return true; }
  void forward(const StepBatch& b, float* logits) override {
    EXPECT_EQ(logits, nullptr);
    kept_.assign(b.logit_rows.size() * kVocab, 0.0f);
    FakeRunner::forward(b, kept_.data());
  }
  void read_logits(int32_t first, int32_t n, float* out) override {
    ASSERT_LE(static_cast<size_t>(first + n) * kVocab, kept_.size());
    std::copy_n(kept_.begin() + first * kVocab, n * kVocab, out);
    whole_rows += n;
  }
  void read_top_logits(int32_t n_valid, int32_t k, int32_t* ids, float* values) override {
    ++top_reads;
    for (size_t r = 0; r < kept_.size() / kVocab; ++r) {
      const float* row = kept_.data() + r * kVocab;
      std::vector<int32_t> order(static_cast<size_t>(n_valid));
      for (int32_t i = 0; i < n_valid; ++i) order[static_cast<size_t>(i)] = i;
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return row[a] > row[c]; });
      for (int32_t j = 0; j < k; ++j) {
        ids[r * k + j] = j < n_valid ? order[static_cast<size_t>(j)] : -1;
        values[r * k + j] = j < n_valid ? row[order[static_cast<size_t>(j)]] : 0.0f;
      }
    }
  }

 private:
  std::vector<float> kept_;
};

// The same requests, run together on an engine whose runner hands back whole rows and on
// one whose runner keeps its logits, give the same tokens; greedy and top_k requests never
// read a whole row, the others (penalties once a token is accepted, bias, logprobs, no
// top_k) read theirs.
TEST(Engine, TopLogitsGiveTheTokensOfWholeRows) {
  auto request = [](int i) {
    EngineRequest r;
    for (int k = 0; k < 5 + i % 4; ++k) r.prompt.push_back((i * 31 + k * 7) % 400);
    r.params.max_tokens = 10;
    r.params.seed = 50 + static_cast<uint64_t>(i);
    switch (i % 6) {
      case 0: r.params.temperature = 0.0f; break;
      case 1: r.params.temperature = 0.6f, r.params.top_k = 20, r.params.top_p = 0.95f; break;
      case 2: r.params.temperature = 1.0f, r.params.top_k = 40, r.params.ignore_eos = true; break;
      case 3: r.params.temperature = 0.0f, r.params.repetition_penalty = 1.3f; break;
      case 4: r.params.temperature = 0.9f, r.params.top_k = 0; break;
      default: r.params.temperature = 0.0f, r.params.logprobs = true, r.params.top_logprobs = 2; break;
    }
    return r;
  };
  constexpr int kClients = 12;
  const EngineConfig cfg{.n_ctx = 64, .n_kv_tokens = 2048, .block_size = 4, .max_seqs = kClients, .max_batch_tokens = 256};
  auto run_all = [&](std::unique_ptr<StepRunner> runner) {
    Engine engine(std::move(runner), nullptr, SamplerVocab{.n_vocab = kVocab, .n_tokens = 490, .eog = {401}}, cfg);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < kClients; ++i) streams.push_back(engine.submit(request(i)));
    std::vector<Output> outs;
    for (auto& s : streams) outs.push_back(collect(*s));
    return outs;
  };
  const auto want = run_all(std::make_unique<FakeRunner>());
  auto keeping = std::make_unique<KeepingRunner>();
  KeepingRunner* k = keeping.get();
  const auto got = run_all(std::move(keeping));
  size_t whole = 0, clients_whole = 0;
  for (int i = 0; i < kClients; ++i) {
    const auto& o = got[static_cast<size_t>(i)];
    EXPECT_EQ(o.tokens, want[static_cast<size_t>(i)].tokens) << "client " << i;
    EXPECT_FALSE(o.tokens.empty()) << "client " << i;
    if (i % 6 >= 3) whole += o.tokens.size(), ++clients_whole;
  }
  EXPECT_GT(k->top_reads.load(), 0);
  // Clients 3, 4, 5, 9, 10 and 11 read a whole row for every token they sample (the
  // penalties count the prompt, so they are active from the first), a stop token included.
  EXPECT_GE(static_cast<size_t>(k->whole_rows.load()), whole);
  EXPECT_LE(static_cast<size_t>(k->whole_rows.load()), whole + clients_whole);
}

TEST(Engine, AFailingStepFailsOnlyItsRequests) {
  Fixture f({.n_ctx = 64, .block_size = 4});
  f.runner->fail_next = true;
  const Output bad = collect(*f.engine->submit(greedy_request({1, 2, 3}, 4)));
  EXPECT_EQ(bad.finish.finish, FinishReason::Error);
  EXPECT_NE(bad.finish.error.find("fake device failure"), std::string::npos);
  EXPECT_EQ(collect(*f.engine->submit(greedy_request({1, 2, 3}, 4))).tokens, alone({1, 2, 3}, 4));
  EXPECT_EQ(f.engine->stats().kv_blocks_used, 0);
}

TEST(Engine, ShutdownFinishesRunningRequests) {
  std::shared_ptr<RequestStream> s;
  {
    Fixture f({.n_ctx = 4096, .block_size = 16});
    f.runner->step_sleep_ms = 2;
    s = f.engine->submit(greedy_request({1}, -1));
    ASSERT_TRUE(s->next(10s).has_value());
  }
  const Output o = collect(*s);
  EXPECT_EQ(o.finish.finish, FinishReason::Error);
}

}  // namespace
}  // namespace hearth
