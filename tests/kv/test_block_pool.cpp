// BlockPool: free-list order, reference counts, the hash index, and a long run of random
// operations checked against a simple model built on std::list (O(n) removal, obviously
// right) that must agree with the intrusive list at every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>

#include "core/error.h"
#include "kv/block_pool.h"

namespace hearth::kv {
namespace {

TEST(BlockPool, AllocatesFromTheHeadInIdOrder) {
  BlockPool pool(5);
  std::vector<BlockId> got;
  ASSERT_TRUE(pool.allocate(3, got));
  EXPECT_EQ(got, (std::vector<BlockId>{0, 1, 2}));
  EXPECT_EQ(pool.n_free(), 2);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{3, 4}));
  for (BlockId b : got) EXPECT_EQ(pool.ref_count(b), 1);
}

TEST(BlockPool, RefusesWithoutTakingAnything) {
  BlockPool pool(4);
  std::vector<BlockId> got;
  ASSERT_TRUE(pool.allocate(3, got));
  std::vector<BlockId> more;
  EXPECT_FALSE(pool.allocate(2, more));
  EXPECT_TRUE(more.empty());
  EXPECT_EQ(pool.n_free(), 1);
  EXPECT_TRUE(pool.allocate(1, more));
  EXPECT_EQ(pool.n_free(), 0);
  EXPECT_TRUE(pool.allocate(0, more));
}

TEST(BlockPool, ReleasedBlocksGoToTheTailInOrder) {
  BlockPool pool(6);
  std::vector<BlockId> a, b;
  ASSERT_TRUE(pool.allocate(2, a));  // 0 1
  ASSERT_TRUE(pool.allocate(2, b));  // 2 3
  const std::vector<BlockId> rel_b{3, 2};
  pool.release(rel_b);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{4, 5, 3, 2}));
  std::vector<BlockId> c;
  ASSERT_TRUE(pool.allocate(3, c));
  EXPECT_EQ(c, (std::vector<BlockId>{4, 5, 3}));
}

TEST(BlockPool, SharedBlocksAreFreedOnTheLastRelease) {
  BlockPool pool(3);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(1, a));
  pool.acquire(a[0]);
  EXPECT_EQ(pool.ref_count(a[0]), 2);
  pool.release(a);
  EXPECT_EQ(pool.n_free(), 2);
  pool.release(a);
  EXPECT_EQ(pool.n_free(), 3);
  EXPECT_THROW(pool.release(a), Error);  // over-release is a bug, reported as one
}

TEST(BlockPool, AcquireRevivesAFreeBlockFromTheMiddle) {
  BlockPool pool(5);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(5, a));
  pool.release(a);  // free list 0 1 2 3 4
  pool.acquire(2);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{0, 1, 3, 4}));
  EXPECT_EQ(pool.ref_count(2), 1);
}

TEST(BlockPool, HashesSurviveFreeingAndVanishOnReuse) {
  BlockPool pool(2);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(1, a));
  pool.set_hash(a[0], 77);
  EXPECT_EQ(pool.find(77), a[0]);
  pool.release(a);
  EXPECT_EQ(pool.find(77), a[0]);  // free but still cached
  std::vector<BlockId> b;
  ASSERT_TRUE(pool.allocate(2, b));  // takes block 1 first, then evicts block 0
  EXPECT_FALSE(pool.find(77).has_value());
  EXPECT_EQ(pool.hash_of(a[0]), 0u);
  EXPECT_FALSE(pool.find(0).has_value());
}

TEST(BlockPool, DuplicateHashKeepsTheFirstBlock) {
  BlockPool pool(3);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(2, a));
  pool.set_hash(a[0], 5);
  pool.set_hash(a[1], 5);
  EXPECT_EQ(pool.find(5), a[0]);
  EXPECT_EQ(pool.hash_of(a[1]), 0u);
}

TEST(BlockPool, RandomOperationsMatchAListModel) {
  const int32_t n = 37;
  BlockPool pool(n);
  std::list<BlockId> model_free;
  for (BlockId b = 0; b < n; ++b) model_free.push_back(b);
  std::map<BlockId, int> refs;
  std::mt19937 rng(1234);
  std::vector<BlockId> held;  // one entry per reference
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 3);
    if (op == 0) {
      const int32_t k = static_cast<int32_t>(rng() % 6);
      std::vector<BlockId> got;
      const bool ok = pool.allocate(k, got);
      ASSERT_EQ(ok, k <= static_cast<int32_t>(model_free.size()));
      for (int32_t i = 0; ok && i < k; ++i) {
        ASSERT_EQ(got[static_cast<size_t>(i)], model_free.front());
        refs[model_free.front()] = 1;
        model_free.pop_front();
        held.push_back(got[static_cast<size_t>(i)]);
      }
    } else if (op == 1 && !held.empty()) {
      const size_t i = rng() % held.size();
      const BlockId b = held[i];
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      const std::vector<BlockId> one{b};
      pool.release(one);
      if (--refs[b] == 0) model_free.push_back(b);
    } else {
      // Revive a random block (free or not), as a prefix-cache hit does.
      const BlockId b = static_cast<BlockId>(rng() % n);
      pool.acquire(b);
      if (refs[b]++ == 0) model_free.remove(b);
      held.push_back(b);
    }
    ASSERT_EQ(pool.n_free(), static_cast<int32_t>(model_free.size()));
    if (step % 97 == 0) {
      ASSERT_EQ(pool.free_list(), std::vector<BlockId>(model_free.begin(), model_free.end()));
      for (auto [b, r] : refs) ASSERT_EQ(pool.ref_count(b), r);
    }
  }
}

}  // namespace
}  // namespace hearth::kv
