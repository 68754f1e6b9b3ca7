// The prefix cache below the engine, no model and no device: eviction order with session
// priority (pool and block tables), the block file format (round trip, and every kind of
// bad file refused with its reason), and the host/disk tier (LRU, restart, corrupt and
// foreign files removed with a warning, the disk cap), and block tables that spill
// evicted blocks and load them back from the tier.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "kv/block_pool.h"
#include "kv/kv_file.h"
#include "kv/kv_manager.h"
#include "kv/kv_tier.h"

namespace hearth::kv {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % 5000);
  return t;
}

// ---- eviction order -------------------------------------------------------------------

TEST(PrefixEviction, UnnamedBlocksGoFirstThenOneOffThenSessionEachLeastRecentFirst) {
  BlockPool pool(8);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(8, a));
  // 0,1: session (named); 2,3: one-off (named); 4,5: unnamed; 6,7 stay in use.
  for (BlockId b : {0, 1, 2, 3}) pool.set_hash(b, 100 + static_cast<uint64_t>(b));
  pool.raise_priority(0, Priority::Session);
  pool.raise_priority(1, Priority::Session);
  const std::vector<BlockId> rel{1, 0, 3, 5, 2, 4};  // release order = recency within a class
  pool.release(rel);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{5, 4, 3, 2, 1, 0}));
  std::vector<BlockId> got;
  std::vector<Eviction> ev;
  ASSERT_TRUE(pool.allocate(5, got, &ev));
  EXPECT_EQ(got, (std::vector<BlockId>{5, 4, 3, 2, 1}));
  ASSERT_EQ(ev.size(), 3u);  // the unnamed ones are no loss
  EXPECT_EQ(ev[0].block, 3);
  EXPECT_EQ(ev[1].block, 2);
  EXPECT_EQ(ev[2].block, 1);
  EXPECT_EQ(ev[2].hash, 101u);
  EXPECT_EQ(pool.find(100), 0);  // the last session block is still cached
  EXPECT_FALSE(pool.find(101).has_value());
  EXPECT_EQ(pool.n_evictions(), 3);
  std::vector<BlockId> more;
  EXPECT_TRUE(pool.allocate(1, more));
  EXPECT_FALSE(pool.allocate(1, more));  // 6 and 7 are in use: never evicted
  EXPECT_EQ(pool.ref_count(6), 1);
}

TEST(PrefixEviction, RaisingAFreeBlockMovesItToTheSessionList) {
  BlockPool pool(3);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.allocate(3, a));
  for (BlockId b : a) pool.set_hash(b, 7 + static_cast<uint64_t>(b));
  pool.release(a);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{0, 1, 2}));
  pool.raise_priority(0, Priority::Session);
  EXPECT_EQ(pool.free_list(), (std::vector<BlockId>{1, 2, 0}));
  pool.raise_priority(0, Priority::OneOff);  // never lowered
  EXPECT_EQ(pool.priority(0), Priority::Session);
}

// A side call (one-off) under memory pressure evicts its own and older one-off blocks,
// never the session's conversation, through the block tables as the scheduler uses them.
TEST(PrefixEviction, ASideCallDoesNotEvictTheSessionPrefix) {
  const int32_t bs = 4;
  KvManager kv(12, bs);
  const auto conversation = random_tokens(6 * bs + 1, 1);
  ASSERT_TRUE(kv.allocate(1, static_cast<int32_t>(conversation.size())));
  kv.register_full_blocks(1, conversation, static_cast<int32_t>(conversation.size()), Priority::Session);
  kv.free(1);
  const auto title = random_tokens(3 * bs + 1, 2);
  ASSERT_TRUE(kv.allocate(2, static_cast<int32_t>(title.size())));
  kv.register_full_blocks(2, title, static_cast<int32_t>(title.size()));
  kv.free(2);
  // A larger one-off request takes everything but the session's blocks... (12 - 6 = 6 blocks)
  const auto side = random_tokens(6 * bs, 3);
  ASSERT_TRUE(kv.allocate(3, static_cast<int32_t>(side.size())));
  EXPECT_EQ(kv.match_prefix(4, title), 0);  // the earlier side call is gone
  auto c2 = conversation;
  c2.push_back(9);
  EXPECT_EQ(kv.match_prefix(5, c2), 6 * bs);  // the conversation is whole
  kv.free(5);
  kv.free(3);
  // With a one-off prefix as large as the pool allows, the session's blocks go last.
  const auto big = random_tokens(12 * bs, 4);
  ASSERT_TRUE(kv.allocate(6, 12 * bs));
  EXPECT_EQ(kv.match_prefix(7, c2), 0);
}

// ---- block files ------------------------------------------------------------------------

HostBlock sample_block(uint64_t hash, uint64_t parent, uint32_t bs, size_t bytes, uint32_t seed) {
  HostBlock b;
  b.hash = hash;
  b.parent = parent;
  b.tokens = random_tokens(bs, seed);
  std::mt19937 rng(seed);
  b.data.resize(bytes);
  for (auto& x : b.data) x = static_cast<uint8_t>(rng());
  return b;
}

TEST(KvFile, RoundTripsAndRefusesEveryKindOfBadFile) {
  const KvFileIdentity id{.cache_id = 0xabcdef, .block_size = 4, .block_bytes = 1000};
  const HostBlock b = sample_block(42, 41, 4, 1000, 7);
  const auto bytes = encode_kv_file(id, b);
  EXPECT_EQ(bytes.size(), kKvFileHeaderBytes + 16 + 1000u);
  HostBlock got;
  ASSERT_EQ(decode_kv_file(bytes, id, got), "");
  EXPECT_EQ(got.hash, 42u);
  EXPECT_EQ(got.parent, 41u);
  EXPECT_EQ(got.tokens, b.tokens);
  EXPECT_EQ(got.data, b.data);

  auto flipped = [&](size_t at) {
    auto c = bytes;
    c[at] ^= 0x10;
    return c;
  };
  EXPECT_NE(decode_kv_file(flipped(kKvFileHeaderBytes + 16 + 500), id, got).find("checksum"), std::string::npos);
  EXPECT_NE(decode_kv_file(flipped(kKvFileHeaderBytes + 3), id, got).find("checksum"), std::string::npos);  // a token
  EXPECT_NE(decode_kv_file(flipped(48), id, got).find("checksum"), std::string::npos);                      // parent
  EXPECT_NE(decode_kv_file(flipped(0), id, got).find("not a hearth"), std::string::npos);
  EXPECT_NE(decode_kv_file(flipped(8), id, got).find("version"), std::string::npos);
  EXPECT_NE(decode_kv_file(std::span(bytes).first(bytes.size() - 1), id, got).find("truncated"), std::string::npos);
  EXPECT_NE(decode_kv_file(std::span(bytes).first(10), id, got).find("shorter"), std::string::npos);
  KvFileIdentity other = id;
  other.cache_id = 0xabcdee;
  EXPECT_NE(decode_kv_file(bytes, other, got).find("another model"), std::string::npos);
  other = id;
  other.block_bytes = 999;
  EXPECT_NE(decode_kv_file(bytes, other, got), "");
}

// The header records the KV element type: a file of an f16 cache is refused by a q8_0 one
// (and the other way round) even with the same identity and sizes; a file from before the
// field (zeros) is left to the identity, which covers the type as well.
TEST(KvFile, RecordsTheKvTypeAndRefusesTheOther) {
  KvFileIdentity f16{.cache_id = 77, .block_size = 4, .block_bytes = 64, .kv_dtype = DType::F16};
  KvFileIdentity q8 = f16;
  q8.kv_dtype = DType::Q8_0;
  const HostBlock b = sample_block(9, 0, 4, 64, 2);
  const auto from_q8 = encode_kv_file(q8, b), from_f16 = encode_kv_file(f16, b);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(from_q8.data()) + 28, 4), "q8_0");
  HostBlock got;
  EXPECT_EQ(decode_kv_file(from_q8, q8, got), "");
  EXPECT_EQ(got.data, b.data);
  EXPECT_EQ(decode_kv_file(from_q8, f16, got), "written by a q8_0 KV cache (this cache holds f16)");
  EXPECT_EQ(decode_kv_file(from_f16, q8, got), "written by a f16 KV cache (this cache holds q8_0)");
  uint64_t hash = 0;
  EXPECT_NE(check_kv_header(from_f16, from_f16.size(), q8, hash), "");
  auto old = from_f16;  // as written before the field: zeros there
  std::fill(old.begin() + 28, old.begin() + 32, uint8_t{0});
  EXPECT_NE(decode_kv_file(old, f16, got).find("checksum"), std::string::npos);  // the field is covered
  const uint64_t sum = checksum64(old.data() + kKvFileHeaderBytes, old.size() - kKvFileHeaderBytes, checksum64(old.data(), 56));
  for (int i = 0; i < 8; ++i) old[56 + static_cast<size_t>(i)] = static_cast<uint8_t>(sum >> (8 * i));
  EXPECT_EQ(decode_kv_file(old, f16, got), "");
  EXPECT_EQ(got.data, b.data);
}

TEST(KvFile, ChecksumSeesEveryByte) {
  auto data = random_tokens(300, 3);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size() * 4 - 3;  // odd length: the tail loop too
  const uint64_t h = checksum64(p, n);
  for (size_t i = 0; i < n; i += 37) {
    auto copy = data;
    reinterpret_cast<uint8_t*>(copy.data())[i] ^= 1;
    EXPECT_NE(checksum64(reinterpret_cast<const uint8_t*>(copy.data()), n), h) << i;
  }
}

// ---- the tier ----------------------------------------------------------------------------

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::path(HEARTH_BINARY_DIR) / "test_tmp" / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

constexpr uint32_t kBs = 4;
constexpr size_t kBytes = 256;
const KvFileIdentity kId{.cache_id = 0x1234, .block_size = kBs, .block_bytes = kBytes};

std::shared_ptr<const HostBlock> shared_block(uint64_t hash, uint32_t seed) {
  return std::make_shared<HostBlock>(sample_block(hash, hash - 1, kBs, kBytes, seed));
}

TEST(KvTier, HostMemoryKeepsTheMostRecentBlocksAndChecksTokens) {
  KvTier tier({.ram_bytes = 3 * kBytes, .identity = kId});
  for (uint64_t h = 1; h <= 5; ++h) tier.put(shared_block(h + 10, static_cast<uint32_t>(h)));
  EXPECT_EQ(tier.stats().ram_blocks, 3);
  EXPECT_EQ(tier.stats().dropped_total, 2);
  EXPECT_FALSE(tier.contains(11));
  const auto want = sample_block(15, 14, kBs, kBytes, 5);
  auto got = tier.fetch(15, 14, want.tokens);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, want.data);
  EXPECT_FALSE(tier.fetch(15, 13, want.tokens));  // another parent: another prefix
  auto other_tokens = want.tokens;
  other_tokens[2] += 1;
  EXPECT_FALSE(tier.fetch(15, 14, other_tokens));  // a hash collision is not a hit
}

TEST(KvTier, DiskSurvivesARestartAndBadFilesAreRemovedWithAWarning) {
  TempDir dir("kv_tier_disk");
  std::string folder;
  {
    KvTier tier({.dir = dir.path.string(), .disk_bytes = 1 << 20, .ram_bytes = 0, .identity = kId});
    folder = tier.folder();
    for (uint64_t h = 1; h <= 4; ++h) tier.persist(shared_block(100 + h, static_cast<uint32_t>(h)));
    EXPECT_EQ(tier.stats().disk_blocks, 4);
  }
  // Damage: a flipped payload byte (found when loaded), a truncated file and a foreign
  // file (found when scanning), a stray file of another name (left alone).
  auto file = [&](uint64_t h) {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.hkv", static_cast<unsigned long long>(h));
    return fs::path(folder) / name;
  };
  {
    std::fstream f(file(101), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kKvFileHeaderBytes + 4 * kBs + 100);
    f.put('\x55');
  }
  fs::resize_file(file(102), fs::file_size(file(102)) - 7);
  {
    KvFileIdentity foreign = kId;
    foreign.cache_id = 0x9999;
    const auto bytes = encode_kv_file(foreign, sample_block(200, 0, kBs, kBytes, 9));
    std::ofstream(file(200), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::ofstream(fs::path(folder) / "notes.txt") << "not a block";

  testing::internal::CaptureStderr();
  KvTier tier({.dir = dir.path.string(), .disk_bytes = 1 << 20, .ram_bytes = 0, .identity = kId});
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  EXPECT_NE(log.find("another model"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(file(102)));
  EXPECT_FALSE(fs::exists(file(200)));
  EXPECT_TRUE(fs::exists(fs::path(folder) / "notes.txt"));
  EXPECT_EQ(tier.stats().disk_blocks, 3);  // 101 (not yet known to be bad), 103, 104
  EXPECT_EQ(tier.stats().rejected_files_total, 2);

  const auto b3 = sample_block(103, 102, kBs, kBytes, 3);
  auto got = tier.fetch(103, 102, b3.tokens);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, b3.data);
  EXPECT_EQ(tier.stats().loaded_disk_total, 1);

  const auto b1 = sample_block(101, 100, kBs, kBytes, 1);
  testing::internal::CaptureStderr();
  EXPECT_FALSE(tier.fetch(101, 100, b1.tokens));
  log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(file(101)));
  EXPECT_EQ(tier.stats().rejected_files_total, 3);
  EXPECT_EQ(tier.stats().disk_blocks, 2);
}

TEST(KvTier, TheDiskCapRemovesTheLeastRecentlyUsedFiles) {
  TempDir dir("kv_tier_cap");
  const uint64_t file = kKvFileHeaderBytes + 4 * kBs + kBytes;
  KvTier tier({.dir = dir.path.string(), .disk_bytes = static_cast<int64_t>(3 * file), .ram_bytes = 0, .identity = kId});
  for (uint64_t h = 1; h <= 3; ++h) tier.persist(shared_block(h + 1, static_cast<uint32_t>(h)));
  const auto b2 = sample_block(2, 1, kBs, kBytes, 1);
  ASSERT_TRUE(tier.fetch(2, 1, b2.tokens));  // block 2 becomes the most recently used
  tier.persist(shared_block(5, 4));
  EXPECT_EQ(tier.stats().disk_blocks, 3);
  EXPECT_TRUE(tier.contains(2));
  EXPECT_FALSE(tier.contains(3));  // the oldest untouched one went
  EXPECT_TRUE(tier.contains(5));
  EXPECT_LE(tier.stats().disk_bytes, static_cast<int64_t>(3 * file));
}

TEST(KvTier, EvictedBlocksQueuedForDiskAreWrittenInTheBackground) {
  TempDir dir("kv_tier_bg");
  KvTier tier({.dir = dir.path.string(), .disk_bytes = 1 << 20, .ram_bytes = 2 * kBytes, .identity = kId});
  for (uint64_t h = 1; h <= 6; ++h) tier.put(shared_block(h + 1, static_cast<uint32_t>(h)));
  tier.flush();
  const KvTierStats s = tier.stats();
  EXPECT_EQ(s.disk_blocks, 6);  // 4 pushed out of memory, 2 written by flush
  EXPECT_EQ(s.ram_blocks, 2);
  EXPECT_EQ(s.dropped_total, 0);
}

// ---- block tables with a tier --------------------------------------------------------

TEST(KvManagerTier, EvictedBlocksAreSpilledAndLoadedBackInOrder) {
  const int32_t bs = 4;
  KvTier tier({.ram_bytes = 1 << 20, .identity = {.cache_id = 1, .block_size = bs, .block_bytes = 8}});
  KvManager kv(6, bs);
  kv.set_tier(&tier);
  const auto prompt = random_tokens(5 * bs + 1, 11);
  ASSERT_TRUE(kv.allocate(1, static_cast<int32_t>(prompt.size())));
  kv.register_full_blocks(1, prompt, static_cast<int32_t>(prompt.size()));
  const auto table1 = std::vector<BlockId>(kv.block_table(1).begin(), kv.block_table(1).end());
  kv.free(1);
  std::vector<Spill> spills;
  std::vector<Load> loads;
  kv.take_transfers(spills, loads);
  EXPECT_TRUE(spills.empty() && loads.empty());

  // Another request takes 4 blocks: the unnamed last block, then the 3 least recently
  // freed named ones (the prompt's last full blocks, freed first).
  ASSERT_TRUE(kv.allocate(2, 4 * bs));
  kv.take_transfers(spills, loads);
  ASSERT_EQ(spills.size(), 3u);
  for (const Spill& s : spills) {
    // What the engine does: copy the block out, keyed by its hash, parent and tokens.
    auto hb = std::make_shared<HostBlock>();
    hb->hash = s.hash;
    hb->parent = s.parent;
    hb->tokens = s.tokens;
    hb->data.assign(8, static_cast<uint8_t>(s.block));
    tier.put(hb);
  }
  const auto hashes = kv.block_hashes(prompt);
  EXPECT_EQ(spills[0].hash, hashes[4]);
  EXPECT_EQ(spills[0].parent, hashes[3]);
  EXPECT_EQ(spills[0].tokens, std::vector<int32_t>(prompt.begin() + 4 * bs, prompt.begin() + 5 * bs));
  kv.free(2);
  kv.take_transfers(spills, loads);

  // The prompt again: 2 blocks from the pool, 3 loaded from the tier into fresh blocks.
  int32_t n_loaded = 0;
  EXPECT_EQ(kv.match_prefix(3, prompt, Priority::OneOff, &n_loaded), 5 * bs);
  EXPECT_EQ(n_loaded, 3 * bs);
  kv.take_transfers(spills, loads);
  ASSERT_EQ(loads.size(), 3u);
  const auto table3 = kv.block_table(3);
  EXPECT_EQ(table3[0], table1[0]);
  EXPECT_EQ(table3[1], table1[1]);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(loads[i].block, table3[2 + i]);
    EXPECT_EQ(loads[i].data->hash, hashes[2 + i]);
    EXPECT_EQ(loads[i].data->data[0], static_cast<uint8_t>(table1[2 + i]));  // the content that block had
  }
}

TEST(KvManagerTier, AnAdmissionThatGivesUpDropsItsLoadsAndTheirNames) {
  const int32_t bs = 4;
  KvTier tier({.ram_bytes = 1 << 20, .identity = {.cache_id = 1, .block_size = bs, .block_bytes = 8}});
  KvManager kv(4, bs);
  kv.set_tier(&tier);
  const auto prompt = random_tokens(2 * bs + 1, 5);
  const auto hashes = kv.block_hashes(prompt);
  for (size_t b = 0; b < 2; ++b) {
    auto hb = std::make_shared<HostBlock>();
    hb->hash = hashes[b];
    hb->parent = b == 0 ? 0 : hashes[b - 1];
    hb->tokens.assign(prompt.begin() + static_cast<std::ptrdiff_t>(b * bs), prompt.begin() + static_cast<std::ptrdiff_t>((b + 1) * bs));
    hb->data.assign(8, 1);
    tier.put(hb);
  }
  EXPECT_EQ(kv.probe_prefix(prompt), 2 * bs);
  EXPECT_EQ(kv.match_prefix(1, prompt), 2 * bs);
  kv.free(1);  // e.g. the rest of the prompt did not fit
  std::vector<Spill> spills;
  std::vector<Load> loads;
  kv.take_transfers(spills, loads);
  EXPECT_TRUE(loads.empty());
  EXPECT_EQ(kv.pool().n_hashed(), 0);  // never written, so never findable
}

}  // namespace
}  // namespace hearth::kv
