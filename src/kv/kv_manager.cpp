// KvManager: block tables per sequence, and the prefix-cache hooks (see kv_manager.h).
#include "kv/kv_manager.h"

#include <algorithm>

#include "core/error.h"

namespace hearth::kv {

KvManager::KvManager(int32_t n_blocks, int32_t block_size) : pool_(n_blocks), block_size_(block_size) {
  HEARTH_CHECK(block_size > 0, "KV cache: block size must be positive");
  parent_.assign(static_cast<size_t>(n_blocks), 0);
  tokens_.assign(static_cast<size_t>(n_blocks) * static_cast<size_t>(block_size), 0);
}

bool KvManager::allocate_blocks(int32_t n, std::vector<BlockId>& out) {
  std::vector<Eviction> evicted;
  if (!pool_.allocate(n, out, tier_ ? &evicted : nullptr)) return false;
  const auto bs = static_cast<size_t>(block_size_);
  for (const Eviction& e : evicted) {
    const auto at = static_cast<size_t>(e.block) * bs;
    spills_.push_back({.block = e.block,
                       .hash = e.hash,
                       .parent = parent_[static_cast<size_t>(e.block)],
                       .tokens = std::vector<int32_t>(tokens_.begin() + static_cast<std::ptrdiff_t>(at),
                                                      tokens_.begin() + static_cast<std::ptrdiff_t>(at + bs))});
  }
  return true;
}

void KvManager::name_block(BlockId id, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  pool_.set_hash(id, hash);
  if (pool_.hash_of(id) != hash) return;  // a duplicate of a block already named
  parent_[static_cast<size_t>(id)] = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(id) * block_size_);
}

bool KvManager::can_allocate(SeqId seq, int32_t n_new) const {
  HEARTH_ASSERT(n_new >= 0);
  const int32_t have = n_tokens(seq);
  const int32_t held = blocks_for(have);
  return blocks_for(have + n_new) - held <= pool_.n_free();
}

bool KvManager::allocate(SeqId seq, int32_t n_new) {
  if (!can_allocate(seq, n_new)) return false;
  SeqBlocks& s = seqs_[seq];
  const int32_t need = blocks_for(s.n_tokens + n_new) - static_cast<int32_t>(s.table.size());
  const bool ok = allocate_blocks(need, s.table);
  HEARTH_ASSERT(ok);
  s.n_tokens += n_new;
  return true;
}

void KvManager::free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  std::vector<BlockId>& table = it->second.table;
  // A load into a block nobody else shares is dropped, and the block loses its name: its
  // content was never written, so it must be neither found nor spilled.
  std::erase_if(loads_, [&](const Load& l) {
    const bool mine = std::find(table.begin(), table.end(), l.block) != table.end();
    if (!mine || pool_.ref_count(l.block) != 1) return false;
    pool_.clear_hash(l.block);
    return true;
  });
  std::reverse(table.begin(), table.end());  // last blocks are evicted first
  pool_.release(table);
  seqs_.erase(it);
}

std::span<const BlockId> KvManager::block_table(SeqId seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  return it->second.table;
}

int32_t KvManager::n_tokens(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.n_tokens;
}

int64_t KvManager::slot(SeqId seq, int32_t pos) const {
  auto it = seqs_.find(seq);
  HEARTH_ASSERT(it != seqs_.end() && pos >= 0 && pos < it->second.n_tokens);
  const BlockId b = it->second.table[static_cast<size_t>(pos / block_size_)];
  return static_cast<int64_t>(b) * block_size_ + pos % block_size_;
}

namespace {
// FNV-1a over the previous hash and the block's token ids, then a splitmix64 finaliser
// so nearby inputs spread over the whole range. Never returns 0 (reserved for "none").
uint64_t chain_hash(uint64_t prev, std::span<const int32_t> tokens) {
  uint64_t h = 1469598103934665603ull ^ prev;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(prev);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}
}  // namespace

std::vector<uint64_t> KvManager::block_hashes(std::span<const int32_t> tokens) const {
  std::vector<uint64_t> out;
  uint64_t prev = 0;
  const size_t bs = static_cast<size_t>(block_size_);
  for (size_t i = 0; i + bs <= tokens.size(); i += bs) {
    prev = chain_hash(prev, tokens.subspan(i, bs));
    out.push_back(prev);
  }
  return out;
}

void KvManager::register_full_blocks(SeqId seq, std::span<const int32_t> tokens, int32_t n_computed, Priority priority) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& s = it->second;
  const size_t bs = static_cast<size_t>(block_size_);
  const size_t n_full = static_cast<size_t>(std::min(n_computed, static_cast<int32_t>(tokens.size()))) / bs;
  // Chained from the last published block, so each block is hashed once per sequence.
  for (size_t b = s.hashes.size(); b < n_full; ++b) {
    const uint64_t parent = s.hashes.empty() ? 0 : s.hashes.back();
    const uint64_t h = chain_hash(parent, tokens.subspan(b * bs, bs));
    const BlockId id = s.table[b];
    // A block found through the cache already carries this hash; a duplicate of an
    // already-published block stays unpublished (set_hash keeps the first).
    if (pool_.hash_of(id) != h) name_block(id, h, parent, tokens.subspan(b * bs, bs));
    s.hashes.push_back(h);
  }
  for (size_t b = 0; b < n_full; ++b) pool_.raise_priority(s.table[b], priority);
}

int32_t KvManager::match_prefix(SeqId seq, std::span<const int32_t> tokens, Priority priority, int32_t* n_loaded) {
  HEARTH_ASSERT(n_tokens(seq) == 0);
  if (n_loaded) *n_loaded = 0;
  if (tokens.size() < 2) return 0;
  // Blocks entirely before the last token: that token must be computed to get logits,
  // and the block it lives in is written, so it must not be a shared one.
  const auto bs = static_cast<size_t>(block_size_);
  const size_t usable = (tokens.size() - 1) / bs;
  const auto hashes = block_hashes(tokens.first(usable * bs));
  std::vector<BlockId> table;
  for (size_t b = 0; b < hashes.size(); ++b) {
    if (auto id = pool_.find(hashes[b])) {
      pool_.acquire(*id);
      table.push_back(*id);
      continue;
    }
    const uint64_t parent = b == 0 ? 0 : hashes[b - 1];
    std::shared_ptr<const HostBlock> data = tier_ ? tier_->fetch(hashes[b], parent, tokens.subspan(b * bs, bs)) : nullptr;
    std::vector<BlockId> fresh;
    if (!data || !allocate_blocks(1, fresh)) break;
    name_block(fresh[0], hashes[b], parent, tokens.subspan(b * bs, bs));
    loads_.push_back({fresh[0], std::move(data)});
    table.push_back(fresh[0]);
    if (n_loaded) *n_loaded += block_size_;
  }
  if (table.empty()) return 0;
  for (BlockId id : table) pool_.raise_priority(id, priority);
  SeqBlocks& s = seqs_[seq];
  s.n_tokens = static_cast<int32_t>(table.size()) * block_size_;
  s.hashes.assign(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(table.size()));
  s.table = std::move(table);
  return s.n_tokens;
}

int32_t KvManager::probe_prefix(std::span<const int32_t> tokens) const {
  if (tokens.size() < 2) return 0;
  const auto bs = static_cast<size_t>(block_size_);
  const auto hashes = block_hashes(tokens.first((tokens.size() - 1) / bs * bs));
  int32_t n = 0;
  for (uint64_t h : hashes) {
    if (!pool_.find(h) && !(tier_ && tier_->contains(h))) break;
    n += block_size_;
  }
  return n;
}

void KvManager::take_transfers(std::vector<Spill>& spills, std::vector<Load>& loads) {
  spills = std::move(spills_);
  loads = std::move(loads_);
  spills_.clear();
  loads_.clear();
}

std::vector<Spill> KvManager::cached_blocks() const {
  std::vector<Spill> out;
  const auto bs = static_cast<size_t>(block_size_);
  for (BlockId b = 0; b < pool_.n_blocks(); ++b) {
    const uint64_t h = pool_.hash_of(b);
    if (h == 0) continue;
    const auto at = static_cast<size_t>(b) * bs;
    out.push_back({.block = b,
                   .hash = h,
                   .parent = parent_[static_cast<size_t>(b)],
                   .tokens = std::vector<int32_t>(tokens_.begin() + static_cast<std::ptrdiff_t>(at),
                                                  tokens_.begin() + static_cast<std::ptrdiff_t>(at + bs))});
  }
  return out;
}

}  // namespace hearth::kv
