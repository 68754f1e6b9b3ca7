// BlockPool: the KV cache's fixed-size blocks as plain ids, with reference counts and
// free lists. No device code: the backend owns the memory (Backend::init_kv_cache), this
// class only decides which block id holds what.
//
// NOTE(kv): free blocks sit in three intrusive doubly-linked lists threaded through two
// index arrays with sentinels, not deques: blocks leave from a list's head (least
// recently freed first), but a prefix-cache hit revives a free block from the middle,
// which must be O(1). A free block keeps its content hash until it is handed out again,
// so a freed sequence's blocks stay findable by hash. The lists are the eviction order:
//   1. blocks holding nothing worth keeping (no hash),
//   2. cached blocks of one-off requests (a title, a summary, a sub-agent call),
//   3. cached blocks of sessions (requests that carried a session key),
// each least recently freed first, so a side call never evicts a session's prefix while
// anything else can go. Blocks in use are in no list and are never evicted.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace hearth::kv {

using BlockId = int32_t;
inline constexpr BlockId kNoBlock = -1;

// Eviction class of a cached block: higher survives longer.
enum class Priority : uint8_t { OneOff = 0, Session = 1 };

// A cached block handed out again: its content (named by hash) is gone from the pool.
struct Eviction {
  BlockId block = kNoBlock;
  uint64_t hash = 0;
};

class BlockPool {
 public:
  explicit BlockPool(int32_t n_blocks);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t n_free() const { return n_free_; }
  int32_t n_hashed() const { return static_cast<int32_t>(by_hash_.size()); }  // cached blocks, in use or free
  int64_t n_evictions() const { return n_evictions_; }

  // Takes n free blocks in eviction order, each with ref_count 1 and one-off priority,
  // appended to out. A block that still carried a hash loses it; it is appended to
  // `evicted` when given. Returns false and takes nothing when fewer than n are free.
  bool allocate(int32_t n, std::vector<BlockId>& out, std::vector<Eviction>* evicted = nullptr);

  // Drops one reference to each block. Blocks that reach zero go to the tail of their
  // free list in the order given: callers pass a sequence's table last block first, so
  // the blocks holding a shared prefix, most likely to be reused, are evicted last.
  void release(std::span<const BlockId> ids);

  // Adds a reference to a block, taking it out of its free list if it was free.
  void acquire(BlockId id);

  int32_t ref_count(BlockId id) const;

  // Raises the block's eviction class (never lowers it until the block is reused).
  void raise_priority(BlockId id, Priority p);
  Priority priority(BlockId id) const;

  // ---- prefix-cache index ---------------------------------------------------------
  // Records that `id` holds a full block whose content (and everything before it) hashes
  // to `hash`. A later hash replaces an earlier one; hash 0 is reserved for "none".
  void set_hash(BlockId id, uint64_t hash);
  // The block holding content `hash`, in use or free, if any.
  std::optional<BlockId> find(uint64_t hash) const;
  // Forgets the block's name (its content will not be what the name says).
  void clear_hash(BlockId id);
  uint64_t hash_of(BlockId id) const;

  // The free blocks in eviction order (next to be handed out first); for tests.
  std::vector<BlockId> free_list() const;

 private:
  static constexpr int kLists = 3;  // no hash, one-off cached, session cached
  int list_for(BlockId id) const;
  BlockId head(int list) const { return n_blocks_ + 2 * list; }
  BlockId tail(int list) const { return n_blocks_ + 2 * list + 1; }
  void list_remove(BlockId id);
  void list_push_back(BlockId id);
  void drop_hash(BlockId id);
  void check_id(BlockId id) const;

  int32_t n_blocks_;
  int32_t n_free_ = 0;
  int64_t n_evictions_ = 0;
  // Links of the free lists. Index n_blocks_ + 2k is list k's head sentinel, the next one
  // its tail sentinel; a block outside every list has prev = next = kNoBlock.
  std::vector<BlockId> prev_, next_;  // [n_blocks + 2 * kLists]
  std::vector<int32_t> refs_;         // [n_blocks]
  std::vector<uint64_t> hash_;        // [n_blocks] 0 = no hash
  std::vector<Priority> priority_;    // [n_blocks]
  std::unordered_map<uint64_t, BlockId> by_hash_;
};

}  // namespace hearth::kv
