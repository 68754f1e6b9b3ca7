// Scheduler: continuous batching for the serving engine. Called by the engine's loop once
// per forward pass: schedule() -> model forward + sampling -> update().
//
// NOTE(scheduler): there is no prefill phase and no decode phase. Each request has its
// known tokens (prompt, then every sampled token) and n_computed, how many of them are in
// the KV cache. Every step lets n_computed catch up with the known tokens under a token
// budget: a decoding request needs 1 token, a new one its whole prompt, cut into chunks
// when the budget runs out (chunked prefill), a preempted one everything it had. Logits
// are wanted for a request exactly when the step brings it level with its known tokens.
//
// Order within a step: running requests that are decoding, then running requests still
// in their prompt, then waiting requests in arrival order (preempted ones first), while
// fewer than max_seqs run. When the KV pool cannot hold a running request's next tokens,
// the most recently admitted running request not yet scheduled this step is preempted:
// its blocks are freed and it goes back to the front of the queue to be recomputed
// later. No request is admitted in a step that preempted one.
//
// Prefix cache (on by default in the server): a request admitted for the first time
// starts on the longest cached prefix (kv_manager.h), including blocks loaded back from
// the tier; the plan lists the block copies (spills out, loads in) the engine must make
// before the forward pass, spills first.
//
// The scheduler sees only token ids, block ids and counts (no model, no sampler), so the
// tests drive it with a fake runner.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/step.h"
#include "kv/kv_manager.h"

namespace hearth {

using RequestId = uint64_t;

struct SchedulerConfig {
  int32_t max_seqs = 4;            // requests running at once (--parallel)
  int32_t max_batch_tokens = 512;  // tokens per forward pass
  int32_t n_blocks = 0;            // KV pool size in blocks
  int32_t block_size = 16;         // tokens per block
  bool prefix_cache = false;       // share full blocks of earlier requests (issue 9)
};

// What the scheduler is told about a request.
struct SchedRequest {
  RequestId id = 0;
  std::vector<int32_t> tokens;  // [n_prompt] the prompt; sampled tokens are appended by update()
  bool prompt_logits = false;   // logits for every prompt row too (echo with logprobs)
  kv::Priority priority = kv::Priority::OneOff;  // eviction class of its cached blocks (sessions: Session)
};

// One request's share of a step: tokens [start, start + n_tokens) of its known tokens.
struct ScheduledChunk {
  RequestId id = 0;
  int32_t start = 0;
  int32_t n_tokens = 0;
  int32_t logit_row = -1;    // first row of this chunk's logits in the step's output; -1 = none
  int32_t n_logit_rows = 0;  // 1 for a sampling chunk; n_tokens when prompt_logits asked
  bool sample = false;       // the chunk's last logits row picks the request's next token
  int32_t n_cached = 0;      // tokens found in the prefix cache when the request was admitted
  int32_t n_loaded = 0;      // of those, tokens loaded back from the tier (host memory or disk)
};

struct StepPlan {
  StepBatch batch;
  std::vector<ScheduledChunk> chunks;
  std::vector<RequestId> preempted;  // lost their KV in this step; they will be recomputed
  std::vector<kv::Spill> spills;     // cached blocks handed out again: read them out first
  std::vector<kv::Load> loads;       // blocks to fill from the tier, after the spills
  bool empty() const { return chunks.empty(); }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a request (after everything already waiting). Its id must be new.
  void add(SchedRequest request);
  // Forgets a request, running or waiting, and frees its blocks; false if unknown.
  bool remove(RequestId id);

  // Plans the next forward pass; empty when there is nothing to run.
  StepPlan schedule();
  // Records that `plan` ran: every chunk's tokens are now computed, and each sampling
  // chunk's request gets next_tokens[i] (indexed like plan.chunks) appended.
  void update(const StepPlan& plan, std::span<const int32_t> next_tokens);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int32_t n_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t n_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  bool contains(RequestId id) const { return entries_.count(id) != 0; }
  // Known tokens of a request (prompt + sampled), for tests and the engine.
  const std::vector<int32_t>& tokens(RequestId id) const;
  int32_t n_computed(RequestId id) const;
  int64_t n_preemptions() const { return n_preemptions_; }
  const kv::KvManager& kv() const { return kv_; }
  const SchedulerConfig& config() const { return config_; }
  // The prefix cache's second level (null = none); must outlive the scheduler.
  void set_tier(kv::KvTier* tier) { kv_.set_tier(tier); }
  // Tokens of `tokens` the prefix cache holds now (an estimate for an arriving request).
  int32_t probe_prefix(std::span<const int32_t> tokens) const {
    return config_.prefix_cache ? kv_.probe_prefix(tokens) : 0;
  }
  std::vector<kv::Spill> cached_blocks() const { return kv_.cached_blocks(); }

 private:
  struct Entry {
    SchedRequest req;
    int32_t n_prompt = 0;
    int32_t n_computed = 0;
    int32_t n_cached = 0;
    int32_t n_loaded = 0;
    bool admitted_once = false;
  };

  void preempt(RequestId id, StepPlan& plan);
  void add_chunk(RequestId id, int32_t n_new, StepPlan& plan);
  void admit_waiting(int32_t& budget, StepPlan& plan);

  SchedulerConfig config_;
  kv::KvManager kv_;
  std::unordered_map<RequestId, Entry> entries_;
  std::vector<RequestId> running_;  // admission order
  std::deque<RequestId> waiting_;
  int64_t n_preemptions_ = 0;
};

}  // namespace hearth
