// StepBatch helpers.
#include "backend/step.h"

namespace hearth {

StepBatch StepBatch::single(const std::vector<int32_t>& tokens, int32_t start, int32_t block_size, bool all_logits) {
  StepBatch batch;
  const int32_t n = static_cast<int32_t>(tokens.size());
  batch.tokens = tokens;
  StepSequence seq;
  seq.n_ctx = start + n;
  const int32_t n_blocks = (seq.n_ctx + block_size - 1) / block_size;
  for (int32_t b = 0; b < n_blocks; ++b) seq.block_table.push_back(b);
  batch.seqs.push_back(std::move(seq));
  for (int32_t i = 0; i < n; ++i) {
    batch.positions.push_back(start + i);
    batch.seq_of.push_back(0);
    batch.slots.push_back(start + i);  // blocks are contiguous: slot = position
    if (all_logits || i == n - 1) batch.logit_rows.push_back(i);
  }
  return batch;
}

}  // namespace hearth
