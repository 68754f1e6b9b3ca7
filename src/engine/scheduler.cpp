// Scheduler: the token-budget catch-up rule (see scheduler.h).
#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace hearth {

Scheduler::Scheduler(const SchedulerConfig& config) : config_(config), kv_(config.n_blocks, config.block_size) {
  HEARTH_CHECK(config.max_seqs > 0, "scheduler: max_seqs must be positive");
  HEARTH_CHECK(config.max_batch_tokens > 0, "scheduler: max_batch_tokens must be positive");
}

void Scheduler::add(SchedRequest request) {
  HEARTH_ASSERT(!request.tokens.empty());
  const RequestId id = request.id;
  Entry e;
  e.n_prompt = static_cast<int32_t>(request.tokens.size());
  e.req = std::move(request);
  const bool inserted = entries_.emplace(id, std::move(e)).second;
  HEARTH_ASSERT(inserted);
  waiting_.push_back(id);
}

bool Scheduler::remove(RequestId id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  kv_.free(id);
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
  entries_.erase(it);
  return true;
}

const std::vector<int32_t>& Scheduler::tokens(RequestId id) const { return entries_.at(id).req.tokens; }
int32_t Scheduler::n_computed(RequestId id) const { return entries_.at(id).n_computed; }

void Scheduler::preempt(RequestId id, StepPlan& plan) {
  Entry& e = entries_.at(id);
  kv_.free(id);
  e.n_computed = 0;
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  waiting_.push_front(id);
  plan.preempted.push_back(id);
  ++n_preemptions_;
}

void Scheduler::add_chunk(RequestId id, int32_t n_new, StepPlan& plan) {
  Entry& e = entries_.at(id);
  StepBatch& batch = plan.batch;
  const int32_t start = e.n_computed;
  const int32_t n_known = static_cast<int32_t>(e.req.tokens.size());
  HEARTH_ASSERT(n_new > 0 && start + n_new <= n_known && kv_.n_tokens(id) == start + n_new);

  ScheduledChunk c;
  c.id = id;
  c.start = start;
  c.n_tokens = n_new;
  c.sample = start + n_new == n_known;
  c.n_cached = e.n_cached;
  c.n_loaded = e.n_loaded;
  const bool all_rows = e.req.prompt_logits && start < e.n_prompt;

  const int32_t seq_index = static_cast<int32_t>(batch.seqs.size());
  StepSequence seq;
  const auto table = kv_.block_table(id);
  seq.block_table.assign(table.begin(), table.end());
  seq.n_ctx = start + n_new;
  batch.seqs.push_back(std::move(seq));

  const int32_t first_row = static_cast<int32_t>(batch.tokens.size());
  const int32_t first_logit = static_cast<int32_t>(batch.logit_rows.size());
  for (int32_t i = 0; i < n_new; ++i) {
    const int32_t pos = start + i;
    batch.tokens.push_back(e.req.tokens[static_cast<size_t>(pos)]);
    batch.positions.push_back(pos);
    batch.seq_of.push_back(seq_index);
    batch.slots.push_back(kv_.slot(id, pos));
    if (all_rows || (c.sample && i == n_new - 1)) batch.logit_rows.push_back(first_row + i);
  }
  c.n_logit_rows = static_cast<int32_t>(batch.logit_rows.size()) - first_logit;
  c.logit_row = c.n_logit_rows > 0 ? first_logit : -1;
  plan.chunks.push_back(c);
}

void Scheduler::admit_waiting(int32_t& budget, StepPlan& plan) {
  while (!waiting_.empty() && n_running() < config_.max_seqs && budget > 0) {
    const RequestId id = waiting_.front();
    Entry& e = entries_.at(id);
    HEARTH_ASSERT(e.n_computed == 0 && kv_.n_tokens(id) == 0);
    // Prompt logits need every prompt row computed, so such requests skip the cache.
    if (config_.prefix_cache && !e.req.prompt_logits) {
      int32_t n_loaded = 0;
      e.n_computed = kv_.match_prefix(id, e.req.tokens, e.req.priority, &n_loaded);
      if (!e.admitted_once) {
        e.n_cached = e.n_computed;
        e.n_loaded = n_loaded;
      }
    }
    const int32_t remaining = static_cast<int32_t>(e.req.tokens.size()) - e.n_computed;
    const int32_t n_new = std::min(remaining, budget);
    if (!kv_.allocate(id, n_new)) {
      kv_.free(id);  // give back the shared prefix until the request fits
      e.n_computed = 0;
      break;
    }
    waiting_.pop_front();
    running_.push_back(id);
    e.admitted_once = true;
    add_chunk(id, n_new, plan);
    budget -= n_new;
  }
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int32_t budget = config_.max_batch_tokens;

  // Decoding requests first (one token each, latency matters), then prompts in progress.
  std::vector<RequestId> order;
  order.reserve(running_.size());
  for (RequestId id : running_) {
    const Entry& e = entries_.at(id);
    if (static_cast<int32_t>(e.req.tokens.size()) - e.n_computed == 1) order.push_back(id);
  }
  for (RequestId id : running_) {
    const Entry& e = entries_.at(id);
    if (static_cast<int32_t>(e.req.tokens.size()) - e.n_computed > 1) order.push_back(id);
  }

  std::vector<RequestId> scheduled;
  auto is_scheduled = [&](RequestId id) { return std::find(scheduled.begin(), scheduled.end(), id) != scheduled.end(); };
  for (RequestId id : order) {
    if (budget <= 0) break;
    if (std::find(running_.begin(), running_.end(), id) == running_.end()) continue;  // preempted
    Entry& e = entries_.at(id);
    const int32_t remaining = static_cast<int32_t>(e.req.tokens.size()) - e.n_computed;
    HEARTH_ASSERT(remaining > 0);
    const int32_t n_new = std::min(remaining, budget);
    bool fits = true;
    while (!kv_.allocate(id, n_new)) {
      // The victim: the most recently admitted request not already in this step.
      auto victim = std::find_if(running_.rbegin(), running_.rend(),
                                 [&](RequestId r) { return r != id && !is_scheduled(r); });
      if (victim == running_.rend()) {
        fits = false;
        break;
      }
      preempt(*victim, plan);
    }
    if (!fits) {
      // Everyone else already runs in this step: wait for them to finish or free blocks.
      // Alone the request always fits (the engine keeps n_ctx within the pool), so a
      // step never ends up empty because of this.
      if (plan.chunks.empty()) preempt(id, plan);
      continue;
    }
    add_chunk(id, n_new, plan);
    scheduled.push_back(id);
    budget -= n_new;
  }

  if (plan.preempted.empty()) admit_waiting(budget, plan);
  kv_.take_transfers(plan.spills, plan.loads);
  return plan;
}

void Scheduler::update(const StepPlan& plan, std::span<const int32_t> next_tokens) {
  HEARTH_ASSERT(next_tokens.size() == plan.chunks.size());
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    auto it = entries_.find(c.id);
    if (it == entries_.end()) continue;  // removed since the plan was made
    Entry& e = it->second;
    HEARTH_ASSERT(e.n_computed == c.start);
    e.n_computed += c.n_tokens;
    if (config_.prefix_cache) kv_.register_full_blocks(c.id, e.req.tokens, e.n_computed, e.req.priority);
    if (c.sample) e.req.tokens.push_back(next_tokens[i]);
  }
}

}  // namespace hearth
