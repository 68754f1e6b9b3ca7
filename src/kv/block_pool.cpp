// BlockPool: free list, reference counts and the hash index (see block_pool.h).
#include "kv/block_pool.h"

#include <string>

#include "core/error.h"

namespace hearth::kv {

BlockPool::BlockPool(int32_t n_blocks) : n_blocks_(n_blocks) {
  HEARTH_CHECK(n_blocks > 0, "KV cache: the block pool needs at least one block");
  const size_t links = static_cast<size_t>(n_blocks) + 2;
  prev_.assign(links, kNoBlock);
  next_.assign(links, kNoBlock);
  refs_.assign(static_cast<size_t>(n_blocks), 0);
  hash_.assign(static_cast<size_t>(n_blocks), 0);
  const BlockId head = n_blocks_, tail = n_blocks_ + 1;
  next_[static_cast<size_t>(head)] = tail;
  prev_[static_cast<size_t>(tail)] = head;
  for (BlockId b = 0; b < n_blocks; ++b) list_push_back(b);
}

void BlockPool::check_id(BlockId id) const { HEARTH_ASSERT(id >= 0 && id < n_blocks_); }

void BlockPool::list_remove(BlockId id) {
  const auto i = static_cast<size_t>(id);
  HEARTH_ASSERT(prev_[i] != kNoBlock && next_[i] != kNoBlock);
  next_[static_cast<size_t>(prev_[i])] = next_[i];
  prev_[static_cast<size_t>(next_[i])] = prev_[i];
  prev_[i] = next_[i] = kNoBlock;
  --n_free_;
}

void BlockPool::list_push_back(BlockId id) {
  const auto i = static_cast<size_t>(id);
  HEARTH_ASSERT(prev_[i] == kNoBlock && next_[i] == kNoBlock);
  const BlockId tail = n_blocks_ + 1;
  const BlockId last = prev_[static_cast<size_t>(tail)];
  next_[static_cast<size_t>(last)] = id;
  prev_[i] = last;
  next_[i] = tail;
  prev_[static_cast<size_t>(tail)] = id;
  ++n_free_;
}

void BlockPool::drop_hash(BlockId id) {
  uint64_t& h = hash_[static_cast<size_t>(id)];
  if (h == 0) return;
  auto it = by_hash_.find(h);
  if (it != by_hash_.end() && it->second == id) by_hash_.erase(it);
  h = 0;
}

bool BlockPool::allocate(int32_t n, std::vector<BlockId>& out) {
  HEARTH_ASSERT(n >= 0);
  if (n > n_free_) return false;
  for (int32_t i = 0; i < n; ++i) {
    const BlockId id = next_[static_cast<size_t>(n_blocks_)];  // head of the free list
    list_remove(id);
    drop_hash(id);
    refs_[static_cast<size_t>(id)] = 1;
    out.push_back(id);
  }
  return true;
}

void BlockPool::release(std::span<const BlockId> ids) {
  for (BlockId id : ids) {
    check_id(id);
    int32_t& r = refs_[static_cast<size_t>(id)];
    HEARTH_ASSERT(r > 0);
    if (--r == 0) list_push_back(id);
  }
}

void BlockPool::acquire(BlockId id) {
  check_id(id);
  int32_t& r = refs_[static_cast<size_t>(id)];
  if (r == 0) list_remove(id);
  ++r;
}

int32_t BlockPool::ref_count(BlockId id) const {
  check_id(id);
  return refs_[static_cast<size_t>(id)];
}

void BlockPool::set_hash(BlockId id, uint64_t hash) {
  check_id(id);
  HEARTH_ASSERT(hash != 0);
  drop_hash(id);
  // Two blocks with the same content: the index keeps the first one; the second is an
  // ordinary block that is not found by hash.
  if (by_hash_.emplace(hash, id).second) hash_[static_cast<size_t>(id)] = hash;
}

std::optional<BlockId> BlockPool::find(uint64_t hash) const {
  if (hash == 0) return std::nullopt;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

uint64_t BlockPool::hash_of(BlockId id) const {
  check_id(id);
  return hash_[static_cast<size_t>(id)];
}

std::vector<BlockId> BlockPool::free_list() const {
  std::vector<BlockId> out;
  for (BlockId b = next_[static_cast<size_t>(n_blocks_)]; b != n_blocks_ + 1; b = next_[static_cast<size_t>(b)])
    out.push_back(b);
  return out;
}

}  // namespace hearth::kv
