// Engine: the serving engine. It owns a step runner (the model), the scheduler and a
// compute thread that runs the loop schedule -> forward -> sample -> update, one forward
// pass per step for every running request together (continuous batching).
//
// The seam to the server: submit() is thread-safe, validates the request at once (bad
// values and context overflow throw before anything is queued) and returns a
// RequestStream, the request's output channel. The compute thread pushes events into it:
// a Prompt event (echo logprobs, when asked), one Token event per sampled token (its
// text decoded incrementally, with stop strings and partial UTF-8 held back), and one
// Finish event with the reason and the statistics. RequestStream::cancel() (a client
// that went away) stops the request within one step and frees its KV blocks.
//
// Prefix cache (on by default; engine_cache.cpp): every request starts on the longest
// cached prefix of its prompt. Blocks the device pool evicts go to a KvTier (host memory,
// then a cache folder) when configured, and come back from there instead of being
// recomputed; at shutdown the pool's cached blocks are saved to the folder. probe() tells
// the server, as a request arrives, how much of it is cached and where it diverged from
// the most similar recent request.
//
// The engine knows token ids and text, never JSON or HTTP; tool calls and reasoning are
// parsed by the server from the text, so "tool_calls" is not an engine finish reason.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "engine/prompt_history.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace hearth {

// What runs one step: the model in production, a fake in tests.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual int32_t n_vocab() const = 0;  // length of one logits row
  // (Re)creates the KV cache for n_blocks blocks of block_size tokens.
  virtual void init_kv_cache(int32_t n_blocks, int32_t block_size) = 0;
  // logits: [batch.logit_rows.size(), n_vocab] floats; null only where keeps_logits().
  virtual void forward(const StepBatch& batch, float* logits) = 0;

  // ---- optional: logits left where they were computed (a GPU) ----------------------------
  // forward(batch, nullptr) leaves the step's logits in the runner, and the engine reads
  // back only what its samplers need: the best Backend::kMaxTopRows of each row, or a
  // whole row for a sampler that cannot do with them (penalties, bias, logprobs, ...).
  virtual bool keeps_logits() const { return false; }
  // Rows [first, first + n) of the last step's logits into out[n, n_vocab].
  virtual void read_logits(int32_t /*first*/, int32_t /*n*/, float* /*out*/) { fail("this runner keeps no logits"); }
  // Backend::read_top_rows over every logits row of the last step.
  virtual void read_top_logits(int32_t /*n_valid*/, int32_t /*k*/, int32_t* /*ids*/, float* /*values*/) {
    fail("this runner keeps no logits");
  }

  // ---- optional: moving KV blocks to host memory, for the prefix cache's tier --------
  // A name for the model and KV layout; 0 = this runner can't move blocks (no tier).
  virtual uint64_t cache_identity() const { return 0; }
  virtual int64_t kv_block_bytes() const { return 0; }  // bytes of one block (all layers)
  virtual DType kv_dtype() const { return DType::F32; }  // the blocks' element type (kv files record it)
  virtual void read_kv_block(int32_t /*block*/, uint8_t* /*host*/) { fail("this runner cannot read KV blocks"); }
  virtual void write_kv_block(int32_t /*block*/, const uint8_t* /*host*/) { fail("this runner cannot write KV blocks"); }
};

// A StepRunner on a loaded Model (which stays owned by the caller).
class ModelRunner : public StepRunner {
 public:
  explicit ModelRunner(Model& model) : model_(model) {}
  int32_t n_vocab() const override { return static_cast<int32_t>(model_.config().vocab_size); }
  void init_kv_cache(int32_t n_blocks, int32_t block_size) override;
  void forward(const StepBatch& batch, float* logits) override { model_.forward(batch, logits); }
  bool keeps_logits() const override { return model_.keeps_logits(); }
  void read_logits(int32_t first, int32_t n, float* out) override { model_.read_logits(first, n, out); }
  void read_top_logits(int32_t n_valid, int32_t k, int32_t* ids, float* values) override {
    model_.read_top_logits(n_valid, k, ids, values);
  }
  uint64_t cache_identity() const override;
  int64_t kv_block_bytes() const override { return hearth::kv_block_bytes(model_.backend().kv_cache_config()); }
  DType kv_dtype() const override { return model_.backend().kv_cache_config().dtype; }
  void read_kv_block(int32_t block, uint8_t* host) override { model_.backend().read_kv_block(block, host); }
  void write_kv_block(int32_t block, const uint8_t* host) override { model_.backend().write_kv_block(block, host); }

 private:
  Model& model_;
  mutable uint64_t identity_ = 0;  // computed on first use
};

struct EngineConfig {
  int32_t n_ctx = 4096;             // most tokens one request may hold: prompt + completion
  int32_t n_kv_tokens = 0;          // KV pool size in tokens, shared by all requests; 0 = n_ctx
  int32_t block_size = 16;          // tokens per KV block
  int32_t max_seqs = 4;             // requests decoding together (--parallel)
  int32_t max_batch_tokens = 512;   // tokens per forward pass (prompt chunks share it)
  int32_t max_queue = 64;           // requests waiting beyond the running ones; more are refused
  bool prefix_cache = true;         // reuse KV blocks of earlier prompts (issue 9)
  std::string cache_dir;            // "" = no disk tier; else evicted blocks spill here (--cache-dir)
  int64_t cache_disk_bytes = 0;     // cap on the folder's block files (--cache-disk-size)
  int64_t cache_ram_bytes = 0;      // host memory for evicted blocks and queued writes (--cache-ram)
};

struct EngineRequest {
  std::vector<int32_t> prompt;   // [n_prompt] token ids, non-empty
  SamplingParams params;         // max_tokens -1 = until the context is full
  bool prompt_logprobs = false;  // log-probabilities of the prompt tokens (echo + logprobs)
  bool skip_special = true;      // drop special (control) tokens from the text
  std::string session;           // session key ("" = a one-off request): its cached blocks are evicted last
};

enum class FinishReason { Stop, Length, Cancelled, Error };

// Per-request figures for usage and the request log. Times in seconds.
struct RequestStats {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;      // prompt tokens found in the prefix cache
  int64_t loaded_tokens = 0;      // of those, tokens loaded back from host memory or disk
  int64_t completion_tokens = 0;  // sampled tokens, a stop token included
  double queue_s = 0;             // submit -> first step that ran the request
  double ttft_s = 0;              // submit -> first sampled token
  double prompt_s = 0;            // first step -> first sampled token
  double decode_s = 0;            // first sampled token -> finish
  double total_s = 0;             // submit -> finish
};
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", "error"

struct EngineEvent {
  enum class Kind { Prompt, Token, Finish };
  Kind kind = Kind::Token;
  // Token: the sampled id and the text that became final with it (may be "", or carry
  // text of earlier tokens that was held back).
  int32_t token = -1;
  std::string text;
  std::optional<SampleLogprobs> logprobs;  // Token: when params.logprobs
  // Prompt: [n_prompt - 1] for prompt tokens 1.. (token 0 has no logprob).
  std::vector<SampleLogprobs> prompt_logprobs;
  // Finish: the reason, the last held-back text (in `text`), and the statistics.
  FinishReason finish = FinishReason::Stop;
  std::string error;       // FinishReason::Error
  int stop_index = -1;     // which params.stop string ended it; -1 otherwise
  int32_t stop_token = -1;  // the stop token that ended it; -1 otherwise
  RequestStats stats;
};

// A request's output channel, shared by the engine (producer) and a server thread.
class RequestStream {
 public:
  RequestId id() const { return id_; }
  int32_t n_prompt() const { return n_prompt_; }
  int32_t max_tokens() const { return max_tokens_; }  // after clamping to the context
  // The next event, waiting up to `timeout`; nullopt on timeout or once the Finish event
  // has been taken.
  std::optional<EngineEvent> next(std::chrono::milliseconds timeout);
  // Asks the engine to stop the request; a Finish(Cancelled) event follows within a step.
  void cancel() { cancel_.store(true); }
  bool cancel_requested() const { return cancel_.load(); }
  bool done() const;  // the Finish event has been taken

 private:
  friend class Engine;
  RequestStream(RequestId id, int32_t n_prompt, int32_t max_tokens) : id_(id), n_prompt_(n_prompt), max_tokens_(max_tokens) {}
  void push(EngineEvent event);

  RequestId id_;
  int32_t n_prompt_;
  int32_t max_tokens_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  bool done_ = false;
};

// A prompt that leaves no room in the context: the server answers 400
// context_length_exceeded with this message.
class ContextLengthError : public Error {
 public:
  using Error::Error;
};
// Too many requests waiting: the server answers 503 with Retry-After.
class QueueFullError : public Error {
 public:
  using Error::Error;
};

// Counters for /metrics; a consistent snapshot.
struct EngineStats {
  int32_t running = 0, waiting = 0;
  int32_t kv_blocks_total = 0, kv_blocks_used = 0, block_size = 0;
  int64_t prompt_tokens_total = 0;     // prompt tokens of finished and running requests
  int64_t cached_tokens_total = 0;     // of which found in the prefix cache
  int64_t generated_tokens_total = 0;  // sampled tokens
  int64_t steps_total = 0, preemptions_total = 0, requests_total = 0;
  // Prefix cache.
  bool prefix_cache = false;
  int64_t cache_hits_total = 0;           // requests that found at least one cached block
  int64_t loaded_tokens_total = 0;        // cached tokens that came from the tier
  int32_t kv_blocks_cached = 0;           // pool blocks holding a named prefix (in use or free)
  int64_t kv_evictions_total = 0;         // named blocks handed out again
  kv::KvTierStats tier;                   // host-memory and disk levels (zeros without)
  bool tier_ram = false, tier_disk = false;
};

// What the prefix cache holds for a prompt, as it arrives (engine_cache.cpp).
struct CacheProbe {
  int32_t n_cached = 0;                // prompt tokens cached now (admission decides the final count)
  PromptHistory::Match nearest;        // the most similar recent sequence
};

class Engine {
 public:
  // vocab: the sampler's view of the vocabulary (eog ids, real token count); tokenizer
  // may be null (token ids in and out, no text, no stop strings).
  Engine(std::unique_ptr<StepRunner> runner, const Tokenizer* tokenizer, SamplerVocab vocab, EngineConfig config);
  // Stops the loop; requests still running finish with an error.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Throws Error (bad request), ContextLengthError or QueueFullError.
  std::shared_ptr<RequestStream> submit(EngineRequest request);
  void cancel(RequestStream& stream);

  EngineStats stats() const;
  // How much of `prompt` the prefix cache holds now and where it parts from the most
  // similar recent request. Thread-safe.
  CacheProbe probe(std::span<const int32_t> prompt) const;
  const EngineConfig& config() const { return config_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Active;
  void loop();
  void run_step();
  void take_inbox();
  void publish_stats();
  // Where the runner keeps the logits: reads back the rows that must come whole into
  // logits_ and the best top_k_ of every row (the most its samplers need) into
  // top_ids_/top_values_; use_top[i]: chunk i samples from those.
  void fetch_logits(const StepPlan& plan, std::vector<uint8_t>& use_top);
  void emit_prompt_logprobs(Active& a, const ScheduledChunk& c, const float* logits);
  void on_token(Active& a, int32_t token, std::optional<SampleLogprobs> lp);
  void finish(RequestId id, FinishReason reason, const std::string& error = "");
  // engine_cache.cpp
  void init_tier();
  void apply_transfers(const StepPlan& plan);
  // A pool block's tokens, hashes and KV bytes, copied to host memory for the tier.
  std::shared_ptr<kv::HostBlock> copy_to_host(const kv::Spill& s);
  void save_cache();

  std::unique_ptr<StepRunner> runner_;
  const Tokenizer* tokenizer_;
  SamplerVocab vocab_;
  EngineConfig config_;
  int32_t n_vocab_;
  Scheduler scheduler_;
  std::unique_ptr<kv::KvTier> tier_;  // null without --cache-ram / --cache-dir
  PromptHistory history_;
  // Guards scheduler_ against probe() from server threads; the compute thread holds it
  // only while it plans, updates, adds or removes (never during a forward pass).
  mutable std::mutex sched_mu_;

  mutable std::mutex mu_;  // guards inbox_, stop_, stats_, next_id_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Active>> inbox_;
  bool stop_ = false;
  RequestId next_id_ = 1;
  EngineStats stats_;

  std::unordered_map<RequestId, std::unique_ptr<Active>> active_;  // compute thread only
  std::vector<float> logits_;       // [logit rows, n_vocab] (rows read back whole)
  std::vector<int32_t> top_ids_;    // [logit rows, top_k_] where the runner keeps logits
  std::vector<float> top_values_;
  int32_t top_k_ = 0;               // best logits read a row this step (<= kMaxTopRows)
  std::thread thread_;
};

}  // namespace hearth
