// SequenceGroup: StepBatches that carry several sequences, each through its own block
// table over a disjoint range of the cache.
#include "engine/sequence_group.h"

#include <algorithm>

#include "core/error.h"

namespace hearth {

SequenceGroup::SequenceGroup(Model& model, int32_t n_seqs, int32_t n_ctx, int32_t block_size)
    : model_(model), n_ctx_(n_ctx), block_size_(block_size) {
  HEARTH_CHECK(n_seqs > 0 && n_ctx > 0 && block_size > 0, "a sequence group needs sequences, a context and blocks");
  blocks_per_seq_ = (n_ctx + block_size - 1) / block_size;
  n_past_.assign(static_cast<size_t>(n_seqs), 0);
  model_.backend().init_kv_cache(model_.kv_cache_config(blocks_per_seq_ * n_seqs, block_size));
}

int64_t SequenceGroup::slot(int32_t s, int32_t pos) const {
  const int64_t block = static_cast<int64_t>(s) * blocks_per_seq_ + pos / block_size_;
  return block * block_size_ + pos % block_size_;
}

int32_t SequenceGroup::add_sequence(StepBatch& batch, int32_t s, int32_t n_after) const {
  StepSequence seq;
  seq.n_ctx = n_after;
  const int32_t n_blocks = (n_after + block_size_ - 1) / block_size_;
  for (int32_t b = 0; b < n_blocks; ++b) seq.block_table.push_back(s * blocks_per_seq_ + b);
  batch.seqs.push_back(std::move(seq));
  return static_cast<int32_t>(batch.seqs.size()) - 1;
}

const std::vector<float>& SequenceGroup::prefill(int32_t s, std::span<const int32_t> tokens, int32_t n_batch) {
  HEARTH_CHECK(s >= 0 && s < n_seqs(), "no such sequence in the group");
  HEARTH_CHECK(!tokens.empty() && n_batch > 0, "nothing to prefill");
  HEARTH_CHECK(n_past(s) + static_cast<int64_t>(tokens.size()) <= n_ctx_,
               "context length exceeded: " + std::to_string(n_past(s) + tokens.size()) +
                   " tokens do not fit in a context of " + std::to_string(n_ctx_));
  logits_.resize(static_cast<size_t>(model_.config().vocab_size));
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(n_batch)) {
    const int32_t n = static_cast<int32_t>(std::min(tokens.size() - i, static_cast<size_t>(n_batch)));
    const int32_t start = n_past(s);
    StepBatch batch;
    const int32_t idx = add_sequence(batch, s, start + n);
    for (int32_t t = 0; t < n; ++t) {
      batch.tokens.push_back(tokens[i + static_cast<size_t>(t)]);
      batch.positions.push_back(start + t);
      batch.seq_of.push_back(idx);
      batch.slots.push_back(slot(s, start + t));
    }
    batch.logit_rows.push_back(n - 1);
    model_.forward(batch, logits_.data());
    n_past_[static_cast<size_t>(s)] += n;
  }
  return logits_;
}

const std::vector<float>& SequenceGroup::step(std::span<const int32_t> tokens) {
  logits_.resize(static_cast<size_t>(n_seqs()) * static_cast<size_t>(model_.config().vocab_size));
  step_to(tokens, logits_.data());
  return logits_;
}

void SequenceGroup::step_kept(std::span<const int32_t> tokens) { step_to(tokens, nullptr); }

void SequenceGroup::step_to(std::span<const int32_t> tokens, float* out) {
  HEARTH_CHECK(static_cast<int32_t>(tokens.size()) == n_seqs(), "step: one token per sequence");
  StepBatch batch;
  for (int32_t s = 0; s < n_seqs(); ++s) {
    const int32_t pos = n_past(s);
    HEARTH_CHECK(pos < n_ctx_, "context length exceeded: sequence " + std::to_string(s) + " is full at " +
                                   std::to_string(n_ctx_) + " tokens");
    const int32_t idx = add_sequence(batch, s, pos + 1);
    batch.tokens.push_back(tokens[static_cast<size_t>(s)]);
    batch.positions.push_back(pos);
    batch.seq_of.push_back(idx);
    batch.slots.push_back(slot(s, pos));
    batch.logit_rows.push_back(s);
  }
  model_.forward(batch, out);
  for (auto& n : n_past_) ++n;
}

void SequenceGroup::clear() { std::fill(n_past_.begin(), n_past_.end(), 0); }

}  // namespace hearth
