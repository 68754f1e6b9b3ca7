// Paged attention and the KV cache on the CUDA backend against the CPU backend: several
// sequences packed in one step with shuffled block tables, a prompt step, decode steps
// (split over keys, recorded as CUDA graphs), a 1000-key context, GQA groups of 1, 3, 4
// and 8 heads, head_dim 32 to 256, f32 and f16 caches, blocks of 8, 16 and 32 positions,
// and copy_kv_block. Steps of more than 8 tokens with an f16 cache run the tensor-core
// kernel (flash_attention.cu), in both of its row tilings: prompts of lengths around its
// query tiles (8 to 128 tokens by the group and tiling), prompts continuing a cached
// prefix, sequences of different lengths packed in one step with a decode token, and a
// 2000-token prompt.
// An 8-bit (q8_0) cache is compared with the CPU backend's 8-bit cache: both hold the same
// bytes (test_cuda_kv checks it), so the difference is only arithmetic: the per-token
// kernel dequantizes exactly in f32 (as f32: 1e-5); the tensor-core kernels (flash, and
// decode_attention.cu for decode steps on sm_90) round the dequantized values to
// f16 (one rounding, as the f16 cache: 4e-3). What 8 bits cost
// against f32 is bounded from the quantization error in tests/backend/test_kv_q8.cpp.
// Bounds (max |gpu - cpu| over max |cpu|): f32 cache 1e-5, f16 cache 4e-3. Decode steps
// also multiply the output by a q8_0 weight (the fused quantization of o_proj's input),
// checked per element against the exact product with the CPU's output (check_matmul).
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <numeric>

#include "cuda_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

struct AttnCase {
  int64_t n_heads, n_kv_heads, head_dim;
  DType kv_dtype;
  int32_t block_size = 16;  // KV cache positions per block
};

class CudaAttention : public ::testing::TestWithParam<AttnCase> {
 protected:
  void SetUp() override {
    HEARTH_SKIP_WITHOUT_CUDA();
    cpu = make_cpu_backend(8);
    gpu = make_cuda_backend(0);
    const auto& c = GetParam();
    per16 = c.block_size < 16 ? 16 / c.block_size : 1;
    const auto n_blocks = static_cast<int32_t>(kBlocks16 * per16);
    KvCacheConfig kv{2, n_blocks, c.block_size, static_cast<int32_t>(c.n_kv_heads), static_cast<int32_t>(c.head_dim),
                     c.kv_dtype == DType::Q8_0 ? DType::Q8_0 : DType::F32};
    cpu->init_kv_cache(kv);
    kv.dtype = c.kv_dtype;
    gpu->init_kv_cache(kv);
    gpu_kv = kv;
    ids.resize(static_cast<size_t>(n_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
  }

  // Block table of a sequence with room for 16 * n positions, from the shuffled ids: the
  // units [first, first + n) of 16 positions (blocks of more than 16 leave room unused).
  std::vector<int32_t> table(size_t first, size_t n) {
    const auto at = [&](size_t unit) { return ids.begin() + static_cast<std::ptrdiff_t>(unit * per16); };
    return {at(first), at(first + n)};
  }

  // Runs positions [start, start + count) of each sequence (tables given) as one step:
  // stores random keys/values in layer 1 and compares the attention of random queries.
  void run(const std::vector<std::vector<int32_t>>& tables, const std::vector<int32_t>& starts,
           const std::vector<int32_t>& counts, const std::string& what) {
    const auto& c = GetParam();
    StepBatch batch;
    for (size_t s = 0; s < tables.size(); ++s) {
      StepSequence seq;
      seq.block_table = tables[s];
      seq.n_ctx = starts[s] + counts[s];
      batch.seqs.push_back(seq);
      for (int32_t i = 0; i < counts[s]; ++i) {
        const int32_t pos = starts[s] + i;
        batch.tokens.push_back(0);
        batch.positions.push_back(pos);
        batch.seq_of.push_back(static_cast<int32_t>(s));
        const int32_t bs = c.block_size;
        batch.slots.push_back(static_cast<int64_t>(tables[s][static_cast<size_t>(pos / bs)]) * bs + pos % bs);
      }
    }
    const int64_t n = batch.n_tokens(), qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    cpu->begin_step(batch), gpu->begin_step(batch);
    const auto q = random_vector(static_cast<size_t>(n * qd), rng), k = random_vector(static_cast<size_t>(n * kvd), rng),
               v = random_vector(static_cast<size_t>(n * kvd), rng);
    Tensor kc = make_tensor(*cpu, k, {n, kvd}), kg = make_tensor(*gpu, k, {n, kvd});
    Tensor vc = make_tensor(*cpu, v, {n, kvd}), vg = make_tensor(*gpu, v, {n, kvd});
    Tensor qc = make_tensor(*cpu, q, {n, qd}), qg = make_tensor(*gpu, q, {n, qd});
    Tensor oc = make_output(*cpu, {n, qd}), og = make_output(*gpu, {n, qd});
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    cpu->kv_store(1, kc, vc), gpu->kv_store(1, kg, vg);
    cpu->attention(oc, qc, 1, c.n_heads, scale), gpu->attention(og, qg, 1, c.n_heads, scale);
    // Decode steps: the o_proj-like product of the output, whose 8-bit quantization the
    // backend fuses into the attention launch; against the exact product of the CPU's
    // attention output (a q8_0 weight, the 5% bound of the matmul test).
    Tensor pg = make_output(*gpu, {n, 37});
    if (n <= 8) gpu->matmul(pg, og, proj.get(*gpu, qd, rng));
    // Steps of more than one token may read a q8_0 cache through f16 tiles (flash
    // attention; decode steps on sm_90, the decode kernel of decode_attention.cu).
    const bool f16_tiles = c.kv_dtype == DType::F16 || c.kv_dtype == DType::Q8_0;
    const double tol = f16_tiles ? 4e-3 : 1e-5;
    const auto want = read(*cpu, oc);
    expect_close(read(*gpu, og), want, tol, what);
    if (n <= 8) check_matmul(read(*gpu, pg), proj.host.w, want, n, f16_tiles ? 6e-2 : 5e-2, false, what + " (product)");
  }

  ProjectionWeight proj;  // o_proj-like product of the attention output

  static constexpr int32_t kBlocks16 = 192;  // units of 16 positions in the cache
  size_t per16 = 1;                           // blocks per unit
  std::unique_ptr<Backend> cpu, gpu;
  KvCacheConfig gpu_kv;
  std::vector<int32_t> ids;
  std::mt19937 rng{7};
};

TEST_P(CudaAttention, PromptDecodeLongContextAndCopy) {
  // Sequences A (3 blocks), B (1 block), C (63 blocks) in shuffled blocks.
  const auto ta = table(0, 3), tb = table(3, 1), tc = table(4, 64);
  run({ta, tb}, {0, 0}, {37, 5}, "prompt step of two sequences");
  run({ta, tb}, {37, 5}, {1, 1}, "decode step of two sequences");
  run({tb, ta}, {6, 38}, {1, 1}, "decode step, sequences swapped");
  run({tc}, {0}, {1000}, "1000-token prompt");
  run({tc}, {1000}, {1}, "decode at 1001 keys");
  run({tc, ta}, {1001, 39}, {3, 2}, "chunks of two sequences");
  // Copy-on-write: B's block copied to a fresh one, then B continues there.
  auto fresh = table(70, 1);  // B's 7 positions are all in its first block (of 8 or more)
  cpu->copy_kv_block(tb[0], fresh[0]), gpu->copy_kv_block(tb[0], fresh[0]);
  run({fresh}, {7}, {2}, "after copy_kv_block");
}

// With an f16 or q8_0 cache, once for each of the flash kernel's row tilings (64 and 128 query
// rows a block; the backend picks one by the step's size), on a fresh GPU backend each.
TEST_P(CudaAttention, PromptsPrefixesAndPackedSequences) {
  for (const char* row_tiles : {"1", "2"}) {
    if (GetParam().kv_dtype == DType::F16 || GetParam().kv_dtype == DType::Q8_0) {
      setenv("HEARTH_CUDA_FLASH_TILES", row_tiles, 1);
      gpu = make_cuda_backend(0);
      unsetenv("HEARTH_CUDA_FLASH_TILES");
      gpu->init_kv_cache(gpu_kv);
      proj.reset();  // the o_proj-like weight is uploaded again to the new backend
    } else if (row_tiles[0] == '2') {
      break;  // the per-token kernel only
    }
    const std::string tiling = std::string(", row tiles ") + row_tiles;
    for (int32_t len : {9, 15, 17, 31, 33, 63, 64, 65, 127, 129, 300})
      run({table(0, static_cast<size_t>((len + 15) / 16))}, {0}, {len},
          "prompt of " + std::to_string(len) + " tokens" + tiling);
    const auto tp = table(0, 40);
    run({tp}, {0}, {250}, "250-token prefix" + tiling);
    run({tp}, {250}, {123}, "prompt continuing a 250-token prefix" + tiling);
    run({tp}, {373}, {9}, "9 more tokens" + tiling);
    // Four sequences of different lengths, one continuing its prefix, one decoding.
    const auto ta = table(40, 3), tb = table(43, 5), tc = table(48, 1);
    run({ta, tp, tb, tc}, {0, 382, 0, 0}, {37, 30, 70, 1}, "four sequences in one step" + tiling);
    run({tc, tb, ta}, {1, 70, 37}, {14, 1, 11}, "three sequences continuing, one decoding" + tiling);
    run({table(50, 125)}, {0}, {2000}, "2000-token prompt" + tiling);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttnCase{4, 4, 64, DType::F32}, AttnCase{8, 2, 128, DType::F32},
                                           AttnCase{8, 2, 128, DType::F16}, AttnCase{16, 2, 64, DType::F16},
                                           AttnCase{6, 2, 32, DType::F32}, AttnCase{2, 1, 256, DType::F16},
                                           AttnCase{4, 4, 64, DType::F16}, AttnCase{8, 1, 128, DType::F16},
                                           AttnCase{6, 2, 128, DType::F16}, AttnCase{32, 8, 128, DType::F16},
                                           AttnCase{16, 4, 128, DType::F16, 32}, AttnCase{8, 2, 64, DType::F16, 8},
                                           AttnCase{8, 2, 128, DType::Q8_0}, AttnCase{16, 2, 64, DType::Q8_0},
                                           AttnCase{6, 2, 32, DType::Q8_0}, AttnCase{2, 1, 256, DType::Q8_0},
                                           AttnCase{32, 8, 128, DType::Q8_0}, AttnCase{16, 4, 128, DType::Q8_0, 32},
                                           AttnCase{8, 2, 64, DType::Q8_0, 8}, AttnCase{4, 4, 64, DType::Q8_0}));

}  // namespace
