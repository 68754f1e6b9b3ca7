// The tensor-core products of batched decode (backend/cuda/mma.cu, and mma_f16.cu for
// Q4_0, Q8_0, Q4_K, Q5_K, Q6_K and MLX 4-bit), launched directly: every type they take; token counts
// from 1 to 64 (the backend uses 2..64), so the last tile of 8 tokens is partly padding;
// row counts that fill no 64- or 128-row block; rows of 32-element types that end inside
// a 256-element chunk; one K split and several, and rows long enough that a block loops
// over many chunks (more than the f16 kernel's ring holds). Skips itself without a GPU.
// With HEARTH_CUDA_MMA_F16=0 the same cases run on mma.cu's int8 kernel alone; the
// f16 kernel's cases check that it is the one taking them. Weights whose rows are 16-byte
// multiples take the f16 kernel's tensor-copy form (TensorCopies checks it ran; with
// HEARTH_CUDA_MMA_TMA=0 they keep the row-copy form, with HEARTH_CUDA_MMA_F16_B3=0 two
// blocks an SM). The tensor-copy form takes x's f16 copy (XHalf, checked value by value by
// XHalfCopy) from 17 tokens (kXHalfMinTokens); given none, such a launch keeps the row-copy
// form.
//
// Reference: the double-precision product of the dequantized weight (check_matmul) with
// the int8 activations' bound (5% of sqrt(sum of squared terms), as the dp4a products).
// Through the backend (CudaBackend::matmul, recorded steps) the same products are
// checked by test_cuda_ops' MatmulEveryTypeAndSize.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/ops.h"
#include "core/half.h"
#include "cuda_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

struct DeviceArray {
  void* p = nullptr;
  explicit DeviceArray(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(bytes, 16)), cudaSuccess); }
  ~DeviceArray() { cudaFree(p); }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

cuda::DevWeight dev_weight(const Weight& w) {
  cuda::DevWeight d{};
  d.data = static_cast<const uint8_t*>(w.data);
  d.scales = w.scales, d.biases = w.biases;
  d.rows = w.rows, d.cols = w.cols, d.row_bytes = w.row_bytes(), d.type = w.type;
  if (w.type == DType::MLX_AFFINE) {
    d.groups_per_row = w.cols / w.group_size;
    d.scale_kind = 1;  // make_weight's MLX scales are f16
    d.bits = w.bits, d.group_size = w.group_size;
  }
  return d;
}

class CudaMma : public ::testing::Test {
 protected:
  void SetUp() override {
    HEARTH_SKIP_WITHOUT_CUDA();
    gpu = make_cuda_backend(0);  // uploads weights; sets up the launch mode and the kernels
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  }
  void TearDown() override {
    if (stream) cudaStreamDestroy(stream);
  }

  // x [n, cols] on the device and quantized as a product's input: q, d, d * sum(q) and,
  // unless with_h is false, the f16 copy (XHalf), set into p by into().
  struct QuantizedX {
    DeviceArray x, q, d, s, h;
    bool with_h;
    QuantizedX(int64_t n, int64_t cols, bool h_too)
        : x(sizeof(float) * n * cols), q(n * cols), d(sizeof(float) * n * cols / 32), s(sizeof(float) * n * cols / 32),
          h(2 * cuda::x_half_elems(n, cols)), with_h(h_too) {}
    void into(cuda::MmaParams& p) const {
      p.xq = q.as<int8_t>(), p.xd = d.as<float>(), p.xs = s.as<float>(), p.xh = with_h ? h.as<uint16_t>() : nullptr;
    }
  };
  std::unique_ptr<QuantizedX> quantize(const std::vector<float>& x, int64_t n, int64_t cols, bool with_h = true) {
    auto qx = std::make_unique<QuantizedX>(n, cols, with_h);
    EXPECT_EQ(cudaMemcpy(qx->x.p, x.data(), sizeof(float) * n * cols, cudaMemcpyHostToDevice), cudaSuccess);
    cuda::QuantizeXParams qp{};
    qp.x = qx->x.as<float>(), qp.q = qx->q.as<int8_t>(), qp.d = qx->d.as<float>(), qp.s = qx->s.as<float>();
    qp.n = n, qp.cols = cols;
    if (with_h) qp.h = cuda::XHalf{qx->h.as<uint16_t>(), n, cols};
    cuda::launch_quantize_x(qp, stream);
    return qx;
  }

  // out = x @ w^T for n tokens through launch_mma with `splits` K splits; x's f16 copy
  // (XHalf) made and passed along unless with_h is false.
  std::vector<float> product(const Weight& w, const std::vector<float>& x, int64_t n, int32_t splits,
                             bool with_h = true) {
    return product(dev_weight(w), x, n, splits, with_h);
  }
  std::vector<float> product(const cuda::DevWeight& w, const std::vector<float>& x, int64_t n, int32_t splits,
                             bool with_h = true) {
    const int64_t rows = w.rows;
    DeviceArray out(sizeof(float) * n * rows), part(sizeof(float) * splits * n * rows);
    const auto qx = quantize(x, n, w.cols, with_h);
    std::vector<float> nan(static_cast<size_t>(n * rows), NAN);  // an element never written fails
    EXPECT_EQ(cudaMemcpy(out.p, nan.data(), sizeof(float) * n * rows, cudaMemcpyHostToDevice), cudaSuccess);
    cuda::MmaParams p{};
    p.w = w;
    qx->into(p);
    p.out = out.as<float>(), p.partial = part.as<float>();
    p.n = n, p.splits = splits;
    cuda::launch_mma(p, stream);
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<float> got(static_cast<size_t>(n * rows));
    EXPECT_EQ(cudaMemcpy(got.data(), out.p, sizeof(float) * n * rows, cudaMemcpyDeviceToHost), cudaSuccess);
    return got;
  }

  std::unique_ptr<Backend> gpu;
  cudaStream_t stream = nullptr;
  std::mt19937 rng{7};
};

const WeightSpec kTypes[] = {
    {"q4_0", DType::Q4_0, 2080},  // 8 chunks and one 32-block
    {"q8_0", DType::Q8_0, 416},   // 1 chunk and 5 blocks
    {"q4_K", DType::Q4_K, 2304},
    {"q5_K", DType::Q5_K, 768},
    {"q6_K", DType::Q6_K, 1536},
    {"mlx4 g64", DType::MLX_AFFINE, 1088, 4, 64},
    {"mlx4 g32", DType::MLX_AFFINE, 224, 4, 32},
    {"mlx8 g128", DType::MLX_AFFINE, 1280, 8, 128},
};

TEST_F(CudaMma, EveryTypeTokenCountAndSplit) {
  for (const auto& spec : kTypes) {
    for (int64_t rows : {1, 67, 300}) {
      const HostWeight hw = make_weight(spec, rows, rng);
      const Weight g = gpu->upload_weight(hw.w);
      const int32_t chunks = static_cast<int32_t>((spec.cols + 255) / 256);
      for (int64_t n : {1, 2, 3, 4, 5, 9, 16, 17, 20, 32, 33, 64}) {
        const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng);
        for (int32_t splits : {1, chunks, cuda::mma_splits(rows, spec.cols, 132 * 3)}) {
          const std::string what = std::string(spec.name) + " rows " + std::to_string(rows) + " n " +
                                   std::to_string(n) + " splits " + std::to_string(splits);
          check_matmul(product(g, x, n, splits), hw.w, x, n, 5e-2, false, what);
        }
      }
    }
  }
}

// Many rows and long rows: blocks loop over several chunks (the next ones' weights and
// activations in flight while one is multiplied), with and without K splits.
TEST_F(CudaMma, LongRows) {
  const WeightSpec specs[] = {{"q4_K", DType::Q4_K, 4096}, {"q6_K", DType::Q6_K, 3072}, {"q4_0", DType::Q4_0, 4128},
                              {"q5_K", DType::Q5_K, 2560}, {"q8_0", DType::Q8_0, 1568}};
  for (const auto& spec : specs) {
    const int64_t rows = 1000;
    const HostWeight hw = make_weight(spec, rows, rng);
    const Weight g = gpu->upload_weight(hw.w);
    for (int64_t n : {8, 12, 32, 40}) {
      const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng, 2.0f);
      for (int32_t splits : {1, 3, cuda::mma_plan_splits(dev_weight(g), n, 132)}) {
        const std::string what =
            std::string(spec.name) + " long n " + std::to_string(n) + " splits " + std::to_string(splits);
        check_matmul(product(g, x, n, splits), hw.w, x, n, 5e-2, false, what);
      }
    }
  }
}

// Two or three weights of one type in one launch (MmaParams' data2/data3, as the backend
// merges q/k/v and gate/up): each output against its own reference, row counts that
// leave the first weights' last tiles partly empty, with and without K splits.
TEST_F(CudaMma, MergedWeights) {
  if (!cuda::mma_f16_applies(dev_weight(gpu->upload_weight(make_weight(kTypes[2], 1, rng).w))))
    GTEST_SKIP() << "the f16 kernel is off (HEARTH_CUDA_MMA_F16=0) or not on this card";
  const WeightSpec specs[] = {{"q4_K", DType::Q4_K, 1024}, {"q6_K", DType::Q6_K, 768}, {"q4_0", DType::Q4_0, 608},
                              {"q8_0", DType::Q8_0, 256},  {"q5_K", DType::Q5_K, 512}, {"q6_K", DType::Q6_K, 2048},
                              {"mlx4 g64", DType::MLX_AFFINE, 768, 4, 64}};
  for (const auto& spec : specs) {
    const int64_t row_counts[3] = {300, 67, 129};
    std::vector<HostWeight> hw;
    std::vector<Weight> g;
    for (int64_t r : row_counts) hw.push_back(make_weight(spec, r, rng)), g.push_back(gpu->upload_weight(hw.back().w));
    if (!cuda::mma_f16_applies(dev_weight(g[0]))) continue;  // MLX without tensor copies: mma.cu merges nothing
    for (int parts : {2, 3})
      for (int64_t n : {5, 8, 20, 32, 64}) {
        const int64_t cols = spec.cols;
        const auto x = random_vector(static_cast<size_t>(n * cols), rng);
        const int32_t chunks = static_cast<int32_t>((cols + 255) / 256);
        for (int32_t splits : {1, chunks}) {
          DeviceArray part(sizeof(float) * splits * n * 500);
          std::vector<std::unique_ptr<DeviceArray>> outs;
          for (int k = 0; k < parts; ++k) {
            outs.push_back(std::make_unique<DeviceArray>(sizeof(float) * n * row_counts[k]));
            std::vector<float> nan(static_cast<size_t>(n * row_counts[k]), NAN);
            ASSERT_EQ(cudaMemcpy(outs[k]->p, nan.data(), 4 * nan.size(), cudaMemcpyHostToDevice), cudaSuccess);
          }
          const auto qx = quantize(x, n, cols);
          cuda::MmaParams p{};
          p.w = dev_weight(g[0]);
          qx->into(p);
          p.out = outs[0]->as<float>(), p.partial = part.as<float>(), p.n = n, p.splits = splits;
          p.data2 = static_cast<const uint8_t*>(g[1].data), p.out2 = outs[1]->as<float>(), p.rows2 = row_counts[1];
          p.scales2 = g[1].scales, p.biases2 = g[1].biases;
          if (parts == 3) {
            p.data3 = static_cast<const uint8_t*>(g[2].data), p.out3 = outs[2]->as<float>(), p.rows3 = row_counts[2];
            p.scales3 = g[2].scales, p.biases3 = g[2].biases;
          }
          cuda::launch_mma(p, stream);
          ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          for (int k = 0; k < parts; ++k) {
            std::vector<float> got(static_cast<size_t>(n * row_counts[k]));
            ASSERT_EQ(cudaMemcpy(got.data(), outs[k]->p, 4 * got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
            const std::string what = std::string(spec.name) + " merged " + std::to_string(parts) + " weight " +
                                     std::to_string(k) + " n " + std::to_string(n) + " splits " + std::to_string(splits);
            check_matmul(got, hw[k].w, x, n, 5e-2, false, what);
          }
        }
      }
  }
}

// SwiGLU after a merged gate/up product split in K (MmaParams::reduce_later,
// SwigluParams::partial, the backend's rule for batched decode): the product launches no
// reduce and the SwiGLU launch adds the splits itself. Gate, up, the output and its
// quantization (q, d, d * sum, the f16 copy) must be bit for bit those of the reduce
// launch followed by the plain SwiGLU, out of place and in place (out = gate, as the
// backend runs it), and the output silu(gate) * up of the gate and up it stored.
TEST_F(CudaMma, SwigluAddsTheSplits) {
  const WeightSpec specs[] = {{"q4_K", DType::Q4_K, 1024}, {"q6_K", DType::Q6_K, 768},
                              {"mlx4 g64", DType::MLX_AFFINE, 768, 4, 64}};
  const int64_t rows = 320;  // gate's and up's: not a whole 128-row tile, nor 256 columns of the f16 copy
  int cases = 0;
  for (const auto& spec : specs) {
    const HostWeight gate_w = make_weight(spec, rows, rng), up_w = make_weight(spec, rows, rng);
    const Weight gate_g = gpu->upload_weight(gate_w.w), up_g = gpu->upload_weight(up_w.w);
    if (!cuda::mma_f16_applies(dev_weight(gate_g))) continue;  // f16 kernel off: nothing merges
    const int64_t cols = spec.cols, chunks = (cols + 255) / 256;
    for (int64_t n : {5, 20, 32, 64})
      for (int32_t splits : {2, static_cast<int32_t>(chunks)})
        for (bool in_place : {false, true}) {
          const std::string what = std::string(spec.name) + " n " + std::to_string(n) + " splits " +
                                   std::to_string(splits) + (in_place ? " in place" : "");
          const auto x = random_vector(static_cast<size_t>(n * cols), rng);
          const int64_t count = n * rows, hn = cuda::x_half_elems(n, rows);
          DeviceArray part(4 * splits * 2 * count);
          const auto qx = quantize(x, n, cols);
          struct Got {
            std::vector<float> gate, up, out, d, s;
            std::vector<int8_t> q;
            std::vector<uint16_t> h;
          };
          const auto run = [&](bool fused) {
            DeviceArray gate(4 * count), up(4 * count), out(4 * count), q(count), d(4 * count / 32),
                s(4 * count / 32), h(2 * hn);
            const std::vector<float> nan(static_cast<size_t>(count), NAN);  // what is never written fails
            for (const DeviceArray* a : {&gate, &up, &out})
              EXPECT_EQ(cudaMemcpy(a->p, nan.data(), 4 * count, cudaMemcpyHostToDevice), cudaSuccess);
            EXPECT_EQ(cudaMemset(h.p, 0xFF, 2 * hn), cudaSuccess);
            cuda::MmaParams p{};
            p.w = dev_weight(gate_g);
            qx->into(p);
            p.out = gate.as<float>(), p.partial = part.as<float>(), p.n = n, p.splits = splits;
            p.data2 = static_cast<const uint8_t*>(up_g.data), p.out2 = up.as<float>(), p.rows2 = rows;
            p.scales2 = up_g.scales, p.biases2 = up_g.biases;
            p.reduce_later = fused ? 1 : 0;
            cuda::launch_mma(p, stream);
            cuda::SwigluParams sp{};
            sp.out = in_place ? gate.as<float>() : out.as<float>();
            sp.gate = gate.as<float>(), sp.up = up.as<float>(), sp.n = count;
            sp.q = q.as<int8_t>(), sp.qd = d.as<float>(), sp.qs = s.as<float>(), sp.qh = cuda::XHalf{h.as<uint16_t>(), n, rows};
            if (fused) sp.partial = part.as<float>(), sp.gate_out = gate.as<float>(), sp.up_out = up.as<float>();
            if (fused) sp.cols = rows, sp.splits = splits;
            cuda::launch_swiglu(sp, stream);
            EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
            Got g{std::vector<float>(count), std::vector<float>(count), std::vector<float>(count),
                  std::vector<float>(count / 32), std::vector<float>(count / 32), std::vector<int8_t>(count),
                  std::vector<uint16_t>(static_cast<size_t>(hn))};
            EXPECT_EQ(cudaMemcpy(g.gate.data(), gate.p, 4 * count, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.up.data(), up.p, 4 * count, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.out.data(), (in_place ? gate : out).p, 4 * count, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.q.data(), q.p, count, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.d.data(), d.p, 4 * count / 32, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.s.data(), s.p, 4 * count / 32, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.h.data(), h.p, 2 * hn, cudaMemcpyDeviceToHost), cudaSuccess);
            return g;
          };
          const int64_t before = cuda::swiglu_split_launches();
          const Got apart = run(false), fused = run(true);
          EXPECT_EQ(cuda::swiglu_split_launches(), before + 1) << what;
          if (!in_place) {
            EXPECT_EQ(fused.gate, apart.gate) << what << ": gate";
            for (size_t i = 0; i < fused.out.size(); ++i) {
              const double g = fused.gate[i], want = g / (1.0 + std::exp(-g)) * fused.up[i];
              ASSERT_NEAR(fused.out[i], want, 1e-5 * (1.0 + std::fabs(want))) << what << " element " << i;
            }
          }
          EXPECT_EQ(fused.up, apart.up) << what << ": up";
          EXPECT_EQ(fused.out, apart.out) << what << ": out";
          EXPECT_EQ(fused.q, apart.q) << what << ": q";
          EXPECT_EQ(fused.d, apart.d) << what << ": d";
          EXPECT_EQ(fused.s, apart.s) << what << ": d * sum(q)";
          EXPECT_EQ(fused.h, apart.h) << what << ": the f16 copy";
          ++cases;
        }
  }
  if (cases == 0) GTEST_SKIP() << "the f16 kernel is off (HEARTH_CUDA_MMA_F16=0) or not on this card";
}

// The batched step's q/k norm + RoPE + KV store after a merged q/k/v product split in K
// (MmaParams::reduce_later, RopeParams::partial, the backend's rule): the product launches
// no reduce and the rope launch adds the splits itself. q, k, v and the cache rows must be
// bit for bit those of the reduce launch followed by the plain fused rope, with an f16 and
// an 8-bit cache; outputs start as NaN (the cache as 0xAB bytes), so a missed write fails.
TEST_F(CudaMma, RopeAddsTheSplits) {
  const WeightSpec specs[] = {{"q4_K", DType::Q4_K, 1024}, {"q8_0", DType::Q8_0, 768}};
  const int64_t hd = 128, q_heads = 4, kv_heads = 2, half = hd / 2;
  const int64_t q_rows = q_heads * hd, kv_rows = kv_heads * hd;
  const auto q_norm = random_vector(hd, rng), k_norm = random_vector(hd, rng);
  std::vector<float> inv_freq(half);
  for (int64_t j = 0; j < half; ++j) inv_freq[j] = static_cast<float>(std::pow(1e6, -2.0 * j / hd));
  DeviceArray qn(4 * hd), kn(4 * hd), inv(4 * half);
  ASSERT_EQ(cudaMemcpy(qn.p, q_norm.data(), 4 * hd, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(kn.p, k_norm.data(), 4 * hd, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(inv.p, inv_freq.data(), 4 * half, cudaMemcpyHostToDevice), cudaSuccess);
  int cases = 0;
  for (const auto& spec : specs) {
    const HostWeight wq = make_weight(spec, q_rows, rng), wk = make_weight(spec, kv_rows, rng),
                     wv = make_weight(spec, kv_rows, rng);
    const Weight gq = gpu->upload_weight(wq.w), gk = gpu->upload_weight(wk.w), gv = gpu->upload_weight(wv.w);
    if (!cuda::mma_f16_applies(dev_weight(gq))) continue;  // f16 kernel off: nothing merges
    const int64_t cols = spec.cols, chunks = (cols + 255) / 256;
    for (int64_t n : {5, 20})
      for (int32_t splits : {2, static_cast<int32_t>(chunks)})
        for (int32_t kv_kind : {1, 2}) {
          const std::string what = std::string(spec.name) + " n " + std::to_string(n) + " splits " +
                                   std::to_string(splits) + (kv_kind == 1 ? " f16 cache" : " q8_0 cache");
          const auto x = random_vector(static_cast<size_t>(n * cols), rng);
          std::vector<int32_t> positions(n);
          std::vector<int64_t> slots(n);
          for (int64_t t = 0; t < n; ++t) positions[t] = static_cast<int32_t>(7 * t + 3), slots[t] = 2 * t + 1;
          // An 8-bit row: the values, then an f16 scale per 32, padded to 16 bytes (backend.h).
          const int64_t row_bytes = kv_kind == 1 ? 2 * kv_rows : (kv_rows + kv_rows / 32 * 2 + 15) / 16 * 16;
          const int64_t cache_bytes = (2 * n + 2) * row_bytes;
          DeviceArray part(4 * splits * n * (q_rows + 2 * kv_rows)), pos(4 * n), sl(8 * n);
          ASSERT_EQ(cudaMemcpy(pos.p, positions.data(), 4 * n, cudaMemcpyHostToDevice), cudaSuccess);
          ASSERT_EQ(cudaMemcpy(sl.p, slots.data(), 8 * n, cudaMemcpyHostToDevice), cudaSuccess);
          const auto qx = quantize(x, n, cols);
          struct Got {
            std::vector<float> q, k, v;
            std::vector<uint8_t> kc, vc;
          };
          const auto run = [&](bool fused) {
            DeviceArray q(4 * n * q_rows), k(4 * n * kv_rows), v(4 * n * kv_rows), kc(cache_bytes), vc(cache_bytes);
            const std::vector<float> nan(static_cast<size_t>(n * q_rows), NAN);
            EXPECT_EQ(cudaMemcpy(q.p, nan.data(), 4 * n * q_rows, cudaMemcpyHostToDevice), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(k.p, nan.data(), 4 * n * kv_rows, cudaMemcpyHostToDevice), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(v.p, nan.data(), 4 * n * kv_rows, cudaMemcpyHostToDevice), cudaSuccess);
            EXPECT_EQ(cudaMemset(kc.p, 0xAB, cache_bytes), cudaSuccess);
            EXPECT_EQ(cudaMemset(vc.p, 0xAB, cache_bytes), cudaSuccess);
            cuda::MmaParams p{};
            p.w = dev_weight(gq);
            qx->into(p);
            p.out = q.as<float>(), p.partial = part.as<float>(), p.n = n, p.splits = splits;
            p.data2 = static_cast<const uint8_t*>(gk.data), p.out2 = k.as<float>(), p.rows2 = kv_rows;
            p.data3 = static_cast<const uint8_t*>(gv.data), p.out3 = v.as<float>(), p.rows3 = kv_rows;
            p.reduce_later = fused ? 1 : 0;
            cuda::launch_mma(p, stream);
            cuda::RopeParams r{};
            r.x = k.as<float>(), r.positions = pos.as<int32_t>(), r.inv_freq = inv.as<float>();
            r.n = n, r.heads = kv_heads, r.head_dim = hd, r.half = half, r.attn_factor = 1.0f, r.neox = 1;
            r.norm_w = kn.as<float>(), r.eps = 1e-6f, r.kv_kind = kv_kind, r.k_cache = kc.p, r.v_cache = vc.p;
            r.v = v.as<float>(), r.slots = sl.as<int64_t>();
            r.x2 = q.as<float>(), r.norm_w2 = qn.as<float>(), r.heads2 = q_heads;
            if (fused) r.partial = part.as<float>(), r.v_out = v.as<float>(), r.splits = splits;
            cuda::launch_rope(r, stream);
            EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
            Got g{std::vector<float>(n * q_rows), std::vector<float>(n * kv_rows), std::vector<float>(n * kv_rows),
                  std::vector<uint8_t>(cache_bytes), std::vector<uint8_t>(cache_bytes)};
            EXPECT_EQ(cudaMemcpy(g.q.data(), q.p, 4 * n * q_rows, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.k.data(), k.p, 4 * n * kv_rows, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.v.data(), v.p, 4 * n * kv_rows, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.kc.data(), kc.p, cache_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
            EXPECT_EQ(cudaMemcpy(g.vc.data(), vc.p, cache_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
            return g;
          };
          const int64_t before = cuda::rope_split_launches();
          const Got apart = run(false), fused = run(true);
          EXPECT_EQ(cuda::rope_split_launches(), before + 1) << what;
          EXPECT_TRUE(std::none_of(fused.q.begin(), fused.q.end(), [](float f) { return std::isnan(f); })) << what;
          EXPECT_EQ(fused.q, apart.q) << what << ": q";
          EXPECT_EQ(fused.k, apart.k) << what << ": k";
          EXPECT_EQ(fused.v, apart.v) << what << ": v";
          EXPECT_EQ(fused.kc, apart.kc) << what << ": the cached keys";
          EXPECT_EQ(fused.vc, apart.vc) << what << ": the cached values";
          ++cases;
        }
  }
  if (cases == 0) GTEST_SKIP() << "the f16 kernel is off (HEARTH_CUDA_MMA_F16=0) or not on this card";
}

// Rows of 16-byte multiples take the tensor copies (one per chunk of a block's 128 rows;
// rows past the end and the bytes past a Q6_K row's end arrive as zeros; Q6_K's 210-byte
// chunks start off 16-byte boundaries): row counts that fill no tile, K splits that leave a block 1 or several chunks,
// 8B-like row lengths; the launch counter shows which kernel form ran.
TEST_F(CudaMma, TensorCopies) {
  const bool off = switched_off("HEARTH_CUDA_MMA_TMA") ||
                   !cuda::mma_f16_applies(dev_weight(gpu->upload_weight(make_weight(kTypes[2], 1, rng).w)));
  const WeightSpec specs[] = {{"q4_K", DType::Q4_K, 4096}, {"q6_K", DType::Q6_K, 2048}, {"q6_K", DType::Q6_K, 4096},
                              {"q4_K", DType::Q4_K, 768},  {"q4_0", DType::Q4_0, 2048}, {"q8_0", DType::Q8_0, 1024},
                              {"q5_K", DType::Q5_K, 1280}};
  for (const auto& spec : specs)
    for (int64_t rows : {1, 67, 300}) {
      const HostWeight hw = make_weight(spec, rows, rng);
      const Weight g = gpu->upload_weight(hw.w);
      const int32_t chunks = static_cast<int32_t>(spec.cols / 256);
      for (int64_t n : {5, 8, 16, 20, 32, 33, 64}) {
        const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng, 2.0f);
        for (int32_t splits : {1, 3, chunks, cuda::mma_plan_splits(dev_weight(g), n, 132)}) {
          const int64_t before = cuda::mma_f16_tensor_launches();
          const std::string what = std::string(spec.name) + " x " + std::to_string(spec.cols) + " rows " +
                                   std::to_string(rows) + " n " + std::to_string(n) + " splits " +
                                   std::to_string(splits);
          check_matmul(product(g, x, n, std::min(splits, chunks)), hw.w, x, n, 5e-2, false, what);
          EXPECT_EQ(cuda::mma_f16_tensor_launches() - before, off ? 0 : 1) << what;
          if (splits != 3) continue;
          // No f16 copy of x: the row-copy form from kXHalfMinTokens on, with the same result.
          check_matmul(product(g, x, n, std::min(splits, chunks), false), hw.w, x, n, 5e-2, false, what + " no XHalf");
          EXPECT_EQ(cuda::mma_f16_tensor_launches() - before, off ? 0 : n >= cuda::kXHalfMinTokens ? 1 : 2) << what;
        }
      }
    }
}

// MLX 4-bit takes the tensor-copy form (4096-, 1280- and 768-column rows: groups of 64, 32
// and 128), with f16, bf16 and f32 scales and biases (the reference keeps the f16 ones, so
// bf16's rounding is inside the bound), where a chunk's scales are 4 or 8 bytes a row (not
// groups of 32, nor f32 scales of groups of 64: mma.cu's int8 kernel takes those); from 17
// tokens without x's f16 copy mma.cu takes it too, with the same result.
TEST_F(CudaMma, MlxTensorCopies) {
  const bool off = switched_off("HEARTH_CUDA_MMA_TMA") ||
                   !cuda::mma_f16_applies(dev_weight(gpu->upload_weight(make_weight(kTypes[2], 1, rng).w)));
  const WeightSpec specs[] = {{"mlx4 g64", DType::MLX_AFFINE, 4096, 4, 64},
                              {"mlx4 g32", DType::MLX_AFFINE, 1280, 4, 32},
                              {"mlx4 g128", DType::MLX_AFFINE, 768, 4, 128}};
  for (const auto& spec : specs)
    for (int64_t rows : {1, 67, 300}) {
      const HostWeight hw = make_weight(spec, rows, rng);
      const Weight g = gpu->upload_weight(hw.w);
      const int64_t groups = rows * spec.cols / spec.group_size;
      // The scales and biases as f32 (kind 0) and bf16 (kind 2) too.
      std::vector<float> s32(static_cast<size_t>(groups)), b32(s32.size());
      std::vector<uint16_t> s16(s32.size()), b16(s32.size());
      for (size_t i = 0; i < s32.size(); ++i) {
        s32[i] = f16_to_f32(hw.scales[i]), b32[i] = f16_to_f32(hw.biases[i]);
        s16[i] = f32_to_bf16(s32[i]), b16[i] = f32_to_bf16(b32[i]);
      }
      DeviceArray ds32(4 * s32.size()), db32(4 * s32.size()), ds16(2 * s32.size()), db16(2 * s32.size());
      ASSERT_EQ(cudaMemcpy(ds32.p, s32.data(), 4 * s32.size(), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(db32.p, b32.data(), 4 * s32.size(), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(ds16.p, s16.data(), 2 * s32.size(), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(db16.p, b16.data(), 2 * s32.size(), cudaMemcpyHostToDevice), cudaSuccess);
      const int32_t chunks = static_cast<int32_t>(spec.cols / 256);
      for (int kind : {1, 0, 2}) {
        cuda::DevWeight d = dev_weight(g);
        if (kind == 0) d.scales = ds32.p, d.biases = db32.p, d.scale_kind = 0;
        if (kind == 2) d.scales = ds16.p, d.biases = db16.p, d.scale_kind = 2;
        const int s_bytes = 256 / spec.group_size * (kind == 0 ? 4 : 2);
        const bool tensor = !off && (s_bytes == 4 || s_bytes == 8);
        EXPECT_EQ(cuda::mma_f16_applies(d), tensor) << spec.name << " scale kind " << kind;
        for (int64_t n : {5, 8, 16, 20, 32, 33, 64}) {
          const auto x = random_vector(static_cast<size_t>(n * spec.cols), rng, 2.0f);
          for (int32_t splits : {1, 3, cuda::mma_plan_splits(d, n, 132)}) {
            const std::string what = std::string(spec.name) + " scale kind " + std::to_string(kind) + " rows " +
                                     std::to_string(rows) + " n " + std::to_string(n) + " splits " +
                                     std::to_string(splits);
            int64_t before = cuda::mma_f16_tensor_launches();
            check_matmul(product(d, x, n, std::min(splits, chunks)), hw.w, x, n, 5e-2, false, what);
            EXPECT_EQ(cuda::mma_f16_tensor_launches() - before, tensor ? 1 : 0) << what;
            if (splits != 3) continue;
            before = cuda::mma_f16_tensor_launches();
            check_matmul(product(d, x, n, std::min(splits, chunks), false), hw.w, x, n, 5e-2, false, what + " no XHalf");
            EXPECT_EQ(cuda::mma_f16_tensor_launches() - before, tensor && n < cuda::kXHalfMinTokens ? 1 : 0) << what;
          }
        }
      }
    }
}

// launch_quantize_x's f16 copy (XHalf): every value the f16 product of its q and its f16 d,
// at its place (chunk, token, the order 0, 2, 1, 3 within 4 columns), for a row length
// whose last 256-column chunk is partial; the padding after each token's 256 stays as it was.
TEST_F(CudaMma, XHalfCopy) {
  for (int64_t n : {1, 7, 20})
    for (int64_t cols : {64, 2080}) {
      const auto x = random_vector(static_cast<size_t>(n * cols), rng, 3.0f);
      const int64_t elems = cuda::x_half_elems(n, cols);
      DeviceArray xd(sizeof(float) * n * cols), q(n * cols), d(sizeof(float) * n * cols / 32),
          s(sizeof(float) * n * cols / 32), h(2 * elems);
      ASSERT_EQ(cudaMemset(h.p, 0xFF, 2 * elems), cudaSuccess);  // NaN halves: a place never written shows
      ASSERT_EQ(cudaMemcpy(xd.p, x.data(), sizeof(float) * n * cols, cudaMemcpyHostToDevice), cudaSuccess);
      cuda::QuantizeXParams qp{};
      qp.x = xd.as<float>(), qp.q = q.as<int8_t>(), qp.d = d.as<float>(), qp.s = s.as<float>(), qp.n = n;
      qp.cols = cols, qp.h = cuda::XHalf{h.as<uint16_t>(), n, cols};
      cuda::launch_quantize_x(qp, stream);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      std::vector<int8_t> hq(static_cast<size_t>(n * cols));
      std::vector<float> hd(static_cast<size_t>(n * cols / 32));
      std::vector<uint16_t> hh(static_cast<size_t>(elems));
      ASSERT_EQ(cudaMemcpy(hq.data(), q.p, hq.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(hd.data(), d.p, 4 * hd.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(hh.data(), h.p, 2 * hh.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      std::vector<bool> written(hh.size(), false);
      int bad = 0;
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t e = c % 4, at = ((c / 256) * n + t) * cuda::kXHalfPitch + c % 256 - e + (e == 1 ? 2 : e == 2 ? 1 : e);
          written[static_cast<size_t>(at)] = true;
          // q * d in f16 with one rounding: q and the f16 d are exact in float, their product
          // within float's 24 bits.
          const float want = f16_to_f32(f32_to_f16(static_cast<float>(hq[t * cols + c]) *
                                                   f16_to_f32(f32_to_f16(hd[(t * cols + c) / 32]))));
          if (hh[static_cast<size_t>(at)] != f32_to_f16(want) && ++bad <= 5)
            ADD_FAILURE() << "n " << n << " cols " << cols << " token " << t << " column " << c << ": "
                          << f16_to_f32(hh[static_cast<size_t>(at)]) << " want " << want;
        }
      for (size_t i = 0; i < hh.size(); ++i)
        if (!written[i] && hh[i] != 0xFFFF && ++bad <= 5) ADD_FAILURE() << "n " << n << " padding half " << i << " written";
      EXPECT_EQ(bad, 0) << "n " << n << " cols " << cols;
    }
}

// The decode steps' (add +) RMSNorm launch writes the next product's input itself (the
// fused q/d/s and the XHalf copy, RmsNormParams::q): bit for bit what launch_quantize_x
// makes of the norm's output, and the norm within 1e-5 of a double reference; with the
// residual add (batched decode) and without (one token: the products add). One row without
// an add takes the sliced kernel (RmsNormParams::slices), the rest the block kernel. Widths
// not a multiple of 256 (2080) leave part of the copy's last chunk unwritten in both.
TEST_F(CudaMma, NormQuantizesAsQuantizeX) {
  for (bool with_add : {true, false})
    for (int64_t n : {1, 5, 20, 64, 65})
      for (int64_t dim : {512, 2080, 4096, 8192}) {
        const std::string what =
            "n " + std::to_string(n) + " dim " + std::to_string(dim) + (with_add ? " with an add" : "");
        const size_t count = static_cast<size_t>(n * dim), groups = count / 32;
        const auto x0 = random_vector(count, rng, 3.0f), add = random_vector(count, rng);
        const auto w = random_vector(static_cast<size_t>(dim), rng);
        const bool with_h = n <= 64;
        const int64_t elems = with_h ? cuda::x_half_elems(n, dim) : 0;
        DeviceArray x(4 * count), a(4 * count), wd(4 * dim), out(4 * count), q(count), d(4 * groups), s(4 * groups),
            h(2 * elems);
        struct Got {
          std::vector<float> out, x, d, s;
          std::vector<int8_t> q;
          std::vector<uint16_t> h;
        };
        ASSERT_EQ(cudaMemcpy(wd.p, w.data(), 4 * w.size(), cudaMemcpyHostToDevice), cudaSuccess);
        ASSERT_EQ(cudaMemcpy(a.p, add.data(), 4 * count, cudaMemcpyHostToDevice), cudaSuccess);
        const auto run = [&](bool fused) {
          EXPECT_EQ(cudaMemcpy(x.p, x0.data(), 4 * count, cudaMemcpyHostToDevice), cudaSuccess);
          if (with_h) {
            EXPECT_EQ(cudaMemset(h.p, 0xFF, 2 * elems), cudaSuccess);
          }
          cuda::RmsNormParams p{};
          p.out = out.as<float>(), p.x = x.as<float>(), p.w = wd.as<float>(), p.add = with_add ? a.as<float>() : nullptr;
          p.rows = n, p.dim = dim, p.eps = 1e-6f, p.slices = 1;
          const cuda::XHalf xh{with_h ? h.as<uint16_t>() : nullptr, n, dim};
          if (fused) p.q = q.as<int8_t>(), p.qd = d.as<float>(), p.qs = s.as<float>(), p.qh = xh;
          cuda::launch_rms_norm(p, stream);
          if (!fused) {
            cuda::QuantizeXParams qp{};
            qp.x = out.as<float>(), qp.q = q.as<int8_t>(), qp.d = d.as<float>(), qp.s = s.as<float>(), qp.n = n;
            qp.cols = dim, qp.h = xh;
            cuda::launch_quantize_x(qp, stream);
          }
          EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          Got g{std::vector<float>(count), std::vector<float>(count), std::vector<float>(groups),
                std::vector<float>(groups), std::vector<int8_t>(count), std::vector<uint16_t>(static_cast<size_t>(elems))};
          EXPECT_EQ(cudaMemcpy(g.out.data(), out.p, 4 * count, cudaMemcpyDeviceToHost), cudaSuccess);
          EXPECT_EQ(cudaMemcpy(g.x.data(), x.p, 4 * count, cudaMemcpyDeviceToHost), cudaSuccess);
          EXPECT_EQ(cudaMemcpy(g.d.data(), d.p, 4 * groups, cudaMemcpyDeviceToHost), cudaSuccess);
          EXPECT_EQ(cudaMemcpy(g.s.data(), s.p, 4 * groups, cudaMemcpyDeviceToHost), cudaSuccess);
          EXPECT_EQ(cudaMemcpy(g.q.data(), q.p, count, cudaMemcpyDeviceToHost), cudaSuccess);
          if (with_h) {
            EXPECT_EQ(cudaMemcpy(g.h.data(), h.p, 2 * elems, cudaMemcpyDeviceToHost), cudaSuccess);
          }
          return g;
        };
        const Got fused = run(true), apart = run(false);
        std::vector<float> sum(count), want(count);
        for (size_t i = 0; i < count; ++i) sum[i] = with_add ? x0[i] + add[i] : x0[i];
        for (int64_t t = 0; t < n; ++t) {
          double ss = 0;
          for (int64_t c = 0; c < dim; ++c) ss += static_cast<double>(sum[t * dim + c]) * sum[t * dim + c];
          const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + 1e-6);
          for (int64_t c = 0; c < dim; ++c) want[t * dim + c] = static_cast<float>(sum[t * dim + c] * inv * w[c]);
        }
        EXPECT_EQ(fused.x, sum) << what << ": the residual keeps x + add";
        expect_close(fused.out, want, 1e-5, what + ": norm");
        EXPECT_EQ(fused.out, apart.out) << what;
        EXPECT_EQ(fused.q, apart.q) << what << ": q";
        EXPECT_EQ(fused.d, apart.d) << what << ": d";
        EXPECT_EQ(fused.s, apart.s) << what << ": d * sum(q)";
        EXPECT_EQ(fused.h, apart.h) << what << ": the f16 copy";
      }
}

// The f16 kernel takes the five types it decodes (unless switched off), and the backend's
// split plan for it leaves no split empty, for the 8B shapes and small ones.
TEST_F(CudaMma, F16KernelTakesItsTypes) {
  const bool off = switched_off("HEARTH_CUDA_MMA_F16");
  for (const auto& spec : kTypes) {
    const HostWeight hw = make_weight(spec, 67, rng);
    const Weight g = gpu->upload_weight(hw.w);
    // kTypes' MLX rows are not whole 256-column chunks (MlxTensorCopies has those).
    const bool f16_type = spec.type != DType::MLX_AFFINE;
    EXPECT_EQ(cuda::mma_f16_applies(dev_weight(g)), f16_type && !off) << spec.name;
  }
  for (int64_t rows : {1, 300, 4096, 6144, 24576})
    for (int64_t cols : {256, 4096, 12288})
      for (int64_t n : {5, 8, 16, 32, 64}) {
        cuda::DevWeight w{};
        w.type = DType::Q4_K, w.rows = rows, w.cols = cols, w.row_bytes = cols / 256 * 144;
        w.data = reinterpret_cast<const uint8_t*>(uintptr_t{256});
        const int64_t chunks = cols / 256, s = cuda::mma_plan_splits(w, n, 132);
        EXPECT_GE(s, 1);
        EXPECT_LE(s, chunks);
        const int64_t per = (chunks + s - 1) / s;
        EXPECT_GT(chunks - (s - 1) * per, 0) << rows << "x" << cols << " n " << n << ": the last split would be empty";
      }
}

// The split count fills the GPU with blocks and gives every split the same chunk count.
TEST(MmaPlan, SplitsCoverTheChunks) {
  for (int64_t rows : {64, 4096, 6144, 24576})
    for (int64_t cols : {256, 4096, 12288}) {
      const int64_t chunks = cols / 256, s = cuda::mma_splits(rows, cols, 132 * 3);
      EXPECT_GE(s, 1);
      EXPECT_LE(s, chunks);
      const int64_t per = (chunks + s - 1) / s;
      EXPECT_GT(chunks - (s - 1) * per, 0) << rows << "x" << cols << ": the last split would be empty";
    }
  EXPECT_EQ(cuda::mma_splits(24576, 4096, 132 * 3), 1);
  EXPECT_GT(cuda::mma_splits(4096, 4096, 132 * 3), 1);
}

}  // namespace
