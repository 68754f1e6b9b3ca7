// BPE merging with a rank heap over a linked list of symbols (see bpe.h). The pair table
// is a flat open-addressing hash (about 150k merges for Qwen3, so 512k slots of 16 bytes):
// one multiply and usually one probe per lookup, which is the hot operation of encoding.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <initializer_list>

#include "core/error.h"

namespace hearth {

namespace {

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}


}  // namespace

void BpeMerges::add(const BpeMerge& merge) {
  HEARTH_ASSERT(merge.left >= 0 && merge.right >= 0 && merge.merged >= 0);
  merges_.push_back(merge);
}

void BpeMerges::finalize() {
  size_t cap = 16;
  shift_ = 60;
  while (cap < merges_.size() * 3) cap <<= 1, --shift_;
  table_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (size_t r = 0; r < merges_.size(); ++r) {
    const BpeMerge& m = merges_[r];
    insert(pair_key(m.left, m.right), static_cast<int32_t>(r), m.merged);
  }
}

void BpeMerges::insert(uint64_t key, int32_t rank, int32_t merged) {
  for (uint64_t h = hash(key);; h = (h + 1) & mask_) {
    Slot& s = table_[h];
    if (s.key == kEmpty || s.key == key) {
      s = Slot{key, rank, merged};
      return;
    }
  }
}

const BpeMerges::Slot* BpeMerges::find(int32_t left, int32_t right) const {
  if (table_.empty()) return nullptr;
  const uint64_t key = pair_key(left, right);
  for (uint64_t h = hash(key);; h = (h + 1) & mask_) {
    const Slot& s = table_[h];
    if (s.key == key) return &s;
    if (s.key == kEmpty) return nullptr;
  }
}

void BpeMerges::init_symbols(std::string_view bytes, BpeScratch& sc) const {
  sc.sym.clear();
  for (char c : bytes) {
    const int32_t id = byte_token_[static_cast<uint8_t>(c)];
    if (id >= 0) sc.sym.push_back(id);
  }
  const size_t n = sc.sym.size();
  HEARTH_CHECK(n < (size_t{1} << 31), "tokenizer: a single piece of 2 GiB or more cannot be encoded");
  sc.prev.resize(n);
  sc.next.resize(n);
  for (size_t i = 0; i < n; ++i) {
    sc.prev[i] = static_cast<int32_t>(i) - 1;
    sc.next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
}

int32_t BpeMerges::pair_rank(const BpeScratch& sc, size_t pos) const {
  const Slot* s = find(sc.sym[pos], sc.sym[static_cast<size_t>(sc.next[pos])]);
  return s ? s->rank : -1;
}

bool BpeMerges::try_merge(BpeScratch& sc, size_t pos, int32_t rank) const {
  // Skip entries made stale by an earlier merge: the left symbol was absorbed, it has
  // no right neighbour any more, or one of the two changed (so the rank differs).
  if (sc.sym[pos] < 0 || sc.next[pos] < 0) return false;
  const auto right = static_cast<size_t>(sc.next[pos]);
  const Slot* s = find(sc.sym[pos], sc.sym[right]);
  if (!s || s->rank != rank) return false;
  sc.sym[pos] = s->merged;
  sc.sym[right] = -1;
  sc.next[pos] = sc.next[right];
  if (sc.next[pos] >= 0) sc.prev[static_cast<size_t>(sc.next[pos])] = static_cast<int32_t>(pos);
  return true;
}

void BpeMerges::merge_with_heap(BpeScratch& sc) const {
  sc.heap.clear();
  auto push = [&](size_t pos) {
    const int32_t r = pair_rank(sc, pos);
    if (r < 0) return;
    sc.heap.push_back((static_cast<uint64_t>(r) << 32) | pos);
    std::push_heap(sc.heap.begin(), sc.heap.end(), std::greater<>());
  };
  for (size_t i = 0; i + 1 < sc.sym.size(); ++i) push(i);
  while (!sc.heap.empty()) {
    std::pop_heap(sc.heap.begin(), sc.heap.end(), std::greater<>());
    const uint64_t top = sc.heap.back();
    sc.heap.pop_back();
    const auto pos = static_cast<size_t>(top & 0xFFFFFFFFu);
    if (!try_merge(sc, pos, static_cast<int32_t>(top >> 32))) continue;
    if (sc.prev[pos] >= 0) push(static_cast<size_t>(sc.prev[pos]));
    if (sc.next[pos] >= 0) push(pos);
  }
}

bool BpeMerges::merge_by_rank(BpeScratch& sc) const {
  // Buckets of candidate positions per rank, and a min-heap of the ranks that have one.
  if (sc.buckets.size() < merges_.size()) sc.buckets.resize(merges_.size());
  sc.ranks.clear();
  auto push = [&](size_t pos, int32_t r) {
    if (r < 0) return;
    std::vector<uint32_t>& b = sc.buckets[static_cast<size_t>(r)];
    if (b.empty()) {
      sc.ranks.push_back(r);
      std::push_heap(sc.ranks.begin(), sc.ranks.end(), std::greater<>());
    }
    b.push_back(static_cast<uint32_t>(pos));
  };
  for (size_t i = 0; i + 1 < sc.sym.size(); ++i) push(i, pair_rank(sc, i));
  std::vector<uint32_t> todo;
  while (!sc.ranks.empty()) {
    std::pop_heap(sc.ranks.begin(), sc.ranks.end(), std::greater<>());
    const int32_t rank = sc.ranks.back();
    sc.ranks.pop_back();
    todo.swap(sc.buckets[static_cast<size_t>(rank)]);
    // Leftmost first; positions arrive in order except those pushed by later merges.
    if (!std::is_sorted(todo.begin(), todo.end())) std::sort(todo.begin(), todo.end());
    for (uint32_t pos : todo) {
      if (!try_merge(sc, pos, rank)) continue;
      for (int32_t at : {sc.prev[pos], sc.next[pos] >= 0 ? static_cast<int32_t>(pos) : -1}) {
        if (at < 0) continue;
        // A new pair never has the rank just merged (it is longer than that pair's left
        // and right tokens); a lower one means the table is not in training order.
        const int32_t r = pair_rank(sc, static_cast<size_t>(at));
        if (r >= 0 && r <= rank) {
          for (int32_t k : sc.ranks) sc.buckets[static_cast<size_t>(k)].clear();
          return false;
        }
        push(static_cast<size_t>(at), r);
      }
    }
    todo.clear();
  }
  return true;
}

void BpeMerges::merge_small(std::string_view bytes, std::vector<int32_t>& out) const {
  // Typical pieces are a few bytes: a linear scan for the lowest rank over arrays on the
  // stack beats any heap, and allocates nothing.
  int32_t sym[kSmallPiece], rank[kSmallPiece], merged[kSmallPiece];
  size_t n = 0;
  for (char c : bytes) {
    const int32_t id = byte_token_[static_cast<uint8_t>(c)];
    if (id >= 0) sym[n++] = id;
  }
  constexpr int32_t kNone = INT32_MAX;
  auto set_pair = [&](size_t i) {
    const Slot* s = find(sym[i], sym[i + 1]);
    rank[i] = s ? s->rank : kNone;
    merged[i] = s ? s->merged : 0;
  };
  for (size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[best]) best = i;  // strict: the leftmost of equal ranks wins
    if (rank[best] == kNone) break;
    sym[best] = merged[best];
    for (size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best + 1 < n) set_pair(best);
    if (best > 0) set_pair(best - 1);
  }
  out.insert(out.end(), sym, sym + n);
}

void BpeMerges::encode_piece(std::string_view bytes, std::vector<int32_t>& out, BpeScratch& sc) const {
  if (bytes.size() <= kSmallPiece) {
    merge_small(bytes, out);
    return;
  }
  init_symbols(bytes, sc);
  if (sc.sym.size() <= 1) {
    out.insert(out.end(), sc.sym.begin(), sc.sym.end());
    return;
  }
  if (sc.sym.size() < kLongPiece) {
    merge_with_heap(sc);
  } else if (!merge_by_rank(sc)) {
    init_symbols(bytes, sc);
    merge_with_heap(sc);
  }
  // Position 0 is never absorbed (merges keep the left symbol), so the list starts there.
  for (int32_t i = 0; i >= 0; i = sc.next[static_cast<size_t>(i)]) out.push_back(sc.sym[static_cast<size_t>(i)]);
}

}  // namespace hearth
