// BlockPool: the KV cache's fixed-size blocks as plain ids, with reference counts and a
// free list. No device code: the backend owns the memory (Backend::init_kv_cache), this
// class only decides which block id holds what.
//
// NOTE(kv): the free list is an intrusive doubly-linked list threaded through two index
// arrays with sentinels, not a deque. Blocks leave it from the head (least recently
// freed first), but a prefix-cache hit (issue 9) revives a free block from the middle,
// which must be O(1). A free block keeps its content hash until it is handed out again,
// so a freed sequence's blocks stay findable by hash (the hooks set_hash/find/acquire)
// and are evicted in LRU order.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace hearth::kv {

using BlockId = int32_t;
inline constexpr BlockId kNoBlock = -1;

class BlockPool {
 public:
  explicit BlockPool(int32_t n_blocks);

  int32_t n_blocks() const { return n_blocks_; }
  int32_t n_free() const { return n_free_; }

  // Takes n blocks from the head of the free list, each with ref_count 1, appended to
  // out. A block that still carried a hash loses it (it is evicted from the prefix
  // cache). Returns false and takes nothing when fewer than n blocks are free.
  bool allocate(int32_t n, std::vector<BlockId>& out);

  // Drops one reference to each block. Blocks that reach zero go to the tail of the free
  // list in the order given: callers pass a sequence's table last block first, so the
  // blocks holding a shared prefix, most likely to be reused, are evicted last.
  void release(std::span<const BlockId> ids);

  // Adds a reference to a block, taking it out of the free list if it was free.
  void acquire(BlockId id);

  int32_t ref_count(BlockId id) const;

  // ---- prefix-cache hooks (issue 9) ------------------------------------------------
  // Records that `id` holds a full block whose content (and everything before it) hashes
  // to `hash`. A later hash replaces an earlier one; hash 0 is reserved for "none".
  void set_hash(BlockId id, uint64_t hash);
  // The block holding content `hash`, in use or free, if any.
  std::optional<BlockId> find(uint64_t hash) const;
  uint64_t hash_of(BlockId id) const;

  // The free list from head (next to be handed out) to tail; for tests.
  std::vector<BlockId> free_list() const;

 private:
  void list_remove(BlockId id);
  void list_push_back(BlockId id);
  void drop_hash(BlockId id);
  void check_id(BlockId id) const;

  int32_t n_blocks_;
  int32_t n_free_ = 0;
  // Links of the free list. Index n_blocks_ is the head sentinel, n_blocks_ + 1 the tail
  // sentinel; a block outside the list has prev = next = kNoBlock.
  std::vector<BlockId> prev_, next_;  // [n_blocks + 2]
  std::vector<int32_t> refs_;         // [n_blocks]
  std::vector<uint64_t> hash_;        // [n_blocks] 0 = no hash
  std::unordered_map<uint64_t, BlockId> by_hash_;
};

}  // namespace hearth::kv
