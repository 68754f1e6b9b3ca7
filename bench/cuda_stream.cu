// cuda_stream: how fast blocks shaped like the batched-decode product's (mma_f16.cu) stream
// a weight into shared memory when they do nothing else: the ceiling of that kernel's weight
// stream, to set against its own time (cuda_matmul) and tell bytes from work.
//
// The weight is Qwen3-8B's merged gate/up at Q4_K (24576 rows of 2304 bytes, 56.6 MB). Blocks
// of 256 threads take a 128-row tile and a range of its 16 chunks of 144 bytes a row (grid.y
// splits the chunks, as the kernel's K splits do), with a ring of 2-4 stages of 18,432 bytes
// completing on mbarriers, and 74 KiB of shared memory a block, so 3 blocks an SM as the
// kernel runs at 9-32 tokens. Thread 0 asks for a stage; every thread waits for it, touches
// one byte and meets the others at a barrier before the slot is asked for again. Three ways
// to copy a stage:
//   boxes   the kernel's: one 2D tensor copy of 144 bytes x 128 rows from the row-major weight
//   tiled   one 1D bulk copy of 18,432 contiguous bytes (a weight stored tile by tile)
//   rows    one 1D bulk copy of 8 whole rows (the decode gemv's access, 18,432 bytes)
// Six copies of the weight (340 MB, beyond L2) are read in turn. Output: microseconds per
// pass (mean of --reps launches after 3 warm-up ones, timed with events) and TB/s.
//   cuda_stream [--reps 50]
// sm_90 only (bulk and tensor copies).
#include <cuda.h>  // CUtensorMap (the encoder is reached through the runtime)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/ptx.cuh"

namespace {

using namespace hearth::cuda;

constexpr int kRows = 24576, kRowBytes = 2304, kChunkBytes = 144, kTileRows = 128;
constexpr int kStage = kTileRows * kChunkBytes;   // 18,432 bytes
constexpr int kChunks = kRowBytes / kChunkBytes;  // 16 a row
constexpr int kSmem = 74 * 1024;                  // 3 blocks an SM; the ring takes <= 72 KiB
constexpr int kCopies = 6;

enum Layout { kBoxes = 0, kTiled = 1, kRowRuns = 2 };

struct Map {
  CUtensorMap m;
};

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "cuda_stream: %s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

// Chunk i of this block's range into ring slot i % kS, completing on full[slot].
template <int kLayout, int kS>
__global__ void __launch_bounds__(256) stream_kernel(const uint8_t* w, const __grid_constant__ Map map, int splits,
                                                     int never, int* sink) {
  extern __shared__ __align__(128) uint8_t ring[];
  __shared__ uint64_t full[kS];
  const int tile = blockIdx.x, per = kChunks / splits, c0 = blockIdx.y * per;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kS; ++s) mbar_init(&full[s], 1);
    mbar_fence_init();
  }
  __syncthreads();
  auto issue = [&](int i) {
    if (threadIdx.x != 0 || i >= per) return;
    const int slot = i % kS, c = c0 + i;
    uint8_t* dst = ring + slot * kStage;
    mbar_expect_tx(&full[slot], kStage);
    if constexpr (kLayout == kBoxes) {
      HEARTH_SM90_ASM(
          "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
          "[%4];" ::"r"(smem_addr(dst)),
          "l"(reinterpret_cast<uint64_t>(&map.m)), "r"(c * kChunkBytes / 2), "r"(tile * kTileRows),
          "r"(smem_addr(&full[slot]))
          : "memory");
    } else if constexpr (kLayout == kTiled) {  // [tile][chunk][128 rows x 144 bytes]
      bulk_copy(dst, w + (static_cast<int64_t>(tile) * kChunks + c) * kStage, kStage, &full[slot]);
    } else {  // chunk c: rows 8c..8c+7 of the tile, whole
      bulk_copy(dst, w + (static_cast<int64_t>(tile) * kTileRows + 8 * c) * kRowBytes, kStage, &full[slot]);
    }
  };
  for (int i = 0; i < kS - 1; ++i) issue(i);
  int touched = 0;
  for (int i = 0; i < per; ++i) {
    __syncthreads();  // every thread is done with the slot chunk i + kS - 1 goes into
    issue(i + kS - 1);
    mbar_wait(&full[i % kS], static_cast<uint32_t>((i / kS) & 1));
    touched += ring[(i % kS) * kStage + threadIdx.x * 67 % kStage];
  }
  if (touched == never) sink[0] = touched;  // keeps the reads (never: -1, unknown to the compiler)
}

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The kernel's tensor map of one copy (as mma_f16.cu encodes it: 16-bit elements, 256-byte
// L2 promotion).
Map encode(uint8_t* data) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  check(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found),
        "cudaGetDriverEntryPointByVersion");
  if (found != cudaDriverEntryPointSuccess) std::fprintf(stderr, "cuda_stream: no tensor map encoder\n"), std::exit(1);
  Map map{};
  const cuuint64_t dims[2] = {kRowBytes / 2, kRows};
  const cuuint64_t strides[1] = {kRowBytes};
  const cuuint32_t box[2] = {kChunkBytes / 2, kTileRows};
  const cuuint32_t step[2] = {1, 1};
  if (reinterpret_cast<EncodeTiled>(fn)(&map.m, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, data, dims, strides, box, step,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    std::fprintf(stderr, "cuda_stream: cuTensorMapEncodeTiled failed\n"), std::exit(1);
  return map;
}

template <int kLayout, int kS>
double pass_us(const std::vector<uint8_t*>& w, const std::vector<Map>& maps, int splits, int reps, int* sink) {
  check(cudaFuncSetAttribute(stream_kernel<kLayout, kS>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem),
        "cudaFuncSetAttribute");
  const dim3 grid(kRows / kTileRows, static_cast<unsigned>(splits));
  auto launch = [&](int i) {
    stream_kernel<kLayout, kS><<<grid, 256, kSmem>>>(w[i % kCopies], maps[i % kCopies], splits, -1, sink);
  };
  for (int i = 0; i < 3; ++i) launch(i);
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate"), check(cudaEventCreate(&b), "cudaEventCreate");
  check(cudaEventRecord(a), "cudaEventRecord");
  for (int i = 0; i < reps; ++i) launch(i);
  check(cudaEventRecord(b), "cudaEventRecord");
  check(cudaEventSynchronize(b), "kernel");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a), cudaEventDestroy(b);
  return 1e3 * ms / reps;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 50;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
    else return std::fprintf(stderr, "usage: cuda_stream [--reps N]\n"), 2;
  }
  if (reps < 1) return std::fprintf(stderr, "cuda_stream: --reps must be at least 1\n"), 2;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  if (prop.major != 9) return std::fprintf(stderr, "cuda_stream: needs an sm_90 GPU, not %s\n", prop.name), 1;
  std::vector<uint8_t*> w(kCopies);
  std::vector<Map> maps;
  const size_t bytes = static_cast<size_t>(kRows) * kRowBytes;
  for (auto& p : w) {
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    check(cudaMemset(p, 1, bytes), "cudaMemset");
    maps.push_back(encode(p));
  }
  int* sink = nullptr;
  check(cudaMalloc(&sink, sizeof(int)), "cudaMalloc");
  std::printf("%s: Q4_K gate/up 24576 x 4096 (%.1f MB), 128-row tiles, 18,432-byte stages, 3 blocks an SM\n",
              prop.name, static_cast<double>(bytes) / 1e6);
  std::printf("| stage copied as | K splits | 2 stages | 3 stages | 4 stages |\n|---|---:|---:|---:|---:|\n");
  const char* names[3] = {"boxes (the kernel's)", "tiled", "rows"};
  for (int splits : {1, 2, 4}) {
    double us[3][3];
    us[0][0] = pass_us<kBoxes, 2>(w, maps, splits, reps, sink), us[0][1] = pass_us<kBoxes, 3>(w, maps, splits, reps, sink);
    us[0][2] = pass_us<kBoxes, 4>(w, maps, splits, reps, sink);
    us[1][0] = pass_us<kTiled, 2>(w, maps, splits, reps, sink), us[1][1] = pass_us<kTiled, 3>(w, maps, splits, reps, sink);
    us[1][2] = pass_us<kTiled, 4>(w, maps, splits, reps, sink);
    us[2][0] = pass_us<kRowRuns, 2>(w, maps, splits, reps, sink);
    us[2][1] = pass_us<kRowRuns, 3>(w, maps, splits, reps, sink);
    us[2][2] = pass_us<kRowRuns, 4>(w, maps, splits, reps, sink);
    for (int m = 0; m < 3; ++m) {
      std::printf("| %s | %d |", names[m], splits);
      for (int s = 0; s < 3; ++s) std::printf(" %.1f us, %.2f TB/s |", us[m][s], static_cast<double>(bytes) / us[m][s] / 1e6);
      std::printf("\n");
    }
  }
  for (auto* p : w) cudaFree(p);
  cudaFree(sink);
  return 0;
}
