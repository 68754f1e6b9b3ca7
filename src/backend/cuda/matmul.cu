// Matrix products against stored weights on the GPU: out[n, rows] = x[n, cols] @ w^T.
//
// Decode (n <= 8): one kernel reads every weight byte once. A block of 128 threads owns
// 1, 2 or 4 rows; the threads of a row walk its units (quant_units.cuh) so neighbouring
// threads read neighbouring bytes, decode them in registers and dot them with every
// token's activations (int8 blocks through dp4a for quantized types, floats otherwise).
// Two units are loaded before either is used, to keep more bytes in flight per thread.
//
// Prompts (n > 8): the weight is dequantized to f16 tiles of whole rows and multiplied by
// cuBLAS on the tensor cores with f32 accumulation; x is converted to f16 once per call.
#include <cublas_v2.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dequant_elem.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kGemvThreads = 128;

__device__ __forceinline__ XRow x_row(const GemvParams& p, int t) {
  const int64_t cols = p.w.cols;
  return XRow{p.xq ? p.xq + t * cols : nullptr, p.xd ? p.xd + t * (cols / 32) : nullptr,
              p.xs ? p.xs + t * (cols / 32) : nullptr, p.x ? p.x + t * cols : nullptr};
}

template <class U, int NT>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const GemvParams p) {
  const int per_row = kGemvThreads / p.rows_per_block;  // 32, 64 or 128 threads
  const int sub = threadIdx.x % per_row;
  // Which of the (up to three) weights this block works on.
  int64_t block = blockIdx.x, rows = p.w.rows;
  const uint8_t* data = p.w.data;
  WAux aux{p.w.scales, p.w.biases, p.w.scale_kind, p.w.group_size, p.w.groups_per_row};
  float* out = p.out;
  if (p.blocks1 > 0 && block >= p.blocks1) {
    const bool second = block < p.blocks2;
    block -= second ? p.blocks1 : p.blocks2;
    rows = second ? p.rows2 : p.rows3;
    data = second ? p.data2 : p.data3;
    aux.scales = second ? p.scales2 : p.scales3;
    aux.biases = second ? p.biases2 : p.biases3;
    out = second ? p.out2 : p.out3;
  }
  const int64_t r = block * p.rows_per_block + threadIdx.x / per_row;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  if (r < rows) {
    const uint8_t* row = data + r * p.w.row_bytes;
    const int n_units = static_cast<int>(p.w.cols / U::kElems);
    int u = sub;
    for (; u + per_row < n_units; u += 2 * per_row) {
      U a, b;
      a.load(row, r, u, aux);
      b.load(row, r, u + per_row, aux);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < p.n) {
          const XRow x = x_row(p, t);
          acc[t] += a.dot(x, u) + b.dot(x, u + per_row);
        }
    }
    if (u < n_units) {
      U a;
      a.load(row, r, u, aux);
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < p.n) acc[t] += a.dot(x_row(p, t), u);
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = warp_sum(acc[t]);
  if (per_row > kWarp) {  // several warps per row: add their sums through shared memory
    __shared__ float partial[kGemvThreads / kWarp][NT];
    const int warp = threadIdx.x / kWarp;
    if (threadIdx.x % kWarp == 0)
#pragma unroll
      for (int t = 0; t < NT; ++t) partial[warp][t] = acc[t];
    __syncthreads();
    if (sub == 0) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float s = 0;
        for (int w = 0; w < per_row / kWarp; ++w) s += partial[warp + w][t];
        acc[t] = s;
      }
    }
  }
  if (sub == 0 && r < rows)
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < p.n) out[t * rows + r] = acc[t];
}

template <class U, bool kAllWidths = true>
void gemv_for_unit(const GemvParams& p, cudaStream_t stream) {
  const unsigned blocks = p.blocks1 > 0 ? p.blocks2 + (p.data3 ? grid_for(p.rows3, p.rows_per_block) : 0)
                                        : grid_for(p.w.rows, p.rows_per_block);
  const dim3 grid(blocks), block(kGemvThreads);
  if (!kAllWidths || p.n > 4) {
    gemv_kernel<U, 8><<<grid, block, 0, stream>>>(p);
  } else if constexpr (kAllWidths) {
    if (p.n == 1) gemv_kernel<U, 1><<<grid, block, 0, stream>>>(p);
    else if (p.n == 2) gemv_kernel<U, 2><<<grid, block, 0, stream>>>(p);
    else gemv_kernel<U, 4><<<grid, block, 0, stream>>>(p);
  }
  HEARTH_CUDA_LAUNCHED();
}

__global__ void quantize_x_kernel(const QuantizeXParams p) {
  const int64_t block = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (block >= p.n * p.cols / 32) return;  // uniform per warp
  const float v = p.x[block * 32 + lane];
  const float amax = warp_max(fabsf(v));
  const float d = amax / 127.0f;
  const int q = amax > 0.0f ? __float2int_rn(v / d) : 0;
  p.q[block * 32 + lane] = static_cast<int8_t>(q);
  const float sum = warp_sum(static_cast<float>(q));
  if (lane == 0) {
    p.d[block] = d;
    p.s[block] = d * sum;
  }
}

__global__ void to_half_kernel(const float* x, __half* out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2half_rn(x[i]);
}

// Rows [row0, row0 + n_rows) of a quantized weight as f16, one unit per thread.
template <class U>
__global__ void dequant_tile_kernel(const DevWeight w, int64_t row0, int64_t n_rows, __half* tile) {
  const int64_t units_per_row = w.cols / U::kElems;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * units_per_row) return;
  const int64_t rr = i / units_per_row;
  const int u = static_cast<int>(i % units_per_row);
  const WAux aux{w.scales, w.biases, w.scale_kind, w.group_size, w.groups_per_row};
  U unit;
  unit.load(w.data + (row0 + rr) * w.row_bytes, row0 + rr, u, aux);
  __half* dst = tile + rr * w.cols;
#pragma unroll
  for (int part = 0; part < U::kElems / 32; ++part) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      __align__(16) __half h[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) h[e] = __float2half_rn(unit.elem(32 * part + 8 * j + e));
      *reinterpret_cast<uint4*>(dst + U::part_offset(u, part) + 8 * j) = *reinterpret_cast<const uint4*>(h);
    }
  }
}

// Float weights other than F16 (BF16): element by element.
__global__ void dequant_tile_float_kernel(const DevWeight w, int64_t row0, int64_t n_rows, __half* tile) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * w.cols) return;
  const int64_t rr = i / w.cols, k = i % w.cols;
  const WAux aux{};
  tile[i] = __float2half_rn(dequant_elem(w.type, w.data + (row0 + rr) * w.row_bytes, row0 + rr, k, aux, 0));
}

template <class U>
void dequant_tile(const DevWeight& w, int64_t row0, int64_t n_rows, __half* tile, cudaStream_t stream) {
  const int64_t n = n_rows * (w.cols / U::kElems);
  dequant_tile_kernel<U><<<grid_for(n, 256), 256, 0, stream>>>(w, row0, n_rows, tile);
  HEARTH_CUDA_LAUNCHED();
}

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(std::string("cuBLAS error in ") + what + ": status " + std::to_string(static_cast<int>(s)));
}

}  // namespace

bool weight_type_supported(DType type, int bits) {
  switch (type) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q8_0:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    case DType::MLX_AFFINE: return bits == 4 || bits == 8;
    default: return false;
  }
}

void launch_quantize_x(const QuantizeXParams& p, cudaStream_t stream) {
  const int64_t threads = p.n * p.cols;  // one per element, one warp per 32-block
  quantize_x_kernel<<<grid_for(threads, 256), 256, 0, stream>>>(p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_gemv(const GemvParams& p, cudaStream_t stream) {
  const bool vec = p.w.cols % 8 == 0;
  switch (p.w.type) {
    case DType::F32: return vec ? gemv_for_unit<UnitFloat<0, 8>>(p, stream) : gemv_for_unit<UnitFloat<0, 1>, false>(p, stream);
    case DType::F16: return vec ? gemv_for_unit<UnitFloat<1, 8>>(p, stream) : gemv_for_unit<UnitFloat<1, 1>, false>(p, stream);
    case DType::BF16: return vec ? gemv_for_unit<UnitFloat<2, 8>>(p, stream) : gemv_for_unit<UnitFloat<2, 1>, false>(p, stream);
    case DType::Q4_0: return gemv_for_unit<UnitQ4_0>(p, stream);
    case DType::Q8_0: return gemv_for_unit<UnitQ8_0>(p, stream);
    case DType::Q4_K: return gemv_for_unit<UnitQ4_K>(p, stream);
    case DType::Q5_K: return gemv_for_unit<UnitQ5_K>(p, stream);
    case DType::Q6_K: return gemv_for_unit<UnitQ6_K>(p, stream);
    case DType::MLX_AFFINE: return p.w.bits == 4 ? gemv_for_unit<UnitMlx4>(p, stream) : gemv_for_unit<UnitMlx8>(p, stream);
    default: fail("matmul: weight type " + std::string(dtype_name(p.w.type)) + " has no CUDA kernel");
  }
}

void launch_matmul_tiled(const TiledMatmulParams& p, cudaStream_t stream) {
  auto handle = static_cast<cublasHandle_t>(p.cublas);
  check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
  const DevWeight& w = p.w;
  const float one = 1.0f, zero = 0.0f;
  const int m_all = static_cast<int>(w.rows), n = static_cast<int>(p.n), k = static_cast<int>(w.cols);
  if (w.type == DType::F32) {  // exact: the float reference models stay float
    check_cublas(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, m_all, n, k, &one, reinterpret_cast<const float*>(w.data), k,
                             p.x, k, &zero, p.out, m_all),
                 "cublasSgemm");
    return;
  }
  auto* xh = reinterpret_cast<__half*>(p.xh);
  to_half_kernel<<<grid_for(p.n * w.cols, 256), 256, 0, stream>>>(p.x, xh, p.n * w.cols);
  HEARTH_CUDA_LAUNCHED();
  const int64_t chunk = w.type == DType::F16 ? w.rows : std::max<int64_t>(1, p.tile_elems / w.cols);
  for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
    const int64_t rc = std::min(chunk, w.rows - r0);
    const void* a = p.tile;
    auto* tile = reinterpret_cast<__half*>(p.tile);
    switch (w.type) {
      case DType::F16: a = w.data; break;
      case DType::Q4_0: dequant_tile<UnitQ4_0>(w, r0, rc, tile, stream); break;
      case DType::Q8_0: dequant_tile<UnitQ8_0>(w, r0, rc, tile, stream); break;
      case DType::Q4_K: dequant_tile<UnitQ4_K>(w, r0, rc, tile, stream); break;
      case DType::Q5_K: dequant_tile<UnitQ5_K>(w, r0, rc, tile, stream); break;
      case DType::Q6_K: dequant_tile<UnitQ6_K>(w, r0, rc, tile, stream); break;
      case DType::MLX_AFFINE:
        if (w.bits == 4) dequant_tile<UnitMlx4>(w, r0, rc, tile, stream);
        else dequant_tile<UnitMlx8>(w, r0, rc, tile, stream);
        break;
      default:
        dequant_tile_float_kernel<<<grid_for(rc * w.cols, 256), 256, 0, stream>>>(w, r0, rc, tile);
        HEARTH_CUDA_LAUNCHED();
        break;
    }
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rc), n, k, &one, a, CUDA_R_16F, k, xh,
                              CUDA_R_16F, k, &zero, p.out + r0, CUDA_R_32F, m_all, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
}

}  // namespace hearth::cuda
