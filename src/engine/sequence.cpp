#include "engine/sequence.h"

#include <algorithm>

#include "core/error.h"

namespace hearth {

Sequence::Sequence(Model& model, int32_t n_ctx, int32_t block_size)
    : model_(model), n_ctx_(n_ctx), block_size_(block_size) {
  HEARTH_CHECK(n_ctx > 0, "context size must be positive");
  const int32_t n_blocks = (n_ctx + block_size - 1) / block_size;
  model_.backend().init_kv_cache(model_.kv_cache_config(n_blocks, block_size));
}

void Sequence::run(std::span<const int32_t> tokens, bool all_logits, float* out) {
  std::vector<int32_t> chunk(tokens.begin(), tokens.end());
  StepBatch batch = StepBatch::single(chunk, n_past(), block_size_, all_logits);
  model_.forward(batch, out);
  history_.insert(history_.end(), tokens.begin(), tokens.end());
}

void Sequence::feed_to(std::span<const int32_t> tokens, int32_t n_batch, float* out) {
  HEARTH_CHECK(!tokens.empty(), "nothing to feed");
  HEARTH_CHECK(n_batch > 0, "the batch size must be positive");
  HEARTH_CHECK(n_past() + static_cast<int64_t>(tokens.size()) <= n_ctx_,
               "context overflow: " + std::to_string(n_past() + tokens.size()) + " tokens do not fit in a context of " +
                   std::to_string(n_ctx_));
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(n_batch)) {
    const size_t n = std::min(tokens.size() - i, static_cast<size_t>(n_batch));
    run(tokens.subspan(i, n), false, out);
  }
}

const std::vector<float>& Sequence::feed(std::span<const int32_t> tokens, int32_t n_batch) {
  logits_.resize(static_cast<size_t>(model_.config().vocab_size));
  feed_to(tokens, n_batch, logits_.data());
  return logits_;
}

void Sequence::feed_kept(std::span<const int32_t> tokens, int32_t n_batch) { feed_to(tokens, n_batch, nullptr); }

std::vector<float> Sequence::feed_all_logits(std::span<const int32_t> tokens, int32_t n_batch) {
  HEARTH_CHECK(n_past() + static_cast<int64_t>(tokens.size()) <= n_ctx_, "context overflow");
  const int64_t vocab = model_.config().vocab_size;
  std::vector<float> all(tokens.size() * static_cast<size_t>(vocab));
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(n_batch)) {
    const size_t n = std::min(tokens.size() - i, static_cast<size_t>(n_batch));
    run(tokens.subspan(i, n), true, all.data() + i * static_cast<size_t>(vocab));
  }
  if (!tokens.empty())
    logits_.assign(all.end() - vocab, all.end());
  return all;
}

void Sequence::truncate(int32_t n) {
  HEARTH_CHECK(n >= 0 && n <= n_past(), "truncate beyond the cached tokens");
  history_.resize(static_cast<size_t>(n));
}

}  // namespace hearth
