// Byte-level BPE merges. A piece (raw bytes) starts as one symbol per byte, each the
// token of that byte's GPT-2 character; then, repeatedly, the adjacent pair with the
// lowest merge rank is replaced by its merged token (ties: leftmost pair) until no
// adjacent pair has a merge. This is the Hugging Face tokenizers BPE model without
// dropout, unk or continuing-subword prefix.
//
// Symbols are token ids and merges are keyed by (left id, right id), so no strings are
// built while merging. Candidate pairs sit in a min-heap of (rank, position) and stale
// entries are skipped when popped, which keeps a piece of n bytes at O(n log n): a 10 MB
// run of one character is one piece and must not take quadratic time. Long pieces use
// buckets of positions per rank instead (a heap of ranks, not of pairs): a merge never
// creates a pair of its own or a lower rank in a table in training order, so each bucket
// is drained left to right once. A table not in that order falls back to the heap.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hearth {

struct BpeMerge {
  int32_t left = 0;    // token id of the left symbol
  int32_t right = 0;   // token id of the right symbol
  int32_t merged = 0;  // token id of their concatenation
};

// Reusable buffers for encode_piece, one per encode call (not shared between threads).
struct BpeScratch {
  std::vector<int32_t> sym;   // (n_symbols) token id, -1 once merged into its left neighbour
  std::vector<int32_t> prev;  // (n_symbols) index of the previous live symbol, -1 at the start
  std::vector<int32_t> next;  // (n_symbols) index of the next live symbol, -1 at the end
  std::vector<uint64_t> heap; // (rank << 32 | left index), a min-heap
  std::vector<std::vector<uint32_t>> buckets;  // long pieces: (n_merges) positions per rank, empty between pieces
  std::vector<int32_t> ranks;  // long pieces: min-heap of ranks with a bucket
};

class BpeMerges {
 public:
  // Appends a merge with the next rank. A pair that is already present takes the new
  // rank and result, as in tokenizers (its merge table is built by inserting in order).
  void add(const BpeMerge& merge);
  // Must be called after the last add() and before encode_piece().
  void finalize();

  const std::vector<BpeMerge>& merges() const { return merges_; }  // in rank order, as added

  // Sets the token of each byte (-1: the byte's character is not in the vocabulary, and
  // such bytes are dropped, as tokenizers does without an unk token).
  void set_byte_tokens(const std::array<int32_t, 256>& ids) { byte_token_ = ids; }
  int32_t byte_token(uint8_t b) const { return byte_token_[b]; }

  // Appends the token ids of one piece of raw bytes.
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out, BpeScratch& scratch) const;

  // Pieces of at most kSmallPiece bytes are merged by linear scans; pieces of at least
  // kLongPiece symbols take the bucket path; the heap takes those in between.
  static constexpr size_t kSmallPiece = 24;
  static constexpr size_t kLongPiece = 128;

 private:
  struct Slot {
    uint64_t key = kEmpty;  // left << 32 | right
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // Fibonacci hashing: the top bits of key * 2^64/phi index the table.
  uint64_t hash(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  const Slot* find(int32_t left, int32_t right) const;
  void init_symbols(std::string_view bytes, BpeScratch& sc) const;
  int32_t pair_rank(const BpeScratch& sc, size_t pos) const;  // of the pair at pos, or -1
  bool try_merge(BpeScratch& sc, size_t pos, int32_t rank) const;
  void merge_small(std::string_view bytes, std::vector<int32_t>& out) const;
  void merge_with_heap(BpeScratch& sc) const;
  bool merge_by_rank(BpeScratch& sc) const;  // false: the table is not in training order
  void insert(uint64_t key, int32_t rank, int32_t merged);

  std::vector<BpeMerge> merges_;
  std::vector<Slot> table_;  // open addressing, linear probing, power-of-two size
  uint64_t mask_ = 0;
  int shift_ = 60;
  std::array<int32_t, 256> byte_token_{};
};

}  // namespace hearth
