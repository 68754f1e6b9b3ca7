// Model: a decoder-only transformer loaded from GGUF, a Hugging Face safetensors folder
// or an MLX quantized folder, bound to one backend. forward() runs one StepBatch and
// returns the logits of the rows the batch asks for.
//
// Weights keep their stored format (see quant/weight.h); the model holds Weight handles
// and Tensor views handed out by its backend and never touches device memory itself.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/gguf.h"
#include "io/tensor_store.h"
#include "model/config.h"

namespace hearth {

class GgufFile;
struct Architecture;

struct LayerWeights {
  Tensor attn_norm;             // [H]
  Weight wq, wk, wv, wo;        // [nh*hd, H], [nkv*hd, H], [nkv*hd, H], [H, nh*hd]
  Tensor bq, bk, bv;            // [nh*hd], [nkv*hd], [nkv*hd]; data null without attention_bias
  Tensor q_norm, k_norm;        // [hd]; data null for architectures without q/k norms
  Tensor ffn_norm;              // [H]
  Weight w_gate, w_up, w_down;  // [F, H], [F, H], [H, F]
};

struct ModelWeights {
  Weight token_embd;  // [V, H]
  std::vector<LayerWeights> layers;
  Tensor output_norm;  // [H]
  Weight output;       // [V, H]; the same as token_embd when tied
};

enum class ModelFormat { GGUF, SAFETENSORS, MLX };

// What `hearth info` reports.
struct ModelInfo {
  std::string path;
  ModelFormat format = ModelFormat::GGUF;
  std::string name;                        // general.name or folder name
  int64_t n_params = 0;                    // elements of all weight tensors
  uint64_t weight_bytes = 0;               // bytes of tensor data as stored
  std::map<std::string, int64_t> tensor_types;  // type name -> tensor count
  std::string tokenizer_kind;              // "gpt2 (qwen2)", "tokenizer.json", "none"
};

class Model {
 public:
  // Opens `path` (a .gguf file or first shard, or a model folder) and uploads its weights
  // to `backend`. Throws Error "PATH: problem" for anything wrong with the files.
  static std::unique_ptr<Model> load(const std::string& path, Backend& backend);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const ModelInfo& info() const { return info_; }
  Backend& backend() { return backend_; }
  // The GGUF file when the model came as one (tokenizer and template live there), else null.
  const GgufFile* gguf() const { return gguf_.get(); }
  // The folder when the model came as HF/MLX files, else empty.
  const std::string& folder() const { return folder_; }

  // The KV cache geometry for n_blocks blocks of block_size tokens.
  KvCacheConfig kv_cache_config(int32_t n_blocks, int32_t block_size) const;
  // Bytes of KV cache per token (all layers, K and V) in a cache of kv_dtype (kv_row_bytes).
  int64_t kv_bytes_per_token(DType kv_dtype) const;

  // A 64-bit name for these weights (layout and data samples; identity.cpp): the prefix
  // cache's files carry it so they are never used with another model.
  uint64_t identity() const;

  // Runs one step. logits: host memory for [batch.logit_rows.size(), vocab_size] floats,
  // or null to leave them in the backend's memory for the reads below (until the next step).
  void forward(const StepBatch& batch, float* logits);
  // Whether callers should leave a step's logits in the backend and read back only what
  // they need: on a GPU a row is 0.6 MB (Qwen3) to copy and scan on the host, its best 128
  // are 1 KB; on the CPU the logits are in host memory already.
  bool keeps_logits() const { return backend_.device() != Device::CPU; }
  // The last step's logit rows [first, first + n) into out[n, vocab_size].
  void read_logits(int32_t first, int32_t n, float* out);
  // The k best ids and logits of each of the last step's logit rows among ids [0, n_valid)
  // (Backend::read_top_rows): ids/values[logit_rows * k].
  void read_top_logits(int32_t n_valid, int32_t k, int32_t* ids, float* values);

 private:
  Model(Backend& backend) : backend_(backend) {}
  void ensure_scratch(int64_t n_tokens, int64_t n_logits);

  Backend& backend_;
  ModelConfig config_;
  ModelInfo info_;
  const Architecture* arch_ = nullptr;
  std::unique_ptr<GgufFile> gguf_;
  TensorStore store_;  // HF/MLX tensors (GGUF keeps its own)
  std::string folder_;
  ModelWeights weights_;
  RopeTable rope_;

  // Scratch activations, sized for scratch_tokens_ tokens and scratch_logits_ rows.
  int64_t scratch_tokens_ = 0, scratch_logits_ = 0;
  int64_t step_logits_ = 0;  // logit rows of the last step (rows of scratch_.logits that hold them)
  struct Scratch {
    Tensor x, xn, q, k, v, attn, gate, up, tmp;  // [n, ...] per-token activations
    Tensor last, logits;                          // [n_logits, H], [n_logits, V]
  } scratch_;

  friend class ModelLoader;
};

}  // namespace hearth
