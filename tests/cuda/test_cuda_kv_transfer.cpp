// Backend::read_kv_block / write_kv_block on the CUDA backend against the CPU backend:
// keys and values stored by the same step read back as the same bytes (f32: kv_store is
// a copy, so bit-equal) in the documented layout, a block written back into another
// block id gives attention identical to the original block's, and f16 blocks round-trip.
// 8-bit (q8_0) blocks: the GPU's kv_store writes the very bytes of the CPU's quantizer
// (kv_quant.h; same IEEE operations), blocks restore exactly and copy_kv_block copies
// them. This is what the prefix cache's host and disk tier rely on. Skipped without a GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "cuda_test_util.h"

namespace hearth::test {
namespace {

constexpr int32_t kBs = 16, kBlocks = 8, kLayers = 2, kKvHeads = 2, kHeadDim = 64, kHeads = 4;

StepBatch one_sequence(const std::vector<int32_t>& table, int32_t n) {
  StepBatch b;
  b.seqs.push_back({.block_table = table, .n_ctx = n});
  for (int32_t p = 0; p < n; ++p) {
    b.tokens.push_back(0);
    b.positions.push_back(p);
    b.seq_of.push_back(0);
    b.slots.push_back(static_cast<int64_t>(table[static_cast<size_t>(p / kBs)]) * kBs + p % kBs);
  }
  return b;
}

TEST(CudaKvTransfer, BlocksReadBackLikeTheCpuBackendsAndRestoreExactly) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  const KvCacheConfig kv{kLayers, kBlocks, kBs, kKvHeads, kHeadDim, DType::F32};
  cpu->init_kv_cache(kv);
  gpu->init_kv_cache(kv);
  const auto bytes = static_cast<size_t>(kv_block_bytes(kv));
  ASSERT_EQ(bytes, size_t{2} * kLayers * kBs * kKvHeads * kHeadDim * 4);

  std::mt19937 rng(3);
  const int32_t n = 2 * kBs;
  const int64_t kvd = kKvHeads * kHeadDim;
  const StepBatch step = one_sequence({3, 5}, n);
  cpu->begin_step(step), gpu->begin_step(step);
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    const auto k = random_vector(static_cast<size_t>(n * kvd), rng), v = random_vector(static_cast<size_t>(n * kvd), rng);
    cpu->kv_store(layer, make_tensor(*cpu, k, {n, kvd}), make_tensor(*cpu, v, {n, kvd}));
    gpu->kv_store(layer, make_tensor(*gpu, k, {n, kvd}), make_tensor(*gpu, v, {n, kvd}));
    // The documented layout, checked on the CPU copy: layer l's keys, then its values.
    if (layer == 1) {
      std::vector<uint8_t> host(bytes);
      cpu->read_kv_block(5, host.data());
      const size_t piece = bytes / (2 * kLayers);
      EXPECT_EQ(std::memcmp(host.data() + 2 * piece, k.data() + kBs * kvd, piece), 0);
      EXPECT_EQ(std::memcmp(host.data() + 3 * piece, v.data() + kBs * kvd, piece), 0);
    }
  }
  for (int32_t block : {3, 5}) {
    std::vector<uint8_t> from_cpu(bytes), from_gpu(bytes, 0xAB);
    cpu->read_kv_block(block, from_cpu.data());
    gpu->read_kv_block(block, from_gpu.data());
    EXPECT_EQ(from_cpu, from_gpu) << "block " << block;
  }

  // Restore block 3's bytes into block 6: attention through {6, 5} equals through {3, 5}.
  std::vector<uint8_t> saved(bytes);
  gpu->read_kv_block(3, saved.data());
  gpu->write_kv_block(6, saved.data());
  std::vector<uint8_t> back(bytes);
  gpu->read_kv_block(6, back.data());
  EXPECT_EQ(back, saved);
  const auto q = random_vector(static_cast<size_t>(n * kHeads * kHeadDim), rng);
  auto attend = [&](const std::vector<int32_t>& table) {
    gpu->begin_step(one_sequence(table, n));
    Tensor out = make_output(*gpu, {n, kHeads * kHeadDim});
    gpu->attention(out, make_tensor(*gpu, q, {n, kHeads * kHeadDim}), 1, kHeads, 0.125f);
    return read(*gpu, out);
  };
  EXPECT_EQ(attend({6, 5}), attend({3, 5}));
}

TEST(CudaKvTransfer, F16BlocksRoundTrip) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto gpu = make_cuda_backend(0);
  const KvCacheConfig kv{kLayers, kBlocks, kBs, kKvHeads, kHeadDim, DType::F16};
  gpu->init_kv_cache(kv);
  const auto bytes = static_cast<size_t>(kv_block_bytes(kv));
  ASSERT_EQ(bytes, size_t{2} * kLayers * kBs * kKvHeads * kHeadDim * 2);
  std::mt19937 rng(5);
  std::vector<std::vector<uint8_t>> blocks(kBlocks, std::vector<uint8_t>(bytes));
  for (auto& b : blocks)
    for (auto& x : b) x = static_cast<uint8_t>(rng());
  for (int32_t i = 0; i < kBlocks; ++i) gpu->write_kv_block(i, blocks[static_cast<size_t>(i)].data());
  for (int32_t i = kBlocks - 1; i >= 0; --i) {
    std::vector<uint8_t> got(bytes);
    gpu->read_kv_block(i, got.data());
    EXPECT_EQ(got, blocks[static_cast<size_t>(i)]) << "block " << i;  // neighbours untouched too
  }
}

TEST(CudaKvTransfer, Q8BlocksAreTheCpuQuantizersBytesAndRestoreExactly) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(0);
  // 3 kv heads of 64: a row of 192 int8 values + 6 f16 scales = 204 bytes, padded to 208.
  const int32_t kv_heads = 3, heads = 6;
  const KvCacheConfig kv{kLayers, kBlocks, kBs, kv_heads, kHeadDim, DType::Q8_0};
  cpu->init_kv_cache(kv);
  gpu->init_kv_cache(kv);
  EXPECT_EQ(kv_row_bytes(kv), 208);
  const auto bytes = static_cast<size_t>(kv_block_bytes(kv));
  ASSERT_EQ(bytes, size_t{2} * kLayers * kBs * 208);

  std::mt19937 rng(9);
  const int32_t n = kBs + 5;  // a full block and part of the next
  const int64_t kvd = kv_heads * kHeadDim;
  const StepBatch step = one_sequence({4, 1}, n);
  cpu->begin_step(step), gpu->begin_step(step);
  for (int32_t layer = 0; layer < kLayers; ++layer) {
    // Values of very different sizes per group (scales from 1e-3 to 30) and exact zeros.
    auto k = random_vector(static_cast<size_t>(n * kvd), rng), v = random_vector(static_cast<size_t>(n * kvd), rng);
    for (size_t i = 0; i < k.size(); ++i) k[i] *= std::pow(10.0f, static_cast<float>((i / 32) % 5) - 3.0f) * 3;
    std::fill(v.begin() + 64, v.begin() + 96, 0.0f);
    cpu->kv_store(layer, make_tensor(*cpu, k, {n, kvd}), make_tensor(*cpu, v, {n, kvd}));
    gpu->kv_store(layer, make_tensor(*gpu, k, {n, kvd}), make_tensor(*gpu, v, {n, kvd}));
  }
  for (int32_t block : {4, 1}) {
    std::vector<uint8_t> from_cpu(bytes), from_gpu(bytes, 0xAB);
    cpu->read_kv_block(block, from_cpu.data());
    gpu->read_kv_block(block, from_gpu.data());
    EXPECT_EQ(from_cpu, from_gpu) << "block " << block;
  }

  std::vector<uint8_t> saved(bytes);
  gpu->read_kv_block(4, saved.data());
  gpu->write_kv_block(6, saved.data());
  gpu->copy_kv_block(1, 7);
  std::vector<uint8_t> back(bytes), copied(bytes), original(bytes);
  gpu->read_kv_block(6, back.data());
  gpu->read_kv_block(7, copied.data());
  gpu->read_kv_block(1, original.data());
  EXPECT_EQ(back, saved);
  EXPECT_EQ(copied, original);
  const auto q = random_vector(static_cast<size_t>(n * heads * kHeadDim), rng);
  auto attend = [&](const std::vector<int32_t>& table) {
    gpu->begin_step(one_sequence(table, n));
    Tensor out = make_output(*gpu, {n, heads * kHeadDim});
    gpu->attention(out, make_tensor(*gpu, q, {n, heads * kHeadDim}), 1, heads, 0.125f);
    return read(*gpu, out);
  };
  EXPECT_EQ(attend({6, 7}), attend({4, 1}));
}

}  // namespace
}  // namespace hearth::test
