// Scheduler tests with a fake runner. The runner plays the model: it stores each token
// (and its position) at the KV slot the batch names, then for every logits row reads the
// sequence's whole context back through its block table and "predicts" a token from a
// hash of it. Any paging mistake (wrong slot, stale block, a shared block overwritten,
// a preempted request resumed wrongly) changes the context and so the tokens; the
// reference is each request run alone, token by token, on its own list.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "engine/scheduler.h"

namespace hearth {
namespace {

constexpr int32_t kVocab = 1000;

int32_t predict(const std::vector<int32_t>& context) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int32_t t : context) h = (h ^ static_cast<uint64_t>(t)) * 0x100000001b3ull + (h >> 29);
  return static_cast<int32_t>(h % kVocab);
}

struct FakeRunner {
  struct Cell {
    int32_t token = -1;
    int32_t pos = -1;
  };
  std::map<int64_t, Cell> kv;  // slot -> content; lives across steps and requests
  int32_t block_size;

  // Returns one predicted token per logits row; checks the batch as a backend would.
  std::vector<int32_t> run(const StepBatch& b) {
    const size_t n = b.tokens.size();
    EXPECT_EQ(b.positions.size(), n);
    EXPECT_EQ(b.slots.size(), n);
    EXPECT_EQ(b.seq_of.size(), n);
    std::set<int64_t> written;
    for (size_t t = 0; t < n; ++t) {
      const StepSequence& s = b.seqs.at(static_cast<size_t>(b.seq_of[t]));
      EXPECT_LT(b.positions[t], s.n_ctx);
      EXPECT_GE(static_cast<int64_t>(s.block_table.size()) * block_size, s.n_ctx);
      const int32_t p = b.positions[t];
      EXPECT_EQ(b.slots[t], static_cast<int64_t>(s.block_table[static_cast<size_t>(p / block_size)]) * block_size +
                                p % block_size);
      EXPECT_TRUE(written.insert(b.slots[t]).second) << "slot written twice in one step";
      kv[b.slots[t]] = {b.tokens[t], p};
    }
    std::vector<int32_t> out;
    for (int32_t row : b.logit_rows) {
      const auto t = static_cast<size_t>(row);
      const StepSequence& s = b.seqs.at(static_cast<size_t>(b.seq_of[t]));
      std::vector<int32_t> ctx;
      for (int32_t p = 0; p <= b.positions[t]; ++p) {
        const int64_t slot =
            static_cast<int64_t>(s.block_table[static_cast<size_t>(p / block_size)]) * block_size + p % block_size;
        const Cell c = kv.at(slot);
        EXPECT_EQ(c.pos, p) << "slot " << slot << " holds another position";
        ctx.push_back(c.token);
      }
      out.push_back(predict(ctx));
    }
    return out;
  }
};

struct Job {
  std::vector<int32_t> prompt;
  int32_t max_new = 0;
  bool prompt_logits = false;
};

std::vector<int32_t> run_alone(const Job& j) {
  std::vector<int32_t> ctx = j.prompt, out;
  for (int32_t i = 0; i < j.max_new; ++i) {
    out.push_back(predict(ctx));
    ctx.push_back(out.back());
  }
  return out;
}

struct RunStats {
  std::map<RequestId, std::vector<int32_t>> outputs;
  std::map<RequestId, int32_t> cached;
  std::map<RequestId, int32_t> prompt_rows;  // logits rows received inside the prompt
  int64_t steps = 0;
};

// Plays the engine: submits jobs (some arrive later), runs steps, finishes requests after
// max_new tokens, checks the scheduler's invariants on the way.
RunStats drive(Scheduler& sched, const std::vector<Job>& jobs, int arrive_every = 0) {
  FakeRunner runner{.kv = {}, .block_size = sched.config().block_size};
  RunStats st;
  size_t next_job = 0;
  auto submit = [&] {
    const Job& j = jobs[next_job];
    sched.add({.id = next_job + 1, .tokens = j.prompt, .prompt_logits = j.prompt_logits});
    ++next_job;
  };
  if (arrive_every == 0)
    while (next_job < jobs.size()) submit();
  while (next_job < jobs.size() || sched.has_work()) {
    if (arrive_every > 0 && next_job < jobs.size() && st.steps % arrive_every == 0) submit();
    StepPlan plan = sched.schedule();
    ++st.steps;
    EXPECT_LE(st.steps, 100000) << "no progress";
    if (st.steps > 100000) break;
    if (plan.empty()) {
      EXPECT_FALSE(sched.has_work() && next_job >= jobs.size()) << "empty step with work left";
      continue;
    }
    EXPECT_LE(plan.batch.n_tokens(), sched.config().max_batch_tokens);
    EXPECT_LE(sched.n_running(), sched.config().max_seqs);
    const std::vector<int32_t> rows = runner.run(plan.batch);
    std::vector<int32_t> next(plan.chunks.size(), -1);
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      const ScheduledChunk& c = plan.chunks[i];
      const Job& j = jobs[c.id - 1];
      if (c.start == 0 || !st.cached.count(c.id)) st.cached[c.id] = c.n_cached;
      if (j.prompt_logits)
        for (int32_t r = 0; r < c.n_tokens; ++r)
          if (c.start + r < static_cast<int32_t>(j.prompt.size())) ++st.prompt_rows[c.id];
      if (c.sample) next[i] = rows.at(static_cast<size_t>(c.logit_row + c.n_logit_rows - 1));
    }
    sched.update(plan, next);
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      const ScheduledChunk& c = plan.chunks[i];
      if (!c.sample) continue;
      auto& out = st.outputs[c.id];
      out.push_back(next[i]);
      if (static_cast<int32_t>(out.size()) == jobs[c.id - 1].max_new) {
        EXPECT_TRUE(sched.remove(c.id));
      }
    }
  }
  EXPECT_EQ(sched.kv().n_free_blocks(), sched.kv().n_blocks()) << "blocks leaked";
  EXPECT_EQ(sched.kv().n_seqs(), 0);
  return st;
}

std::vector<Job> random_jobs(int n, int max_prompt, int max_new, uint32_t seed, int shared_prefix = 0) {
  std::mt19937 rng(seed);
  std::vector<int32_t> prefix(static_cast<size_t>(shared_prefix));
  for (auto& t : prefix) t = static_cast<int32_t>(rng() % kVocab);
  std::vector<Job> jobs;
  for (int i = 0; i < n; ++i) {
    Job j;
    j.prompt = prefix;
    const int len = 1 + static_cast<int>(rng() % static_cast<uint32_t>(max_prompt));
    for (int k = 0; k < len; ++k) j.prompt.push_back(static_cast<int32_t>(rng() % kVocab));
    j.max_new = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(max_new));
    jobs.push_back(j);
  }
  return jobs;
}

void expect_same_as_alone(const std::vector<Job>& jobs, const RunStats& st) {
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(st.outputs.at(i + 1), run_alone(jobs[i])) << "request " << i + 1;
}

TEST(Scheduler, ContinuousBatchingMatchesSequentialRuns) {
  const auto jobs = random_jobs(24, 70, 30, 1);
  Scheduler sched({.max_seqs = 4, .max_batch_tokens = 48, .n_blocks = 200, .block_size = 4});
  const RunStats st = drive(sched, jobs, /*arrive_every=*/3);
  expect_same_as_alone(jobs, st);
  EXPECT_EQ(sched.n_preemptions(), 0);
}

TEST(Scheduler, ChunkedPrefillSamplesOnlyAfterTheLastChunk) {
  Scheduler sched({.max_seqs = 2, .max_batch_tokens = 16, .n_blocks = 64, .block_size = 8});
  std::vector<int32_t> prompt(100);
  for (int i = 0; i < 100; ++i) prompt[static_cast<size_t>(i)] = i * 7 % kVocab;
  sched.add({.id = 1, .tokens = prompt});
  FakeRunner runner{.kv = {}, .block_size = 8};
  for (int step = 0; step < 7; ++step) {
    StepPlan plan = sched.schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    const auto& c = plan.chunks[0];
    EXPECT_EQ(c.start, step * 16);
    EXPECT_EQ(c.n_tokens, std::min(16, 100 - step * 16));
    EXPECT_EQ(c.sample, step == 6);
    EXPECT_EQ(plan.batch.logit_rows.size(), step == 6 ? 1u : 0u);
    const auto rows = runner.run(plan.batch);
    const std::vector<int32_t> next{c.sample ? rows[0] : -1};
    sched.update(plan, next);
  }
  EXPECT_EQ(sched.tokens(1).size(), 101u);
  EXPECT_EQ(sched.tokens(1).back(), predict(prompt));
}

TEST(Scheduler, DecodesGoFirstAndNewPromptsFillTheBudget) {
  Scheduler sched({.max_seqs = 3, .max_batch_tokens = 10, .n_blocks = 64, .block_size = 4});
  FakeRunner runner{.kv = {}, .block_size = 4};
  sched.add({.id = 1, .tokens = {1, 2, 3}});
  StepPlan p1 = sched.schedule();
  sched.update(p1, runner.run(p1.batch));
  sched.add({.id = 2, .tokens = std::vector<int32_t>(20, 5)});
  StepPlan p2 = sched.schedule();
  ASSERT_EQ(p2.chunks.size(), 2u);
  EXPECT_EQ(p2.chunks[0].id, 1u);
  EXPECT_EQ(p2.chunks[0].n_tokens, 1);
  EXPECT_EQ(p2.chunks[1].id, 2u);
  EXPECT_EQ(p2.chunks[1].n_tokens, 9);  // what is left of the budget
  EXPECT_FALSE(p2.chunks[1].sample);
}

TEST(Scheduler, MaxSeqsBoundsTheRunningSet) {
  Scheduler sched({.max_seqs = 2, .max_batch_tokens = 100, .n_blocks = 64, .block_size = 4});
  for (RequestId id = 1; id <= 5; ++id) sched.add({.id = id, .tokens = {1, 2}});
  StepPlan plan = sched.schedule();
  EXPECT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(sched.n_running(), 2);
  EXPECT_EQ(sched.n_waiting(), 3);
}

TEST(Scheduler, PreemptionUnderATightPoolKeepsOutputsExact) {
  // 8 requests of up to 60 tokens share 16 blocks of 4 = 64 slots: most steps run out.
  const auto jobs = random_jobs(8, 30, 30, 7);
  Scheduler sched({.max_seqs = 6, .max_batch_tokens = 32, .n_blocks = 16, .block_size = 4});
  const RunStats st = drive(sched, jobs);
  expect_same_as_alone(jobs, st);
  EXPECT_GT(sched.n_preemptions(), 0);
}

TEST(Scheduler, RemoveFreesAWaitingOrRunningRequest) {
  Scheduler sched({.max_seqs = 1, .max_batch_tokens = 8, .n_blocks = 8, .block_size = 4});
  sched.add({.id = 1, .tokens = {1, 2, 3, 4, 5}});
  sched.add({.id = 2, .tokens = {6}});
  StepPlan plan = sched.schedule();
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(sched.kv().n_free_blocks(), 6);
  EXPECT_TRUE(sched.remove(1));
  EXPECT_TRUE(sched.remove(2));
  EXPECT_FALSE(sched.remove(2));
  EXPECT_FALSE(sched.has_work());
  EXPECT_EQ(sched.kv().n_free_blocks(), 8);
  sched.update(plan, std::vector<int32_t>{-1});  // a plan whose request went away is ignored
}

TEST(Scheduler, PromptLogitsGiveARowPerPromptToken) {
  std::vector<Job> jobs = random_jobs(3, 40, 5, 11);
  jobs[1].prompt_logits = true;
  Scheduler sched({.max_seqs = 3, .max_batch_tokens = 16, .n_blocks = 64, .block_size = 4});
  const RunStats st = drive(sched, jobs);
  expect_same_as_alone(jobs, st);
  EXPECT_EQ(st.prompt_rows.at(2), static_cast<int32_t>(jobs[1].prompt.size()));
}

TEST(Scheduler, PrefixCacheSharesBlocksAndKeepsOutputsExact) {
  const auto jobs = random_jobs(12, 20, 12, 3, /*shared_prefix=*/37);
  Scheduler sched({.max_seqs = 3, .max_batch_tokens = 24, .n_blocks = 80, .block_size = 4, .prefix_cache = true});
  const RunStats st = drive(sched, jobs, /*arrive_every=*/4);
  expect_same_as_alone(jobs, st);
  int with_hits = 0;
  for (auto [id, n] : st.cached) {
    EXPECT_EQ(n % 4, 0);
    EXPECT_LE(n, 36);  // only whole blocks of the shared 37-token prefix can match
    with_hits += n > 0;
  }
  EXPECT_GE(with_hits, 6);
}

TEST(Scheduler, PrefixCacheTellsEqualBlocksAtOtherPositionsApart) {
  // Blocks with the same tokens after different prefixes (or at different positions) hold
  // different keys and values; only a chained hash keeps them apart.
  std::vector<Job> jobs(3);
  jobs[0].prompt = {1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9, 5};
  jobs[1].prompt = {9, 9, 9, 9, 9, 9, 9, 9, 6};
  jobs[2].prompt = {1, 2, 3, 4, 9, 9, 9, 9, 7};
  for (auto& j : jobs) j.max_new = 4;
  Scheduler sched({.max_seqs = 1, .max_batch_tokens = 64, .n_blocks = 30, .block_size = 4, .prefix_cache = true});
  const RunStats st = drive(sched, jobs);
  expect_same_as_alone(jobs, st);
  EXPECT_EQ(st.cached.at(2), 0);
  EXPECT_EQ(st.cached.at(3), 8);
}

TEST(Scheduler, PrefixCacheUnderPreemptionKeepsOutputsExact) {
  const auto jobs = random_jobs(10, 25, 25, 5, /*shared_prefix=*/13);
  Scheduler sched({.max_seqs = 5, .max_batch_tokens = 20, .n_blocks = 22, .block_size = 4, .prefix_cache = true});
  const RunStats st = drive(sched, jobs);
  expect_same_as_alone(jobs, st);
  EXPECT_GT(sched.n_preemptions(), 0);
}

TEST(Scheduler, ManyRandomConfigurations) {
  for (uint32_t seed = 100; seed < 130; ++seed) {
    std::mt19937 rng(seed);
    const int bs = 1 + static_cast<int>(rng() % 8);
    const int max_prompt = 5 + static_cast<int>(rng() % 40);
    const int max_new = 1 + static_cast<int>(rng() % 20);
    const int need_blocks = (max_prompt + 20 + max_new + bs - 1) / bs;  // one request alone fits
    SchedulerConfig cfg{.max_seqs = 1 + static_cast<int32_t>(rng() % 6),
                        .max_batch_tokens = 1 + static_cast<int32_t>(rng() % 64),
                        .n_blocks = need_blocks + static_cast<int32_t>(rng() % 30),
                        .block_size = bs,
                        .prefix_cache = rng() % 2 == 0};
    const auto jobs = random_jobs(10, max_prompt, max_new, seed, static_cast<int>(rng() % 20));
    Scheduler sched(cfg);
    const RunStats st = drive(sched, jobs, static_cast<int>(rng() % 4));
    expect_same_as_alone(jobs, st);
  }
}

}  // namespace
}  // namespace hearth
