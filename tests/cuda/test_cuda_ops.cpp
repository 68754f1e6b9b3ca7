// Every CUDA backend op against the CPU backend, on fresh random inputs at several sizes,
// including token and row counts that fill no tile (1, 3, 5, 9, 33, 65 tokens; 67 rows) and
// every weight type the CUDA backend uploads. Skips itself without a GPU.
//
// Bounds: matmul per element, see check_matmul; the other ops as max |gpu - cpu| over
// max |cpu|: attention over an f32 cache 1e-5, over an f16 cache 4e-3 (the attention
// test); RMSNorm and RoPE 1e-5; embedding rows 1e-6; elementwise ops 1e-5.
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>

#include "backend/cuda/ops.h"
#include "cuda_test_util.h"
#include "quant/quant.h"

using namespace hearth;
using namespace hearth::test;

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    HEARTH_SKIP_WITHOUT_CUDA();
    cpu = make_cpu_backend(2);
    gpu = make_cuda_backend(0);
  }
  // A step of n tokens of one sequence at positions start.. (a KV cache of 1 layer is made
  // if none fits), so ops run as they do in a forward pass: recorded and replayed as a
  // CUDA graph for n <= 8.
  void step(int64_t n, int32_t start = 0) {
    const int32_t blocks = (start + static_cast<int32_t>(n) + 15) / 16 + 1;
    if (kv_blocks < blocks) {
      KvCacheConfig kv{1, blocks, 16, 1, 32, DType::F32};
      cpu->init_kv_cache(kv), gpu->init_kv_cache(kv);
      kv_blocks = blocks;
    }
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    std::iota(tokens.begin(), tokens.end(), 0);
    const auto batch = StepBatch::single(tokens, start, 16, true);
    cpu->begin_step(batch), gpu->begin_step(batch);
  }
  std::unique_ptr<Backend> cpu, gpu;
  int32_t kv_blocks = 0;
  std::mt19937 rng{42};
};

const WeightSpec kSpecs[] = {
    {"f32", DType::F32, 96},  {"f32 odd", DType::F32, 37}, {"f16", DType::F16, 96},   {"f16 odd", DType::F16, 45},
    {"bf16", DType::BF16, 96}, {"q4_0", DType::Q4_0, 160},  {"q8_0", DType::Q8_0, 160}, {"q4_K", DType::Q4_K, 512},
    {"q5_K", DType::Q5_K, 512}, {"q6_K", DType::Q6_K, 768},  {"mlx4 g64", DType::MLX_AFFINE, 256, 4, 64},
    {"mlx4 g32", DType::MLX_AFFINE, 96, 4, 32}, {"mlx8 g128", DType::MLX_AFFINE, 256, 8, 128},
};

TEST_F(CudaOps, MatmulEveryTypeAndSize) {
  for (const auto& spec : kSpecs) {
    for (int64_t rows : {1, 67, 1000}) {
      const HostWeight w1 = make_weight(spec, rows, rng), w2 = make_weight(spec, 5, rng);
      const Weight g1 = gpu->upload_weight(w1.w), g2 = gpu->upload_weight(w2.w);
      for (int64_t n : {1, 2, 3, 5, 8, 9, 16, 33, 64, 65}) {
        const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng);
        step(n);
        Tensor xg = make_tensor(*gpu, x, {n, spec.cols});
        Tensor og1 = make_output(*gpu, {n, rows}), og2 = make_output(*gpu, {n, 5});
        // Two products of one input: the second reuses the quantized activations (and, in
        // a recorded step, is merged into the first launch).
        gpu->matmul(og1, xg, g1), gpu->matmul(og2, xg, g2);
        // Quantized weights up to 64 tokens: int8 activations (dp4a or the tensor-core
        // products of mma.cu); beyond, or float weights past 8 tokens: f16 through cuBLAS.
        const bool exact = spec.type == DType::F32 || (n <= 8 && is_float(spec.type));
        const bool int8 = !is_float(spec.type) && n <= 64;
        const double tol = exact ? 1e-5 : int8 ? 5e-2 : 5e-3;
        const std::string what = std::string(spec.name) + " rows " + std::to_string(rows) + " n " + std::to_string(n);
        check_matmul(read(*gpu, og1), w1.w, x, n, tol, exact, what);
        check_matmul(read(*gpu, og2), w2.w, x, n, tol, exact, what + " (second product)");
      }
    }
  }
}

// Decode-sized products: rows enough that blocks loop over several row groups (the grid
// is what fits on the GPU at once), rows long enough that threads loop over several
// rounds of units (q4_K long: 272 units for 128 threads loading 2 at a time),
// row lengths with a partial last 128-byte row of staged activations, and one token
// (activations staged in shared memory) next to two (read from global memory). Three
// weights of one input are merged into one launch, as q/k/v are. One token streams these
// weights (matmul_stream.cu, sm_90): rows whose bytes are not 16-byte multiples (copied
// with the aligned bytes around them), rows split into 2-4 chunks, and MLX scales and
// biases streamed beside their rows.
TEST_F(CudaOps, MatmulDecodeShapes) {
  struct Shape {
    WeightSpec spec;
    int64_t rows;
  };
  const Shape shapes[] = {
      {{"q4_0", DType::Q4_0, 2080}, 5003},  {{"q4_0 long", DType::Q4_0, 9600}, 301},
      {{"q4_K", DType::Q4_K, 2304}, 6001},  {{"q4_K long", DType::Q4_K, 17408}, 301},
      {{"q5_K", DType::Q5_K, 2304}, 3001},  {{"q6_K", DType::Q6_K, 9984}, 523},
      {{"q8_0", DType::Q8_0, 1056}, 4099},  {{"mlx4 g64", DType::MLX_AFFINE, 2048, 4, 64}, 6001},
      {{"mlx4 g32", DType::MLX_AFFINE, 1024, 4, 32}, 2001}, {{"mlx8 g64", DType::MLX_AFFINE, 4096, 8, 64}, 1003},
      // One chunk a row with the activations in registers, or 2-4 chunks a row (q6_K
      // 12288: 3) gathering them from shared memory.
      {{"q4_0 4096", DType::Q4_0, 4096}, 3001}, {{"q4_0 12288", DType::Q4_0, 12288}, 777},
      {{"q6_K 4096", DType::Q6_K, 4096}, 2999}, {{"q6_K 12288", DType::Q6_K, 12288}, 515},
      {{"q8_0 4096", DType::Q8_0, 4096}, 1001}, {{"mlx4 g64 12288", DType::MLX_AFFINE, 12288, 4, 64}, 333},
  };
  for (const auto& sh : shapes) {
    const WeightSpec& spec = sh.spec;
    const HostWeight w1 = make_weight(spec, sh.rows, rng), w2 = make_weight(spec, 96, rng),
                     w3 = make_weight(spec, 200, rng);
    const Weight g1 = gpu->upload_weight(w1.w), g2 = gpu->upload_weight(w2.w), g3 = gpu->upload_weight(w3.w);
    for (int64_t n : {1, 2}) {
      const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng);
      step(n);
      Tensor xg = make_tensor(*gpu, x, {n, spec.cols});
      Tensor o1 = make_output(*gpu, {n, sh.rows}), o2 = make_output(*gpu, {n, 96}), o3 = make_output(*gpu, {n, 200});
      gpu->matmul(o1, xg, g1), gpu->matmul(o2, xg, g2), gpu->matmul(o3, xg, g3);
      const std::string what = std::string(spec.name) + " " + std::to_string(sh.rows) + "x" +
                               std::to_string(spec.cols) + " n " + std::to_string(n);
      check_matmul(read(*gpu, o1), w1.w, x, n, 5e-2, false, what);
      check_matmul(read(*gpu, o2), w2.w, x, n, 5e-2, false, what + " (second)");
      check_matmul(read(*gpu, o3), w3.w, x, n, 5e-2, false, what + " (third)");
    }
  }
}

// A one-token decode layer's pattern, recorded and replayed: norm -> products of the
// normed row (two merged, one of another type after them: a pair launch for Q4_K/Q5_K then
// Q6_K, GemvPairParams) -> a product added into the
// residual -> norm -> product. The one-token product takes the add into its rows
// (backend_cuda_fuse.cpp; an add launch after it where the stream kernel does not apply).
// Each output against host references: the norms in double, the products by check_matmul
// from the reference norm, the residual exactly from the product the GPU returned.
TEST_F(CudaOps, DecodeResidualFusion) {
  struct Case {
    DType type, other;
    int64_t dim, rows;
  };
  // rows: the first product's, also the columns of the one added into the residual.
  const Case cases[] = {{DType::Q4_K, DType::Q6_K, 4096, 1536}, {DType::Q4_0, DType::Q8_0, 2080, 1056},
                        {DType::Q6_K, DType::Q4_K, 2304, 3072}, {DType::Q8_0, DType::Q4_0, 8448, 544},
                        {DType::MLX_AFFINE, DType::Q4_K, 1024, 768},
                        // pair launches (GemvPairParams): rows of one chunk each; one and
                        // several chunks (Q6_K at 5120); several chunks each (8448)
                        {DType::Q5_K, DType::Q6_K, 5120, 1280}, {DType::Q4_K, DType::Q6_K, 8448, 768}};
  const auto host_norm = [](const std::vector<float>& x, const std::vector<float>& w, float eps) {
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(x[i] * inv * w[i]);
    return y;
  };
  const int64_t fused_before = cuda::gemv_residual_launches(), pairs_before = cuda::gemv_pair_launches();
  for (const auto& c : cases) {
    const int64_t d = c.dim;
    const int bits = c.type == DType::MLX_AFFINE ? 4 : 0, group = c.type == DType::MLX_AFFINE ? 64 : 0;
    const WeightSpec spec{"main", c.type, d, bits, group}, other{"other", c.other, d},
        back{"back", c.type, c.rows, bits, group};
    const HostWeight wa = make_weight(spec, c.rows, rng), wb = make_weight(spec, 67, rng),
                     wc = make_weight(other, 300, rng), wo = make_weight(back, d, rng),
                     wd = make_weight(spec, 777, rng);
    const Weight ga = gpu->upload_weight(wa.w), gb = gpu->upload_weight(wb.w), gc = gpu->upload_weight(wc.w),
                 go = gpu->upload_weight(wo.w), gd = gpu->upload_weight(wd.w);
    const auto x0 = random_vector(static_cast<size_t>(d), rng, 3.0f);
    const auto n1 = random_vector(static_cast<size_t>(d), rng), n2 = random_vector(static_cast<size_t>(d), rng);
    for (int round = 0; round < 2; ++round) {  // the second replays the recorded graph
      step(1, round);
      Tensor x = make_tensor(*gpu, x0, {1, d}), w1 = make_tensor(*gpu, n1, {d}), w2 = make_tensor(*gpu, n2, {d});
      Tensor xn1 = make_output(*gpu, {1, d}), xn2 = make_output(*gpu, {1, d}), t = make_output(*gpu, {1, d});
      Tensor a = make_output(*gpu, {1, c.rows}), b = make_output(*gpu, {1, 67}), o = make_output(*gpu, {1, 300}),
             e = make_output(*gpu, {1, 777});
      gpu->rms_norm(xn1, x, w1, 1e-6f);
      gpu->matmul(a, xn1, ga), gpu->matmul(b, xn1, gb), gpu->matmul(o, xn1, gc);
      gpu->matmul(t, a, go);
      gpu->add(x, x, t);
      gpu->rms_norm(xn2, x, w2, 1e-6f);
      gpu->matmul(e, xn2, gd);
      const std::string what =
          std::string(dtype_name(c.type)) + " " + std::to_string(d) + " round " + std::to_string(round);
      const auto ref1 = host_norm(x0, n1, 1e-6f);
      expect_close(read(*gpu, xn1), ref1, 1e-5, what + ": first norm");
      const auto a_got = read(*gpu, a), t_got = read(*gpu, t);
      check_matmul(a_got, wa.w, ref1, 1, 5e-2, false, what + ": a");
      check_matmul(read(*gpu, b), wb.w, ref1, 1, 5e-2, false, what + ": b (merged)");
      check_matmul(read(*gpu, o), wc.w, ref1, 1, 5e-2, false, what + ": other type (a pair launch or separate)");
      check_matmul(t_got, wo.w, a_got, 1, 5e-2, false, what + ": product added into the residual");
      std::vector<float> x1(x0.size());
      for (size_t i = 0; i < x1.size(); ++i) x1[i] = x0[i] + t_got[i];
      expect_close(read(*gpu, x), x1, 1e-6, what + ": residual");
      const auto ref2 = host_norm(x1, n2, 1e-6f);
      expect_close(read(*gpu, xn2), ref2, 1e-5, what + ": second norm");
      check_matmul(read(*gpu, e), wd.w, ref2, 1, 5e-2, false, what + ": after the second norm");
    }
  }
  // Unless a fusion is switched off (HEARTH_CUDA_FUSE*, the backend's switches).
  if (cuda::gemv_stream_on() && !switched_off("HEARTH_CUDA_FUSE")) {
    if (!switched_off("HEARTH_CUDA_FUSE_RESIDUAL")) {
      EXPECT_GT(cuda::gemv_residual_launches(), fused_before) << "no product took the residual add";
    }
    // Q4_K then Q6_K: the merged products and the other type's in one pair launch.
    if (!switched_off("HEARTH_CUDA_FUSE_PAIR")) {
      EXPECT_GT(cuda::gemv_pair_launches(), pairs_before) << "no pair launch";
    }
  }
}

TEST_F(CudaOps, RmsNormRowsAndHeads) {
  for (int64_t rows : {1, 7, 33})
    for (int64_t dim : {64, 1000, 2048, 4096, 8192, 9000}) {
      const auto x = random_vector(static_cast<size_t>(rows * dim), rng, 3.0f);
      const auto w = random_vector(static_cast<size_t>(dim), rng);
      Tensor xc = make_tensor(*cpu, x, {rows, dim}), xg = make_tensor(*gpu, x, {rows, dim});
      Tensor wc = make_tensor(*cpu, w, {dim}), wg = make_tensor(*gpu, w, {dim});
      Tensor oc = make_output(*cpu, {rows, dim}), og = make_output(*gpu, {rows, dim});
      cpu->rms_norm(oc, xc, wc, 1e-6f), gpu->rms_norm(og, xg, wg, 1e-6f);
      expect_close(read(*gpu, og), read(*cpu, oc), 1e-5, "rms_norm " + std::to_string(rows) + "x" + std::to_string(dim));
      cpu->rms_norm(xc, xc, wc, 1e-5f), gpu->rms_norm(xg, xg, wg, 1e-5f);  // in place
      expect_close(read(*gpu, xg), read(*cpu, xc), 1e-5, "rms_norm in place");
    }
}

TEST_F(CudaOps, RopeBothLayoutsAndPartialRotation) {
  for (bool neox : {true, false})
    for (int64_t hd : {64, 128})
      for (int64_t n : {1, 5, 19}) {
        RopeTable table;
        table.neox = neox;
        table.attn_factor = 0.9f;
        const int64_t half = hd == 64 ? 32 : 48;  // 128: the last 32 dims pass through
        for (int64_t i = 0; i < half; ++i)
          table.inv_freq.push_back(static_cast<float>(std::pow(1e6, -static_cast<double>(i) / static_cast<double>(half))));
        step(n, 3000);
        const int64_t heads = 3;
        const auto x = random_vector(static_cast<size_t>(n * heads * hd), rng);
        Tensor xc = make_tensor(*cpu, x, {n, heads * hd}), xg = make_tensor(*gpu, x, {n, heads * hd});
        cpu->rope(xc, heads, hd, table), gpu->rope(xg, heads, hd, table);
        expect_close(read(*gpu, xg), read(*cpu, xc), 1e-5, "rope");
      }
}

TEST_F(CudaOps, EmbedEveryType) {
  for (const auto& spec : kSpecs) {
    const HostWeight table = make_weight(spec, 50, rng);
    const Weight gt = gpu->upload_weight(table.w);
    for (int64_t n : {1, 9}) {
      step(n);  // token ids 0..n-1
      Tensor oc = make_output(*cpu, {n, spec.cols}), og = make_output(*gpu, {n, spec.cols});
      cpu->embed(oc, table.w), gpu->embed(og, gt);
      expect_close(read(*gpu, og), read(*cpu, oc), 1e-6, std::string("embed ") + spec.name);
    }
  }
}

TEST_F(CudaOps, ElementwiseAndGather) {
  for (int64_t n : {1, 3, 1001}) {
    const int64_t cols = 67;
    const auto a = random_vector(static_cast<size_t>(n * cols), rng, 4.0f), b = random_vector(static_cast<size_t>(n * cols), rng);
    const auto bias = random_vector(static_cast<size_t>(cols), rng);
    Tensor ac = make_tensor(*cpu, a, {n, cols}), ag = make_tensor(*gpu, a, {n, cols});
    Tensor bc = make_tensor(*cpu, b, {n, cols}), bg = make_tensor(*gpu, b, {n, cols});
    Tensor oc = make_output(*cpu, {n, cols}), og = make_output(*gpu, {n, cols});
    cpu->swiglu(oc, ac, bc), gpu->swiglu(og, ag, bg);
    expect_close(read(*gpu, og), read(*cpu, oc), 1e-5, "swiglu");
    cpu->add(ac, ac, bc), gpu->add(ag, ag, bg);
    expect_close(read(*gpu, ag), read(*cpu, ac), 1e-6, "add in place");
    Tensor biasc = make_tensor(*cpu, bias, {cols}), biasg = make_tensor(*gpu, bias, {cols});
    cpu->add_bias(ac, biasc), gpu->add_bias(ag, biasg);
    expect_close(read(*gpu, ag), read(*cpu, ac), 1e-6, "add_bias");
  }
  // gather_logit_rows: every other row of a 9-token step, in order.
  StepBatch batch = StepBatch::single({1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, 16, false);
  batch.logit_rows = {0, 2, 4, 8};
  KvCacheConfig kv{1, 4, 16, 1, 32, DType::F32};
  cpu->init_kv_cache(kv), gpu->init_kv_cache(kv);
  kv_blocks = 4;
  cpu->begin_step(batch), gpu->begin_step(batch);
  const auto x = random_vector(9 * 33, rng);
  Tensor xc = make_tensor(*cpu, x, {9, 33}), xg = make_tensor(*gpu, x, {9, 33});
  Tensor oc = make_output(*cpu, {4, 33}), og = make_output(*gpu, {4, 33});
  cpu->gather_logit_rows(oc, xc), gpu->gather_logit_rows(og, xg);
  expect_close(read(*gpu, og), read(*cpu, oc), 0, "gather_logit_rows");
}

}  // namespace
