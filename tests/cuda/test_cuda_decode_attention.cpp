// The tensor-core decode attention kernel (decode_attention.cu) against the CPU backend.
// The GPU backend is made with HEARTH_CUDA_DECODE_ATTN=2, so every step of at most 64
// tokens, one or two a sequence, takes that kernel on any card (single tokens too), and
// the test checks that it ran (decode_attention_launches).
//
// Each case fills a cache through kv_store with the prompts of B sequences (1, 3, 8, 32, 33)
// whose contexts cycle through 1, 17, 577 and 2049 positions (not multiples of the 16-key
// tile, nor of the blocks), in shuffled blocks, then runs decode steps: one token a
// sequence with the o_proj-like product after it (whose 8-bit input quantization the
// backend fuses into the attention launch: out_q), the same step without the product, and
// a step of two tokens a sequence (one for a sequence at its first position). Small
// batches (blocks of 4 warps would fill at most half the multiprocessors: one sequence,
// or a few with few kv heads) take the kernel's 8-warp blocks, the others its 4-warp
// blocks (HEARTH_CUDA_DECODE_WARPS=4|8 forces one for every batch). Shapes: GQA
// groups of 1, 4, 8 and 16 heads, head_dim 64 and 128, f16 and q8_0 caches, blocks of 16
// and 32 positions.
//
// Bounds (max |gpu - cpu| over max |cpu|): 4e-3, as the flash kernel's: keys, values and
// probabilities are rounded to f16 once (an 8-bit cache holds the same bytes on both
// backends; the GPU rounds their dequantized values to f16). The product: each element
// against the exact product with the CPU's output (check_matmul, 6e-2 as for the f16 cache
// in test_cuda_attention.cpp).
#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "backend/cuda/ops.h"
#include "cuda_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

struct DecodeCase {
  int64_t n_heads, n_kv_heads, head_dim;
  DType kv_dtype;
  int32_t block_size = 16;
};

constexpr int32_t kContexts[] = {1, 17, 577, 2049};
constexpr int64_t kBatches[] = {1, 3, 8, 32, 33};
constexpr int kRounds[] = {0, 3};  // sequence s of a batch has context kContexts[(s + round) % 4]

int32_t context_of(size_t s, int round) { return kContexts[(s + static_cast<size_t>(round)) % 4]; }

// Prompt keys and values need no statistics, only variety: a fast generator fills them.
std::vector<float> quick_values(size_t n, uint64_t& state) {
  std::vector<float> v(n);
  for (auto& x : v) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    x = static_cast<float>(static_cast<int64_t>(state >> 40) - (int64_t{1} << 23)) * (1.7f / (1 << 23));
  }
  return v;
}

class CudaDecodeAttention : public ::testing::TestWithParam<DecodeCase> {
 protected:
  void SetUp() override {
    HEARTH_SKIP_WITHOUT_CUDA();
    const auto& c = GetParam();
    cpu = make_cpu_backend(8);
    setenv("HEARTH_CUDA_DECODE_ATTN", "2", 1);
    gpu = make_cuda_backend(0);
    unsetenv("HEARTH_CUDA_DECODE_ATTN");
    int32_t n_blocks = 0;  // the largest batch's blocks
    for (int round : kRounds)
      for (int64_t b : kBatches) {
        int32_t need = 0;
        for (size_t s = 0; s < static_cast<size_t>(b); ++s) need += (context_of(s, round) + c.block_size) / c.block_size;
        n_blocks = std::max(n_blocks, need);
      }
    KvCacheConfig kv{1, n_blocks, c.block_size, static_cast<int32_t>(c.n_kv_heads), static_cast<int32_t>(c.head_dim),
                     c.kv_dtype == DType::Q8_0 ? DType::Q8_0 : DType::F32};
    cpu->init_kv_cache(kv);
    kv.dtype = c.kv_dtype;
    gpu->init_kv_cache(kv);
    ids.resize(static_cast<size_t>(n_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
  }

  // One step: `counts[s]` tokens of sequence s ending at position ends[s] - 1 (count 0:
  // not in the step); stores their keys and values. With `check`, compares the attention
  // of random queries (and, with `product`, the o_proj-like product of its output).
  void step(const std::vector<int32_t>& ends, const std::vector<int32_t>& counts, bool check, bool product,
            const std::string& what) {
    const auto& c = GetParam();
    StepBatch batch;
    for (size_t s = 0; s < tables.size(); ++s) {
      if (counts[s] == 0) continue;
      StepSequence seq;
      seq.block_table = tables[s];
      seq.n_ctx = ends[s];
      batch.seqs.push_back(seq);
      for (int32_t pos = ends[s] - counts[s]; pos < ends[s]; ++pos) {
        batch.tokens.push_back(0);
        batch.positions.push_back(pos);
        batch.seq_of.push_back(static_cast<int32_t>(batch.seqs.size() - 1));
        const int32_t bs = c.block_size;
        batch.slots.push_back(static_cast<int64_t>(tables[s][static_cast<size_t>(pos / bs)]) * bs + pos % bs);
      }
    }
    const int64_t n = batch.n_tokens(), qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    if (n == 0) return;
    cpu->begin_step(batch), gpu->begin_step(batch);
    const auto k = check ? random_vector(static_cast<size_t>(n * kvd), rng) : quick_values(static_cast<size_t>(n * kvd), state);
    const auto v = check ? random_vector(static_cast<size_t>(n * kvd), rng) : quick_values(static_cast<size_t>(n * kvd), state);
    Tensor kc = make_tensor(*cpu, k, {n, kvd}), kg = make_tensor(*gpu, k, {n, kvd});
    Tensor vc = make_tensor(*cpu, v, {n, kvd}), vg = make_tensor(*gpu, v, {n, kvd});
    cpu->kv_store(0, kc, vc), gpu->kv_store(0, kg, vg);
    if (!check) return;
    const auto q = random_vector(static_cast<size_t>(n * qd), rng);
    Tensor qc = make_tensor(*cpu, q, {n, qd}), qg = make_tensor(*gpu, q, {n, qd});
    Tensor oc = make_output(*cpu, {n, qd}), og = make_output(*gpu, {n, qd});
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    cpu->attention(oc, qc, 0, c.n_heads, scale), gpu->attention(og, qg, 0, c.n_heads, scale);
    Tensor pg = make_output(*gpu, {n, 37});
    if (product) gpu->matmul(pg, og, proj.get(*gpu, qd, rng));
    const auto want = read(*cpu, oc);
    expect_close(read(*gpu, og), want, 4e-3, what);
    if (product) check_matmul(read(*gpu, pg), proj.host.w, want, n, 6e-2, false, what + " (product)");
  }

  ProjectionWeight proj;  // o_proj-like product of the attention output
  std::unique_ptr<Backend> cpu, gpu;
  std::vector<int32_t> ids;
  std::vector<std::vector<int32_t>> tables;
  std::mt19937 rng{11};
  uint64_t state = 0x9e3779b97f4a7c15ull;
};

TEST_P(CudaDecodeAttention, BatchesAndContexts) {
  const auto& c = GetParam();
  const int64_t launches = cuda::decode_attention_launches();
  for (int round : kRounds) {
    for (int64_t b : kBatches) {
      // Tables from the shuffled ids, each with room for its context.
      tables.clear();
      std::vector<int32_t> ctx, prompt, ones, twos;
      size_t next = 0;
      for (size_t s = 0; s < static_cast<size_t>(b); ++s) {
        ctx.push_back(context_of(s, round));
        const size_t blocks = static_cast<size_t>((ctx.back() + c.block_size) / c.block_size);
        tables.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(next),
                            ids.begin() + static_cast<std::ptrdiff_t>(next + blocks));
        next += blocks;
        prompt.push_back(ctx.back() - 1);
        ones.push_back(1);
        twos.push_back(ctx.back() >= 2 ? 2 : 1);
      }
      const std::string at = std::to_string(b) + " sequences, round " + std::to_string(round);
      step(prompt, prompt, false, false, "prompts");
      step(ctx, ones, true, true, "decode with product, " + at);
      step(ctx, ones, true, false, "decode without product, " + at);
      step(ctx, twos, true, b <= 8, "two tokens a sequence, " + at);
    }
  }
  EXPECT_GT(cuda::decode_attention_launches(), launches) << "the decode kernel never ran";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaDecodeAttention,
    ::testing::Values(DecodeCase{4, 4, 64, DType::F16}, DecodeCase{8, 2, 128, DType::F16},
                      DecodeCase{16, 2, 128, DType::F16}, DecodeCase{32, 8, 128, DType::F16},
                      DecodeCase{8, 1, 64, DType::F16}, DecodeCase{16, 1, 128, DType::F16},
                      DecodeCase{8, 2, 64, DType::F16, 32}, DecodeCase{4, 4, 64, DType::Q8_0},
                      DecodeCase{8, 2, 128, DType::Q8_0}, DecodeCase{32, 8, 128, DType::Q8_0},
                      DecodeCase{16, 2, 64, DType::Q8_0}, DecodeCase{16, 1, 128, DType::Q8_0, 32}));

}  // namespace
