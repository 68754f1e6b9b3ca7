// StepBatch: everything one forward pass needs to know about which tokens to run, as
// plain host data. The engine's scheduler builds it from block ids and positions; a
// backend uploads it once per step (begin_step) and every op of that step reads it.
//
// Tokens of several sequences are packed into one batch. Each token's key and value go
// to KV slot `slots[t]` (= block_id * block_size + offset in block) before attention, and
// token t then attends to positions [0, positions[t]] of its sequence through that
// sequence's block table. Prefill, decode, chunked prefill and reuse of a cached prefix
// are all the same operation.
#pragma once

#include <cstdint>
#include <vector>

namespace hearth {

struct StepSequence {
  std::vector<int32_t> block_table;  // [ceil(n_ctx / block_size)] physical block ids
  int32_t n_ctx = 0;                 // tokens in the cache for this sequence once the step has run
};

struct StepBatch {
  std::vector<int32_t> tokens;      // [n_tokens] token ids
  std::vector<int32_t> positions;   // [n_tokens] position of each token in its sequence
  std::vector<int32_t> seq_of;      // [n_tokens] index into seqs
  std::vector<int64_t> slots;       // [n_tokens] KV slot written by each token
  std::vector<StepSequence> seqs;   // [n_seqs]
  std::vector<int32_t> logit_rows;  // token rows whose logits are wanted, in output order

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }

  // A single sequence occupying blocks 0.. of a contiguous cache: the common case for
  // direct mode and for tests. Tokens get positions start..start+n-1.
  static StepBatch single(const std::vector<int32_t>& tokens, int32_t start, int32_t block_size,
                          bool all_logits);
};

}  // namespace hearth
