// BlockPool: free lists, reference counts, priorities and the hash index (block_pool.h).
#include "kv/block_pool.h"

#include <string>

#include "core/error.h"

namespace hearth::kv {

BlockPool::BlockPool(int32_t n_blocks) : n_blocks_(n_blocks) {
  HEARTH_CHECK(n_blocks > 0, "KV cache: the block pool needs at least one block");
  const size_t links = static_cast<size_t>(n_blocks) + 2 * kLists;
  prev_.assign(links, kNoBlock);
  next_.assign(links, kNoBlock);
  refs_.assign(static_cast<size_t>(n_blocks), 0);
  hash_.assign(static_cast<size_t>(n_blocks), 0);
  priority_.assign(static_cast<size_t>(n_blocks), Priority::OneOff);
  for (int l = 0; l < kLists; ++l) {
    next_[static_cast<size_t>(head(l))] = tail(l);
    prev_[static_cast<size_t>(tail(l))] = head(l);
  }
  for (BlockId b = 0; b < n_blocks; ++b) list_push_back(b);
}

void BlockPool::check_id(BlockId id) const { HEARTH_ASSERT(id >= 0 && id < n_blocks_); }

int BlockPool::list_for(BlockId id) const {
  const auto i = static_cast<size_t>(id);
  if (hash_[i] == 0) return 0;
  return priority_[i] == Priority::Session ? 2 : 1;
}

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
  const BlockId t = tail(list_for(id));
  const BlockId last = prev_[static_cast<size_t>(t)];
  next_[static_cast<size_t>(last)] = id;
  prev_[i] = last;
  next_[i] = t;
  prev_[static_cast<size_t>(t)] = id;
  ++n_free_;
}

void BlockPool::drop_hash(BlockId id) {
  uint64_t& h = hash_[static_cast<size_t>(id)];
  if (h == 0) return;
  auto it = by_hash_.find(h);
  if (it != by_hash_.end() && it->second == id) by_hash_.erase(it);
  h = 0;
}

bool BlockPool::allocate(int32_t n, std::vector<BlockId>& out, std::vector<Eviction>* evicted) {
  HEARTH_ASSERT(n >= 0);
  if (n > n_free_) return false;
  for (int32_t i = 0; i < n; ++i) {
    int l = 0;
    while (next_[static_cast<size_t>(head(l))] == tail(l)) ++l;  // n <= n_free_: some list is non-empty
    const BlockId id = next_[static_cast<size_t>(head(l))];
    list_remove(id);
    const uint64_t h = hash_[static_cast<size_t>(id)];
    if (h != 0) {
      ++n_evictions_;
      if (evicted) evicted->push_back({id, h});
    }
    drop_hash(id);
    priority_[static_cast<size_t>(id)] = Priority::OneOff;
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

void BlockPool::raise_priority(BlockId id, Priority p) {
  check_id(id);
  const auto i = static_cast<size_t>(id);
  if (p <= priority_[i]) return;
  const bool free = refs_[i] == 0;
  if (free) list_remove(id);  // a free block moves to its new list's tail
  priority_[i] = p;
  if (free) list_push_back(id);
}

Priority BlockPool::priority(BlockId id) const {
  check_id(id);
  return priority_[static_cast<size_t>(id)];
}

void BlockPool::set_hash(BlockId id, uint64_t hash) {
  check_id(id);
  HEARTH_ASSERT(hash != 0 && refs_[static_cast<size_t>(id)] > 0);  // only blocks in use get named
  drop_hash(id);
  // Two blocks with the same content: the index keeps the first one; the second is an
  // ordinary block that is not found by hash.
  if (by_hash_.emplace(hash, id).second) hash_[static_cast<size_t>(id)] = hash;
}

void BlockPool::clear_hash(BlockId id) {
  check_id(id);
  const bool free = refs_[static_cast<size_t>(id)] == 0;
  if (free) list_remove(id);
  drop_hash(id);
  if (free) list_push_back(id);
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
  for (int l = 0; l < kLists; ++l)
    for (BlockId b = next_[static_cast<size_t>(head(l))]; b != tail(l); b = next_[static_cast<size_t>(b)]) out.push_back(b);
  return out;
}

}  // namespace hearth::kv
