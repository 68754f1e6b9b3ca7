// Decode products for one token that stream the weight through shared memory with the
// bulk copy engine (sm_90): out[rows] = w[rows, cols] @ x, x quantized to 8 bits.
//
// Why: the register-only kernel of matmul.cu keeps at most two units per thread in
// flight, and with ~80 registers a thread only 6 blocks of 128 fit on a multiprocessor,
// so the memory system saw too few outstanding bytes and the products stalled at 30-66%
// of the DRAM bandwidth (ncu, 2026-11-25/26). Here the bytes in flight do not depend on
// registers: the copy engine brings the rows into shared memory, several chunks ahead.
//
// Every warp owns a run of whole rows and its own ring of `slots` chunk slots (an mbarrier
// each; lane 0 asks the copy engine for the next chunk as soon as the warp is done with a
// slot), so after the activations are staged no warp waits for another, and a row is
// reduced and stored once. A chunk is a row, or an equal part of a long one
// (chunks_per_row), so the ring stays small (3 slots of ~2.3 KB a warp for 4096-column
// 4-bit rows): 24 warps' rings fit on a multiprocessor (below). Rows are dealt in equal
// runs, rows_per_warp = ceil(rows / resident warps), to only as many warps as that needs:
// o_proj's 4096 rows on 3168 resident warps would otherwise put 2 rows on some warps and 1
// on others, and take the time of 2 anyway.
//
// The units are those of the register kernel (quant_units.cuh), so the arithmetic and its
// rounding are the same. A one-chunk row's lane always takes the same units, so their
// activations (staged once per block, gemv_x.cuh) sit in registers for the whole kernel;
// chunked rows gather them from shared memory per unit. MLX weights keep their scales and
// biases in arrays beside the rows: a slot holds the chunk's bytes, then its scales, then
// its biases (three bulk copies on one mbarrier).
//
// Bulk copies need 16-byte aligned ends, which rows of Q4_0, Q8_0 and Q6_K (18, 34, 210
// bytes a unit) need not have: a copy takes the aligned bytes around its range (at most 15
// more on each side, within the 16 bytes of padding after every device weight) and the
// units read from the range's offset in the slot (their loads take any address).
//
// The first chunks are requested before pdl_wait(): weights are constant, so their stream
// starts while the previous kernel finishes.
//
// Blocks of 24 warps, one a multiprocessor where the rings fit (fewer warps, by 8, where
// they do not): against three blocks of 8, H200 8B tg128 +1.5% (a third of the blocks
// stage the activations). The residual add after o_proj/down is fused in (GemvParams
// residual, backend_cuda_fuse.cpp): a row is one warp's, which adds it into x as it
// stores it, so the add launch is gone: with the larger blocks +4.5% more.
//
// Measured (docs/benchmarks_cuda_decode.md): against the block-ring kernel this replaced (8 rows
// a stage, a block barrier each stage), 8B tg128 on an H200 Q4_K_M 357 -> 381 tok/s, Q4_0
// 389 -> 402, MLX 4-bit 332 -> 346; on an H100 326 -> 333, 344 -> 354, 316 -> 327.
// HEARTH_CUDA_WSLOTS / HEARTH_CUDA_WBLOCKS (experiments) change the ring's slots and the
// blocks a multiprocessor.
//
// Pair launches (GemvPairParams): two products of different weight types against one x
// (Q4_K_M's merged q/k in Q4_K and its v in Q6_K) in one grid whose first blocks run the
// first product and the rest the second, each block one product's plan; the rows a warp of
// each are chosen so both parts end together. H100 (2026-11-27): the pair alone 14.0 us
// against 12.3 + 8.6 for two launches; 8B Q4_K_M tg128 396.7 / 400.2 / 402.8 -> 409.3 /
// 409.0 / 409.0 tok/s (HEARTH_CUDA_FUSE_PAIR=0 against the default, same call).
#include <algorithm>
#include <atomic>
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

constexpr int kMaxWarps = 24;      // a block's warps: HEARTH_CUDA_WWARPS (8, 16 or 24)
constexpr int kWarpStep = 8;       // fewer, by this many, where the rings do not fit
constexpr int kMaxSlots = 8;
constexpr int kDefaultSlots = 3;         // H200 Q4_K_M tg128: 3 slots x 3 blocks 380, 4 x 2 323, 6 x 1 308
constexpr int kDefaultBlocksPerSm = 3;
constexpr int32_t kSlotBytesMax = 3600;  // a Q6_K row of 4096 (3360 bytes) is one chunk

// Units a lane keeps activations for, in registers (40 of them): 128 elements.
template <class U>
constexpr int kMaxUnits = 128 / U::kElems;

template <class U>
constexpr bool kMlx = std::is_same_v<U, UnitMlx4> || std::is_same_v<U, UnitMlx8>;

// Units whose staged activations are arranged for them (UnitMlx4::pair_x, stage_x<true>).
template <class U>
constexpr bool kPairedX = std::is_same_v<U, UnitMlx4>;

// Units with a fused load_dot for these kernels (fewer instructions, the same result).
template <class U>
constexpr bool kLoadDot = std::is_same_v<U, UnitQ6_K>;

// Unit u of the row at row_base (scales at aux, indexed from the row's first group)
// against its staged activations x: the unit's fused form where it has one.
template <class U>
__device__ __forceinline__ float unit_dot(const uint8_t* row_base, int u, const WAux& aux,
                                          const XBlocks<U::kBlocks>& x) {
  if constexpr (kPairedX<U>) {
    return U::load_dot_paired(row_base, u, aux, x);
  } else if constexpr (kLoadDot<U>) {
    return U::load_dot(row_base, u, aux, x);
  } else {
    U w;
    w.load(row_base, 0, u, aux);
    return w.dot(x);
  }
}

// Units whose loads need 16-byte aligned addresses (ld_words16); the others read any.
template <class U>
constexpr bool kAlignedUnits = !(std::is_same_v<U, UnitQ4_0> || std::is_same_v<U, UnitQ8_0> || std::is_same_v<U, UnitQ6_K>);

// Bytes of a slot region that holds `bytes` copied from any address: the aligned bytes
// around them.
__host__ __device__ constexpr int32_t region_bytes(int32_t bytes) { return bytes > 0 ? (bytes + 15 + 15) / 16 * 16 : 0; }

struct WarpStreamParams {
  GemvParams p;
  int32_t row_bytes;        // bytes of one row (the same for the merged weights)
  int32_t chunk_bytes;      // row_bytes / chunks_per_row
  int32_t aux_row_bytes;    // MLX: a row's scales bytes (as many biases); else 0
  int32_t aux_chunk_bytes;  // aux_row_bytes / chunks_per_row
  int32_t data_region;      // a slot's bytes for the chunk: chunk_bytes if aligned, else region_bytes
  int32_t aux_region;       // the same for its scales, and again for its biases (0 without)
  int32_t slot_bytes;       // data_region + 2 * aux_region
  int32_t aligned;          // every chunk's copies start and end 16-byte aligned: no leads
  int32_t chunks_per_row;
  int32_t chunk_units;      // units of a chunk
  int32_t slots;            // ring slots per warp, <= kMaxSlots
  int32_t rows_per_warp;
  int32_t n_rows;           // all weights' rows together
  int32_t seg_end[3];       // cumulative rows of the (up to) three weights
  int32_t n_segments;
  int32_t warps;            // a block's
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Where chunk c of a row is in memory, and where its sum goes.
struct ChunkRef {
  const uint8_t* data;
  const uint8_t* scales;  // MLX
  const uint8_t* biases;
  float* out;
};

__device__ __forceinline__ ChunkRef chunk_ref(const WarpStreamParams& s, int32_t row, int32_t c) {
  const GemvParams& p = s.p;
  const uint8_t* data = p.w.data;
  const void *scales = p.w.scales, *biases = p.w.biases;
  float* out = p.out;
  if (s.n_segments > 1 && row >= s.seg_end[0]) {
    if (s.n_segments > 2 && row >= s.seg_end[1]) {
      row -= s.seg_end[1], data = p.data3, scales = p.scales3, biases = p.biases3, out = p.out3;
    } else {
      row -= s.seg_end[0], data = p.data2, scales = p.scales2, biases = p.biases2, out = p.out2;
    }
  }
  const int64_t aux = static_cast<int64_t>(row) * s.aux_row_bytes + c * s.aux_chunk_bytes;
  return ChunkRef{data + static_cast<int64_t>(row) * s.row_bytes + c * s.chunk_bytes,
                  static_cast<const uint8_t*>(scales) + aux, static_cast<const uint8_t*>(biases) + aux, out + row};
}

__device__ __forceinline__ int32_t lead(const void* p) { return static_cast<int32_t>(reinterpret_cast<uintptr_t>(p) & 15); }

// `bytes` from `src` (any address) into dst from offset lead(src); returns the bytes asked.
__device__ __forceinline__ uint32_t copy_around(uint8_t* dst, const uint8_t* src, int32_t bytes, uint64_t* bar) {
  const uint8_t* begin = src - lead(src);
  const auto n = static_cast<uint32_t>((lead(src) + bytes + 15) / 16 * 16);
  bulk_copy(dst, begin, n, bar);
  return n;
}

// Lane 0 only: chunk c of row `row` into slot `dst`, completing on `bar`.
__device__ __forceinline__ void issue_chunk(const WarpStreamParams& s, int32_t row, int32_t c, uint8_t* dst,
                                            uint64_t* bar) {
  const ChunkRef r = chunk_ref(s, row, c);
  const auto around = [](const uint8_t* src, int32_t bytes) {
    return static_cast<uint32_t>((lead(src) + bytes + 15) / 16 * 16);
  };
  uint32_t total = around(r.data, s.chunk_bytes);
  if (s.aux_chunk_bytes > 0) total += around(r.scales, s.aux_chunk_bytes) + around(r.biases, s.aux_chunk_bytes);
  mbar_expect_tx(bar, total);  // before the copies, so no completion can run ahead of it
  copy_around(dst, r.data, s.chunk_bytes, bar);
  if (s.aux_chunk_bytes > 0) {
    copy_around(dst + s.data_region, r.scales, s.aux_chunk_bytes, bar);
    copy_around(dst + s.data_region + s.aux_region, r.biases, s.aux_chunk_bytes, bar);
  }
}
#endif

// One warp's rows [row_begin, row_begin + n_chunks / chunks_per_row) through its ring,
// whose first min(slots, n_chunks) chunks are already requested.
template <class U, bool kXRegs>
__device__ __forceinline__ void warp_rows(const WarpStreamParams& s, const XShared& xs, uint8_t* ring, uint64_t* bars,
                                          int32_t row_begin, int32_t n_chunks) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const GemvParams& p = s.p;
  const int lane = threadIdx.x % kWarp;
  const int32_t row_end = row_begin + n_chunks / s.chunks_per_row;
  constexpr int kMax = kMaxUnits<U>;
  XBlocks<U::kBlocks> xb[kXRegs ? kMax : 1];
  if constexpr (kXRegs) {
#pragma unroll
    for (int k = 0; k < kMax; ++k) {
      const int u = lane + kWarp * k;
      if (u < s.chunk_units) xb[k] = gather_x<U>(xs, u);
    }
  }
  const int per_lane = (s.chunk_units + kWarp - 1) / kWarp;
  const int esize = p.w.scale_kind == 0 ? 4 : 2;
  int32_t row = row_begin, c = 0;            // the chunk being computed
  int32_t next_row = row_begin, next_c = 0;  // the chunk the next refill asks for
  for (int i = 0; i < s.slots; ++i)
    if (++next_c == s.chunks_per_row) next_c = 0, ++next_row;
  int slot = 0;
  uint32_t parity = 0;
  float acc = 0.0f;
  // The residual rows this warp adds into, one a lane, loaded now rather than after each
  // row's sum (a dependent round trip per row). Rows of a residual: a hidden size, so few.
  const bool res_in_regs = p.residual && row_end - row_begin <= kWarp;
  const float res = res_in_regs && lane < row_end - row_begin ? p.residual[row_begin + lane] : 0.0f;
  for (int32_t j = 0; j < n_chunks; ++j) {
    int32_t lead_data = 0, lead_scales = 0, lead_biases = 0;  // where the copies began
    if (!s.aligned) {
      const ChunkRef r = chunk_ref(s, row, c);
      lead_data = lead(r.data);
      if constexpr (kMlx<U>) lead_scales = lead(r.scales), lead_biases = lead(r.biases);
    }
    const uint8_t* at = ring + slot * s.slot_bytes;
    // The units index the whole row (unit u, scale group 32u / group_size): the bases
    // below sit before the slot by the chunk's first unit so that its units land in it
    // (chunks start on whole superblocks and scale groups).
    const int32_t u0 = c * s.chunk_units;
    const int64_t g0 = kMlx<U> ? static_cast<int64_t>(u0) * U::kElems / p.w.group_size : 0;
    const uint8_t* row_base = at + lead_data - static_cast<int64_t>(c) * s.chunk_bytes;
    const uint8_t* scales = at + s.data_region + lead_scales - g0 * esize;
    const uint8_t* biases = at + s.data_region + s.aux_region + lead_biases - g0 * esize;
    const WAux aux{scales, biases, p.w.scale_kind, p.w.group_size, 0};
    mbar_wait(&bars[slot], parity);
    if constexpr (kXRegs) {  // one chunk a row: u0 = 0
#pragma unroll
      for (int k = 0; k < kMax; ++k) {
        const int u = lane + kWarp * k;
        if (u < s.chunk_units) acc += unit_dot<U>(row_base, u, aux, xb[k]);
      }
    } else {
      for (int k = 0; k < per_lane; ++k) {
        const int u = u0 + lane + kWarp * k;
        if (u < u0 + s.chunk_units) acc += unit_dot<U>(row_base, u, aux, gather_x<U>(xs, u));
      }
    }
    __syncwarp();  // every lane is done with the slot
    if (next_row < row_end) {
      if (lane == 0) issue_chunk(s, next_row, next_c, ring + slot * s.slot_bytes, &bars[slot]);
      if (++next_c == s.chunks_per_row) next_c = 0, ++next_row;
    }
    if (++c == s.chunks_per_row) {
      acc = warp_sum(acc);
      const float r = res_in_regs ? __shfl_sync(0xffffffffu, res, row - row_begin) : 0.0f;
      if (lane == 0) {
        *chunk_ref(s, row, 0).out = acc;
        if (p.residual) p.residual[row] = (res_in_regs ? r : p.residual[row]) + acc;  // one weight: its row
      }
      acc = 0.0f, c = 0, ++row;
    }
    if (++slot == s.slots) slot = 0, parity ^= 1u;
  }
#endif
}

// Block `block` of the launch of s: stages the activations, then each warp streams its run
// of rows. `bars` holds kMaxSlots mbarriers a warp.
template <class U, bool kXRegs>
__device__ __forceinline__ void stream_block(const WarpStreamParams& s, int32_t block, int4* smem,
                                             uint64_t (*full)[kMaxSlots]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const GemvParams& p = s.p;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const auto x_bytes = static_cast<int32_t>((stage_bytes(p.w.cols) + 127) / 128 * 128);
  uint8_t* ring = reinterpret_cast<uint8_t*>(smem) + x_bytes + warp * s.slots * s.slot_bytes;
  const int32_t gw = block * s.warps + warp;
  const int32_t row_begin = min(gw * s.rows_per_warp, s.n_rows);
  const int32_t row_end = min(row_begin + s.rows_per_warp, s.n_rows);
  const int32_t n_chunks = (row_end - row_begin) * s.chunks_per_row;
  uint64_t* bars = full[warp];
  if (lane == 0) {
    for (int i = 0; i < s.slots; ++i) mbar_init(&bars[i], 1);
    mbar_fence_init();
    int32_t row = row_begin, c = 0;
    for (int i = 0; i < s.slots && i < n_chunks; ++i) {
      issue_chunk(s, row, c, ring + i * s.slot_bytes, &bars[i]);
      if (++c == s.chunks_per_row) c = 0, ++row;
    }
  }
  pdl_begin();
  const XShared xs = stage_x<kPairedX<U>>(p, smem);
  __syncthreads();  // activations staged, every warp's barriers initialised
  if (n_chunks > 0) warp_rows<U, kXRegs>(s, xs, ring, bars, row_begin, n_chunks);
#endif
}

// kXRegs: a row is one chunk and a lane's units of it keep their activations in
// registers; otherwise each unit gathers its activations from shared memory.
template <class U, bool kXRegs>
__global__ void __launch_bounds__(kMaxWarps * kWarp, 1) gemv_warp_kernel(const WarpStreamParams s) {
  extern __shared__ __align__(128) int4 smem[];  // the activations, then each warp's ring
  __shared__ uint64_t full[kMaxWarps][kMaxSlots];
  stream_block<U, kXRegs>(s, static_cast<int32_t>(blockIdx.x), smem, full);
}

// Two products of different weight types against the same x in one launch (GemvPairParams):
// blocks [0, blocks_a) are a's launch, the rest b's.
template <class UA, bool kXA, class UB, bool kXB>
__global__ void __launch_bounds__(kMaxWarps * kWarp, 1)
    gemv_pair_kernel(const WarpStreamParams a, const WarpStreamParams b, int32_t blocks_a) {
  extern __shared__ __align__(128) int4 smem[];
  __shared__ uint64_t full[kMaxWarps][kMaxSlots];
  const auto block = static_cast<int32_t>(blockIdx.x);
  if (block < blocks_a) stream_block<UA, kXA>(a, block, smem, full);
  else stream_block<UB, kXB>(b, block - blocks_a, smem, full);
}

// The dynamic shared memory a block of `kernel` may have (the attribute is raised once, to
// the card's opt-in maximum less the kernel's static shared memory).
template <auto kernel>
size_t smem_limit() {
  static const size_t limit = [] {
    int device = 0, max_optin = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
    check_cuda(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
               "cudaDeviceGetAttribute", __FILE__, __LINE__);
    cudaFuncAttributes attr{};
    check_cuda(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes", __FILE__, __LINE__);
    const int dynamic_max = max_optin - static_cast<int>(attr.sharedSizeBytes);
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic_max),
               "cudaFuncSetAttribute", __FILE__, __LINE__);
    return static_cast<size_t>(dynamic_max);
  }();
  return limit;
}

int sm_count() {
  static const int n = [] {
    int device = 0, sms = 1;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute",
               __FILE__, __LINE__);
    return sms;
  }();
  return n;
}

int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : fallback;
}

// The experiment switches, read once.
int ring_slots() {
  static const int n = std::clamp(env_int("HEARTH_CUDA_WSLOTS", kDefaultSlots), 1, kMaxSlots);
  return n;
}
int block_warps() {
  static const int n =
      std::clamp(env_int("HEARTH_CUDA_WWARPS", kMaxWarps) / kWarpStep * kWarpStep, kWarpStep, kMaxWarps);
  return n;
}
int max_blocks_per_sm() {
  static const int n = std::max(1, env_int("HEARTH_CUDA_WBLOCKS", kDefaultBlocksPerSm));
  return n;
}

// Units of a row that a chunk boundary may not split: a K-quant superblock (256 elements),
// an MLX scale group.
template <class U>
int64_t unit_granule(const GemvParams& p) {
  if constexpr (kMlx<U>) return std::max<int64_t>(1, p.w.group_size / U::kElems);
  return U::kElems == 64 ? 4 : 1;
}

// The plan of p for unit type U, or false where this kernel does not apply.
template <class U>
bool plan_for_unit(const GemvParams& p, WarpStreamParams* out, bool* x_regs) {
  const int64_t row_bytes = p.w.row_bytes;
  if (p.w.cols % U::kElems != 0) return false;
  const int64_t n_units = p.w.cols / U::kElems, granule = unit_granule<U>(p);
  const int64_t aux_row = kMlx<U> ? p.w.groups_per_row * (p.w.scale_kind == 0 ? 4 : 2) : 0;
  int64_t cpr = 1;
  for (; cpr <= 16; ++cpr) {
    if (n_units % (cpr * granule) != 0 || row_bytes % cpr != 0 || aux_row % cpr != 0) continue;
    if (kAlignedUnits<U> && (row_bytes / cpr) % 16 != 0) continue;
    const int64_t slot = region_bytes(static_cast<int32_t>(row_bytes / cpr)) +
                         2 * region_bytes(static_cast<int32_t>(aux_row / cpr));
    if (slot <= kSlotBytesMax) break;
  }
  if (cpr > 16) return false;
  if (p.residual && p.blocks1 > 0) return false;
  // 16-byte aligned weights, so that a copy's aligned bytes around a row stay inside the
  // weight and its padding.
  for (const void* a : {static_cast<const void*>(p.w.data), static_cast<const void*>(p.data2),
                        static_cast<const void*>(p.data3), p.w.scales, p.w.biases, p.scales2, p.biases2, p.scales3,
                        p.biases3})
    if (reinterpret_cast<uintptr_t>(a) % 16 != 0) return false;
  const int64_t n_rows = p.w.rows + (p.blocks1 > 0 ? p.rows2 + (p.data3 ? p.rows3 : 0) : 0);
  if (n_rows >= (int64_t{1} << 30) || row_bytes * 16 >= (int64_t{1} << 31)) return false;
  auto s = zeroed<WarpStreamParams>();
  s.p = p;
  s.row_bytes = static_cast<int32_t>(row_bytes);
  s.chunks_per_row = static_cast<int32_t>(cpr);
  s.chunk_bytes = static_cast<int32_t>(row_bytes / cpr);
  s.aux_row_bytes = static_cast<int32_t>(aux_row);
  s.aux_chunk_bytes = static_cast<int32_t>(aux_row / cpr);
  // Weights are 16-byte aligned (above), so every copy is where the row and chunk sizes are.
  s.aligned = s.row_bytes % 16 == 0 && s.chunk_bytes % 16 == 0 && s.aux_row_bytes % 16 == 0 &&
              s.aux_chunk_bytes % 16 == 0;
  s.data_region = s.aligned ? s.chunk_bytes : region_bytes(s.chunk_bytes);
  s.aux_region = s.aligned ? s.aux_chunk_bytes : region_bytes(s.aux_chunk_bytes);
  s.slot_bytes = s.data_region + 2 * s.aux_region;
  s.chunk_units = static_cast<int32_t>(n_units / cpr);
  s.slots = ring_slots();
  s.n_rows = static_cast<int32_t>(n_rows);
  s.seg_end[0] = static_cast<int32_t>(p.w.rows);
  s.n_segments = 1;
  if (p.blocks1 > 0) {
    s.seg_end[1] = static_cast<int32_t>(s.seg_end[0] + p.rows2);
    s.n_segments = 2;
    if (p.data3) s.seg_end[2] = static_cast<int32_t>(s.seg_end[1] + p.rows3), s.n_segments = 3;
  }
  *x_regs = cpr == 1 && s.chunk_units <= kMaxUnits<U> * kWarp;
  *out = s;
  return true;
}

// The activations, the rings, and 16 bytes that the units' word loads may read past the
// last slot (ld_words_any reads the aligned word after an unaligned run).
size_t smem_bytes(const WarpStreamParams& s) {
  return static_cast<size_t>((stage_bytes(s.p.w.cols) + 127) / 128 * 128) +
         static_cast<size_t>(s.warps) * s.slots * s.slot_bytes + 16;
}

std::atomic<int64_t> g_residual_launches{0};
std::atomic<int64_t> g_pair_launches{0};

template <class U, bool kXRegs>
bool launch_for_unit(WarpStreamParams s, cudaStream_t stream) {
  constexpr auto kernel = gemv_warp_kernel<U, kXRegs>;
  // Warps a block: as asked, fewer (by 8) where their rings do not fit.
  s.warps = block_warps();
  while (s.warps > kWarpStep && smem_bytes(s) > smem_limit<kernel>()) s.warps -= kWarpStep;
  const size_t smem = smem_bytes(s);
  if (smem > smem_limit<kernel>()) return false;
  // Blocks an SM at this kernel's last shared-memory size and block (a model's products
  // share a few; host side, one device, as smem_limit).
  static size_t known_smem = 0;
  static int known_warps = 0, known_per_sm = 0;
  if (smem != known_smem || s.warps != known_warps) {
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&known_per_sm, kernel, s.warps * kWarp, smem),
               "cudaOccupancyMaxActiveBlocksPerMultiprocessor", __FILE__, __LINE__);
    known_smem = smem, known_warps = s.warps;
  }
  if (known_per_sm < 1) return false;
  if (s.p.residual) ++g_residual_launches;
  const int per_sm = std::min(known_per_sm, max_blocks_per_sm());
  const int64_t resident = static_cast<int64_t>(per_sm) * sm_count() * s.warps;
  s.rows_per_warp = static_cast<int32_t>((s.n_rows + resident - 1) / resident);
  const int64_t warps = (s.n_rows + s.rows_per_warp - 1) / s.rows_per_warp;
  const int64_t grid = (warps + s.warps - 1) / s.warps;
  HEARTH_LAUNCH(kernel, dim3(static_cast<unsigned>(grid)), dim3(s.warps * kWarp), smem, stream, s);
  return true;
}

// Blocks of s's launch at s.rows_per_warp.
int64_t blocks_of(const WarpStreamParams& s) {
  const int64_t warps = (s.n_rows + s.rows_per_warp - 1) / s.rows_per_warp;
  return (warps + s.warps - 1) / s.warps;
}

// Rows a warp for two products sharing `blocks` resident blocks: the pair whose longer run
// (in bytes) is shortest, so that both parts end together; of equal ones, a's shortest run.
// False if they cannot share.
bool deal_pair(WarpStreamParams& a, WarpStreamParams& b, int64_t blocks) {
  int64_t best = -1, best_ra = 0, best_rb = 0;
  for (int64_t ra = 1; ra <= a.n_rows; ++ra) {
    if (best >= 0 && ra * a.row_bytes >= best) break;  // a longer run of a only costs more
    a.rows_per_warp = static_cast<int32_t>(ra);
    const int64_t left = blocks - blocks_of(a);
    if (left < 1) continue;
    const int64_t rb = (b.n_rows + left * b.warps - 1) / (left * b.warps);  // fits in `left` blocks
    const int64_t cost = std::max(ra * a.row_bytes, rb * b.row_bytes);
    if (best < 0 || cost < best) best = cost, best_ra = ra, best_rb = rb;
  }
  if (best < 0) return false;
  a.rows_per_warp = static_cast<int32_t>(best_ra);
  b.rows_per_warp = static_cast<int32_t>(best_rb);
  return true;
}

template <class UA, bool kXA, class UB, bool kXB>
bool launch_pair_for_units(WarpStreamParams a, WarpStreamParams b, cudaStream_t stream) {
  constexpr auto kernel = gemv_pair_kernel<UA, kXA, UB, kXB>;
  const auto smem_of = [&] { return std::max(smem_bytes(a), smem_bytes(b)); };
  a.warps = b.warps = block_warps();
  while (a.warps > kWarpStep && smem_of() > smem_limit<kernel>()) a.warps = b.warps = a.warps - kWarpStep;
  const size_t smem = smem_of();
  if (smem > smem_limit<kernel>()) return false;
  int per_sm = 0;  // asked at each launch: recorded steps launch only when their graph is made
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, a.warps * kWarp, smem),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor", __FILE__, __LINE__);
  per_sm = std::min(per_sm, max_blocks_per_sm());
  if (per_sm < 1 || !deal_pair(a, b, static_cast<int64_t>(per_sm) * sm_count())) return false;
  const int64_t blocks_a = blocks_of(a), grid = blocks_a + blocks_of(b);
  HEARTH_LAUNCH(kernel, dim3(static_cast<unsigned>(grid)), dim3(a.warps * kWarp), smem, stream, a, b,
                static_cast<int32_t>(blocks_a));
  ++g_pair_launches;
  return true;
}

template <class UA>
bool launch_pair_with(const GemvParams& a, const GemvParams& b, cudaStream_t stream) {
  using UB = UnitQ6_K;
  WarpStreamParams sa, sb;
  bool xa = false, xb = false;
  if (!plan_for_unit<UA>(a, &sa, &xa) || !plan_for_unit<UB>(b, &sb, &xb)) return false;
  if (xa)
    return xb ? launch_pair_for_units<UA, true, UB, true>(sa, sb, stream)
              : launch_pair_for_units<UA, true, UB, false>(sa, sb, stream);
  return xb ? launch_pair_for_units<UA, false, UB, true>(sa, sb, stream)
            : launch_pair_for_units<UA, false, UB, false>(sa, sb, stream);
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

bool gemv_stream_on() { return stream_gemv_available(); }
int64_t gemv_residual_launches() { return g_residual_launches.load(); }
int64_t gemv_pair_launches() { return g_pair_launches.load(); }

bool gemv_pair_supported(DType a, DType b) { return (a == DType::Q4_K || a == DType::Q5_K) && b == DType::Q6_K; }

bool launch_gemv_pair_stream(const GemvParams& a, const GemvParams& b, cudaStream_t stream) {
  if (a.n != 1 || b.n != 1 || !a.xq || a.xq != b.xq || a.xd != b.xd || a.xs != b.xs || a.w.cols != b.w.cols ||
      a.residual || b.residual || !gemv_pair_supported(a.w.type, b.w.type) || !stream_gemv_available())
    return false;
  if (a.w.type == DType::Q4_K) return launch_pair_with<UnitQ4_K>(a, b, stream);
  return launch_pair_with<UnitQ5_K>(a, b, stream);
}

bool launch_gemv_stream(const GemvParams& p, cudaStream_t stream) {
  if (p.n != 1 || !p.xq || !stream_gemv_available()) return false;
  return with_quant_unit(p.w.type, p.w.bits, [&](auto u) {
    using U = decltype(u);
    WarpStreamParams s;
    bool x_regs = false;
    if (!plan_for_unit<U>(p, &s, &x_regs)) return false;
    return x_regs ? launch_for_unit<U, true>(s, stream) : launch_for_unit<U, false>(s, stream);
  });
}

}  // namespace hearth::cuda
