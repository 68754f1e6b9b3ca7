// The CUDA backend (internal header): Backend implemented with device memory and the
// kernels of ops.h. backend_cuda.cpp holds memory management and the factory,
// backend_cuda_step.cpp the step upload and the ops.
//
// Memory: everything is cudaMalloc'd (no managed memory). Weights are copied in their
// stored bytes, still quantized (plus 16 bytes of padding for the kernels' unaligned
// loads); activations are plain device arrays; the KV cache is one pool of blocks per
// layer (n_blocks * block_size cache rows of keys, then of values; a row is n_kv_heads *
// head_dim elements, kv_row_bytes), f32, f16 or q8_0 as KvCacheConfig asks. Internal
// scratch (quantized activations, f16 tiles for cuBLAS, attention partials) grows on
// demand; a buffer replaced while queued work may still use it is retired until the next
// synchronisation.
//
// Execution: one stream. begin_step uploads the step (ids, positions, slots, block tables)
// into a device buffer at fixed offsets; ops launch through a LaunchTape, which for steps
// of at most 8 tokens (decode; 64 with the tensor-core products of mma.cu, which need no
// cuBLAS) records them and replays a cached CUDA graph. While
// recording, an op may merge with the launches just before it (residual add + RMSNorm +
// activation quantization, q and k norm + RoPE + KV store, attention + quantization,
// q/k/v and gate/up products in one launch), which cuts a decode step from about 24
// launches per layer to 9; every kernel is launched for programmatic dependent launch on
// sm_90 (common.cuh), so each overlaps the end of the one before. Prompt steps (more than
// 8 tokens) with an f16 or q8_0 cache take attention from the tensor-core kernel of
// flash_attention.cu (HEARTH_CUDA_FLASH=0: the per-token kernel of decode); decode steps of
// 1-64 tokens, at most two a sequence, from decode_attention.cu on sm_90. read_rows() and
// sync() wait; CUDA errors surface as hearth::Error at the launch or there.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/launch_tape.h"
#include "backend/cuda/ops.h"

namespace hearth::cuda {

void check(cudaError_t e, const char* what);
std::string mib(double bytes);

// One cudaMalloc'd allocation; a failure names what it was for and the free memory.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer(size_t n, const std::string& what);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};
using Buffer = std::unique_ptr<DeviceBuffer>;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  std::string name() const override { return name_; }
  Device device() const override { return Device::CUDA; }

  bool supports_weight(const Weight& w) const override;
  Weight upload_weight(const Weight& host) override;
  Tensor upload_f32(const std::vector<float>& host, std::initializer_list<int64_t> shape) override;
  Tensor alloc_activation(std::initializer_list<int64_t> shape) override;
  void reset_scratch() override;
  void init_kv_cache(const KvCacheConfig& config) override;
  const KvCacheConfig& kv_cache_config() const override { return kv_config_; }
  void copy_kv_block(int32_t src_block, int32_t dst_block) override;
  void read_kv_block(int32_t block, uint8_t* host) override;         // kv_transfer.cpp
  void write_kv_block(int32_t block, const uint8_t* host) override;  // kv_transfer.cpp
  BackendMemory memory() const override;
  void check_weights_fit(int64_t weight_bytes) const override;
  int64_t kv_memory_free() const override;
  DType default_kv_dtype() const override { return DType::F16; }
  bool supports_kv_dtype(DType t) const override { return t == DType::F32 || t == DType::F16 || t == DType::Q8_0; }
  double measure_bandwidth(size_t bytes) override;  // bandwidth.cpp

  void begin_step(const StepBatch& batch) override;

  void embed(Tensor out, const Weight& table) override;
  void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void matmul(Tensor out, Tensor x, const Weight& w) override;
  void add_bias(Tensor x, Tensor bias) override;
  void rope(Tensor x, int64_t heads, int64_t head_dim, const RopeTable& rope) override;
  void kv_store(int32_t layer, Tensor k, Tensor v) override;
  void attention(Tensor out, Tensor q, int32_t layer, int64_t n_heads, float scale) override;
  void swiglu(Tensor out, Tensor gate, Tensor up) override;
  void add(Tensor out, Tensor a, Tensor b) override;
  void gather_logit_rows(Tensor out, Tensor x) override;
  void read_rows(Tensor x, float* host) override;
  void read_top_rows(Tensor x, int32_t n_valid, int32_t k, int32_t* ids, float* values) override;
  void sync() override;

 private:
  void* copy_in(const void* host, size_t bytes, const std::string& what);
  void* scratch(Buffer& b, size_t bytes, const char* what);
  void wrote(const Tensor& t);
  const float* rope_freqs(const RopeTable& table);
  int attention_splits(int64_t n_tokens, int64_t n_heads) const;
  int flash_attention_row_tiles(int64_t n_heads) const;
  bool decode_attention_on(int64_t n_heads) const;
  int32_t flash_attention_tiles(int64_t group, int row_tiles);
  int gemv_rows_per_block(const Weight& w) const;
  int gemv_rows_per_block(const DevWeight& w, int64_t rows) const;
  bool use_mma(const Weight& w, int64_t n) const;
  // x quantized as launch_quantize_x writes it (or reused from the last product of x);
  // *h (if asked) its XHalf copy where n is a batched tensor-core product's, else nullptr.
  // norm_slices: the norm that makes x, if the quantization is fused into it, may take the
  // sliced kernel (RmsNormParams::slices).
  void quantized_x(Tensor x, const int8_t** q, const float** d, const float** s, const uint16_t** h = nullptr,
                   bool norm_slices = false);
  // Peephole fusions of recorded decode launches (backend_cuda_fuse.cpp); each returns
  // true when it recorded the fused launch in place of the plain one.
  bool fuse_quantize(const Tensor& x, int64_t n, int64_t cols, int8_t* q, float* qd, float* qs, const XHalf& h,
                     bool norm_slices);
  void fuse_residual_add(RmsNormParams& p);
  // The merged product just recorded, split in K, whose reduce the next launch may take
  // over (MmaParams::reduce_later); defer_reduce records it again without that launch.
  bool split_product_before(MmaParams* m) const;
  void defer_reduce(MmaParams m);
  void fuse_swiglu_splits(SwigluParams& p);
  void fuse_rope_splits(RopeParams& r, const Tensor& v);
  bool fuse_gemv(const GemvParams& p);
  bool fuse_residual_gemv(const AddParams& a);
  bool fuse_mma(const MmaParams& p);
  // K splits of a tensor-core product of `rows` rows (all of a merged launch's weights)
  // and the scratch for their partial sums.
  void plan_mma_splits(MmaParams& p, int64_t rows);
  void fuse_head_norm(RopeParams& p);
  bool fuse_kv_store(const Tensor& k, const Tensor& v, void* k_cache, void* v_cache);
  template <class P, void (*F)(const P&, cudaStream_t)>
  void launch(const P& p) {
    tape_.launch<P, F>(p, stream_);
  }

  int device_;
  std::string name_;
  int sm_count_ = 1;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t upload_done_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  LaunchTape tape_;
  bool graphs_enabled_ = true;  // HEARTH_CUDA_GRAPHS=0 turns graphs off
  // A recorded step is flushed in two graphs: the launches before the first model-wide
  // RMSNorm after split_ops_ launches, then the rest. The GPU starts on the first part while
  // the host records the second, instead of idling through the whole recording (~0.1 ms a
  // step for an 8B model). HEARTH_CUDA_SPLIT_OPS: 0 records the step as one graph.
  int64_t split_ops_ = 20;
  bool step_split_ = false;     // this step's first part was flushed
  bool fuse_ = true;            // HEARTH_CUDA_FUSE=0 turns the peephole fusions off
  bool fuse_residual_ = true;   // HEARTH_CUDA_FUSE_RESIDUAL=0 keeps the residual add a launch
  bool fuse_pair_ = true;       // HEARTH_CUDA_FUSE_PAIR=0: products of two weight types stay two launches
  bool fuse_splits_ = true;     // HEARTH_CUDA_FUSE_SPLITS=0: split gate/up and q/k/v products keep their reduce launch
  int gemv_prefetch_ = 1;       // HEARTH_CUDA_PREFETCH: GemvParams::prefetch (experiments)
  int gemv_rpb_ = 0;            // HEARTH_CUDA_RPB=1|2|4: rows per block of every product (experiments)
  bool mma_ = true;             // HEARTH_CUDA_MMA=0: no tensor-core products for batched decode (mma.cu)
  // HEARTH_CUDA_MMA_MIN: fewest tokens that use them. Once 5 (the dp4a kernels of matmul.cu
  // won below it with the first tensor-core kernel); with mma_f16.cu, 2: H100, 8B Q4_K_M
  // (cuda_decode, same call, 2026-11-26) 2 sequences 416 -> 508 tok/s, 3 505 -> 766, 4
  // 556 -> 998; Q4_0 at 4 773 -> 1,048; MLX 4-bit at 3 588 -> 698. One token keeps the
  // streamed one-token kernels (matmul_stream.cu).
  int64_t mma_min_tokens_ = 2;
  int mma_splits_ = 0;          // HEARTH_CUDA_MMA_SPLITS: K splits of every such product (experiments)
  bool flash_ = true;           // HEARTH_CUDA_FLASH=0: prompt steps use the per-token attention kernel
  int flash_row_tiles_ = 0;     // HEARTH_CUDA_FLASH_TILES=1|2: row tiles per warp of every launch (experiments)
  int flash_key_tile_ = 0;      // HEARTH_CUDA_FLASH_KEYS=32|64: keys per tile at 2 row tiles (experiments)
  int attn_keys_ = 0;           // HEARTH_CUDA_ATTN_KEYS=2: keys in flight per warp of decode attention (experiments)
  // HEARTH_CUDA_DECODE_ATTN: the tensor-core decode kernel (decode_attention.cu) for steps of
  // 1-64 tokens, one or two a sequence: 1 on compute capability 9.0 (default), 0 never, 2 on
  // any card. Its tiles in flight per warp, blocks an SM its
  // splits aim for (0: those resident at once) and fewest keys a split:
  // HEARTH_CUDA_DECODE_STAGES, _BLOCKS, _KEYS (experiments). At least 512 keys a split of
  // the context's power-of-two bucket: a split is a block with its own pipeline fill and
  // partials to combine, and with one sequence fewer splits win (H100, 8B Q4_K_M, one
  // sequence: 64 -> 256 keys tg128 364 -> 379 tok/s, at 1,024 positions 294 -> 331; 256 ->
  // 512 keys at 2,048 positions 289 -> 313, at 4,096 270 -> 294, at 1,024 333 -> 328, at
  // 8,192 and 16,384 the same; 8 and 32 sequences unchanged: docs/benchmarks_cuda_decode.md).
  int decode_attn_ = 0;
  int decode_stages_ = 3, decode_blocks_ = 0, decode_min_keys_ = 512;
  int decode_warps_ = 0;  // HEARTH_CUDA_DECODE_WARPS=4|8: warps a block of every launch (0: by the grid)
  int64_t smem_optin_ = 0;      // shared memory a block may opt in to (bytes)
  std::unique_ptr<LaunchProfile> profile_;  // HEARTH_CUDA_PROFILE=1: GPU time per launch, printed at exit
  float* read_staging_ = nullptr;  // pinned host buffer for read_rows and read_top_rows
  size_t read_staging_bytes_ = 0;
  float* staging(size_t bytes);     // read_staging_, grown to at least `bytes`

  std::vector<Buffer> weights_, activations_, retired_;
  Buffer kv_, step_buf_, qx_, xh_, tile_, attn_part_, attn_count_, mma_part_, top_;
  int64_t weight_bytes_ = 0, scratch_bytes_ = 0, kv_bytes_ = 0;
  KvCacheConfig kv_config_;
  int64_t kv_layer_bytes_ = 0;  // bytes of one layer's keys (= its values)
  // The keys (2 * layer) or values (2 * layer + 1) of a layer; the kernels' cache kind.
  uint8_t* kv_part(int64_t i) const { return static_cast<uint8_t*>(kv_->ptr) + i * kv_layer_bytes_; }
  int32_t kv_kind() const { return kv_config_.dtype == DType::Q8_0 ? 2 : kv_config_.dtype == DType::F16 ? 1 : 0; }

  // The current step: host copy, and device arrays in step_buf_ at offsets fixed by the
  // capacities (so they keep their addresses from step to step).
  StepBatch step_;
  int32_t max_ctx_ = 0;
  char* staging_ = nullptr;  // pinned host image of step_buf_
  int64_t cap_tokens_ = 0, cap_tables_ = 0;
  const int32_t *d_tokens_ = nullptr, *d_positions_ = nullptr, *d_table_offset_ = nullptr, *d_logit_rows_ = nullptr,
                *d_tables_ = nullptr;
  const int64_t* d_slots_ = nullptr;
  // Flash attention's query tiles of the current step (FlashAttentionParams::tiles), built
  // by the first attention() of a step for its GQA group, after the step's tables.
  const int32_t* d_flash_tiles_ = nullptr;
  int64_t flash_tiles_key_ = 0;  // group * 4 + row tiles; 0: not built for this step
  int32_t flash_n_tiles_ = 0;

  // A converted copy of the last matmul input: 8-bit blocks for the decode products (qx_),
  // f16 for the prompt products (xh_). Reused while the same x comes back unchanged (q/k/v,
  // gate/up); any op writing over the source invalidates it (see wrote()).
  struct ConvertedInput {
    bool valid = false;
    const void* src = nullptr;
    int64_t n = 0, cols = 0;
    bool holds(const void* x, int64_t n_, int64_t cols_) const { return valid && src == x && n == n_ && cols == cols_; }
    void set(const void* x, int64_t n_, int64_t cols_) { valid = true, src = x, n = n_, cols = cols_; }
    void drop_if_overlaps(const void* data, int64_t bytes) {
      const auto* a = static_cast<const uint8_t*>(data);
      const auto* b = static_cast<const uint8_t*>(src);
      if (valid && a < b + n * cols * static_cast<int64_t>(sizeof(float)) && b < a + bytes) valid = false;
    }
  };
  ConvertedInput qx_in_, xh_in_;

  struct RopeFreqs {
    std::vector<float> host;
    Buffer device;
  };
  std::vector<RopeFreqs> rope_freqs_;
};

}  // namespace hearth::cuda
