// KvManager: per-sequence block tables on top of a BlockPool. The scheduler asks it for
// room for a sequence's next tokens and gets a yes (the table grew) or a refusal (nothing
// changed); it never sees the pool's internals. A sequence's table covers positions
// 0..n_tokens-1: position p lives in block table[p / block_size] at offset
// p % block_size, i.e. KV slot table[p / block_size] * block_size + p % block_size.
//
// Prefix caching (issue 9): full blocks are named by a chained hash of the tokens they
// hold and everything before them (block_hashes); register_full_blocks() publishes a
// sequence's computed full blocks, match_prefix() lets a new sequence start on the
// longest published prefix. With a KvTier attached, blocks the pool evicts are listed as
// spills (the engine copies them to the tier before the next forward pass overwrites
// them) and match_prefix() continues past the pool into the tier, listing loads (the
// engine copies those into their new blocks before the forward pass). With prefix
// caching off the scheduler never calls these and blocks are plain private storage.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"
#include "kv/kv_tier.h"

namespace hearth::kv {

using SeqId = uint64_t;

// A cached block the pool is handing out again: its content must be read out now.
struct Spill {
  BlockId block = kNoBlock;
  uint64_t hash = 0, parent = 0;
  std::vector<int32_t> tokens;  // [block_size]
};
// A block whose content comes from the tier: it must be written before the next forward.
struct Load {
  BlockId block = kNoBlock;
  std::shared_ptr<const HostBlock> data;
};

class KvManager {
 public:
  KvManager(int32_t n_blocks, int32_t block_size);

  // Makes room for n_new more tokens of `seq` after the ones it holds (a new sequence
  // holds none). Returns false, changing nothing, when the pool has too few free blocks.
  bool allocate(SeqId seq, int32_t n_new);
  // Whether allocate(seq, n_new) would succeed now.
  bool can_allocate(SeqId seq, int32_t n_new) const;
  // Returns every block of `seq` to the pool (a no-op for an unknown sequence). Loads
  // into blocks only this sequence holds are dropped with their names.
  void free(SeqId seq);

  // The blocks of `seq`, position order; empty for an unknown sequence.
  std::span<const BlockId> block_table(SeqId seq) const;
  // Tokens `seq` has room for (its cached plus its allocated-but-not-yet-computed ones).
  int32_t n_tokens(SeqId seq) const;
  // The KV slot of position `pos` of `seq` (pos < n_tokens(seq)).
  int64_t slot(SeqId seq, int32_t pos) const;

  int32_t block_size() const { return block_size_; }
  int32_t n_blocks() const { return pool_.n_blocks(); }
  int32_t n_free_blocks() const { return pool_.n_free(); }
  int32_t n_seqs() const { return static_cast<int32_t>(seqs_.size()); }
  int32_t blocks_for(int32_t n_tokens) const { return (n_tokens + block_size_ - 1) / block_size_; }

  // ---- prefix cache (issue 9) -----------------------------------------------------
  // Chained hashes of the full blocks of `tokens`: hash i covers tokens[0, (i+1)*bs).
  std::vector<uint64_t> block_hashes(std::span<const int32_t> tokens) const;
  // Publishes the full blocks among the first n_computed tokens of `seq` (whose tokens
  // are `tokens`) so later sequences can find them, in eviction class `priority`.
  void register_full_blocks(SeqId seq, std::span<const int32_t> tokens, int32_t n_computed,
                            Priority priority = Priority::OneOff);
  // For a sequence that holds nothing yet: shares the longest run of cached blocks (in
  // the pool, then in the tier) matching the start of `tokens`, leaving at least the last
  // token to compute (its logits are needed). Matched blocks rise to `priority`. Returns
  // the number of tokens now cached for `seq`; *n_loaded gets those coming from the tier.
  int32_t match_prefix(SeqId seq, std::span<const int32_t> tokens, Priority priority = Priority::OneOff,
                       int32_t* n_loaded = nullptr);
  // How many leading tokens of `tokens` match_prefix would find now (tier unverified).
  int32_t probe_prefix(std::span<const int32_t> tokens) const;

  // The tier evicted blocks go to and matches continue into; null = none.
  void set_tier(KvTier* tier) { tier_ = tier; }
  // Spills and loads since the last call, spills first (the order to apply them in).
  void take_transfers(std::vector<Spill>& spills, std::vector<Load>& loads);
  // Every cached block of the pool, in use or free (saved to the tier at shutdown).
  std::vector<Spill> cached_blocks() const;

  const BlockPool& pool() const { return pool_; }

 private:
  struct SeqBlocks {
    std::vector<BlockId> table;
    int32_t n_tokens = 0;
    std::vector<uint64_t> hashes;  // chained hashes of the leading blocks already published
  };

  bool allocate_blocks(int32_t n, std::vector<BlockId>& out);
  void name_block(BlockId id, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);

  BlockPool pool_;
  int32_t block_size_;
  std::unordered_map<SeqId, SeqBlocks> seqs_;
  KvTier* tier_ = nullptr;
  // What each named block holds, for spilling it: parent hash and tokens.
  std::vector<uint64_t> parent_;  // [n_blocks]
  std::vector<int32_t> tokens_;   // [n_blocks * block_size]
  std::vector<Spill> spills_;
  std::vector<Load> loads_;
};

}  // namespace hearth::kv
