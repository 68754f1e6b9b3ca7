// The backend interface: the one seam between model code and compute devices.
//
// A model is written once against these ops; the CPU backend (backend/cpu) and the CUDA
// backend (backend/cuda) implement them. Model code never includes a device header and
// never touches device memory directly: it holds Tensor views and Weights handed out by
// its backend.
//
// Conventions:
//  - Activations are row-major Tensors on the backend's device, one row per token.
//    Element type F32 unless a backend documents otherwise (activation_dtype()).
//  - Ops are asynchronous with respect to the host on devices that can be (CUDA): they
//    are queued in order; read_rows() and sync() wait.
//  - Shapes in comments: n = tokens in the step, H = hidden_size, nh/nkv = query/kv
//    heads, hd = head_dim, F = intermediate_size, V = vocabulary rows.
//  - Every op validates shapes with HEARTH_ASSERT; an unsupported weight type is an Error
//    raised at upload time (supports_weight), never in the middle of a forward.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/step.h"
#include "core/tensor.h"
#include "quant/weight.h"

namespace hearth {

// Rotary embedding parameters, computed once per model (model/rope.h).
struct RopeTable {
  std::vector<float> inv_freq;  // [n_rot / 2] frequency of pair i (scaling applied)
  float attn_factor = 1.0f;     // multiplies cos and sin (YaRN's mscale)
  bool neox = true;             // true: pairs (i, i + n_rot/2) (HF rotate_half); false: (2i, 2i+1)
};

// KV cache geometry. The cache is a pool of blocks shared by all sequences.
struct KvCacheConfig {
  int32_t n_layers = 0;
  int32_t n_blocks = 0;
  int32_t block_size = 16;  // tokens per block
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  DType dtype = DType::F32;  // F32, F16 or Q8_0 (backend may support a subset)
};

// Bytes of one token's keys (or values) of one layer, a "cache row" of n_kv_heads * head_dim
// elements. F32/F16: the elements. Q8_0 (head_dim % 32 == 0): the elements as int8, q[row],
// then one f16 scale per 32 elements, d[row / 32] (element i is q[i] * d[i / 32]; each
// 32-group lies inside one head), then zeros up to a multiple of 16 bytes, so every row
// and every head's int8 values start 16-byte aligned. 8.5 bits an element: 1.88x the
// tokens of F16 in the same memory.
inline int64_t kv_row_bytes(const KvCacheConfig& c) {
  const int64_t row = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  if (c.dtype == DType::Q8_0) return (row + row / 32 * 2 + 15) / 16 * 16;
  return row * (c.dtype == DType::F32 ? 4 : 2);
}

// Bytes of one KV block, all layers: for each layer its keys, then its values, each
// block_size cache rows (kv_row_bytes) in the cache's dtype. The layout of
// read_kv_block/write_kv_block, and of the prefix cache's files (whose header records
// the dtype, kv_file.h).
inline int64_t kv_block_bytes(const KvCacheConfig& c) {
  return 2 * static_cast<int64_t>(c.n_layers) * c.block_size * kv_row_bytes(c);
}

// Bytes a backend has allocated, by use. Weights left in a file mapping (the CPU backend)
// are not counted here; callers add ModelInfo::weight_bytes for those.
struct BackendMemory {
  int64_t weights = 0;   // weight and small constant tensors copied to backend memory
  int64_t kv_cache = 0;  // the KV cache as configured by init_kv_cache
  int64_t scratch = 0;   // activation scratch currently allocated
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0 (NVIDIA H100 ...)"
  virtual Device device() const = 0;

  // ---- memory -------------------------------------------------------------------
  // A weight usable by matmul/embed on this device. CPU returns it unchanged (the data
  // stays in the file mapping); CUDA copies the stored bytes, still quantized.
  virtual Weight upload_weight(const Weight& host) = 0;
  virtual bool supports_weight(const Weight& w) const = 0;
  // Called by the loader before a model's first upload with the bytes its weights take:
  // Error, with the sizes needed and free, where they and the backend's working memory
  // cannot fit, so a model too large is refused before anything is allocated. The CPU
  // computes from the file mapping and takes any size.
  virtual void check_weights_fit(int64_t weight_bytes) const { (void)weight_bytes; }
  // Bytes free now in the device memory the KV cache is allocated in, less the backend's
  // working memory (the budget a context is sized by); -1 where that memory is the host's
  // (the CPU: callers read MemAvailable).
  virtual int64_t kv_memory_free() const { return -1; }
  // A device F32 tensor holding a copy of host data (norm weights, biases).
  virtual Tensor upload_f32(const std::vector<float>& host, std::initializer_list<int64_t> shape) = 0;
  // A device F32 activation tensor. Memory lives until the backend is destroyed or
  // reset_scratch() is called; models allocate their scratch once per batch size.
  virtual Tensor alloc_activation(std::initializer_list<int64_t> shape) = 0;
  virtual void reset_scratch() = 0;
  // (Re)creates the KV cache; previous contents are lost.
  virtual void init_kv_cache(const KvCacheConfig& config) = 0;
  virtual const KvCacheConfig& kv_cache_config() const = 0;
  // Copy a KV block's contents (all layers) from one block id to another (copy-on-write).
  virtual void copy_kv_block(int32_t src_block, int32_t dst_block) = 0;
  // Copy one KV block (kv_block_bytes(kv_cache_config()) bytes, layout above) to host
  // memory, after queued work has finished; and back. The prefix cache uses these to keep
  // evicted blocks in host memory or on disk and to restore them instead of recomputing.
  virtual void read_kv_block(int32_t block, uint8_t* host) = 0;
  virtual void write_kv_block(int32_t block, const uint8_t* host) = 0;
  // What this backend has allocated (for stats); a backend that does not count returns zeros.
  virtual BackendMemory memory() const { return {}; }
  // The KV cache type Model::kv_cache_config asks for: the one set_kv_dtype chose, else
  // default_kv_dtype(), the type this backend runs best: the CPU's attention reads F32;
  // CUDA keeps F16 (half the memory and half the bytes that decode attention streams;
  // test_cuda_model bounds its effect on the logits).
  DType kv_dtype() const { return kv_dtype_set_ ? kv_dtype_ : default_kv_dtype(); }
  virtual DType default_kv_dtype() const { return DType::F32; }
  virtual bool supports_kv_dtype(DType t) const { return t == DType::F32; }
  // The user's choice (--kv-cache-type), before the cache is created; Error if this
  // backend cannot keep its cache in that type.
  void set_kv_dtype(DType t);
  // Bytes per second that this device's memory moves in a device-to-device copy of about
  // `bytes` (read + written, best of a few passes), for benchmarks' "% of bandwidth"; 0
  // where the backend measures nothing (the CPU: the caller measures host memory itself).
  virtual double measure_bandwidth(size_t bytes) {
    (void)bytes;
    return 0.0;
  }

  // ---- a step -------------------------------------------------------------------
  // Makes `batch` the current step: token ids, positions, slots and block tables are
  // uploaded once and used by the ops below until the next begin_step.
  virtual void begin_step(const StepBatch& batch) = 0;

  // ---- ops ------------------------------------------------------------------------
  // out[n, H] = rows of the embedding `table` for the step's tokens.
  virtual void embed(Tensor out, const Weight& table) = 0;
  // out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight, for every row r.
  // The row length is weight's length; x may be viewed as [n * heads, hd] for per-head norms.
  virtual void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) = 0;
  // out[n, rows] = x[n, cols] @ w^T (+ nothing; see add_bias).
  virtual void matmul(Tensor out, Tensor x, const Weight& w) = 0;
  // x[r, :] += bias for every row r.
  virtual void add_bias(Tensor x, Tensor bias) = 0;
  // Rotates x[n, heads, hd] in place at the step's positions; the first 2*len(inv_freq)
  // dims of each head are rotated, the rest pass through.
  virtual void rope(Tensor x, int64_t heads, int64_t head_dim, const RopeTable& rope) = 0;
  // Writes k[n, nkv*hd] and v[n, nkv*hd] into the cache of `layer` at the step's slots.
  virtual void kv_store(int32_t layer, Tensor k, Tensor v) = 0;
  // out[n, nh*hd] = causal attention of q[n, nh*hd] over the cached keys/values of
  // `layer` (positions 0..positions[t] of each token's sequence); GQA maps query head j
  // to kv head j / (nh / nkv). scores are scaled by `scale`, softmax in F32.
  virtual void attention(Tensor out, Tensor q, int32_t layer, int64_t n_heads, float scale) = 0;
  // out[n, F] = silu(gate) * up.
  virtual void swiglu(Tensor out, Tensor gate, Tensor up) = 0;
  // out = a + b (same shapes; out may alias a).
  virtual void add(Tensor out, Tensor a, Tensor b) = 0;
  // out[len(logit_rows), C] = x[logit_rows[i], :]: keeps only rows whose logits are wanted.
  virtual void gather_logit_rows(Tensor out, Tensor x) = 0;
  // Copies rows of an F32 tensor to host memory (waits for queued work).
  virtual void read_rows(Tensor x, float* host) = 0;
  // The k largest values of each row of an F32 tensor x[rows, C] among its columns
  // [0, n_valid), best first by (value descending, column ascending), -inf and NaN left
  // out, -0 equal to +0 (the sampler's top_k order): ids[r * k + j] and values[r * k + j],
  // a row with fewer than k such values padded with id -1. 1 <= k <= kMaxTopRows. Waits
  // for queued work. Lets a step copy back k candidates a sequence instead of its row.
  static constexpr int32_t kMaxTopRows = 128;
  virtual void read_top_rows(Tensor x, int32_t n_valid, int32_t k, int32_t* ids, float* values) = 0;
  // Waits for all queued work.
  virtual void sync() = 0;

 private:
  DType kv_dtype_ = DType::F32;
  bool kv_dtype_set_ = false;
};

// The KV cache type named by --kv-cache-type: "f32", "f16" or "q8_0"; Error otherwise.
DType parse_kv_cache_type(const std::string& name);

// The CPU backend; n_threads 0 = all hardware threads.
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0);

// True when this build has the CUDA backend and a CUDA device is present (false without
// the toolkit, a GPU or its driver; never throws).
bool cuda_available();
// The CUDA backend on `device`; throws Error when cuda_available() is false.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace hearth
