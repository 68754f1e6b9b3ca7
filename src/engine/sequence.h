// Sequence: one token sequence running on a model with a KV cache of its own, for direct
// mode (hearth run, chat, batch, bench model) where one request at a time owns the
// backend. Blocks are laid out contiguously, so slot = position; the server's continuous
// batching uses the block pool and scheduler instead.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace hearth {

class Sequence {
 public:
  // Creates (or recreates) the backend's KV cache for n_ctx tokens.
  Sequence(Model& model, int32_t n_ctx, int32_t block_size = 16);

  // Runs `tokens` through the model after what is already cached, n_batch tokens per
  // forward pass, and returns the logits of the last one ([vocab_size]).
  // Throws Error when the context would overflow n_ctx.
  const std::vector<float>& feed(std::span<const int32_t> tokens, int32_t n_batch = 512);

  // Like feed, but leaves the last token's logits in the backend, for Model::read_logits
  // and read_top_logits before the next step (on a GPU, a sampler that can do with the
  // row's best reads 1 KB instead of the row). last_logits() is not updated.
  void feed_kept(std::span<const int32_t> tokens, int32_t n_batch = 512);

  // Like feed, but returns the logits of every token ([n * vocab_size], for perplexity).
  std::vector<float> feed_all_logits(std::span<const int32_t> tokens, int32_t n_batch = 512);

  int32_t n_past() const { return static_cast<int32_t>(history_.size()); }
  int32_t n_ctx() const { return n_ctx_; }
  const std::vector<int32_t>& history() const { return history_; }
  // Forgets cached tokens after the first n (the cache is rewritten as tokens are fed).
  void truncate(int32_t n);
  const std::vector<float>& last_logits() const { return logits_; }
  Model& model() { return model_; }

 private:
  void run(std::span<const int32_t> tokens, bool all_logits, float* out);
  void feed_to(std::span<const int32_t> tokens, int32_t n_batch, float* out);  // out may be null

  Model& model_;
  int32_t n_ctx_;
  int32_t block_size_;
  std::vector<int32_t> history_;
  std::vector<float> logits_;
};

}  // namespace hearth
