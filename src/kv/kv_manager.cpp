// KvManager: block tables per sequence, and the prefix-cache hooks (see kv_manager.h).
#include "kv/kv_manager.h"

#include <algorithm>

#include "core/error.h"

namespace hearth::kv {

KvManager::KvManager(int32_t n_blocks, int32_t block_size) : pool_(n_blocks), block_size_(block_size) {
  HEARTH_CHECK(block_size > 0, "KV cache: block size must be positive");
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
  const bool ok = pool_.allocate(need, s.table);
  HEARTH_ASSERT(ok);
  s.n_tokens += n_new;
  return true;
}

void KvManager::free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  std::vector<BlockId>& table = it->second.table;
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

void KvManager::register_full_blocks(SeqId seq, std::span<const int32_t> tokens, int32_t n_computed) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& s = it->second;
  const size_t bs = static_cast<size_t>(block_size_);
  const size_t n_full = static_cast<size_t>(std::min(n_computed, static_cast<int32_t>(tokens.size()))) / bs;
  // Chained from the last published block, so each block is hashed once per sequence.
  for (size_t b = s.hashes.size(); b < n_full; ++b) {
    const uint64_t h = chain_hash(s.hashes.empty() ? 0 : s.hashes.back(), tokens.subspan(b * bs, bs));
    const BlockId id = s.table[b];
    // A block found through the cache already carries this hash; a duplicate of an
    // already-published block stays unpublished (set_hash keeps the first).
    if (pool_.hash_of(id) != h) pool_.set_hash(id, h);
    s.hashes.push_back(h);
  }
}

int32_t KvManager::match_prefix(SeqId seq, std::span<const int32_t> tokens) {
  HEARTH_ASSERT(n_tokens(seq) == 0);
  if (tokens.size() < 2) return 0;
  // Blocks entirely before the last token: that token must be computed to get logits,
  // and the block it lives in is written, so it must not be a shared one.
  const size_t usable = (tokens.size() - 1) / static_cast<size_t>(block_size_);
  const auto hashes = block_hashes(tokens.first(usable * static_cast<size_t>(block_size_)));
  std::vector<BlockId> hits;
  for (uint64_t h : hashes) {
    auto id = pool_.find(h);
    if (!id) break;
    hits.push_back(*id);
  }
  if (hits.empty()) return 0;
  for (BlockId id : hits) pool_.acquire(id);
  SeqBlocks& s = seqs_[seq];
  s.table = hits;
  s.n_tokens = static_cast<int32_t>(hits.size()) * block_size_;
  s.hashes.assign(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(hits.size()));
  return s.n_tokens;
}

}  // namespace hearth::kv
