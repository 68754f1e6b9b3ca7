// Decode products for one token that stream the weight through shared memory with the
// bulk copy engine (sm_90): out[rows] = w[rows, cols] @ x, x quantized to 8 bits.
//
// Why: the register-only kernel of matmul.cu keeps at most two units per thread in
// flight, and with ~80 registers a thread only 6 blocks of 128 fit on a multiprocessor,
// so the memory system saw too few outstanding bytes and the products stalled at 30-66%
// of the DRAM bandwidth (ncu, 2026-11-25/26). Here the bytes in flight no longer depend on
// registers: a weight's rows are contiguous, so each block takes a contiguous slice of
// the matrix and one thread asks the copy engine for it in stages (rows_per_stage whole
// rows, at most kStageBytesMax), kStages of them ahead, completing on an mbarrier per
// ring slot. The warps decode the rows from shared memory with the same units as the
// register kernel (quant_units.cuh), so the arithmetic and its rounding are the same; a
// lane always takes the same units of a row, so it loads their activations (staged once
// per block, gemv_x.cuh) into registers once and its inner loop reads only weights.
// Measured (ncu, H200, 8B Q4_K_M layer): the merged gate/up product 25 -> 19 us (64% of
// the DRAM peak), the Q6_K output head 179 -> 147 us; the 4-28 MB products stay at 30-40%:
// with a few stages per block they are bound by the per-stage latency, not the stream.
// Tried and dropped (docs/benchmarks_cuda.md): one block of 16 warps per multiprocessor, 3-6
// smaller blocks, stages of 6-12 KiB, and warps finishing stages without a block barrier.
//
// MLX weights keep their scales and biases in arrays beside the rows: a ring slot holds the
// stage's rows, then their scales, then their biases (three bulk copies on one mbarrier),
// so the units read them from shared memory too (rows whose scale bytes are a multiple of
// 16; others go to the register kernel). H200, 8B MLX 4-bit: 261.5 -> 317.8 tok/s.
//
// A stage holds rows_per_stage rows; warps_per_row = 8 / rows_per_stage warps share a row
// (long rows: fewer rows a stage) and add their sums through shared memory. Merged
// products (q/k/v, gate/up: GemvParams' second and third weight) are segments of the
// stage sequence; a stage never spans two weights.
//
// The weight's first stages are requested before pdl_wait(): weights are constant, so
// their stream starts while the previous kernel finishes.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/gemv_x.cuh"
#include "backend/cuda/launch_tape.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/ptx.cuh"
#include "backend/cuda/quant_units.cuh"

namespace hearth::cuda {
namespace {

constexpr int kStages = 4;
constexpr int kWarps = 8;
constexpr int kBlocksPerSm = 2;  // with 20 KiB stages: measured best against 1 or 3-4 blocks of other sizes
constexpr int64_t kStageBytesMax = 20 * 1024;

// Units a lane keeps activations for, in registers (40 of them): 128 elements. A row of
// more units than kMaxUnits * 32 * warps_per_row goes to the register kernel instead.
template <class U>
constexpr int kMaxUnits = 128 / U::kElems;

struct StreamParams {
  GemvParams p;
  int64_t row_bytes;
  int64_t stage_bytes;      // rows_per_stage * row_bytes, a multiple of 16
  int64_t aux_row_bytes;    // MLX: a row's scales (and as many biases) bytes, a multiple of 16; else 0
  int64_t slot_bytes;       // a ring slot: the stage's rows, then its scales, then its biases
  int64_t seg_end[3];       // cumulative stage counts of the (up to) three weights
  int64_t n_stages;
  int32_t n_segments;
  int32_t rows_per_stage;   // 8, 4, 2 or 1
  int32_t warps_per_row;    // warps per block / rows_per_stage
  int32_t pad;
};

// One weight of the product: where its rows are and where its outputs go.
struct Segment {
  const uint8_t* data;
  const void* scales;
  const void* biases;
  float* out;
  int64_t rows, first_stage;
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // (only the sm_90 code launches this kernel)
__device__ __forceinline__ Segment segment_of(const StreamParams& s, int64_t stage) {
  const GemvParams& p = s.p;
  if (s.n_segments > 1 && stage >= s.seg_end[0]) {
    if (s.n_segments > 2 && stage >= s.seg_end[1]) return Segment{p.data3, p.scales3, p.biases3, p.out3, p.rows3, s.seg_end[1]};
    return Segment{p.data2, p.scales2, p.biases2, p.out2, p.rows2, s.seg_end[0]};
  }
  return Segment{p.w.data, p.w.scales, p.w.biases, p.out, p.w.rows, 0};
}

// Thread 0 only: stage `stage` of the sequence into `dst`, completing on `bar`. The last
// stage of a weight may hold fewer rows; its size is rounded up to 16 bytes, which the 16
// bytes of padding after every device weight cover.
__device__ __forceinline__ void issue_stage(const StreamParams& s, int64_t stage, uint8_t* dst, uint64_t* bar) {
  const Segment seg = segment_of(s, stage);
  const int64_t row0 = (stage - seg.first_stage) * s.rows_per_stage;
  const int64_t rows = min(static_cast<int64_t>(s.rows_per_stage), seg.rows - row0);
  const auto bytes = static_cast<uint32_t>((rows * s.row_bytes + 15) / 16 * 16);
  const auto aux_bytes = static_cast<uint32_t>(rows * s.aux_row_bytes);
  mbar_expect_tx(bar, bytes + 2 * aux_bytes);
  bulk_copy(dst, seg.data + row0 * s.row_bytes, bytes, bar);
  if (aux_bytes > 0) {  // MLX: the rows' scales and biases into the rest of the slot
    const int64_t aux_stage = s.rows_per_stage * s.aux_row_bytes;
    bulk_copy(dst + s.stage_bytes, static_cast<const uint8_t*>(seg.scales) + row0 * s.aux_row_bytes, aux_bytes, bar);
    bulk_copy(dst + s.stage_bytes + aux_stage, static_cast<const uint8_t*>(seg.biases) + row0 * s.aux_row_bytes,
              aux_bytes, bar);
  }
}
#endif

template <class U>
__global__ void __launch_bounds__(kWarps * kWarp) gemv_stream_kernel(const StreamParams s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) int4 smem[];  // kStages stages, then the activations
  __shared__ uint64_t full[kStages];
  __shared__ float partial[2][kWarps];  // by stage parity: the next stage's sums may land first
  const GemvParams& p = s.p;
  auto* ring = reinterpret_cast<uint8_t*>(smem);
  const int64_t begin = blockIdx.x * s.n_stages / gridDim.x;
  const int64_t end = (blockIdx.x + 1) * s.n_stages / gridDim.x;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) mbar_init(&full[i], 1);
    mbar_fence_init();
    for (int64_t j = begin; j < end && j < begin + kStages; ++j)
      issue_stage(s, j, ring + (j - begin) * s.slot_bytes, &full[j - begin]);
  }
  pdl_begin();
  const XShared xs = stage_x(p, reinterpret_cast<int4*>(ring + kStages * s.slot_bytes));
  __syncthreads();  // activations staged, barriers initialised

  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int wpr = s.warps_per_row;
  const int slot_row = warp / wpr, wsub = warp % wpr;
  const int n_units = static_cast<int>(p.w.cols / U::kElems);
  // This lane's units of every row (the same for all rows) and their activations, held
  // in registers for the whole kernel: the inner loop reads only weight bytes.
  constexpr int kMax = kMaxUnits<U>;
  XBlocks<U::kBlocks> xb[kMax];
#pragma unroll
  for (int k = 0; k < kMax; ++k) {
    const int u = lane + kWarp * (wsub + wpr * k);
    if (u < n_units) xb[k] = gather_x<U>(xs, u);
  }
  for (int64_t j = begin; j < end; ++j) {
    const int64_t i = j - begin;
    const int slot = static_cast<int>(i % kStages);
    const Segment seg = segment_of(s, j);
    const int64_t row0 = (j - seg.first_stage) * s.rows_per_stage;
    const int rows_here = static_cast<int>(min(static_cast<int64_t>(s.rows_per_stage), seg.rows - row0));
    mbar_wait(&full[slot], static_cast<uint32_t>((i / kStages) & 1));
    float acc = 0.0f;
    if (slot_row < rows_here) {
      const uint8_t* slot_data = ring + slot * s.slot_bytes;
      const uint8_t* row = slot_data + slot_row * s.row_bytes;
      // MLX units find their row's scales and biases in the slot (row slot_row of the stage).
      const uint8_t* aux_scales = slot_data + s.stage_bytes;
      const WAux aux{aux_scales, aux_scales + s.rows_per_stage * s.aux_row_bytes, p.w.scale_kind, p.w.group_size,
                     p.w.groups_per_row};
      const int64_t r = slot_row;
#pragma unroll
      for (int k = 0; k < kMax; ++k) {
        const int u = lane + kWarp * (wsub + wpr * k);
        if (u < n_units) {
          U w;
          w.load(row, r, u, aux);
          acc += w.dot(xb[k]);
        }
      }
    }
    acc = warp_sum(acc);
    if (wpr == 1) {
      if (lane == 0 && slot_row < rows_here) seg.out[row0 + slot_row] = acc;
    } else if (lane == 0) {
      partial[i & 1][warp] = acc;
    }
    __syncthreads();  // the slot is read by every warp; the partial sums are complete
    if (wpr > 1 && threadIdx.x < rows_here) {
      float sum = 0.0f;
      for (int k = 0; k < wpr; ++k) sum += partial[i & 1][threadIdx.x * wpr + k];
      seg.out[row0 + threadIdx.x] = sum;
    }
    if (threadIdx.x == 0 && j + kStages < end) issue_stage(s, j + kStages, ring + slot * s.slot_bytes, &full[slot]);
  }
#endif
}

template <class U>
constexpr bool kMlx = std::is_same_v<U, UnitMlx4> || std::is_same_v<U, UnitMlx8>;

// Units whose loads need 16-byte aligned rows (ld_words16); the others read any address.
template <class U>
constexpr bool kAlignedRows = !(std::is_same_v<U, UnitQ4_0> || std::is_same_v<U, UnitQ8_0> || std::is_same_v<U, UnitQ6_K>);

// The dynamic shared memory a block of gemv_stream_kernel<U> may have (the attribute is
// raised once, to the card's opt-in maximum less the kernel's static shared memory).
template <class U>
size_t smem_limit() {
  static const size_t limit = [] {
    int device = 0, max_optin = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
    check_cuda(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
               "cudaDeviceGetAttribute", __FILE__, __LINE__);
    cudaFuncAttributes attr{};
    check_cuda(cudaFuncGetAttributes(&attr, gemv_stream_kernel<U>), "cudaFuncGetAttributes", __FILE__, __LINE__);
    const int dynamic_max = max_optin - static_cast<int>(attr.sharedSizeBytes);
    check_cuda(cudaFuncSetAttribute(gemv_stream_kernel<U>, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic_max),
               "cudaFuncSetAttribute", __FILE__, __LINE__);
    return static_cast<size_t>(dynamic_max);
  }();
  return limit;
}

// The stream plan of p for unit type U, or false where this kernel does not apply.
template <class U>
bool plan_for_unit(const GemvParams& p, StreamParams* out) {
  const int64_t row_bytes = p.w.row_bytes;
  if (p.w.cols % U::kElems != 0 || row_bytes > kStageBytesMax) return false;
  if (kAlignedRows<U> && row_bytes % 16 != 0) return false;
  const int64_t n_units = p.w.cols / U::kElems;
  int rps = kWarps;
  while (rps > 1 && (rps * row_bytes > kStageBytesMax || n_units > kMaxUnits<U> * kWarp * (kWarps / rps))) rps /= 2;
  if (n_units > kMaxUnits<U> * kWarp * (kWarps / rps)) return false;
  while (rps > 1 && (rps * row_bytes) % 16 != 0) rps /= 2;
  if ((rps * row_bytes) % 16 != 0) return false;
  if (reinterpret_cast<uintptr_t>(p.w.data) % 16 != 0) return false;
  auto s = zeroed<StreamParams>();
  s.p = p;
  s.row_bytes = row_bytes;
  s.rows_per_stage = rps;
  s.warps_per_row = kWarps / rps;
  s.stage_bytes = rps * row_bytes;
  if constexpr (kMlx<U>) {
    s.aux_row_bytes = p.w.groups_per_row * (p.w.scale_kind == 0 ? 4 : 2);
    if (s.aux_row_bytes % 16 != 0) return false;
    for (const void* a : {p.w.scales, p.w.biases, p.scales2, p.biases2, p.scales3, p.biases3})
      if (reinterpret_cast<uintptr_t>(a) % 16 != 0) return false;
  }
  s.slot_bytes = s.stage_bytes + 2 * rps * s.aux_row_bytes;
  const auto stages = [&](int64_t rows) { return (rows + rps - 1) / rps; };
  s.seg_end[0] = stages(p.w.rows);
  s.n_segments = 1;
  if (p.blocks1 > 0) {
    if (reinterpret_cast<uintptr_t>(p.data2) % 16 != 0 || (p.data3 && reinterpret_cast<uintptr_t>(p.data3) % 16 != 0))
      return false;
    s.seg_end[1] = s.seg_end[0] + stages(p.rows2);
    s.n_segments = 2;
    if (p.data3) {
      s.seg_end[2] = s.seg_end[1] + stages(p.rows3);
      s.n_segments = 3;
    }
  }
  s.n_stages = s.seg_end[s.n_segments - 1];
  if (static_cast<size_t>(kStages * s.slot_bytes + stage_bytes(p.w.cols)) > smem_limit<U>()) return false;
  *out = s;
  return true;
}

template <class U>
void launch_for_unit(const StreamParams& s, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(kStages * s.slot_bytes + stage_bytes(s.p.w.cols));
  const auto kernel = gemv_stream_kernel<U>;
  int device = 0, sms = 1, per_sm = 1;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute", __FILE__,
             __LINE__);
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * kWarp, smem),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor", __FILE__, __LINE__);
  HEARTH_ASSERT(per_sm >= 1);
  per_sm = std::min(per_sm, kBlocksPerSm);
  const int64_t grid = std::min<int64_t>(s.n_stages, static_cast<int64_t>(per_sm) * sms);
  HEARTH_LAUNCH(kernel, dim3(static_cast<unsigned>(grid)), dim3(kWarps * kWarp), smem, stream, s);
}

bool stream_gemv_available() {
  static const bool on = [] {
    const char* e = std::getenv("HEARTH_CUDA_STREAM");
    if (e && std::string(e) == "0") return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major == 9;  // the sm_90 code path (bulk copies, mbarrier transactions)
  }();
  return on;
}

}  // namespace

bool launch_gemv_stream(const GemvParams& p, cudaStream_t stream) {
  if (p.n != 1 || !p.xq || !stream_gemv_available()) return false;
  return with_quant_unit(p.w.type, p.w.bits, [&](auto u) {
    using U = decltype(u);
    StreamParams s;
    if (!plan_for_unit<U>(p, &s)) return false;
    launch_for_unit<U>(s, stream);
    return true;
  });
}

}  // namespace hearth::cuda
