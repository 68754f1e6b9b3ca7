// Direct-mode generation: one request at a time on a Sequence, with the full sampler,
// stop strings and tokens, streaming text through callbacks, and exact statistics.
// `hearth run`, `hearth chat`, `hearth batch` and the C++ API (include/hearth/hearth.h) are
// built on it. A prompt that starts with tokens already in the sequence's cache reuses
// them (chat turns only compute what is new).
//
// Context: the prompt must leave room for at least one generated token, and an explicit
// max_tokens must fit next to the prompt; otherwise generate() throws
// "context length exceeded: ..." naming both numbers, never truncating silently. With
// max_tokens -1 generation runs until a stop condition or the context is full ("length").
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/generation_stats.h"
#include "engine/sampler.h"
#include "engine/sequence.h"
#include "tokenizer/tokenizer.h"

namespace hearth {

struct GenerationResult {
  std::string text;               // decoded output, stop string and stop token excluded
  std::vector<int32_t> tokens;    // sampled ids (the stop token included, if any)
  std::string finish_reason;      // "stop" | "length" | "cancelled"
  std::vector<SampleLogprobs> logprobs;  // one per token when params.logprobs
  GenerationStats stats;          // memory is left for the caller (see Runtime::memory)
};

struct GenerateOptions {
  int32_t n_batch = 512;  // prompt tokens per forward pass
  // Called with each piece of text as it becomes final (held back while it could still be
  // the start of a stop string or an incomplete UTF-8 character).
  std::function<void(std::string_view)> on_text;
  // Called after each sampled token that is not a stop token, with the text that became
  // final at this step (often "", possibly text of earlier tokens). Returning false stops
  // the generation with finish_reason "cancelled".
  std::function<bool(int32_t token, std::string_view text)> on_token;
  const std::atomic<bool>* cancel = nullptr;  // set from another thread or a signal handler
};

// Runs the prompt and samples until a stop condition. Throws Error when the prompt (plus an
// explicit max_tokens) does not fit the context, or when params are out of range.
// tokenizer may be null (a model without one, driven by token ids): no text comes out, and
// stop strings are refused.
GenerationResult generate(Sequence& seq, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                          const SamplingParams& params, const SamplerVocab& vocab, const GenerateOptions& options);

// The check generate() makes before running anything, for callers that want it up front.
void check_context(int64_t prompt_tokens, int32_t max_tokens, int64_t n_ctx);

}  // namespace hearth
