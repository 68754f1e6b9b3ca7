// generate(): prompt processing (reusing the cached prefix, in chunks so a cancel is seen
// between them), then one token per forward pass until a stop token, a stop string,
// max_tokens, the end of the context or a cancel.
#include "engine/generate.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "core/error.h"
#include "engine/sampler_stop.h"

namespace hearth {

void check_context(int64_t prompt_tokens, int32_t max_tokens, int64_t n_ctx) {
  if (prompt_tokens >= n_ctx)
    fail("context length exceeded: the prompt has " + std::to_string(prompt_tokens) +
         " tokens but the context holds " + std::to_string(n_ctx) + " (at least one more is needed to answer)");
  if (max_tokens > 0 && prompt_tokens + max_tokens > n_ctx)
    fail("context length exceeded: " + std::to_string(prompt_tokens) + " prompt tokens + " + std::to_string(max_tokens) +
         " max tokens = " + std::to_string(prompt_tokens + max_tokens) + " but the context holds " +
         std::to_string(n_ctx));
}

GenerationResult generate(Sequence& seq, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                          const SamplingParams& params, const SamplerVocab& vocab, const GenerateOptions& options) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  HEARTH_CHECK(!prompt.empty(), "the prompt is empty");
  HEARTH_CHECK(options.n_batch > 0, "the prompt batch size must be positive");
  params.validate(vocab.n_vocab);
  HEARTH_CHECK(tokenizer || params.stop.empty(), "stop strings need a model with a tokenizer");
  for (int32_t id : prompt)
    HEARTH_CHECK(id >= 0 && id < vocab.n_vocab, "prompt token id " + std::to_string(id) + " is outside the vocabulary");
  check_context(static_cast<int64_t>(prompt.size()), params.max_tokens, seq.n_ctx());
  auto cancelled = [&] { return options.cancel && options.cancel->load(); };

  GenerationResult r;
  r.stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.finish_reason = "length";
  // Reuse the cached prefix; at least the last prompt token is recomputed for its logits.
  const auto& history = seq.history();
  size_t common = 0;
  while (common < history.size() && common + 1 < prompt.size() && history[common] == prompt[common]) ++common;
  seq.truncate(static_cast<int32_t>(common));
  r.stats.cached_tokens = static_cast<int64_t>(common);
  // On a GPU the logits stay there and the sampler reads what it needs (next_token).
  const bool kept = seq.model().keeps_logits();
  for (size_t i = common; i < prompt.size(); i += static_cast<size_t>(options.n_batch)) {
    if (cancelled()) {
      r.finish_reason = "cancelled";
      r.stats.prompt_s = r.stats.total_s = seconds(t0, clock::now());
      return r;
    }
    const size_t n = std::min(prompt.size() - i, static_cast<size_t>(options.n_batch));
    const auto chunk = std::span<const int32_t>(prompt).subspan(i, n);
    if (kept) seq.feed_kept(chunk, options.n_batch);
    else seq.feed(chunk, options.n_batch);
  }
  r.stats.prompt_s = seconds(t0, clock::now());

  Sampler sampler(params, vocab);
  for (int32_t id : prompt) sampler.accept(id);
  std::vector<float> row;
  std::vector<int32_t> top_ids(kept ? Backend::kMaxTopRows : 0);
  std::vector<float> top_values(top_ids.size());
  const auto n_valid = static_cast<int32_t>(std::min<int64_t>(vocab.sampled_ids(), seq.model().config().vocab_size));
  auto next_token = [&](SampleLogprobs* lp) {
    if (!kept) {
      row = seq.last_logits();  // a copy: the sampler adds bias and penalties in place
      return sampler.sample(row.data(), lp);
    }
    if (sampler.can_sample_top(Backend::kMaxTopRows, lp != nullptr)) {
      const int32_t k = sampler.top_needed();
      seq.model().read_top_logits(n_valid, k, top_ids.data(), top_values.data());
      return sampler.sample_top(top_ids.data(), top_values.data(), k);
    }
    row.resize(static_cast<size_t>(seq.model().config().vocab_size));
    seq.model().read_logits(0, 1, row.data());
    return sampler.sample(row.data(), lp);
  };
  StopMatcher stops(params.stop);
  std::optional<IncrementalDecoder> decoder;
  if (tokenizer) decoder.emplace(*tokenizer, /*skip_special=*/true);
  const int64_t room = seq.n_ctx() - static_cast<int64_t>(prompt.size());
  const int64_t max_tokens = params.max_tokens < 0 ? room : std::min<int64_t>(params.max_tokens, room);
  std::string step_text;  // what became final during this step
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    r.text += text;
    step_text += text;
    if (options.on_text) options.on_text(text);
  };
  clock::time_point t_first = t0;
  for (int64_t i = 0; i < max_tokens; ++i) {
    if (cancelled()) {
      r.finish_reason = "cancelled";
      break;
    }
    SampleLogprobs lp;
    const int32_t token = next_token(params.logprobs ? &lp : nullptr);
    if (i == 0) {
      t_first = clock::now();
      r.stats.ttft_s = seconds(t0, t_first);
    }
    r.tokens.push_back(token);
    if (params.logprobs) r.logprobs.push_back(std::move(lp));
    if (sampler.is_stop_token(token)) {
      r.finish_reason = "stop";
      break;
    }
    sampler.accept(token);
    step_text.clear();
    if (decoder) emit(stops.feed(decoder->feed(token)).text);
    if (options.on_token && !options.on_token(token, step_text)) {
      r.finish_reason = "cancelled";
      break;
    }
    if (stops.stopped()) {
      r.finish_reason = "stop";
      break;
    }
    if (i + 1 < max_tokens) {
      if (kept) seq.feed_kept(std::span<const int32_t>(&token, 1));
      else seq.feed(std::span<const int32_t>(&token, 1));
    }
  }
  if (!stops.stopped()) {
    if (decoder) emit(stops.feed(decoder->flush()).text);
    if (!stops.stopped()) emit(stops.flush());
  }
  r.stats.completion_tokens = static_cast<int64_t>(r.tokens.size());
  const auto t_end = clock::now();
  if (!r.tokens.empty()) r.stats.decode_s = seconds(t_first, t_end);
  r.stats.total_s = seconds(t0, t_end);
  return r;
}

}  // namespace hearth
