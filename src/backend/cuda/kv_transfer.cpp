// CudaBackend::read_kv_block / write_kv_block: one KV block between device and host
// memory, for the prefix cache's host and disk tier (backend.h has the layout: for each
// layer the block's keys, then its values). The cache is one device buffer holding, per
// layer, all keys then all values (n_blocks * block_size cache rows of kv_row_bytes each,
// whatever the dtype), so a block is 2 * n_layers strided pieces. Both calls go on the backend's stream after
// any recorded launches and wait for the copies, so the host buffer is free on return.
#include "backend/cuda/backend_cuda.h"

namespace hearth::cuda {

void CudaBackend::read_kv_block(int32_t block, uint8_t* host) {
  HEARTH_ASSERT(kv_ && block >= 0 && block < kv_config_.n_blocks);
  tape_.flush(stream_);
  const int64_t piece = static_cast<int64_t>(kv_config_.block_size) * kv_row_bytes(kv_config_);
  for (int64_t l = 0; l < 2 * static_cast<int64_t>(kv_config_.n_layers); ++l) {  // K0 V0 K1 V1 ...
    const uint8_t* base = kv_part(l);
    check(cudaMemcpyAsync(host + l * piece, base + block * piece, static_cast<size_t>(piece), cudaMemcpyDeviceToHost,
                          stream_),
          "cudaMemcpyAsync (KV block to host)");
  }
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

void CudaBackend::write_kv_block(int32_t block, const uint8_t* host) {
  HEARTH_ASSERT(kv_ && block >= 0 && block < kv_config_.n_blocks);
  tape_.flush(stream_);
  const int64_t piece = static_cast<int64_t>(kv_config_.block_size) * kv_row_bytes(kv_config_);
  for (int64_t l = 0; l < 2 * static_cast<int64_t>(kv_config_.n_layers); ++l) {
    uint8_t* base = kv_part(l);
    check(cudaMemcpyAsync(base + block * piece, host + l * piece, static_cast<size_t>(piece), cudaMemcpyHostToDevice,
                          stream_),
          "cudaMemcpyAsync (KV block to device)");
  }
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace hearth::cuda
