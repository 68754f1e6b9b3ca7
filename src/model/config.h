// ModelConfig: a model's hyperparameters, named as in Hugging Face config.json so they
// can be diffed against the reference. Filled from config.json (HF and MLX folders) or
// from GGUF metadata ({arch}.* keys), whichever the model came as.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hearth {

class GgufFile;

struct RopeScaling {
  std::string rope_type = "default";  // default | linear | yarn | llama3
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0;        // yarn
  double beta_slow = 1.0;         // yarn
  std::optional<double> attention_factor;  // yarn; default 0.1 * ln(factor) + 1
};

struct ModelConfig {
  std::string architecture;  // hearth's name: "qwen3", "qwen2" or "llama"
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // may differ from hidden_size / num_attention_heads (Qwen3)
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2)
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_id;

  // Checks ranges and consistency; throws Error naming `origin` and the field.
  void validate(const std::string& origin) const;
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// From a parsed config.json (HF or MLX folder). `origin` names the file for errors.
ModelConfig config_from_hf_json(const nlohmann::json& config, const std::string& origin);
// From GGUF metadata.
ModelConfig config_from_gguf(const GgufFile& file);

}  // namespace hearth
