// Matrix products against stored weights on the GPU: out[n, rows] = x[n, cols] @ w^T.
//
// Decode (n <= 8): one kernel reads every weight byte once. A block of 128 threads works
// on a group of 1, 2 or 4 rows at a time, looping over groups; the threads of a row walk
// its units (quant_units.cuh) so neighbouring threads read neighbouring bytes, decode them
// in registers and dot them with every token's activations (int8 blocks through dp4a for
// quantized types, floats otherwise; one token's int8 blocks staged in shared memory).
// Several units are loaded before any is used, to keep more bytes in flight per thread.
//
// Prompts (n > 8): the weight is dequantized to f16 tiles of whole rows and multiplied by
// cuBLAS on the tensor cores with f32 accumulation; x is converted to f16 once per call.
#include <cublas_v2.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dequant_elem.cuh"
#include "backend/cuda/gemv_x.cuh"
#include "backend/cuda/ops.h"

namespace hearth::cuda {
namespace {

constexpr int kGemvThreads = 128;
constexpr int64_t kStageMaxBytes = 48 * 1024;  // shared memory for one token's activations

__device__ __forceinline__ XRow x_row(const GemvParams& p, int t) {
  const int64_t cols = p.w.cols;
  return XRow{p.xq ? p.xq + t * cols : nullptr, p.xd ? p.xd + t * (cols / 32) : nullptr,
              p.xs ? p.xs + t * (cols / 32) : nullptr, p.x ? p.x + t * cols : nullptr};
}

// The rows of group g (rows_per_block rows; groups [0, blocks1) are w's, then the second
// and third weight's) and this thread's row in it.
struct GemvTarget {
  const uint8_t* row;
  int64_t r, rows;
  WAux aux;
  float* out;
  bool valid;
};

__device__ __forceinline__ GemvTarget gemv_target(const GemvParams& p, int64_t g, int per_row) {
  GemvTarget t{p.w.data, 0, p.w.rows, WAux{p.w.scales, p.w.biases, p.w.scale_kind, p.w.group_size, p.w.groups_per_row},
               p.out, false};
  if (p.blocks1 > 0 && g >= p.blocks1) {
    const bool second = g < p.blocks2;
    g -= second ? p.blocks1 : p.blocks2;
    t.rows = second ? p.rows2 : p.rows3;
    t.row = second ? p.data2 : p.data3;
    t.aux.scales = second ? p.scales2 : p.scales3;
    t.aux.biases = second ? p.biases2 : p.biases3;
    t.out = second ? p.out2 : p.out3;
  }
  t.r = g * p.rows_per_block + threadIdx.x / per_row;
  t.valid = t.r < t.rows;
  t.row += t.r * p.w.row_bytes;
  return t;
}

__device__ __forceinline__ int64_t gemv_groups(const GemvParams& p) {
  const int64_t rpb = p.rows_per_block;
  return p.blocks1 > 0 ? p.blocks2 + (p.data3 ? (p.rows3 + rpb - 1) / rpb : 0) : (p.w.rows + rpb - 1) / rpb;
}

// Units a thread loads before it uses any: 32-element units are small (16-34 bytes), so
// four of them; two of the 64-element K-quant units (and of float units). The backend's
// choice of rows per block (gemv_rows_per_block) counts with the same numbers.
template <class U>
constexpr int kUnitsInFlight = U::kElems == 32 ? 4 : 2;

// Asks L2 for the bytes of row group g (its rows, and MLX scales and biases): the block
// is computing an earlier group meanwhile, so its loads of group g find the lines in L2.
__device__ __forceinline__ void prefetch_group(const GemvParams& p, int64_t g, int64_t n_groups) {
  if (p.prefetch == 0 || g >= n_groups) return;
  const GemvTarget t = gemv_target(p, g, kGemvThreads);  // t.r: the group's first row
  const int64_t n_rows = min(static_cast<int64_t>(p.rows_per_block), t.rows - t.r);
  const int64_t bytes = n_rows * p.w.row_bytes;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (p.prefetch == 2) {  // one request to the copy engine (16-byte bounds: weights carry 16 bytes of padding)
    if (threadIdx.x == 0) {
      const uintptr_t a = reinterpret_cast<uintptr_t>(t.row) & ~uintptr_t{15};
      const uintptr_t e = (reinterpret_cast<uintptr_t>(t.row) + bytes + 15) & ~uintptr_t{15};
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"(static_cast<uint32_t>(e - a)) : "memory");
    }
    return;
  }
#endif
  for (int64_t i = threadIdx.x * int64_t{128}; i < bytes; i += kGemvThreads * int64_t{128})
    asm volatile("prefetch.global.L2 [%0];" ::"l"(t.row + i));
  if (t.aux.scales) {
    const int64_t sb = p.w.scale_kind == 0 ? 4 : 2, at = t.r * p.w.groups_per_row * sb;
    const int64_t n = n_rows * p.w.groups_per_row * sb;
    for (int64_t i = threadIdx.x * int64_t{128}; i < n; i += kGemvThreads * int64_t{128}) {
      asm volatile("prefetch.global.L2 [%0];" ::"l"(static_cast<const char*>(t.aux.scales) + at + i));
      asm volatile("prefetch.global.L2 [%0];" ::"l"(static_cast<const char*>(t.aux.biases) + at + i));
    }
  }
}

// Decode products. Blocks loop over row groups (the grid is what fits on the GPU at once).
// A thread loads kUnitsInFlight units of its row before using them; the first ones of a
// block's first group are loaded before pdl_wait(), so the weight stream starts while the
// previous kernel finishes, and while a block computes one group, L2 is already asked for
// the next one's bytes (prefetch_group) and that group's first units are loaded before
// this group's sums are reduced. kStage (one token, quantized): the activations are
// copied once per block into shared memory instead of being read by every row.
template <class U, int NT, bool kStage>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const GemvParams p) {
  constexpr int kU = kUnitsInFlight<U>;
  extern __shared__ int4 x_smem[];
  __shared__ float partial[kGemvThreads / kWarp][NT];
  const int per_row = kGemvThreads / p.rows_per_block;  // 32, 64 or 128 threads
  const int sub = threadIdx.x % per_row;
  const int n_units = static_cast<int>(p.w.cols / U::kElems);
  const int64_t n_groups = gemv_groups(p);
  int64_t g = blockIdx.x;
  GemvTarget tg = gemv_target(p, g, per_row);
  U w[kU];
  auto load_units = [&](const GemvTarget& t, int u0) {
#pragma unroll
    for (int k = 0; k < kU; ++k)
      if (t.valid && u0 + k * per_row < n_units) w[k].load(t.row, t.r, u0 + k * per_row, t.aux);
  };
  load_units(tg, sub);
  prefetch_group(p, g + gridDim.x, n_groups);
  pdl_begin();

  XShared xs{};
  if constexpr (kStage) {
    xs = stage_x(p, x_smem);
    __syncthreads();
  }

  for (; g < n_groups; g += gridDim.x) {
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    if (tg.valid) {
      for (int u = sub; u < n_units;) {
#pragma unroll
        for (int k = 0; k < kU; ++k) {
          const int uk = u + k * per_row;
          if (uk < n_units) {
            if constexpr (kStage) {
              acc[0] += w[k].dot(xs, uk);
            } else {
#pragma unroll
              for (int t = 0; t < NT; ++t)
                if (t < p.n) acc[t] += w[k].dot(x_row(p, t), uk);
            }
          }
        }
        u += kU * per_row;
        if (u < n_units) load_units(tg, u);
      }
    }
    // The next group's first units go out before this group's sums are reduced, and L2
    // is asked for the group after it.
    const GemvTarget cur = tg;
    if (g + gridDim.x < n_groups) {
      prefetch_group(p, g + 2 * static_cast<int64_t>(gridDim.x), n_groups);
      tg = gemv_target(p, g + gridDim.x, per_row);
      load_units(tg, sub);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = warp_sum(acc[t]);
    if (per_row > kWarp) {  // several warps per row: add their sums through shared memory
      const int warp = threadIdx.x / kWarp;
      if (threadIdx.x % kWarp == 0)
#pragma unroll
        for (int t = 0; t < NT; ++t) partial[warp][t] = acc[t];
      __syncthreads();
      if (sub == 0) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          float s = 0;
          for (int k = 0; k < per_row / kWarp; ++k) s += partial[warp + k][t];
          acc[t] = s;
        }
      }
      __syncthreads();  // partial is rewritten by the next group
    }
    if (sub == 0 && cur.valid)
#pragma unroll
      for (int t = 0; t < NT; ++t)
        if (t < p.n) cur.out[t * cur.rows + cur.r] = acc[t];
  }
}

bool stage_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("HEARTH_CUDA_STAGE");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

template <class U, int NT, bool kStage>
void launch_gemv_kernel(const GemvParams& p, cudaStream_t stream) {
  const auto kernel = gemv_kernel<U, NT, kStage>;
  const size_t smem = kStage ? static_cast<size_t>(stage_bytes(p.w.cols)) : 0;
  const int64_t rpb = p.rows_per_block;
  const int64_t groups =
      p.blocks1 > 0 ? p.blocks2 + (p.data3 ? (p.rows3 + rpb - 1) / rpb : 0) : (p.w.rows + rpb - 1) / rpb;
  int device = 0, sms = 1, per_sm = 1;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute", __FILE__,
             __LINE__);
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kGemvThreads, smem),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor", __FILE__, __LINE__);
  const int64_t grid = std::min<int64_t>(groups, static_cast<int64_t>(std::max(per_sm, 1)) * sms);
  HEARTH_LAUNCH(kernel, dim3(static_cast<unsigned>(grid)), dim3(kGemvThreads), smem, stream, p);
}

// kQuant: the activations are int8 blocks, and one token's may be staged.
template <class U, bool kAllWidths = true, bool kQuant = true>
void gemv_for_unit(const GemvParams& p, cudaStream_t stream) {
  if (!kAllWidths || p.n > 4) {
    launch_gemv_kernel<U, 8, false>(p, stream);
  } else if constexpr (kAllWidths) {
    if (p.n == 1) {
      if constexpr (kQuant)
        if (stage_enabled() && stage_bytes(p.w.cols) <= kStageMaxBytes) return launch_gemv_kernel<U, 1, true>(p, stream);
      launch_gemv_kernel<U, 1, false>(p, stream);
    } else if (p.n == 2) {
      launch_gemv_kernel<U, 2, false>(p, stream);
    } else {
      launch_gemv_kernel<U, 4, false>(p, stream);
    }
  }
}

__global__ void quantize_x_kernel(const QuantizeXParams p) {
  pdl_begin();
  const int64_t block = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (block >= p.n * p.cols / 32) return;  // uniform per warp
  warp_quantize(p.x[block * 32 + lane], block * 32 + lane, p.q, p.d, p.s, p.h);
}

// Four elements a thread (n % 4 == 0: 16-byte loads) or one.
template <int kPer>
__global__ void to_half_kernel(const float* x, __half* out, int64_t n) {
  pdl_begin();
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kPer;
  if (i >= n) return;
  if constexpr (kPer == 4) {
    const float4 v = *reinterpret_cast<const float4*>(x + i);
    reinterpret_cast<__half2*>(out + i)[0] = __floats2half2_rn(v.x, v.y);
    reinterpret_cast<__half2*>(out + i)[1] = __floats2half2_rn(v.z, v.w);
  } else {
    out[i] = __float2half_rn(x[i]);
  }
}

// Rows [row0, row0 + n_rows) of a quantized weight as f16, one unit per thread. A block's
// units are consecutive, so together they cover one contiguous range of the tile (a unit
// is kElems elements; the 4 units of a Q6_K super-block permute their parts only inside
// its 256 elements, and kDequantUnits is a multiple of 4). Each thread writes its elements
// to shared memory and the block then stores the range with coalesced 16-byte stores:
// written straight from the units, each warp store touched 32 lines at once and the
// kernel reached a third of the memory bandwidth.
constexpr int kDequantUnits = 128;

template <class U>
__global__ void __launch_bounds__(kDequantUnits) dequant_tile_kernel(const DevWeight w, int64_t row0, int64_t n_rows,
                                                                     __half* tile) {
  __shared__ uint4 stage[kDequantUnits * U::kElems / 8];
  const int64_t units_per_row = w.cols / U::kElems;
  const int64_t total = n_rows * units_per_row;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kDequantUnits;
  const int64_t i = first + threadIdx.x;
  const WAux aux{w.scales, w.biases, w.scale_kind, w.group_size, w.groups_per_row};
  U unit;
  const int64_t rr = i / units_per_row;
  const int u = static_cast<int>(i % units_per_row);
  if (i < total) unit.load(w.data + (row0 + rr) * w.row_bytes, row0 + rr, u, aux);
  pdl_begin();
  if (i < total) {
    const int64_t base = first * U::kElems;  // the block's first element in the tile
#pragma unroll
    for (int part = 0; part < U::kElems / 32; ++part) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        __align__(16) __half h[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = __float2half_rn(unit.elem(32 * part + 8 * j + e));
        stage[swizzle((rr * w.cols + U::part_offset(u, part) + 8 * j - base) / 8)] = *reinterpret_cast<const uint4*>(h);
      }
    }
  }
  __syncthreads();
  const int64_t chunks = (min(total - first, static_cast<int64_t>(kDequantUnits)) * U::kElems) / 8;
  auto* dst = reinterpret_cast<uint4*>(tile) + first * U::kElems / 8;
  for (int64_t c = threadIdx.x; c < chunks; c += kDequantUnits) dst[c] = stage[swizzle(c)];
}

// Float weights other than F16 (BF16): element by element.
__global__ void dequant_tile_float_kernel(const DevWeight w, int64_t row0, int64_t n_rows, __half* tile) {
  pdl_begin();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * w.cols) return;
  const int64_t rr = i / w.cols, k = i % w.cols;
  const WAux aux{};
  tile[i] = __float2half_rn(dequant_elem(w.type, w.data + (row0 + rr) * w.row_bytes, row0 + rr, k, aux, 0));
}

template <class U>
void dequant_tile(const DevWeight& w, int64_t row0, int64_t n_rows, __half* tile, cudaStream_t stream) {
  const int64_t n = n_rows * (w.cols / U::kElems);
  HEARTH_LAUNCH((dequant_tile_kernel<U>), grid_for(n, kDequantUnits), kDequantUnits, 0, stream, w, row0, n_rows, tile);
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
  HEARTH_LAUNCH(quantize_x_kernel, grid_for(threads, 256), 256, 0, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

void launch_gemv_pair(const GemvPairParams& p, cudaStream_t stream) {
  if (launch_gemv_pair_stream(p.a, p.b, stream)) return;
  launch_gemv(p.a, stream);
  launch_gemv(p.b, stream);
}

void launch_gemv(const GemvParams& p, cudaStream_t stream) {
  if (launch_gemv_stream(p, stream)) return;
  if (p.residual) {  // the fused add the stream kernel did not take: after the product
    GemvParams plain = p;
    plain.residual = nullptr;
    launch_gemv(plain, stream);
    AddParams a{};
    a.out = p.residual, a.a = p.residual, a.b = p.out, a.n = p.w.rows;
    launch_add(a, stream);
    return;
  }
  const bool vec = p.w.cols % 8 == 0;
  switch (p.w.type) {
    case DType::F32: return vec ? gemv_for_unit<UnitFloat<0, 8>, true, false>(p, stream) : gemv_for_unit<UnitFloat<0, 1>, false, false>(p, stream);
    case DType::F16: return vec ? gemv_for_unit<UnitFloat<1, 8>, true, false>(p, stream) : gemv_for_unit<UnitFloat<1, 1>, false, false>(p, stream);
    case DType::BF16: return vec ? gemv_for_unit<UnitFloat<2, 8>, true, false>(p, stream) : gemv_for_unit<UnitFloat<2, 1>, false, false>(p, stream);
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
  const int64_t n_x = p.n * w.cols;
  if (!p.xh_ready) {
    if (n_x % 4 == 0) {
      HEARTH_LAUNCH(to_half_kernel<4>, grid_for(n_x / 4, 256), 256, 0, stream, p.x, xh, n_x);
    } else {
      HEARTH_LAUNCH(to_half_kernel<1>, grid_for(n_x, 256), 256, 0, stream, p.x, xh, n_x);
    }
    HEARTH_CUDA_LAUNCHED();
  }
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
        HEARTH_LAUNCH(dequant_tile_float_kernel, grid_for(rc * w.cols, 256), 256, 0, stream, w, r0, rc, tile);
        HEARTH_CUDA_LAUNCHED();
        break;
    }
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rc), n, k, &one, a, CUDA_R_16F, k, xh,
                              CUDA_R_16F, k, &zero, p.out + r0, CUDA_R_32F, m_all, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
}

}  // namespace hearth::cuda
