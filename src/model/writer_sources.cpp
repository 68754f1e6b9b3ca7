// Tensor sources for the model writer: standard Qwen3 shapes filled with seeded random
// values (synthetic models), and the tensors of an existing HF folder (conversion).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/architecture.h"
#include "model/writer.h"
#include "quant/quant.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

// splitmix64: a tiny, portable generator, so a seed gives the same model everywhere.
uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform values in [center - width, center + width].
std::function<void(float*)> uniform_fill(size_t n, uint64_t seed, float center, float width) {
  return [=](float* dst) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i += 2) {
      const uint64_t r = splitmix(state);
      dst[i] = center + width * (static_cast<float>(r >> 40) * (2.0f / 16777216.0f) - 1.0f);
      if (i + 1 < n) dst[i + 1] = center + width * (static_cast<float>(r & 0xffffff) * (2.0f / 16777216.0f) - 1.0f);
    }
  };
}

}  // namespace

ModelConfig qwen3_shape(const std::string& shape) {
  struct Shape {
    const char* name;
    int64_t hidden, layers, heads, kv_heads, head_dim, ffn;
    bool tied;
  };
  static const Shape kShapes[] = {
      {"tiny", 64, 2, 4, 2, 32, 192, true},        {"0.6b", 1024, 28, 16, 8, 128, 3072, true},
      {"1.7b", 2048, 28, 16, 8, 128, 6144, true},  {"4b", 2560, 36, 32, 8, 128, 9728, true},
      {"8b", 4096, 36, 32, 8, 128, 12288, false},  {"14b", 5120, 40, 40, 8, 128, 17408, false},
  };
  for (const auto& s : kShapes) {
    if (shape != s.name) continue;
    ModelConfig c;
    c.architecture = "qwen3";
    c.hidden_size = s.hidden;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.intermediate_size = s.ffn;
    c.vocab_size = 151936;
    c.max_position_embeddings = 40960;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = s.tied;
    c.bos_token_id = 151643;
    c.eos_token_id = {151645, 151643};
    return c;
  }
  fail("unknown shape '" + shape + "' (tiny, 0.6b, 1.7b, 4b, 8b, 14b)");
}

std::vector<SourceTensor> random_tensors(const ModelConfig& c, uint64_t seed) {
  std::vector<SourceTensor> out;
  uint64_t counter = seed * 1000003ull;
  auto matrix = [&](TensorRole role, int layer, int64_t rows, int64_t cols) {
    // Uniform with the variance of N(0, 1/cols): activations keep their scale.
    const float width = std::sqrt(3.0f / static_cast<float>(cols));
    out.push_back({role, layer, ".weight", {rows, cols},
                   uniform_fill(static_cast<size_t>(rows * cols), ++counter, 0.0f, width)});
  };
  auto vec = [&](TensorRole role, int layer, int64_t n, const char* suffix = ".weight", float center = 1.0f) {
    out.push_back({role, layer, suffix, {n}, uniform_fill(static_cast<size_t>(n), ++counter, center, 0.2f)});
  };
  const Architecture* arch = find_architecture(c.architecture);
  HEARTH_CHECK(arch, "unknown architecture '" + c.architecture + "'");
  matrix(TensorRole::TOKEN_EMBD, 0, c.vocab_size, c.hidden_size);
  for (int il = 0; il < c.num_hidden_layers; ++il) {
    vec(TensorRole::ATTN_NORM, il, c.hidden_size);
    matrix(TensorRole::ATTN_Q, il, c.q_dim(), c.hidden_size);
    matrix(TensorRole::ATTN_K, il, c.kv_dim(), c.hidden_size);
    matrix(TensorRole::ATTN_V, il, c.kv_dim(), c.hidden_size);
    if (arch->has_qkv_bias || c.attention_bias) {
      vec(TensorRole::ATTN_Q, il, c.q_dim(), ".bias", 0.0f);
      vec(TensorRole::ATTN_K, il, c.kv_dim(), ".bias", 0.0f);
      vec(TensorRole::ATTN_V, il, c.kv_dim(), ".bias", 0.0f);
    }
    matrix(TensorRole::ATTN_OUT, il, c.hidden_size, c.q_dim());
    if (arch->has_qk_norm) {
      vec(TensorRole::ATTN_Q_NORM, il, c.head_dim);
      vec(TensorRole::ATTN_K_NORM, il, c.head_dim);
    }
    vec(TensorRole::FFN_NORM, il, c.hidden_size);
    matrix(TensorRole::FFN_GATE, il, c.intermediate_size, c.hidden_size);
    matrix(TensorRole::FFN_UP, il, c.intermediate_size, c.hidden_size);
    matrix(TensorRole::FFN_DOWN, il, c.hidden_size, c.intermediate_size);
  }
  vec(TensorRole::OUTPUT_NORM, 0, c.hidden_size);
  if (!c.tie_word_embeddings) matrix(TensorRole::OUTPUT, 0, c.vocab_size, c.hidden_size);
  return out;
}

std::vector<SourceTensor> folder_tensors(const std::string& folder, ModelConfig& config_out) {
  const std::string config_path = (fs::path(folder) / "config.json").string();
  std::ifstream in(config_path);
  if (!in) fail(config_path + ": cannot open");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) fail(config_path + ": invalid JSON");
  config_out = config_from_hf_json(j, config_path);
  auto store = std::make_shared<TensorStore>();
  load_safetensors_folder(folder, *store);
  config_out.tie_word_embeddings = config_out.tie_word_embeddings || !store->contains("lm_head.weight");
  std::vector<SourceTensor> out;
  // Every tensor the name table knows, in table order per layer.
  auto take = [&](TensorRole role, int layer, const char* suffix) {
    const std::string name = tensor_base_name(NameScheme::HF, role, layer) + suffix;
    const StoredTensor* t = store->find(name);
    if (!t) return;
    if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
      fail(t->file + ": tensor '" + name + "' is " + std::string(dtype_name(t->dtype)) + "; only float folders convert");
    out.push_back({role, layer, suffix, t->shape, [store, t](float* dst) {
                     quant::dequantize_row(t->dtype, t->data, dst, t->numel());
                   }});
  };
  take(TensorRole::TOKEN_EMBD, 0, ".weight");
  for (int il = 0; il < config_out.num_hidden_layers; ++il) {
    for (TensorRole role : {TensorRole::ATTN_NORM, TensorRole::ATTN_Q, TensorRole::ATTN_K, TensorRole::ATTN_V,
                            TensorRole::ATTN_OUT, TensorRole::ATTN_Q_NORM, TensorRole::ATTN_K_NORM, TensorRole::FFN_NORM,
                            TensorRole::FFN_GATE, TensorRole::FFN_UP, TensorRole::FFN_DOWN}) {
      take(role, il, ".weight");
      if (role == TensorRole::ATTN_Q || role == TensorRole::ATTN_K || role == TensorRole::ATTN_V) take(role, il, ".bias");
    }
  }
  take(TensorRole::OUTPUT_NORM, 0, ".weight");
  if (!config_out.tie_word_embeddings) take(TensorRole::OUTPUT, 0, ".weight");
  return out;
}

}  // namespace hearth
