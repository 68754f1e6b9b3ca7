// Engine: submission, the compute loop, sampling and the per-request output (engine.h).
//
// Threads: submit()/stats() run on server threads and touch only the inbox and the
// counters under mu_. Everything else (scheduler, samplers, decoders, active_) belongs to
// the compute thread. RequestStream has its own lock.
#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/sampler_stop.h"

namespace hearth {

using Clock = std::chrono::steady_clock;

namespace {
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "error";
}

void ModelRunner::init_kv_cache(int32_t n_blocks, int32_t block_size) {
  model_.backend().init_kv_cache(model_.kv_cache_config(n_blocks, block_size));
}

// ---- RequestStream ------------------------------------------------------------------

std::optional<EngineEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (done_) return std::nullopt;
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  EngineEvent e = std::move(events_.front());
  events_.pop_front();
  if (e.kind == EngineEvent::Kind::Finish) done_ = true;
  return e;
}

bool RequestStream::done() const {
  std::lock_guard lk(mu_);
  return done_;
}

void RequestStream::push(EngineEvent event) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

// ---- the state of one request on the compute thread ----------------------------------

struct Engine::Active {
  std::shared_ptr<RequestStream> stream;
  EngineRequest req;
  int32_t max_tokens = 0;  // clamped to the context
  Sampler sampler;
  StopMatcher stops;
  std::optional<IncrementalDecoder> decoder;
  int32_t n_generated = 0;
  int32_t n_cached = 0;
  int32_t n_loaded = 0;
  int stop_index = -1;      // the stop string that ended the request
  int32_t stop_token = -1;  // the stop token that ended it
  bool prompt_sent = false;
  std::vector<SampleLogprobs> prompt_lps;  // [n_prompt - 1] when prompt_logprobs
  Clock::time_point t_submit, t_scheduled, t_first;
  bool scheduled = false;

  Active(EngineRequest r, int32_t max_tok, const SamplerVocab& vocab, const Tokenizer* tok)
      : req(std::move(r)),
        max_tokens(max_tok),
        sampler(req.params, vocab),
        stops(req.params.stop),
        t_submit(Clock::now()) {
    if (tok) decoder.emplace(*tok, req.skip_special);
    for (int32_t id : req.prompt) sampler.accept(id);  // penalties see the prompt, as direct mode
    if (req.prompt_logprobs) prompt_lps.resize(req.prompt.size() - 1);
  }
};

// ---- Engine -----------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<StepRunner> runner, const Tokenizer* tokenizer, SamplerVocab vocab, EngineConfig config)
    : runner_(std::move(runner)),
      tokenizer_(tokenizer),
      vocab_(std::move(vocab)),
      config_(config),
      n_vocab_(runner_->n_vocab()),
      scheduler_([&] {
        HEARTH_CHECK(config.n_ctx > 0, "engine: the context size must be positive");
        HEARTH_CHECK(config.block_size > 0, "engine: the block size must be positive");
        HEARTH_CHECK(config.max_seqs > 0, "--parallel must be at least 1");
        if (config_.n_kv_tokens <= 0) config_.n_kv_tokens = config.n_ctx;
        // One request alone must always fit, or the scheduler could stall on it.
        HEARTH_CHECK(config_.n_kv_tokens >= config.n_ctx, "engine: the KV pool (" + std::to_string(config_.n_kv_tokens) +
                                                              " tokens) is smaller than the context (" +
                                                              std::to_string(config.n_ctx) + ")");
        return SchedulerConfig{.max_seqs = config.max_seqs,
                               .max_batch_tokens = config.max_batch_tokens,
                               .n_blocks = (config_.n_kv_tokens + config.block_size - 1) / config.block_size,
                               .block_size = config.block_size,
                               .prefix_cache = config.prefix_cache};
      }()) {
  vocab_.n_vocab = n_vocab_;
  runner_->init_kv_cache(scheduler_.kv().n_blocks(), config_.block_size);
  init_tier();
  stats_.kv_blocks_total = scheduler_.kv().n_blocks();
  stats_.block_size = config_.block_size;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<RequestStream> Engine::submit(EngineRequest request) {
  const auto n_prompt = static_cast<int64_t>(request.prompt.size());
  HEARTH_CHECK(n_prompt > 0, "prompt: the prompt is empty");
  for (int32_t id : request.prompt)
    HEARTH_CHECK(id >= 0 && id < n_vocab_, "prompt: token id " + std::to_string(id) + " is not in the vocabulary (0.." +
                                               std::to_string(n_vocab_ - 1) + ")");
  if (n_prompt >= config_.n_ctx)
    throw ContextLengthError("This model's maximum context length is " + std::to_string(config_.n_ctx) +
                             " tokens. However, your request has " + std::to_string(n_prompt) +
                             " input tokens, which leaves no room for a completion. Please reduce the length of "
                             "the input.");
  HEARTH_CHECK(tokenizer_ || request.params.stop.empty(), "stop: this model has no tokenizer, so stop strings can't be matched");
  request.params.validate(vocab_.n_tokens > 0 ? vocab_.n_tokens : n_vocab_);
  // An oversized max_tokens is clamped to the room left, not refused (OpenCode asks for 32000).
  const int64_t room = config_.n_ctx - n_prompt;
  const auto max_tokens = static_cast<int32_t>(
      request.params.max_tokens < 0 ? room : std::min<int64_t>(request.params.max_tokens, room));

  // The sampler is built here, on the caller's thread, so its errors reach the caller.
  auto active = std::make_unique<Active>(std::move(request), max_tokens, vocab_, tokenizer_);
  std::unique_lock lk(mu_);
  HEARTH_CHECK(!stop_, "the engine is shutting down");
  const int64_t queued = stats_.waiting + static_cast<int64_t>(inbox_.size());
  if (queued >= config_.max_queue)
    throw QueueFullError("the server is busy: " + std::to_string(queued) + " requests are already waiting");
  auto stream = std::shared_ptr<RequestStream>(new RequestStream(next_id_++, static_cast<int32_t>(n_prompt), max_tokens));
  active->stream = stream;
  inbox_.push_back(std::move(active));
  lk.unlock();
  cv_.notify_all();
  return stream;
}

void Engine::cancel(RequestStream& stream) {
  stream.cancel();
  cv_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard lk(mu_);
  EngineStats s = stats_;
  s.waiting += static_cast<int32_t>(inbox_.size());
  return s;
}

void Engine::take_inbox() {
  std::vector<std::unique_ptr<Active>> in;
  {
    std::lock_guard lk(mu_);
    in.swap(inbox_);
  }
  for (auto& a : in) {
    const RequestId id = a->stream->id();
    {
      std::lock_guard lk(sched_mu_);
      scheduler_.add({.id = id,
                      .tokens = a->req.prompt,
                      .prompt_logits = a->req.prompt_logprobs,
                      .priority = a->req.session.empty() ? kv::Priority::OneOff : kv::Priority::Session});
    }
    history_.put(id, a->req.prompt);
    {
      std::lock_guard lk(mu_);
      stats_.prompt_tokens_total += static_cast<int64_t>(a->req.prompt.size());
      ++stats_.requests_total;
    }
    active_.emplace(id, std::move(a));
  }
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || !active_.empty(); });
      if (stop_) break;
    }
    take_inbox();
    std::vector<RequestId> cancelled;
    for (auto& [id, a] : active_)
      if (a->stream->cancel_requested()) cancelled.push_back(id);
    for (RequestId id : cancelled) finish(id, FinishReason::Cancelled);
    if (scheduler_.has_work()) run_step();
    publish_stats();
  }
  std::vector<RequestId> left;
  take_inbox();
  for (auto& [id, a] : active_) left.push_back(id);
  for (RequestId id : left) finish(id, FinishReason::Error, "the server is shutting down");
  save_cache();
}

void Engine::publish_stats() {
  std::lock_guard lk(mu_);
  stats_.running = scheduler_.n_running();
  stats_.waiting = scheduler_.n_waiting();
  stats_.kv_blocks_used = scheduler_.kv().n_blocks() - scheduler_.kv().n_free_blocks();
  stats_.preemptions_total = scheduler_.n_preemptions();
  stats_.kv_blocks_cached = scheduler_.kv().pool().n_hashed();
  stats_.kv_evictions_total = scheduler_.kv().pool().n_evictions();
  if (tier_) stats_.tier = tier_->stats();
}

void Engine::run_step() {
  StepPlan plan;
  {
    std::lock_guard lk(sched_mu_);
    plan = scheduler_.schedule();
  }
  if (plan.empty()) {
    try {
      apply_transfers(plan);  // an admission that gave up may still have evicted blocks
    } catch (const std::exception& e) {
      log_error(std::string("engine: KV block transfer failed: ") + e.what());
    }
    return;
  }
  const auto now = Clock::now();
  for (const ScheduledChunk& c : plan.chunks) {
    Active& a = *active_.at(c.id);
    if (!a.scheduled) {
      a.scheduled = true;
      a.t_scheduled = now;
      a.n_cached = c.n_cached;
      a.n_loaded = c.n_loaded;
      std::lock_guard lk(mu_);
      stats_.cached_tokens_total += c.n_cached;
      stats_.loaded_tokens_total += c.n_loaded;
      if (c.n_cached > 0) ++stats_.cache_hits_total;
    }
  }
  logits_.resize(plan.batch.logit_rows.size() * static_cast<size_t>(n_vocab_));
  std::vector<uint8_t> use_top(plan.chunks.size(), 0);
  try {
    apply_transfers(plan);
    const bool keeps = runner_->keeps_logits();
    runner_->forward(plan.batch, keeps ? nullptr : logits_.data());
    if (keeps) fetch_logits(plan, use_top);
  } catch (const std::exception& e) {
    // A failed step fails the requests in it, never the process.
    log_error(std::string("engine: forward pass failed: ") + e.what());
    for (const ScheduledChunk& c : plan.chunks) finish(c.id, FinishReason::Error, e.what());
    return;
  }
  std::vector<int32_t> next(plan.chunks.size(), -1);
  std::vector<std::optional<SampleLogprobs>> lps(plan.chunks.size());
  std::vector<std::pair<size_t, Active*>> to_sample;
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    Active& a = *active_.at(c.id);
    if (a.req.prompt_logprobs && c.logit_row >= 0) emit_prompt_logprobs(a, c, logits_.data());
    if (c.sample) to_sample.emplace_back(i, &a);
  }
  // Each request has its own sampler (state, seeded RNG) and logits row, so the rows are
  // sampled in parallel: with many sequences a step's host sampling (a full-vocabulary
  // softmax is ~1 ms a row on a slow core) would otherwise rival the GPU's step. The
  // tokens are the same as sampled one after another.
  auto sample_one = [&](size_t k) {
    const auto [i, a] = to_sample[k];
    const ScheduledChunk& c = plan.chunks[i];
    float* row = logits_.data() + static_cast<size_t>(c.logit_row + c.n_logit_rows - 1) * static_cast<size_t>(n_vocab_);
    SampleLogprobs lp;
    const bool want_lp = a->req.params.logprobs;
    if (use_top[i]) {
      const size_t at = static_cast<size_t>(c.logit_row + c.n_logit_rows - 1) * static_cast<size_t>(top_k_);
      next[i] = a->sampler.sample_top(top_ids_.data() + at, top_values_.data() + at, top_k_);
      return;
    }
    next[i] = a->sampler.sample(row, want_lp ? &lp : nullptr);
    if (want_lp) lps[i] = std::move(lp);
  };
  if (to_sample.size() > 1) {
    ThreadPool::global().parallel_for(static_cast<int64_t>(to_sample.size()), [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) sample_one(static_cast<size_t>(k));
    });
  } else if (!to_sample.empty()) {
    sample_one(0);
  }
  {
    std::lock_guard lk(sched_mu_);
    scheduler_.update(plan, next);
  }
  {
    std::lock_guard lk(mu_);
    ++stats_.steps_total;
  }
  for (size_t i = 0; i < plan.chunks.size(); ++i)
    if (plan.chunks[i].sample) on_token(*active_.at(plan.chunks[i].id), next[i], std::move(lps[i]));
}

void Engine::fetch_logits(const StepPlan& plan, std::vector<uint8_t>& use_top) {
  const size_t n_rows = plan.batch.logit_rows.size();
  top_k_ = 0;  // the most any sampler of the step needs
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    if (c.logit_row < 0) continue;
    const Active& a = *active_.at(c.id);
    if (c.sample && !a.req.prompt_logprobs && a.sampler.can_sample_top(Backend::kMaxTopRows, a.req.params.logprobs)) {
      use_top[i] = 1;
      top_k_ = std::max(top_k_, a.sampler.top_needed());
    } else {
      runner_->read_logits(c.logit_row, c.n_logit_rows, logits_.data() + static_cast<size_t>(c.logit_row) * n_vocab_);
    }
  }
  if (top_k_ == 0) return;
  top_ids_.resize(n_rows * static_cast<size_t>(top_k_));
  top_values_.resize(top_ids_.size());
  runner_->read_top_logits(vocab_.sampled_ids(), top_k_, top_ids_.data(), top_values_.data());
}

void Engine::emit_prompt_logprobs(Active& a, const ScheduledChunk& c, const float* logits) {
  const auto n_prompt = static_cast<int32_t>(a.req.prompt.size());
  const int32_t k = a.req.params.top_logprobs;
  for (int32_t r = 0; r < c.n_logit_rows; ++r) {
    const int32_t pos = c.start + r;  // row r predicts the token at pos + 1
    if (pos + 1 >= n_prompt) break;
    const float* row = logits + static_cast<size_t>(c.logit_row + r) * static_cast<size_t>(n_vocab_);
    const int32_t target = a.req.prompt[static_cast<size_t>(pos + 1)];
    SampleLogprobs& lp = a.prompt_lps[static_cast<size_t>(pos)];
    lp.sampled = {target, static_cast<float>(static_cast<double>(row[target]) - log_sum_exp(row, n_vocab_))};
    lp.top = k > 0 ? top_logprobs(row, n_vocab_, k) : std::vector<TokenLogprob>{};
  }
}

void Engine::on_token(Active& a, int32_t token, std::optional<SampleLogprobs> lp) {
  const RequestId id = a.stream->id();
  if (!a.prompt_sent && a.req.prompt_logprobs) {
    EngineEvent p;
    p.kind = EngineEvent::Kind::Prompt;
    p.prompt_logprobs = std::move(a.prompt_lps);
    a.stream->push(std::move(p));
  }
  a.prompt_sent = true;
  if (a.n_generated++ == 0) a.t_first = Clock::now();
  {
    std::lock_guard lk(mu_);
    ++stats_.generated_tokens_total;
  }
  if (a.sampler.is_stop_token(token)) {
    // Counted in completion_tokens but not emitted: the Finish event names it.
    a.stop_token = token;
    return finish(id, FinishReason::Stop);
  }
  a.sampler.accept(token);
  EngineEvent ev;
  ev.kind = EngineEvent::Kind::Token;
  ev.token = token;
  ev.logprobs = std::move(lp);
  if (a.decoder) {
    StopMatcher::Result r = a.stops.feed(a.decoder->feed(token));
    ev.text = std::move(r.text);
    if (r.stopped) a.stop_index = r.stop_index;
  }
  a.stream->push(std::move(ev));
  if (a.stops.stopped()) return finish(id, FinishReason::Stop);
  if (a.n_generated >= a.max_tokens) return finish(id, FinishReason::Length);
}

void Engine::finish(RequestId id, FinishReason reason, const std::string& error) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  {
    std::lock_guard lk(sched_mu_);
    if (scheduler_.contains(id)) history_.put(id, scheduler_.tokens(id));  // prompt + generated
    scheduler_.remove(id);
  }
  publish_stats();  // before the Finish event, so a client that saw it sees the blocks freed
  const auto now = Clock::now();
  EngineEvent fin;
  fin.kind = EngineEvent::Kind::Finish;
  fin.finish = reason;
  fin.error = error;
  fin.stop_index = a.stop_index;
  fin.stop_token = a.stop_token;
  if (!a.stops.stopped() && reason != FinishReason::Error) {
    if (a.decoder) fin.text = a.stops.feed(a.decoder->flush()).text;
    if (!a.stops.stopped()) fin.text += a.stops.flush();
  }
  RequestStats& s = fin.stats;
  s.prompt_tokens = static_cast<int64_t>(a.req.prompt.size());
  s.cached_tokens = a.n_cached;
  s.loaded_tokens = a.n_loaded;
  s.completion_tokens = a.n_generated;
  const auto t_sched = a.scheduled ? a.t_scheduled : now;
  s.queue_s = seconds(a.t_submit, t_sched);
  if (a.n_generated > 0) {
    s.ttft_s = seconds(a.t_submit, a.t_first);
    s.prompt_s = seconds(t_sched, a.t_first);
    s.decode_s = seconds(a.t_first, now);
  } else {
    s.prompt_s = seconds(t_sched, now);
  }
  s.total_s = seconds(a.t_submit, now);
  a.stream->push(std::move(fin));
  active_.erase(it);
}

}  // namespace hearth
