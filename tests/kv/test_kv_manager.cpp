// KvManager: block tables grow by whole blocks, refusals change nothing, slots follow the
// table, freeing returns blocks last-first, and prefix matching shares only full blocks
// before the last token.
#include <gtest/gtest.h>

#include <numeric>

#include "kv/kv_manager.h"

namespace hearth::kv {
namespace {

TEST(KvManager, GrowsByWholeBlocks) {
  KvManager kv(8, 4);
  EXPECT_TRUE(kv.allocate(1, 5));  // 2 blocks
  EXPECT_EQ(kv.block_table(1).size(), 2u);
  EXPECT_EQ(kv.n_tokens(1), 5);
  EXPECT_TRUE(kv.allocate(1, 3));  // 8 tokens: still 2 blocks
  EXPECT_EQ(kv.block_table(1).size(), 2u);
  EXPECT_TRUE(kv.allocate(1, 1));  // 9 tokens: 3 blocks
  EXPECT_EQ(kv.block_table(1).size(), 3u);
  EXPECT_EQ(kv.n_free_blocks(), 5);
}

TEST(KvManager, RefusalChangesNothing) {
  KvManager kv(3, 4);
  ASSERT_TRUE(kv.allocate(1, 8));
  EXPECT_FALSE(kv.can_allocate(2, 5));
  EXPECT_FALSE(kv.allocate(2, 5));
  EXPECT_EQ(kv.n_tokens(2), 0);
  EXPECT_TRUE(kv.block_table(2).empty());
  EXPECT_EQ(kv.n_free_blocks(), 1);
  EXPECT_TRUE(kv.allocate(2, 4));
  EXPECT_FALSE(kv.allocate(1, 1));
  EXPECT_EQ(kv.n_tokens(1), 8);
}

TEST(KvManager, SlotsFollowTheTable) {
  KvManager kv(6, 4);
  ASSERT_TRUE(kv.allocate(1, 4));  // block 0
  ASSERT_TRUE(kv.allocate(2, 4));  // block 1
  ASSERT_TRUE(kv.allocate(1, 3));  // block 2
  EXPECT_EQ(kv.slot(1, 0), 0);
  EXPECT_EQ(kv.slot(1, 3), 3);
  EXPECT_EQ(kv.slot(1, 4), 8);
  EXPECT_EQ(kv.slot(1, 6), 10);
  EXPECT_EQ(kv.slot(2, 2), 6);
}

TEST(KvManager, FreeReturnsLastBlocksFirst) {
  KvManager kv(4, 2);
  ASSERT_TRUE(kv.allocate(9, 6));  // blocks 0 1 2
  kv.free(9);
  kv.free(9);  // unknown now: no-op
  EXPECT_EQ(kv.pool().free_list(), (std::vector<BlockId>{3, 2, 1, 0}));
  EXPECT_EQ(kv.n_seqs(), 0);
}

TEST(KvManager, BlockHashesChainThePrefix) {
  KvManager kv(4, 2);
  const std::vector<int32_t> a{1, 2, 3, 4, 5};
  const std::vector<int32_t> b{1, 2, 3, 9, 5};
  const std::vector<int32_t> c{7, 2, 3, 4};
  const auto ha = kv.block_hashes(a), hb = kv.block_hashes(b), hc = kv.block_hashes(c);
  ASSERT_EQ(ha.size(), 2u);  // the partial last block has no hash
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(ha[1], hc[1]);  // same tokens in the block, different prefix
}

TEST(KvManager, PrefixMatchSharesFullBlocksBeforeTheLastToken) {
  KvManager kv(10, 4);
  std::vector<int32_t> prompt(12);
  std::iota(prompt.begin(), prompt.end(), 100);
  ASSERT_TRUE(kv.allocate(1, 12));
  kv.register_full_blocks(1, prompt, 12);
  // The same 12 tokens again: the third block holds the last token, so only 8 are shared.
  EXPECT_EQ(kv.match_prefix(2, prompt), 8);
  EXPECT_EQ(kv.block_table(2)[0], kv.block_table(1)[0]);
  EXPECT_EQ(kv.pool().ref_count(kv.block_table(1)[0]), 2);
  // A longer prompt reuses all three blocks.
  std::vector<int32_t> longer = prompt;
  longer.push_back(5);
  EXPECT_EQ(kv.match_prefix(3, longer), 12);
  // A divergence in block 1 stops the match after block 0.
  std::vector<int32_t> diverged = longer;
  diverged[5] = 0;
  EXPECT_EQ(kv.match_prefix(4, diverged), 4);
  // After everyone frees, the blocks stay findable until reused.
  for (SeqId s : {1, 2, 3, 4}) kv.free(s);
  EXPECT_EQ(kv.n_free_blocks(), 10);
  EXPECT_EQ(kv.match_prefix(5, longer), 12);
  EXPECT_EQ(kv.n_free_blocks(), 7);
}

TEST(KvManager, OnlyComputedFullBlocksArePublished) {
  KvManager kv(10, 4);
  std::vector<int32_t> prompt(10, 3);
  ASSERT_TRUE(kv.allocate(1, 10));
  kv.register_full_blocks(1, prompt, 6);  // one full computed block
  std::vector<int32_t> again(10, 3);
  EXPECT_EQ(kv.match_prefix(2, again), 4);
}

}  // namespace
}  // namespace hearth::kv
