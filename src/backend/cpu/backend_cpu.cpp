// The CPU backend: Backend implemented with host memory and the ops of ops.h.
// Weights stay where the loader put them (the file mapping); activations and the KV cache
// are plain heap arrays owned here. The KV cache is F32 (exact, and simple to read back)
// or, when asked (--kv-cache-type q8_0), the 8-bit rows of kv_quant.h, quantized as they
// are stored and dequantized by the attention. It comes from calloc, so a large cache
// costs address space, not resident memory, until positions are written (the OS hands out
// zero pages on first touch).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/ops.h"
#include "backend/kv_quant.h"
#include "quant/quant.h"

namespace hearth {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads) {}

  std::string name() const override { return "cpu (" + std::to_string(pool_.size()) + " threads)"; }
  Device device() const override { return Device::CPU; }

  bool supports_weight(const Weight& w) const override {
    return w.type == DType::MLX_AFFINE || quant::can_dequantize(w.type);
  }
  Weight upload_weight(const Weight& host) override {
    HEARTH_CHECK(supports_weight(host), "the CPU backend cannot use weights of type " + host.describe());
    return host;
  }
  Tensor upload_f32(const std::vector<float>& host, std::initializer_list<int64_t> shape) override {
    auto& buf = buffers_.emplace_back(std::make_unique<float[]>(host.size()));
    std::memcpy(buf.get(), host.data(), host.size() * sizeof(float));
    buffer_bytes_ += static_cast<int64_t>(host.size() * sizeof(float));
    Tensor t(buf.get(), DType::F32, shape);
    HEARTH_ASSERT(t.numel() == static_cast<int64_t>(host.size()));
    return t;
  }
  Tensor alloc_activation(std::initializer_list<int64_t> shape) override {
    Tensor t(nullptr, DType::F32, shape);
    auto& buf = scratch_.emplace_back(std::make_unique<float[]>(static_cast<size_t>(t.numel())));
    t.data = buf.get();
    scratch_bytes_ += t.numel() * static_cast<int64_t>(sizeof(float));
    return t;
  }
  void reset_scratch() override {
    scratch_.clear();
    scratch_bytes_ = 0;
  }
  BackendMemory memory() const override {
    BackendMemory m;
    m.weights = buffer_bytes_;
    m.kv_cache = kv_bytes_;
    m.scratch = scratch_bytes_;
    return m;
  }

  bool supports_kv_dtype(DType t) const override { return t == DType::F32 || t == DType::Q8_0; }
  void init_kv_cache(const KvCacheConfig& config) override {
    HEARTH_CHECK(supports_kv_dtype(config.dtype), "the CPU backend keeps its KV cache in f32 or q8_0, not " +
                                                      std::string(dtype_name(config.dtype)));
    HEARTH_CHECK(config.dtype != DType::Q8_0 || config.head_dim % 32 == 0,
                 "--kv-cache-type q8_0: head_dim " + std::to_string(config.head_dim) + " is not a multiple of 32");
    kv_k_.clear();
    kv_v_.clear();
    kv_bytes_ = 0;
    kv_config_ = config;
    row_bytes_ = kv_row_bytes(config);
    const size_t per_layer = static_cast<size_t>(config.n_blocks) * config.block_size * static_cast<size_t>(row_bytes_);
    for (int32_t l = 0; l < config.n_layers; ++l) {
      auto alloc = [&] {
        KvArray a(static_cast<uint8_t*>(std::calloc(per_layer, 1)));
        if (!a && per_layer > 0) throw std::bad_alloc();
        return a;
      };
      kv_k_.push_back(alloc());
      kv_v_.push_back(alloc());
    }
    kv_bytes_ = 2 * static_cast<int64_t>(config.n_layers) * static_cast<int64_t>(per_layer);
  }
  const KvCacheConfig& kv_cache_config() const override { return kv_config_; }
  // A block is block_size consecutive rows of each layer's keys and of its values.
  void copy_kv_block(int32_t src, int32_t dst) override {
    const size_t block = static_cast<size_t>(kv_config_.block_size) * static_cast<size_t>(row_bytes_);
    for (int32_t l = 0; l < kv_config_.n_layers; ++l) {
      std::memcpy(kv_k_[l].get() + dst * block, kv_k_[l].get() + src * block, block);
      std::memcpy(kv_v_[l].get() + dst * block, kv_v_[l].get() + src * block, block);
    }
  }
  void read_kv_block(int32_t block, uint8_t* host) override {
    HEARTH_ASSERT(block >= 0 && block < kv_config_.n_blocks);
    const size_t bytes = static_cast<size_t>(kv_config_.block_size) * static_cast<size_t>(row_bytes_);
    for (int32_t l = 0; l < kv_config_.n_layers; ++l) {
      std::memcpy(host, kv_k_[l].get() + block * bytes, bytes);
      std::memcpy(host + bytes, kv_v_[l].get() + block * bytes, bytes);
      host += 2 * bytes;
    }
  }
  void write_kv_block(int32_t block, const uint8_t* host) override {
    HEARTH_ASSERT(block >= 0 && block < kv_config_.n_blocks);
    const size_t bytes = static_cast<size_t>(kv_config_.block_size) * static_cast<size_t>(row_bytes_);
    for (int32_t l = 0; l < kv_config_.n_layers; ++l) {
      std::memcpy(kv_k_[l].get() + block * bytes, host, bytes);
      std::memcpy(kv_v_[l].get() + block * bytes, host + bytes, bytes);
      host += 2 * bytes;
    }
  }

  void begin_step(const StepBatch& batch) override {
    const int64_t n = batch.n_tokens();
    HEARTH_ASSERT(static_cast<int64_t>(batch.positions.size()) == n && static_cast<int64_t>(batch.slots.size()) == n &&
                  static_cast<int64_t>(batch.seq_of.size()) == n);
    const int64_t capacity = static_cast<int64_t>(kv_config_.n_blocks) * kv_config_.block_size;
    for (int64_t t = 0; t < n; ++t) {
      HEARTH_ASSERT(batch.slots[t] >= 0 && batch.slots[t] < capacity);
      HEARTH_ASSERT(batch.seq_of[t] >= 0 && batch.seq_of[t] < static_cast<int32_t>(batch.seqs.size()));
      const auto& seq = batch.seqs[batch.seq_of[t]];
      HEARTH_ASSERT(batch.positions[t] >= 0 && batch.positions[t] < seq.n_ctx);
      HEARTH_ASSERT(static_cast<int64_t>(seq.block_table.size()) * kv_config_.block_size >= seq.n_ctx);
    }
    step_ = batch;
  }

  void embed(Tensor out, const Weight& table) override {
    HEARTH_ASSERT(out.rows() == step_.n_tokens() && out.cols() == table.cols);
    cpu::embed(pool_, out.f32(), table, step_.tokens.data(), step_.n_tokens());
  }
  void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) override {
    const int64_t dim = weight.numel();
    HEARTH_ASSERT(x.numel() == out.numel() && x.numel() % dim == 0);
    cpu::rms_norm(pool_, out.f32(), x.f32(), weight.f32(), x.numel() / dim, dim, eps);
  }
  void matmul(Tensor out, Tensor x, const Weight& w) override {
    HEARTH_ASSERT(x.cols() == w.cols && out.cols() == w.rows && out.rows() == x.rows());
    cpu::matmul(pool_, out.f32(), x.f32(), x.rows(), w);
  }
  void add_bias(Tensor x, Tensor bias) override {
    HEARTH_ASSERT(x.cols() == bias.numel());
    float* p = x.f32();
    for (int64_t r = 0; r < x.rows(); ++r) cpu::add(p + r * x.cols(), p + r * x.cols(), bias.f32(), x.cols());
  }
  void rope(Tensor x, int64_t heads, int64_t head_dim, const RopeTable& table) override {
    HEARTH_ASSERT(x.numel() == step_.n_tokens() * heads * head_dim);
    HEARTH_ASSERT(static_cast<int64_t>(table.inv_freq.size()) * 2 <= head_dim);
    cpu::rope(pool_, x.f32(), step_.positions.data(), step_.n_tokens(), heads, head_dim, table);
  }
  void kv_store(int32_t layer, Tensor k, Tensor v) override {
    const int64_t row = static_cast<int64_t>(kv_config_.n_kv_heads) * kv_config_.head_dim;
    HEARTH_ASSERT(k.cols() == row && v.cols() == row && k.rows() == step_.n_tokens());
    for (int64_t t = 0; t < step_.n_tokens(); ++t) {
      uint8_t* kd = kv_k_[layer].get() + step_.slots[t] * row_bytes_;
      uint8_t* vd = kv_v_[layer].get() + step_.slots[t] * row_bytes_;
      if (kv_config_.dtype == DType::Q8_0) {
        quantize_kv_row_q8(k.f32() + t * row, row, row_bytes_, kd);
        quantize_kv_row_q8(v.f32() + t * row, row, row_bytes_, vd);
      } else {
        std::memcpy(kd, k.f32() + t * row, row * sizeof(float));
        std::memcpy(vd, v.f32() + t * row, row * sizeof(float));
      }
    }
  }
  void attention(Tensor out, Tensor q, int32_t layer, int64_t n_heads, float scale) override {
    const int64_t hd = kv_config_.head_dim;
    HEARTH_ASSERT(q.numel() == step_.n_tokens() * n_heads * hd && out.numel() == q.numel());
    HEARTH_ASSERT(n_heads % kv_config_.n_kv_heads == 0);
    const cpu::KvLayerView view{kv_k_[layer].get(), kv_v_[layer].get(), kv_config_.n_kv_heads * hd, row_bytes_,
                                kv_config_.dtype == DType::Q8_0};
    cpu::attention(pool_, out.f32(), q.f32(), view, step_, kv_config_.block_size, n_heads, kv_config_.n_kv_heads, hd,
                   scale);
  }
  void swiglu(Tensor out, Tensor gate, Tensor up) override {
    HEARTH_ASSERT(gate.numel() == up.numel() && out.numel() == gate.numel());
    cpu::swiglu(pool_, out.f32(), gate.f32(), up.f32(), gate.numel());
  }
  void add(Tensor out, Tensor a, Tensor b) override {
    HEARTH_ASSERT(a.numel() == b.numel() && out.numel() == a.numel());
    cpu::add(out.f32(), a.f32(), b.f32(), a.numel());
  }
  void gather_logit_rows(Tensor out, Tensor x) override {
    const int64_t cols = x.cols();
    HEARTH_ASSERT(out.cols() == cols && out.rows() == static_cast<int64_t>(step_.logit_rows.size()));
    for (size_t i = 0; i < step_.logit_rows.size(); ++i) {
      const int64_t r = step_.logit_rows[i];
      HEARTH_ASSERT(r >= 0 && r < x.rows());
      std::memmove(out.f32() + static_cast<int64_t>(i) * cols, x.f32() + r * cols, cols * sizeof(float));
    }
  }
  void read_rows(Tensor x, float* host) override { std::memcpy(host, x.f32(), x.numel() * sizeof(float)); }
  void read_top_rows(Tensor x, int32_t n_valid, int32_t k, int32_t* ids, float* values) override {
    HEARTH_ASSERT(k >= 1 && k <= kMaxTopRows && n_valid >= 0 && n_valid <= x.cols());
    cpu::top_k_rows(x.f32(), x.rows(), x.cols(), n_valid, k, ids, values);
  }
  void sync() override {}

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using KvArray = std::unique_ptr<uint8_t[], FreeDeleter>;

  ThreadPool pool_;
  std::vector<std::unique_ptr<float[]>> buffers_;
  std::vector<std::unique_ptr<float[]>> scratch_;
  KvCacheConfig kv_config_;
  std::vector<KvArray> kv_k_, kv_v_;  // [layer][slot * row_bytes_]
  int64_t row_bytes_ = 0;             // kv_row_bytes(kv_config_)
  int64_t buffer_bytes_ = 0, scratch_bytes_ = 0, kv_bytes_ = 0;
  StepBatch step_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace hearth
