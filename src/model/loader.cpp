// Model::load: opens the files, reads the config, finds every tensor an architecture
// needs through the name table, checks its shape and type, and hands it to the backend.
//
// Formats:
//  - GGUF: one file or split shards; weights keep their ggml block types.
//  - HF folder: config.json + safetensors (F32/F16/BF16).
//  - MLX folder: the same, but a module P is quantized iff P.scales exists; its bits and
//    group size come from config.json "quantization" (per-module overrides by path).
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/architecture.h"
#include "model/model.h"
#include "model/rope.h"
#include "model/tensor_names.h"
#include "quant/quant.h"

namespace fs = std::filesystem;

namespace hearth {

class ModelLoader {
 public:
  ModelLoader(Model& model, NameScheme scheme, const TensorStore& store, nlohmann::json quantization)
      : m_(model), scheme_(scheme), store_(store), quantization_(std::move(quantization)) {}

  void load_weights();

 private:
  std::string name(TensorRole role, int layer, const char* suffix) const {
    return tensor_base_name(scheme_, role, layer) + suffix;
  }
  const StoredTensor* find(TensorRole role, int layer, const char* suffix = ".weight") const {
    return store_.find(name(role, layer, suffix));
  }
  Weight matrix(TensorRole role, int layer, int64_t rows, int64_t cols);
  Weight mlx_matrix(const StoredTensor& packed, const std::string& base, int64_t rows, int64_t cols);
  Tensor vector(TensorRole role, int layer, int64_t size, const char* suffix = ".weight");
  [[noreturn]] void bad(const StoredTensor& t, const std::string& problem) const {
    fail(t.file + ": tensor '" + t.name + "': " + problem);
  }
  static std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

  Model& m_;
  NameScheme scheme_;
  const TensorStore& store_;
  nlohmann::json quantization_;
};

Weight ModelLoader::mlx_matrix(const StoredTensor& packed, const std::string& base, int64_t rows, int64_t cols) {
  const StoredTensor& scales = store_.get(base + ".scales");
  const StoredTensor* biases = store_.find(base + ".biases");
  HEARTH_CHECK(biases, scales.file + ": MLX tensor '" + base + "' has scales but no biases (only affine mode is supported)");
  int bits = quantization_.value("bits", 4), group_size = quantization_.value("group_size", 64);
  if (quantization_.contains(base) && quantization_[base].is_object()) {
    bits = quantization_[base].value("bits", bits);
    group_size = quantization_[base].value("group_size", group_size);
  }
  if (quantization_.value("mode", std::string("affine")) != "affine")
    bad(packed, "MLX quantization mode '" + quantization_.value("mode", std::string()) + "' is not supported");
  if (bits < 2 || bits > 8 || bits == 7 || (group_size != 32 && group_size != 64 && group_size != 128))
    bad(packed, "unsupported MLX quantization (bits " + std::to_string(bits) + ", group " + std::to_string(group_size) + ")");
  if (packed.dtype != DType::U32) bad(packed, "MLX packed weights must be uint32");
  if (cols % group_size != 0 || (cols * bits) % 32 != 0)
    bad(packed, "input size " + std::to_string(cols) + " does not fit MLX groups of " + std::to_string(group_size));
  const std::vector<int64_t> want_packed{rows, cols * bits / 32}, want_scales{rows, cols / group_size};
  if (packed.shape != want_packed)
    bad(packed, "shape " + shape_str(packed.shape) + ", expected " + shape_str(want_packed) + " for " +
                    std::to_string(bits) + "-bit values");
  for (const StoredTensor* aux : {&scales, biases}) {
    if (aux->shape != want_scales) bad(*aux, "shape " + shape_str(aux->shape) + ", expected " + shape_str(want_scales));
    if (aux->dtype != DType::F16 && aux->dtype != DType::BF16 && aux->dtype != DType::F32)
      bad(*aux, "scales and biases must be f16, bf16 or f32");
  }
  HEARTH_CHECK(scales.dtype == biases->dtype, scales.file + ": '" + base + "' scales and biases differ in type");
  Weight w;
  w.type = DType::MLX_AFFINE;
  w.data = packed.data;
  w.rows = rows;
  w.cols = cols;
  w.scales = scales.data;
  w.biases = biases->data;
  w.scale_type = scales.dtype;
  w.bits = bits;
  w.group_size = group_size;
  return w;
}

Weight ModelLoader::matrix(TensorRole role, int layer, int64_t rows, int64_t cols) {
  const std::string base = tensor_base_name(scheme_, role, layer);
  const StoredTensor* t = store_.find(base + ".weight");
  if (!t) fail(store_.origin() + ": missing tensor '" + base + ".weight'");
  Weight w;
  if (store_.contains(base + ".scales")) {
    w = mlx_matrix(*t, base, rows, cols);
  } else {
    const std::vector<int64_t> want{rows, cols};
    if (t->shape != want) bad(*t, "shape " + shape_str(t->shape) + ", expected " + shape_str(want));
    if (!quant::can_dequantize(t->dtype)) bad(*t, "type " + std::string(dtype_name(t->dtype)) + " is not supported for weights");
    w.type = t->dtype;
    w.data = t->data;
    w.rows = rows;
    w.cols = cols;
  }
  if (static_cast<uint64_t>(w.nbytes()) != t->nbytes && w.type != DType::MLX_AFFINE)
    bad(*t, "holds " + std::to_string(t->nbytes) + " bytes, expected " + std::to_string(w.nbytes()));
  m_.info_.n_params += rows * cols;
  m_.info_.tensor_types[w.type == DType::MLX_AFFINE ? "mlx" + std::to_string(w.bits) + "g" + std::to_string(w.group_size)
                                                    : std::string(dtype_name(w.type))]++;
  return m_.backend_.upload_weight(w);
}

Tensor ModelLoader::vector(TensorRole role, int layer, int64_t size, const char* suffix) {
  const StoredTensor* t = find(role, layer, suffix);
  if (!t) fail(store_.origin() + ": missing tensor '" + name(role, layer, suffix) + "'");
  if (t->numel() != size) bad(*t, "has " + std::to_string(t->numel()) + " elements, expected " + std::to_string(size));
  if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
    bad(*t, "type " + std::string(dtype_name(t->dtype)) + " is not supported for norms and biases");
  std::vector<float> host(static_cast<size_t>(size));
  quant::dequantize_row(t->dtype, t->data, host.data(), size);
  m_.info_.n_params += size;
  m_.info_.tensor_types[std::string(dtype_name(t->dtype))]++;
  return m_.backend_.upload_f32(host, {size});
}

void ModelLoader::load_weights() {
  auto& c = m_.config_;
  const Architecture& arch = *m_.arch_;
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  // The embedding decides the vocabulary size (GGUF vocab arrays may be padded or not).
  const StoredTensor* embd = find(TensorRole::TOKEN_EMBD, 0);
  if (!embd) fail(store_.origin() + ": missing tensor '" + name(TensorRole::TOKEN_EMBD, 0, ".weight") + "'");
  if (store_.contains(tensor_base_name(scheme_, TensorRole::TOKEN_EMBD, 0) + ".scales")) {
    c.vocab_size = embd->shape.empty() ? 0 : embd->shape[0];
  } else if (embd->shape.size() == 2) {
    c.vocab_size = embd->shape[0];
  }
  HEARTH_CHECK(c.vocab_size > 0, embd->file + ": cannot tell the vocabulary size from '" + embd->name + "'");
  c.validate(store_.origin());
  // Every stored tensor's bytes, a bound from above (a head tied to the embedding but also
  // stored counts twice; 16-bit norms grow to f32 copies, a few KB): a model too large for
  // the device is refused here, before the first upload.
  m_.backend_.check_weights_fit(static_cast<int64_t>(store_.total_bytes()));
  auto& w = m_.weights_;
  w.token_embd = matrix(TensorRole::TOKEN_EMBD, 0, c.vocab_size, H);
  w.output_norm = vector(TensorRole::OUTPUT_NORM, 0, H);
  if (find(TensorRole::OUTPUT, 0) && !(scheme_ == NameScheme::HF && c.tie_word_embeddings)) {
    w.output = matrix(TensorRole::OUTPUT, 0, c.vocab_size, H);
    c.tie_word_embeddings = false;
  } else {
    w.output = w.token_embd;
    c.tie_word_embeddings = true;
  }
  if (scheme_ == NameScheme::GGUF) c.attention_bias = find(TensorRole::ATTN_Q, 0, ".bias") != nullptr;
  const bool bias = arch.has_qkv_bias || c.attention_bias;
  w.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int il = 0; il < c.num_hidden_layers; ++il) {
    auto& l = w.layers[static_cast<size_t>(il)];
    l.attn_norm = vector(TensorRole::ATTN_NORM, il, H);
    l.wq = matrix(TensorRole::ATTN_Q, il, c.q_dim(), H);
    l.wk = matrix(TensorRole::ATTN_K, il, c.kv_dim(), H);
    l.wv = matrix(TensorRole::ATTN_V, il, c.kv_dim(), H);
    l.wo = matrix(TensorRole::ATTN_OUT, il, H, c.q_dim());
    if (bias) {
      l.bq = vector(TensorRole::ATTN_Q, il, c.q_dim(), ".bias");
      l.bk = vector(TensorRole::ATTN_K, il, c.kv_dim(), ".bias");
      l.bv = vector(TensorRole::ATTN_V, il, c.kv_dim(), ".bias");
    }
    if (arch.has_qk_norm) {
      l.q_norm = vector(TensorRole::ATTN_Q_NORM, il, c.head_dim);
      l.k_norm = vector(TensorRole::ATTN_K_NORM, il, c.head_dim);
    }
    l.ffn_norm = vector(TensorRole::FFN_NORM, il, H);
    l.w_gate = matrix(TensorRole::FFN_GATE, il, F, H);
    l.w_up = matrix(TensorRole::FFN_UP, il, F, H);
    l.w_down = matrix(TensorRole::FFN_DOWN, il, H, F);
  }
  c.attention_bias = bias;
  m_.info_.weight_bytes = store_.total_bytes();
  const bool interleaved = scheme_ == NameScheme::GGUF && arch.gguf_rope_interleaved;
  m_.rope_ = build_rope_table(c, !interleaved);
  // GGUF llama-3.1 files carry the rope frequency factors as a tensor instead of a config.
  if (const StoredTensor* ff = find(TensorRole::ROPE_FREQS, 0)) {
    if (ff->dtype != DType::F32 || ff->numel() != c.head_dim / 2) bad(*ff, "expected f32 [head_dim / 2]");
    const float* factors = reinterpret_cast<const float*>(ff->data);
    for (size_t i = 0; i < m_.rope_.inv_freq.size(); ++i) {
      HEARTH_CHECK(factors[i] > 0, ff->file + ": rope_freqs has a non-positive factor");
      m_.rope_.inv_freq[i] /= factors[i];
    }
  }
}

std::unique_ptr<Model> Model::load(const std::string& path, Backend& backend) {
  std::unique_ptr<Model> m(new Model(backend));
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  if (!is_dir && !fs::exists(path, ec)) fail(path + ": no such file or directory");
  m->info_.path = path;
  if (is_dir) {
    const std::string config_path = (fs::path(path) / "config.json").string();
    std::ifstream in(config_path);
    if (!in) fail(config_path + ": cannot open (a model folder needs config.json)");
    nlohmann::json config;
    try {
      config = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(config_path + ": invalid JSON: " + e.what());
    }
    m->config_ = config_from_hf_json(config, config_path);
    load_safetensors_folder(path, m->store_);
    m->folder_ = path;
    nlohmann::json quantization = config.contains("quantization") ? config["quantization"] : nlohmann::json::object();
    if (!quantization.is_object()) fail(config_path + ": 'quantization' must be an object");
    const bool mlx = config.contains("quantization");
    m->info_.format = mlx ? ModelFormat::MLX : ModelFormat::SAFETENSORS;
    m->info_.name = fs::path(path).filename().string();
    m->info_.tokenizer_kind = fs::exists(fs::path(path) / "tokenizer.json") ? "tokenizer.json" : "none";
    m->arch_ = find_architecture(m->config_.architecture);
    ModelLoader(*m, NameScheme::HF, m->store_, quantization).load_weights();
  } else {
    m->gguf_ = GgufFile::open(path);
    m->config_ = config_from_gguf(*m->gguf_);
    m->info_.format = ModelFormat::GGUF;
    m->info_.name = m->gguf_->get_string_or("general.name", fs::path(path).stem().string());
    const std::string tok = m->gguf_->get_string_or("tokenizer.ggml.model", "");
    m->info_.tokenizer_kind = tok.empty() ? "none" : tok + " (" + m->gguf_->get_string_or("tokenizer.ggml.pre", "default") + ")";
    m->arch_ = find_architecture(m->config_.architecture);
    ModelLoader(*m, NameScheme::GGUF, m->gguf_->tensors(), nlohmann::json::object()).load_weights();
  }
  HEARTH_ASSERT(m->arch_);
  m->config_.validate(path);
  return m;
}

}  // namespace hearth
