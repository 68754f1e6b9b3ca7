// The CUDA backend's memory: weights, activations, the KV cache pool, and the factory
// functions declared in backend.h. See backend_cuda.h for the conventions.
#include "backend/cuda/backend_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace hearth {
namespace cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

std::string mib(double bytes) { return std::to_string(static_cast<int64_t>(bytes / 1048576.0)) + " MiB"; }

// The current device's free and total memory, in bytes.
struct DeviceMemory {
  int64_t free, total;
};
DeviceMemory device_memory() {
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  return {static_cast<int64_t>(free_b), static_cast<int64_t>(total_b)};
}

DeviceBuffer::DeviceBuffer(size_t n, const std::string& what) : bytes(n) {
  if (n == 0) return;
  if (cudaMalloc(&ptr, n) != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls do not report it
    ptr = nullptr;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA: cannot allocate " + mib(static_cast<double>(n)) + " for " + what + " (" +
         mib(static_cast<double>(free_b)) + " free of " + mib(static_cast<double>(total_b)) + ")");
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr) cudaFree(ptr);
}

CudaBackend::CudaBackend(int device) : device_(device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  name_ = "cuda:" + std::to_string(device) + " (" + prop.name + ")";
  sm_count_ = prop.multiProcessorCount;
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaEventCreateWithFlags(&upload_done_, cudaEventDisableTiming), "cudaEventCreate");
  if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasCreate failed");
  const char* g = std::getenv("HEARTH_CUDA_GRAPHS");
  graphs_enabled_ = !(g && std::string(g) == "0");
  if (const char* e = std::getenv("HEARTH_CUDA_SPLIT_OPS")) split_ops_ = std::max(0, std::atoi(e));
  const char* f = std::getenv("HEARTH_CUDA_FUSE");
  fuse_ = !(f && std::string(f) == "0");
  const char* fr = std::getenv("HEARTH_CUDA_FUSE_RESIDUAL");
  fuse_residual_ = fuse_ && !(fr && std::string(fr) == "0");
  const char* fp = std::getenv("HEARTH_CUDA_FUSE_PAIR");
  fuse_pair_ = fuse_ && !(fp && std::string(fp) == "0");
  const char* fs = std::getenv("HEARTH_CUDA_FUSE_SPLITS");
  fuse_splits_ = fuse_ && !(fs && std::string(fs) == "0");
  // The kernels wait for their inputs with griddepcontrol (common.cuh) only in their sm_90
  // code; other cards run the sm_86 code or its PTX, so launches there stay serialized.
  const char* pdl = std::getenv("HEARTH_CUDA_PDL");
  set_programmatic_launch(prop.major == 9 && prop.minor == 0 && !(pdl && std::string(pdl) == "0"));
  if (const char* e = std::getenv("HEARTH_CUDA_PREFETCH")) gemv_prefetch_ = std::clamp(std::atoi(e), 0, 2);
  if (const char* e = std::getenv("HEARTH_CUDA_RPB")) {
    const int rpb = std::atoi(e);
    if (rpb == 1 || rpb == 2 || rpb == 4) gemv_rpb_ = rpb;
  }
  const char* mma = std::getenv("HEARTH_CUDA_MMA");
  mma_ = !(mma && std::string(mma) == "0");
  if (mma_) init_mma();
  if (const char* e = std::getenv("HEARTH_CUDA_MMA_MIN"))
    mma_min_tokens_ = std::clamp<int64_t>(std::atoi(e), 1, kMmaMaxTokens);
  if (const char* e = std::getenv("HEARTH_CUDA_MMA_SPLITS")) mma_splits_ = std::max(0, std::atoi(e));
  const char* fl = std::getenv("HEARTH_CUDA_FLASH");
  flash_ = !(fl && std::string(fl) == "0");
  if (const char* e = std::getenv("HEARTH_CUDA_FLASH_TILES")) {
    const int mt = std::atoi(e);
    if (mt == 1 || mt == 2) flash_row_tiles_ = mt;
  }
  if (const char* e = std::getenv("HEARTH_CUDA_FLASH_KEYS")) {
    const int keys = std::atoi(e);
    if (keys == 32 || keys == 64) flash_key_tile_ = keys;
  }
  if (const char* e = std::getenv("HEARTH_CUDA_ATTN_KEYS")) {
    const int keys = std::atoi(e);
    if (keys == 2) attn_keys_ = keys;
  }
  smem_optin_ = static_cast<int64_t>(prop.sharedMemPerBlockOptin);
  const char* da = std::getenv("HEARTH_CUDA_DECODE_ATTN");
  decode_attn_ = da ? std::clamp(std::atoi(da), 0, 2) : (prop.major == 9 && prop.minor == 0 ? 1 : 0);
  if (const char* e = std::getenv("HEARTH_CUDA_DECODE_STAGES")) decode_stages_ = std::clamp(std::atoi(e), 1, 4);
  if (const char* e = std::getenv("HEARTH_CUDA_DECODE_BLOCKS")) decode_blocks_ = std::clamp(std::atoi(e), 1, 64);
  if (const char* e = std::getenv("HEARTH_CUDA_DECODE_WARPS")) {
    const int w = std::atoi(e);
    decode_warps_ = w == 4 || w == 8 ? w : 0;
  }
  if (const char* e = std::getenv("HEARTH_CUDA_DECODE_KEYS")) decode_min_keys_ = std::clamp(std::atoi(e), 16, 4096);
  const char* prof = std::getenv("HEARTH_CUDA_PROFILE");
  if (prof && std::string(prof) == "1") {
    profile_ = std::make_unique<LaunchProfile>();
    tape_.set_profile(profile_.get());
  }
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  if (profile_) {
    profile_->collect();
    std::fprintf(stderr, "%s: %s", name_.c_str(), profile_->report().c_str());
  }
  tape_.clear_graphs();
  if (staging_) cudaFreeHost(staging_);
  if (read_staging_) cudaFreeHost(read_staging_);
  cublasDestroy(cublas_);
  cudaEventDestroy(upload_done_);
  cudaStreamDestroy(stream_);
}

bool CudaBackend::supports_weight(const Weight& w) const {
  if (!weight_type_supported(w.type, w.bits)) return false;
  if (w.type != DType::MLX_AFFINE) return true;
  const bool scales_ok = w.scale_type == DType::F32 || w.scale_type == DType::F16 || w.scale_type == DType::BF16;
  // Groups of a power of two, at least 32 (quant_units.cuh mlx_group shifts).
  return scales_ok && w.group_size >= 32 && (w.group_size & (w.group_size - 1)) == 0 && w.cols % w.group_size == 0;
}

void* CudaBackend::copy_in(const void* host, size_t bytes, const std::string& what) {
  auto& b = weights_.emplace_back(std::make_unique<DeviceBuffer>(bytes + 16, what));
  check(cudaMemcpy(b->ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
  check(cudaMemset(static_cast<uint8_t*>(b->ptr) + bytes, 0, 16), "cudaMemset");
  weight_bytes_ += static_cast<int64_t>(bytes);
  return b->ptr;
}

Weight CudaBackend::upload_weight(const Weight& host) {
  HEARTH_CHECK(supports_weight(host), "the CUDA backend cannot use weights of type " + host.describe());
  Weight w = host;
  w.data = copy_in(host.data, static_cast<size_t>(host.nbytes()), "weights " + host.describe());
  if (host.type == DType::MLX_AFFINE) {
    const auto half = static_cast<size_t>(host.aux_bytes() / 2);  // scales, then as much for biases
    w.scales = copy_in(host.scales, half, "scales of " + host.describe());
    w.biases = copy_in(host.biases, half, "biases of " + host.describe());
  }
  return w;
}

Tensor CudaBackend::upload_f32(const std::vector<float>& host, std::initializer_list<int64_t> shape) {
  Tensor t(nullptr, DType::F32, shape, Device::CUDA);
  HEARTH_ASSERT(t.numel() == static_cast<int64_t>(host.size()));
  t.data = copy_in(host.data(), host.size() * sizeof(float), "a vector of " + std::to_string(host.size()) + " floats");
  return t;
}

Tensor CudaBackend::alloc_activation(std::initializer_list<int64_t> shape) {
  Tensor t(nullptr, DType::F32, shape, Device::CUDA);
  auto& b = activations_.emplace_back(
      std::make_unique<DeviceBuffer>(static_cast<size_t>(t.numel()) * sizeof(float), "activations"));
  scratch_bytes_ += static_cast<int64_t>(b->bytes);
  t.data = b->ptr;
  return t;
}

void CudaBackend::reset_scratch() {
  sync();
  for (auto& b : activations_) scratch_bytes_ -= static_cast<int64_t>(b->bytes);
  activations_.clear();
  qx_in_.valid = xh_in_.valid = false;
}

void* CudaBackend::scratch(Buffer& b, size_t bytes, const char* what) {
  if (b && b->bytes >= bytes) return b->ptr;
  if (b) {
    scratch_bytes_ -= static_cast<int64_t>(b->bytes);
    retired_.push_back(std::move(b));  // queued work may still read it
  }
  b = std::make_unique<DeviceBuffer>(std::max<size_t>(bytes, size_t{1} << 16), what);
  scratch_bytes_ += static_cast<int64_t>(b->bytes);
  return b->ptr;
}

void CudaBackend::init_kv_cache(const KvCacheConfig& config) {
  HEARTH_CHECK(supports_kv_dtype(config.dtype),
               "the CUDA backend keeps its KV cache in f32, f16 or q8_0, not " + std::string(dtype_name(config.dtype)));
  HEARTH_CHECK(attention_head_dim_supported(config.head_dim),
               "the CUDA backend supports head_dim 32, 64, 128 or 256, not " + std::to_string(config.head_dim));
  sync();
  kv_.reset();
  kv_bytes_ = 0;
  kv_config_ = config;
  kv_layer_bytes_ = static_cast<int64_t>(config.n_blocks) * config.block_size * kv_row_bytes(config);
  const int64_t bytes = 2 * static_cast<int64_t>(config.n_layers) * kv_layer_bytes_;
  const DeviceMemory m = device_memory();
  HEARTH_CHECK(bytes <= m.free,
               "KV cache of " + std::to_string(static_cast<int64_t>(config.n_blocks) * config.block_size) +
                   " tokens needs " + mib(static_cast<double>(bytes)) + " but only " +
                   mib(static_cast<double>(m.free)) + " of GPU memory is free");
  kv_ = std::make_unique<DeviceBuffer>(static_cast<size_t>(bytes), "the KV cache");
  if (bytes > 0) check(cudaMemsetAsync(kv_->ptr, 0, kv_->bytes, stream_), "cudaMemsetAsync");
  kv_bytes_ = bytes;
}

// Working memory beyond the weights: activations of the default 2048-token prompt steps
// (513 MiB for an 8B model, docs/benchmarks_cuda.md) and a little more.
constexpr int64_t kWorkingBytes = int64_t{640} << 20;

void CudaBackend::check_weights_fit(int64_t weight_bytes) const {
  const DeviceMemory m = device_memory();
  const auto gib = [](double b) {
    char s[32];
    std::snprintf(s, sizeof s, "%.2f GiB", b / 1073741824.0);
    return std::string(s);
  };
  HEARTH_CHECK(weight_bytes + kWorkingBytes <= m.free,
               "the model does not fit on " + name_ + ": its weights need " + gib(static_cast<double>(weight_bytes)) +
                   " and the backend " + mib(static_cast<double>(kWorkingBytes)) + " more, but " +
                   gib(static_cast<double>(m.free)) + " of " + gib(static_cast<double>(m.total)) +
                   " is free (use a smaller quantization, or --device cpu)");
}

int64_t CudaBackend::kv_memory_free() const { return std::max<int64_t>(device_memory().free - kWorkingBytes, 0); }

void CudaBackend::copy_kv_block(int32_t src, int32_t dst) {
  HEARTH_ASSERT(src >= 0 && dst >= 0 && src < kv_config_.n_blocks && dst < kv_config_.n_blocks);
  tape_.flush(stream_);
  const int64_t block = static_cast<int64_t>(kv_config_.block_size) * kv_row_bytes(kv_config_);
  for (int64_t l = 0; l < 2 * static_cast<int64_t>(kv_config_.n_layers); ++l) {  // keys and values of every layer
    uint8_t* base = kv_part(l);
    check(cudaMemcpyAsync(base + dst * block, base + src * block, static_cast<size_t>(block),
                          cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync");
  }
}

BackendMemory CudaBackend::memory() const {
  BackendMemory m;
  m.weights = weight_bytes_;
  m.kv_cache = kv_bytes_;
  m.scratch = scratch_bytes_;
  return m;
}

// Reads go through a pinned buffer: a copy into pageable memory is several times slower.
float* CudaBackend::staging(size_t bytes) {
  if (bytes > read_staging_bytes_) {
    sync();
    if (read_staging_) cudaFreeHost(read_staging_);
    read_staging_ = nullptr;
    read_staging_bytes_ = 0;
    check(cudaMallocHost(reinterpret_cast<void**>(&read_staging_), bytes), "cudaMallocHost (read_rows)");
    read_staging_bytes_ = bytes;
  }
  return read_staging_;
}

void CudaBackend::read_rows(Tensor x, float* host) {
  HEARTH_ASSERT(x.device == Device::CUDA && x.dtype == DType::F32);
  tape_.flush(stream_);
  const size_t bytes = static_cast<size_t>(x.numel()) * sizeof(float);
  float* pinned = staging(bytes);
  check(cudaMemcpyAsync(pinned, x.data, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (read_rows)");
  sync();
  std::memcpy(host, pinned, bytes);
}

// Two launches (top_k.cu) recorded with the step, so a decode step's graph ends with them,
// then one copy of rows * k ids and values.
void CudaBackend::read_top_rows(Tensor x, int32_t n_valid, int32_t k, int32_t* ids, float* values) {
  HEARTH_ASSERT(x.device == Device::CUDA && x.dtype == DType::F32);
  HEARTH_ASSERT(k >= 1 && k <= kMaxTopRows && n_valid >= 0 && n_valid <= x.cols());
  static_assert(kMaxTopRows == kTopKMax);
  const int64_t rows = x.rows();
  auto p = zeroed<TopKParams>();
  p.x = x.f32();
  p.ld = x.cols();
  p.rows = rows;
  p.n_valid = n_valid;
  p.k = k;
  p.segments = std::max<int32_t>(1, (n_valid + kTopKSegment - 1) / kTopKSegment);
  HEARTH_CHECK(static_cast<int64_t>(p.segments) * k <= kTopKMergeKeys,
               "read_top_rows: a row of " + std::to_string(n_valid) + " columns is too long for k = " + std::to_string(k));
  // One buffer: the segments' keys, then the ids, then the values (8-byte aligned pieces).
  const size_t partial_bytes = static_cast<size_t>(rows * p.segments * k) * sizeof(uint64_t);
  const size_t out_bytes = static_cast<size_t>(rows * k) * sizeof(int32_t);
  auto* base = static_cast<uint8_t*>(scratch(top_, partial_bytes + 2 * out_bytes + 16, "top-k scratch"));
  p.partial = reinterpret_cast<uint64_t*>(base);
  p.ids = reinterpret_cast<int32_t*>(base + partial_bytes);
  p.values = reinterpret_cast<float*>(base + partial_bytes + out_bytes);
  launch<TopKParams, launch_top_k>(p);
  tape_.flush(stream_);
  auto* pinned = reinterpret_cast<uint8_t*>(staging(2 * out_bytes));
  check(cudaMemcpyAsync(pinned, p.ids, 2 * out_bytes, cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync (read_top_rows)");
  sync();
  std::memcpy(ids, pinned, out_bytes);
  std::memcpy(values, pinned + out_bytes, out_bytes);
}

void CudaBackend::sync() {
  tape_.flush(stream_);
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  retired_.clear();
  if (profile_) profile_->collect();
}

}  // namespace cuda

bool cuda_available() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();  // a missing driver leaves an error behind; nothing else should see it
  return ok;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    fail("no CUDA device is available (no GPU or no driver)");
  }
  HEARTH_CHECK(device >= 0 && device < n, "CUDA device " + std::to_string(device) + " does not exist (" +
                                              std::to_string(n) + " device(s))");
  return std::make_unique<cuda::CudaBackend>(device);
}

}  // namespace hearth
