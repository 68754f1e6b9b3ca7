// The engine's prefix cache on a fake runner whose "KV cache" holds, per slot, the token
// and position written there, and whose logits depend on the whole context read back
// through the block table. A block restored with the wrong content (another prefix, a
// stale copy, a shifted position) changes the output, so outputs equal to a run with the
// cache off, together with the counters, show the blocks were reused, spilled and loaded
// back correctly: under eviction with a host-memory tier, across an engine restart with a
// disk tier, and with concurrent requests sharing a prefix nobody has computed yet.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "engine/engine.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
constexpr int32_t kVocab = 300;

class BlockRunner : public StepRunner {
 public:
  explicit BlockRunner(uint64_t identity = 77) : identity_(identity) {}
  int32_t n_vocab() const override { return kVocab; }
  void init_kv_cache(int32_t n_blocks, int32_t block_size) override {
    bs_ = block_size;
    kv_.assign(static_cast<size_t>(n_blocks) * block_size * 2, -1);
  }
  void forward(const StepBatch& b, float* logits) override {
    for (size_t t = 0; t < b.tokens.size(); ++t) {
      kv_.at(2 * static_cast<size_t>(b.slots[t])) = b.tokens[t];
      kv_.at(2 * static_cast<size_t>(b.slots[t]) + 1) = b.positions[t];
    }
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      const auto t = static_cast<size_t>(b.logit_rows[r]);
      const StepSequence& s = b.seqs[static_cast<size_t>(b.seq_of[t])];
      uint64_t h = 1469598103934665603ull;
      for (int32_t p = 0; p <= b.positions[t]; ++p) {
        const size_t slot = static_cast<size_t>(s.block_table[static_cast<size_t>(p / bs_)]) * bs_ + p % bs_;
        const int32_t tok = kv_.at(2 * slot), pos = kv_.at(2 * slot + 1);
        h = (h ^ static_cast<uint64_t>(tok) ^ (static_cast<uint64_t>(pos == p) << 40)) * 1099511628211ull;
      }
      float* row = logits + r * kVocab;
      for (int32_t v = 0; v < kVocab; ++v) row[v] = 0;
      row[h % kVocab] = 5;
    }
  }
  uint64_t cache_identity() const override { return identity_; }
  int64_t kv_block_bytes() const override { return static_cast<int64_t>(bs_) * 2 * 4; }
  void read_kv_block(int32_t block, uint8_t* host) override {
    std::memcpy(host, kv_.data() + static_cast<size_t>(block) * bs_ * 2, static_cast<size_t>(kv_block_bytes()));
    ++reads;
  }
  void write_kv_block(int32_t block, const uint8_t* host) override {
    std::memcpy(kv_.data() + static_cast<size_t>(block) * bs_ * 2, host, static_cast<size_t>(kv_block_bytes()));
    ++writes;
  }
  std::atomic<int> reads{0}, writes{0};

 private:
  uint64_t identity_;
  int32_t bs_ = 4;
  std::vector<int32_t> kv_;  // [slot][token, position]
};

struct Outcome {
  std::vector<int32_t> tokens;
  RequestStats stats;
};

Outcome run(Engine& e, std::vector<int32_t> prompt, int n, std::string session = "") {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = n;
  r.session = std::move(session);
  auto s = e.submit(std::move(r));
  Outcome out;
  for (;;) {
    auto ev = s->next(10s);
    if (!ev) {
      ADD_FAILURE() << "no event within 10 s";
      return out;
    }
    if (ev->kind == EngineEvent::Kind::Token) out.tokens.push_back(ev->token);
    if (ev->kind == EngineEvent::Kind::Finish) {
      out.stats = ev->stats;
      return out;
    }
  }
}

std::unique_ptr<Engine> make_engine(EngineConfig cfg, BlockRunner** runner = nullptr, uint64_t identity = 77) {
  auto r = std::make_unique<BlockRunner>(identity);
  if (runner) *runner = r.get();
  return std::make_unique<Engine>(std::move(r), nullptr, SamplerVocab{.n_vocab = kVocab}, cfg);
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % kVocab);
  return t;
}

std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const EngineConfig kSmall{.n_ctx = 96, .n_kv_tokens = 96, .block_size = 4, .max_seqs = 2, .max_batch_tokens = 32};

TEST(EngineCache, AConversationComputesOnlyItsNewTokensAndMatchesTheUncachedRun) {
  EngineConfig off = kSmall;
  off.prefix_cache = false;
  auto plain = make_engine(off);
  auto cached = make_engine(kSmall);
  std::vector<int32_t> ctx = tokens(21, 1);
  for (int turn = 0; turn < 4; ++turn) {
    const Outcome a = run(*plain, ctx, 5), b = run(*cached, ctx, 5);
    ASSERT_EQ(a.tokens, b.tokens) << "turn " << turn;
    EXPECT_EQ(a.stats.cached_tokens, 0);
    // Every full block the previous turn computed (its prompt and all but the last
    // answer token) is reused; only the rest is computed.
    if (turn > 0) {
      EXPECT_EQ(b.stats.cached_tokens, (static_cast<int64_t>(ctx.size()) - 12 + 4) / 4 * 4) << "turn " << turn;
    }
    ctx = cat(cat(ctx, b.tokens), tokens(7, 10 + static_cast<uint32_t>(turn)));
  }
  const EngineStats s = cached->stats();
  EXPECT_EQ(s.cache_hits_total, 3);
  EXPECT_GT(s.cached_tokens_total, 0);
}

TEST(EngineCache, EvictedBlocksComeBackFromHostMemoryWithTheRightContent) {
  EngineConfig off = kSmall, ram = kSmall;
  off.prefix_cache = false;
  ram.cache_ram_bytes = 1 << 20;
  BlockRunner* runner = nullptr;
  auto plain = make_engine(off);
  auto cached = make_engine(ram, &runner);
  const auto system = tokens(60, 2);
  // The second prompt fills the pool and evicts the first one's blocks to host memory.
  for (int round = 0; round < 3; ++round)
    for (uint32_t k = 0; k < 2; ++k) {
      const auto prompt = k == 0 ? cat(system, tokens(5, 100 + static_cast<uint32_t>(round))) : tokens(80, 200 + static_cast<uint32_t>(round));
      const Outcome a = run(*plain, prompt, 6), b = run(*cached, prompt, 6);
      ASSERT_EQ(a.tokens, b.tokens) << "round " << round << " prompt " << k;
      if (round > 0 && k == 0) {
        EXPECT_EQ(b.stats.cached_tokens, 60);
        EXPECT_GT(b.stats.loaded_tokens, 0);
      }
    }
  const EngineStats s = cached->stats();
  EXPECT_GT(s.kv_evictions_total, 0);
  EXPECT_GT(s.loaded_tokens_total, 0);
  EXPECT_GT(s.tier.loaded_ram_total, 0);
  EXPECT_GT(runner->reads.load(), 0);
  EXPECT_GT(runner->writes.load(), 0);
}

TEST(EngineCache, ARestartFindsThePrefixOnDiskAndAnotherModelDoesNot) {
  const fs::path dir = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "engine_cache_disk";
  fs::remove_all(dir);
  EngineConfig off = kSmall, disk = kSmall;
  off.prefix_cache = false;
  disk.cache_dir = dir.string();
  disk.cache_disk_bytes = 1 << 20;
  auto plain = make_engine(off);
  const auto prompt = cat(tokens(50, 3), tokens(3, 4));
  const Outcome want = run(*plain, prompt, 6);
  {
    auto first = make_engine(disk);
    EXPECT_EQ(run(*first, prompt, 6).tokens, want.tokens);
  }  // shutdown saves the pool's cached blocks
  {
    auto second = make_engine(disk);
    EXPECT_EQ(second->stats().tier.disk_blocks, 14);  // 53 prompt + 5 computed answer tokens: 14 full blocks
    const Outcome b = run(*second, prompt, 6);
    EXPECT_EQ(b.tokens, want.tokens);
    EXPECT_EQ(b.stats.cached_tokens, 52);
    EXPECT_EQ(b.stats.loaded_tokens, 52);
    EXPECT_EQ(second->stats().tier.loaded_disk_total, 13);
  }
  {
    // Another model (identity) has its own folder: nothing is found, nothing is trusted.
    auto other = make_engine(disk, nullptr, 78);
    EXPECT_EQ(other->stats().tier.disk_blocks, 0);
    const Outcome c = run(*other, prompt, 6);
    EXPECT_EQ(c.stats.cached_tokens, 0);
  }
  fs::remove_all(dir);
}

// Under pool pressure, one-off requests evict each other's blocks before a session's: the
// session's conversation stays whole, while the same conversation without a session key
// is evicted (least recently used first) by the same two side calls.
TEST(EngineCache, SideCallsDoNotEvictASessionsConversation) {
  for (const std::string session : {"ses_main", ""}) {
    auto e = make_engine(kSmall);  // 24 blocks of 4 tokens
    const auto conversation = tokens(40, 7);
    run(*e, conversation, 4, session);  // 43 tokens computed: 10 named blocks + 1 partial
    run(*e, tokens(44, 8), 4);          // side call 1: 12 blocks
    run(*e, tokens(44, 9), 4);          // side call 2: 12 blocks, some of them evicted ones
    const Outcome again = run(*e, cat(conversation, tokens(3, 10)), 2, session);
    if (session.empty()) {
      EXPECT_EQ(again.stats.cached_tokens, 4) << "one-off: only the first block survived";
    } else {
      EXPECT_EQ(again.stats.cached_tokens, 40) << "session: the whole conversation survived";
    }
    EXPECT_GT(e->stats().kv_evictions_total, 0);
  }
}

TEST(EngineCache, ConcurrentRequestsSharingAnUncomputedPrefixAreExact) {
  EngineConfig off = kSmall, on = kSmall;
  off.prefix_cache = false;
  off.max_seqs = on.max_seqs = 4;
  off.n_kv_tokens = on.n_kv_tokens = 400;
  auto plain = make_engine(off);
  auto cached = make_engine(on);
  const auto shared = tokens(45, 5);
  std::vector<std::vector<int32_t>> prompts;
  for (uint32_t i = 0; i < 6; ++i) prompts.push_back(cat(shared, tokens(3 + i, 50 + i)));
  std::vector<Outcome> outs(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] { outs[i] = run(*cached, prompts[i], 8, i % 2 ? "session-a" : ""); });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(outs[i].tokens, run(*plain, prompts[i], 8).tokens) << i;
  // Once computed, the shared prefix is found by the next request.
  EXPECT_EQ(run(*cached, cat(shared, tokens(4, 99)), 2).stats.cached_tokens, 44);
}

}  // namespace
}  // namespace hearth
