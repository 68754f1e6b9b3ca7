// cuda_matmul: GPU time of one quantized product out[n, rows] = x[n, cols] @ w^T on each
// path of the CUDA backend, for Qwen3-8B's shapes (q/k/v 4096 -> 6144 merged, o 4096 ->
// 4096, gate/up 4096 -> 24576 merged, down 12288 -> 4096):
//   dp4a   launch_gemv (n <= 8), x already quantized
//   mma    launch_mma (n <= 64), x already quantized, K splits as the backend picks them:
//          mma_f16.cu's kernel where it applies ("f16", "f16 tensor" in its tensor-copy
//          form; HEARTH_CUDA_MMA_TMA=0: never that form), else mma.cu's int8 one
//          (HEARTH_CUDA_MMA_F16=0: always the int8 one); HEARTH_CUDA_MMA_SPLITS=s forces s
//          K splits
//   cublas launch_matmul_tiled: f16 tiles of the dequantized weight + cuBLAS (any n)
//   cuda_matmul [--types q4_k,q6_k] [--tokens 1,2,4,8,16,32,64,128,256,512] [--reps 20]
//               [--rotate MB]
// --rotate MB: each launch reads the next of enough copies of the weight to fill MB
// megabytes (pass more than the L2 cache, e.g. 512), as a decode step's products do;
// without it a weight smaller than L2 is read from L2 after the first launch.
// Microseconds per product (mean over --reps launches back to back in one stream, after a
// warm-up, timed with events) and GB/s of weight bytes read (the stored bytes: a path that
// reads them more than once shows a figure above the copy bandwidth's reach only if it hit
// L2). Weights are random bytes in each type's layout with small valid scales.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/ops.h"
#include "core/dtype.h"
#include "core/half.h"

using namespace hearth;
using namespace hearth::cuda;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda_matmul: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stoll(item));
  return v;
}

// A weight of random bytes in `type`'s layout (scales set to small finite values), in
// device memory with the 16 bytes of padding the kernels may read past the end.
struct Matrix {
  DevWeight w{};
  void* data = nullptr;
  int64_t bytes = 0;
  void* aux = nullptr;  // MLX: f16 scales then biases, [rows, cols / 64] each
  Matrix(DType type, int64_t rows, int64_t cols) {
    const bool mlx = type == DType::MLX_AFFINE;  // 4-bit, group 64
    const int64_t row_bytes = mlx ? cols / 2 : dtype_row_bytes(type, cols);
    bytes = rows * row_bytes;
    std::vector<uint8_t> host(static_cast<size_t>(bytes + 16));
    std::mt19937_64 rng(rows * 31 + cols);
    for (size_t i = 0; i + 8 <= host.size(); i += 8) {
      const uint64_t r = rng();
      std::memcpy(host.data() + i, &r, 8);
    }
    const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.002f);
    const int64_t bb = mlx ? 0 : dtype_info(type).block_bytes;
    for (int64_t off = 0; bb > 0 && off + bb <= bytes; off += bb) {
      if (type == DType::Q4_0 || type == DType::Q8_0) std::memcpy(&host[static_cast<size_t>(off)], &d, 2);
      if (type == DType::Q4_K || type == DType::Q5_K)
        std::memcpy(&host[static_cast<size_t>(off)], &d, 2), std::memcpy(&host[static_cast<size_t>(off + 2)], &dmin, 2);
      if (type == DType::Q6_K) std::memcpy(&host[static_cast<size_t>(off + 208)], &d, 2);
    }
    check(cudaMalloc(&data, host.size()), "cudaMalloc (weight)");
    check(cudaMemcpy(data, host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy (weight)");
    w.data = static_cast<const uint8_t*>(data);
    w.rows = rows, w.cols = cols, w.row_bytes = row_bytes, w.type = type;
    if (mlx) {
      const int64_t groups = rows * cols / 64;
      std::vector<uint16_t> sb(static_cast<size_t>(2 * groups), f32_to_f16(0.01f));
      std::fill(sb.begin() + groups, sb.end(), f32_to_f16(-0.05f));
      check(cudaMalloc(&aux, 2 * sb.size()), "cudaMalloc (scales)");
      check(cudaMemcpy(aux, sb.data(), 2 * sb.size(), cudaMemcpyHostToDevice), "cudaMemcpy (scales)");
      w.scales = aux, w.biases = static_cast<uint16_t*>(aux) + groups;
      w.groups_per_row = cols / 64, w.scale_kind = 1, w.bits = 4, w.group_size = 64;
      bytes += 4 * groups;
    }
  }
  ~Matrix() { cudaFree(data), cudaFree(aux); }
};

// The backend's rows per block for the dp4a kernel (backend_cuda_step.cpp).
int rows_per_block(const DevWeight& w, int sms) {
  const int64_t unit = w.type == DType::Q4_K || w.type == DType::Q5_K || w.type == DType::Q6_K ? 64 : 32;
  const int64_t units = w.cols / unit, in_flight = unit == 32 ? 4 : 2;
  int rpb = 4;
  while (rpb > 1 && units > in_flight * (128 / rpb)) rpb /= 2;
  while (rpb > 1 && w.rows / rpb < 4 * sms && 256 / rpb <= units) rpb /= 2;
  return rpb;
}

template <class F>
double time_us(F&& launch, int reps, cudaStream_t stream) {
  launch();
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  check(cudaStreamSynchronize(stream), "warm-up");
  cudaEventRecord(e0, stream);
  for (int i = 0; i < reps; ++i) launch();
  cudaEventRecord(e1, stream);
  check(cudaEventSynchronize(e1), "timed launches");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0), cudaEventDestroy(e1);
  return 1e3 * ms / reps;
}

}  // namespace

int main(int argc, char** argv) {
  std::string types = "q4_k,q6_k";
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  int reps = 20;
  int64_t rotate_mb = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i], v = argv[i + 1];
    if (f == "--types") types = v;
    else if (f == "--tokens") tokens = parse_list(v);
    else if (f == "--reps") reps = std::stoi(v);
    else if (f == "--rotate") rotate_mb = std::stoll(v);
    else return std::fprintf(stderr, "cuda_matmul: unknown flag %s\n", f.c_str()), 2;
  }
  int device = 0, sms = 0;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  sms = prop.multiProcessorCount;
  set_programmatic_launch(prop.major == 9 && prop.minor == 0);
  init_mma();
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cublasHandle_t cublas;
  if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) return std::fprintf(stderr, "cublasCreate failed\n"), 1;

  const int64_t max_n = *std::max_element(tokens.begin(), tokens.end()), max_cols = 12288, max_rows = 24576;
  void *x, *q, *d, *s, *out, *part, *xh, *xq_h, *tile;
  const int64_t tile_elems = int64_t{32} << 20;
  check(cudaMalloc(&x, 4 * max_n * max_cols), "cudaMalloc");
  check(cudaMalloc(&q, max_n * max_cols), "cudaMalloc");
  check(cudaMalloc(&d, 4 * max_n * max_cols / 32), "cudaMalloc");
  check(cudaMalloc(&s, 4 * max_n * max_cols / 32), "cudaMalloc");
  check(cudaMalloc(&out, 4 * max_n * max_rows), "cudaMalloc");
  check(cudaMalloc(&part, 4 * 64 * 64 * max_rows), "cudaMalloc");  // splits <= 48 at these shapes
  check(cudaMalloc(&xh, 2 * max_n * max_cols), "cudaMalloc");
  check(cudaMalloc(&xq_h, 2 * x_half_elems(max_n, max_cols)), "cudaMalloc");  // the quantized x's f16 copy
  check(cudaMalloc(&tile, 2 * tile_elems), "cudaMalloc");
  {
    std::vector<float> hx(static_cast<size_t>(max_n * max_cols));
    std::mt19937 rng(5);
    std::normal_distribution<float> dist;
    for (auto& v : hx) v = dist(rng);
    check(cudaMemcpy(x, hx.data(), 4 * hx.size(), cudaMemcpyHostToDevice), "cudaMemcpy (x)");
  }

  std::printf("%s, %d SMs\n", prop.name, sms);
  std::printf(
      "| type | shape (rows x cols) | n | dp4a us | mma us | cublas us | dp4a GB/s | mma GB/s | cublas GB/s | splits | "
      "mma kernel |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  const int64_t shapes[][2] = {{6144, 4096}, {4096, 4096}, {24576, 4096}, {4096, 12288}};
  std::stringstream ts(types);
  for (std::string tname; std::getline(ts, tname, ',');) {
    DType type = DType::Q4_K;
    if (tname == "q4_0") type = DType::Q4_0;
    else if (tname == "q8_0") type = DType::Q8_0;
    else if (tname == "q5_k") type = DType::Q5_K;
    else if (tname == "q6_k") type = DType::Q6_K;
    else if (tname == "mlx4") type = DType::MLX_AFFINE;
    else if (tname != "q4_k") return std::fprintf(stderr, "cuda_matmul: unknown type %s\n", tname.c_str()), 2;
    for (const auto& shape : shapes) {
      Matrix m(type, shape[0], shape[1]);
      const DevWeight& w = m.w;
      std::vector<std::unique_ptr<Matrix>> copies;  // --rotate: distinct bytes for each launch
      while (static_cast<int64_t>(copies.size() + 1) * m.bytes < rotate_mb * 1000000)
        copies.push_back(std::make_unique<Matrix>(type, shape[0], shape[1]));
      size_t turn = 0;
      auto next_weight = [&](DevWeight& target) {
        if (copies.empty()) return;
        turn = (turn + 1) % (copies.size() + 1);
        target = turn == 0 ? m.w : copies[turn - 1]->w;
      };
      for (int64_t n : tokens) {
        QuantizeXParams qp{};
        qp.x = static_cast<float*>(x), qp.q = static_cast<int8_t*>(q), qp.d = static_cast<float*>(d);
        qp.s = static_cast<float*>(s), qp.n = n, qp.cols = w.cols;
        if (n <= kMmaMaxTokens) qp.h = XHalf{static_cast<uint16_t*>(xq_h), n, w.cols};
        launch_quantize_x(qp, stream);
        double t_dp4a = 0, t_mma = 0, t_blas = 0;
        int32_t splits = 0, blocks = 0;
        bool tensor = false;  // the f16 kernel's tensor-copy form ran
        if (n <= kGemvMaxTokens) {
          GemvParams p{};
          p.w = w, p.xq = qp.q, p.xd = qp.d, p.xs = qp.s, p.out = static_cast<float*>(out), p.n = n;
          p.rows_per_block = rows_per_block(w, sms), p.prefetch = 1;
          t_dp4a = time_us([&] { next_weight(p.w), launch_gemv(p, stream); }, reps, stream);
        }
        if (n <= kMmaMaxTokens) {
          MmaParams p{};
          p.w = w, p.xq = qp.q, p.xd = qp.d, p.xs = qp.s, p.xh = qp.h.h, p.out = static_cast<float*>(out);
          p.partial = static_cast<float*>(part), p.n = n;
          p.splits = splits = mma_plan_splits(w, n, sms);
          blocks = mma_f16_applies(w) ? 0 : mma_blocks_per_sm(w.type, w.bits, n);
          if (const char* e = std::getenv("HEARTH_CUDA_MMA_SPLITS")) p.splits = splits = std::max(1, std::atoi(e));
          const int64_t tensor_before = mma_f16_tensor_launches();
          t_mma = time_us([&] { next_weight(p.w), launch_mma(p, stream); }, reps, stream);
          tensor = mma_f16_tensor_launches() > tensor_before;
        }
        {
          TiledMatmulParams p{};
          p.w = w, p.x = static_cast<float*>(x), p.out = static_cast<float*>(out), p.n = n;
          p.xh = static_cast<uint16_t*>(xh), p.tile = static_cast<uint16_t*>(tile);
          p.tile_elems = std::min(tile_elems, w.rows * w.cols), p.cublas = cublas;
          t_blas = time_us([&] { launch_matmul_tiled(p, stream); }, reps, stream);
        }
        auto fmt = [](double v, const char* f) {
          char b[32];
          std::snprintf(b, sizeof b, f, v);
          return v > 0 ? std::string(b) : std::string("-");
        };
        auto us = [&](double t) { return fmt(t, "%.1f"); };
        auto gbs = [&](double t) { return fmt(t > 0 ? static_cast<double>(m.bytes) / t / 1e3 : 0.0, "%.0f"); };
        const std::string kernel =
            blocks != 0 ? "int8 " + std::to_string(blocks) + "/SM" : tensor ? "f16 tensor" : "f16";
        std::printf("| %s | %lld x %lld | %lld | %s | %s | %s | %s | %s | %s | %d | %s |\n", tname.c_str(),
                    static_cast<long long>(w.rows), static_cast<long long>(w.cols), static_cast<long long>(n),
                    us(t_dp4a).c_str(), us(t_mma).c_str(), us(t_blas).c_str(), gbs(t_dp4a).c_str(), gbs(t_mma).c_str(),
                    gbs(t_blas).c_str(), splits, kernel.c_str());
        std::fflush(stdout);
      }
    }
  }
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return 0;
}
