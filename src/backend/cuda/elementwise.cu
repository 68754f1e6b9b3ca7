// Elementwise ops and embedding lookup on the GPU: swiglu, add, add_bias, gather of the
// logit rows, and token embedding rows dequantized from the stored table (any type the
// backend uploads, quantized included). All memory-bound and tiny next to the matmuls:
// one thread per element, grid-stride free. SwiGLU after a merged gate/up product of
// several tokens also adds that product's K splits (SwigluParams::partial), so the
// product's reduce launch is gone: the same sums in the same order, so the same floats.
#include <atomic>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dequant_elem.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kThreads = 256;

std::atomic<int64_t> g_swiglu_split_launches{0};

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__global__ void swiglu_kernel(const SwigluParams p) {
  pdl_begin_before_product();
  const int64_t i = thread_index();
  if (i >= p.n) return;  // with q: n % 32 == 0, so whole warps leave together
  float g, u;
  if (p.partial) {  // the product's splits, added here in split order (32-bit indices: n * 2 * splits < 2^31)
    const auto e = static_cast<uint32_t>(i), cols = static_cast<uint32_t>(p.cols);
    const uint32_t all = 2 * static_cast<uint32_t>(p.n), at = e / cols * 2 * cols + e % cols;
    g = 0.0f, u = 0.0f;
    for (int k = 0; k < p.splits; ++k) g += p.partial[k * all + at], u += p.partial[k * all + at + cols];
    p.gate_out[i] = g, p.up_out[i] = u;
  } else {
    g = p.gate[i], u = p.up[i];
  }
  const float y = g / (1.0f + expf(-g)) * u;
  p.out[i] = y;
  if (p.q) warp_quantize(y, i, p.q, p.qd, p.qs, p.qh);  // quantize_x's 32-blocks: one warp is one block
}

__global__ void add_kernel(const AddParams p) {
  pdl_begin();
  const int64_t i = thread_index();
  if (i < p.n) p.out[i] = p.a[i] + p.b[i];
}

__global__ void add_bias_kernel(const AddBiasParams p) {
  pdl_begin();
  const int64_t i = thread_index();
  if (i < p.rows * p.cols) p.x[i] += p.bias[i % p.cols];
}

__global__ void gather_rows_kernel(const GatherParams p) {
  pdl_begin();
  const int64_t i = thread_index();
  if (i >= p.n_out * p.cols) return;
  const int64_t r = i / p.cols, c = i % p.cols;
  p.out[i] = p.x[static_cast<int64_t>(p.rows[r]) * p.cols + c];
}

__global__ void embed_kernel(const EmbedParams p) {
  pdl_begin();
  const int64_t i = thread_index();
  const DevWeight& w = p.table;
  if (i >= p.n * w.cols) return;
  const int64_t t = i / w.cols, k = i % w.cols;
  const int64_t id = p.tokens[t];
  const WAux aux{w.scales, w.biases, w.scale_kind, w.group_size, w.groups_per_row};
  p.out[i] = dequant_elem(w.type, w.data + id * w.row_bytes, id, k, aux, w.bits);
}

}  // namespace

int64_t swiglu_split_launches() { return g_swiglu_split_launches.load(); }

void launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  if (p.partial) {
    HEARTH_ASSERT(p.cols > 0 && p.n % p.cols == 0 && p.splits >= 1 && p.n * 2 * p.splits < (int64_t{1} << 31));
    g_swiglu_split_launches.fetch_add(1);
  }
  HEARTH_LAUNCH(swiglu_kernel, grid_for(p.n, kThreads), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_add(const AddParams& p, cudaStream_t stream) {
  if (p.n == 0) return;
  HEARTH_LAUNCH(add_kernel, grid_for(p.n, kThreads), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_add_bias(const AddBiasParams& p, cudaStream_t stream) {
  if (p.rows * p.cols == 0) return;
  HEARTH_LAUNCH(add_bias_kernel, grid_for(p.rows * p.cols, kThreads), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_gather_rows(const GatherParams& p, cudaStream_t stream) {
  if (p.n_out * p.cols == 0) return;
  HEARTH_LAUNCH(gather_rows_kernel, grid_for(p.n_out * p.cols, kThreads), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_embed(const EmbedParams& p, cudaStream_t stream) {
  if (p.n * p.table.cols == 0) return;
  HEARTH_LAUNCH(embed_kernel, grid_for(p.n * p.table.cols, kThreads), kThreads, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

}  // namespace hearth::cuda
