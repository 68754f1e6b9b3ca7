// BpeMerges against a deliberately naive reference: rescan all adjacent pairs, merge the
// leftmost pair of lowest rank, repeat (quadratic, obviously correct), on random merge
// tables and random strings; plus rank order, ties and very long single-character runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"

namespace hearth {
namespace {

// Byte b is token b; merges create tokens from 256 on.
struct Table {
  BpeMerges bpe;
  std::map<std::pair<int32_t, int32_t>, std::pair<int, int32_t>> rank;  // pair -> (rank, merged)
  int32_t next_id = 256;

  Table() {
    std::array<int32_t, 256> ids{};
    for (int b = 0; b < 256; ++b) ids[b] = b;
    bpe.set_byte_tokens(ids);
  }
  int32_t add(int32_t l, int32_t r) {
    const int32_t m = next_id++;
    rank[{l, r}] = {static_cast<int>(rank.size()), m};
    bpe.add({l, r, m});
    return m;
  }
};

std::vector<int32_t> naive(const Table& t, const std::string& s) {
  std::vector<int32_t> sym;
  for (char c : s) sym.push_back(static_cast<uint8_t>(c));
  for (;;) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = t.rank.find({sym[i], sym[i + 1]});
      if (it != t.rank.end() && (best < 0 || it->second.first < best)) best = it->second.first, at = i;
    }
    if (best < 0) return sym;
    sym[at] = t.rank.at({sym[at], sym[at + 1]}).second;
    sym.erase(sym.begin() + static_cast<long>(at) + 1);
  }
}

std::vector<int32_t> run(const Table& t, const std::string& s) {
  std::vector<int32_t> out;
  BpeScratch scratch;
  t.bpe.encode_piece(s, out, scratch);
  return out;
}

TEST(Bpe, LowestRankFirstThenLeftmost) {
  Table t;
  const int32_t he = t.add('h', 'e');  // rank 0
  const int32_t er = t.add('e', 'r');  // rank 1
  const int32_t aa = t.add('a', 'a');
  t.bpe.finalize();
  EXPECT_EQ(run(t, "her"), (std::vector<int32_t>{he, 'r'}));  // not h + er
  EXPECT_EQ(run(t, "xer"), (std::vector<int32_t>{'x', er}));
  EXPECT_EQ(run(t, "aaa"), (std::vector<int32_t>{aa, 'a'}));  // leftmost of equal ranks
  EXPECT_EQ(run(t, "aaaa"), (std::vector<int32_t>{aa, aa}));
  EXPECT_EQ(run(t, "q"), (std::vector<int32_t>{'q'}));
  EXPECT_TRUE(run(t, "").empty());
}

TEST(Bpe, UnknownBytesAreDroppedBeforeMerging) {
  Table t;
  const int32_t ab = t.add('a', 'b');
  t.bpe.finalize();
  std::array<int32_t, 256> ids{};
  for (int b = 0; b < 256; ++b) ids[b] = b == '?' ? -1 : b;
  t.bpe.set_byte_tokens(ids);
  EXPECT_EQ(run(t, "a?b"), (std::vector<int32_t>{ab}));
}

TEST(Bpe, DuplicatePairTakesTheLaterRank) {
  Table t;
  t.bpe.add({'x', 'y', 300});
  t.bpe.add({'y', 'z', 301});
  t.bpe.add({'x', 'y', 302});  // the same pair again: now ranked after y z
  t.bpe.finalize();
  EXPECT_EQ(run(t, "xyz"), (std::vector<int32_t>{'x', 301}));
}

// Random strings over {a, b, c, d}, short (heap path) and long (bucket path).
void check_random_strings(const Table& t, std::mt19937& rng, int trial) {
  for (int s = 0; s < 60; ++s) {
    const size_t len = s < 40 ? 1 + rng() % 60 : BpeMerges::kLongPiece + rng() % 500;
    std::string text(len, 'a');
    for (char& c : text) c = static_cast<char>('a' + rng() % 4);
    ASSERT_EQ(run(t, text), naive(t, text)) << "trial " << trial << " text " << text;
  }
}

TEST(Bpe, MatchesNaiveReferenceOnRandomTables) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    Table t;
    std::vector<int32_t> known = {'a', 'b', 'c', 'd'};
    const int n_merges = 5 + static_cast<int>(rng() % 40);
    for (int k = 0; k < n_merges; ++k) {
      const int32_t l = known[rng() % known.size()], r = known[rng() % known.size()];
      if (t.rank.count({l, r})) continue;
      known.push_back(t.add(l, r));
    }
    t.bpe.finalize();
    check_random_strings(t, rng, trial);
  }
}

// Merges ranked out of training order (a pair of a merged token can rank before the merge
// that makes it): the bucket path must notice and give the heap's answer.
TEST(Bpe, MatchesNaiveReferenceOnShuffledTables) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<BpeMerge> merges;
    std::vector<int32_t> known = {'a', 'b', 'c', 'd'};
    std::map<std::pair<int32_t, int32_t>, bool> seen;
    for (int k = 0; k < 30; ++k) {
      const int32_t l = known[rng() % known.size()], r = known[rng() % known.size()];
      if (seen[{l, r}]) continue;
      seen[{l, r}] = true;
      const int32_t m = 256 + static_cast<int32_t>(merges.size());
      merges.push_back({l, r, m});
      known.push_back(m);
    }
    std::shuffle(merges.begin(), merges.end(), rng);
    Table t;
    for (const BpeMerge& m : merges) {
      t.rank[{m.left, m.right}] = {static_cast<int>(t.rank.size()), m.merged};
      t.bpe.add(m);
    }
    t.bpe.finalize();
    check_random_strings(t, rng, trial);
  }
}

TEST(Bpe, TenMegabyteRunIsNotQuadratic) {
  Table t;
  const int32_t aa = t.add('a', 'a');
  const int32_t aaaa = t.add(aa, aa);
  t.bpe.finalize();
  const std::string text(10'000'001, 'a');
  const std::vector<int32_t> ids = run(t, text);
  ASSERT_EQ(ids.size(), 2'500'001u);
  EXPECT_EQ(ids.front(), aaaa);
  EXPECT_EQ(ids[2'499'999], aaaa);
  EXPECT_EQ(ids.back(), 'a');
}

}  // namespace
}  // namespace hearth
