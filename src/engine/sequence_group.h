// SequenceGroup: several independent sequences sharing one KV cache and decoded together,
// one token each per forward pass (batched decoding). Direct mode has no scheduler, so
// this is the small multi-sequence helper `hearth bench model --batch-sizes` measures
// aggregate throughput with; the server's continuous batching uses the block pool instead.
// Sequence s owns the contiguous blocks [s * blocks_per_seq, (s + 1) * blocks_per_seq).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace hearth {

class SequenceGroup {
 public:
  // Creates (or recreates) the backend's KV cache for n_seqs sequences of n_ctx tokens each.
  SequenceGroup(Model& model, int32_t n_seqs, int32_t n_ctx, int32_t block_size = 16);

  // Runs `tokens` after what sequence s has cached, n_batch per pass; returns its last logits
  // ([vocab_size]). Throws Error when the sequence's context would overflow.
  const std::vector<float>& prefill(int32_t s, std::span<const int32_t> tokens, int32_t n_batch = 512);

  // One token for every sequence (tokens[s] goes to sequence s) in a single forward pass;
  // returns the logits of all of them ([n_seqs * vocab_size], sequence-major).
  const std::vector<float>& step(std::span<const int32_t> tokens);
  // The same step, leaving the logits in the backend (Model::read_top_logits, read_logits).
  void step_kept(std::span<const int32_t> tokens);

  int32_t n_seqs() const { return static_cast<int32_t>(n_past_.size()); }
  int32_t n_past(int32_t s) const { return n_past_[static_cast<size_t>(s)]; }
  int32_t n_ctx() const { return n_ctx_; }
  // Forgets every cached token of every sequence.
  void clear();

 private:
  void step_to(std::span<const int32_t> tokens, float* out);  // out may be null
  // Appends sequence s's entry (block table, n_ctx after the step) to the batch.
  int32_t add_sequence(StepBatch& batch, int32_t s, int32_t n_after) const;
  int64_t slot(int32_t s, int32_t pos) const;

  Model& model_;
  int32_t n_ctx_;
  int32_t block_size_;
  int32_t blocks_per_seq_;
  std::vector<int32_t> n_past_;  // [n_seqs]
  std::vector<float> logits_;
};

}  // namespace hearth
