// Reading hyperparameters from config.json and from GGUF metadata, with the defaults
// each format documents (see shared/reference/formats.md §1.5 and §5).
#include "model/config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"

namespace hearth {
namespace {

std::string arch_from_hf(const nlohmann::json& j, const std::string& origin) {
  std::string model_type = j.value("model_type", "");
  if (model_type.empty() && j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    const std::string a = j["architectures"][0];
    if (a == "Qwen3ForCausalLM") model_type = "qwen3";
    if (a == "Qwen2ForCausalLM") model_type = "qwen2";
    if (a == "LlamaForCausalLM") model_type = "llama";
  }
  if (model_type == "qwen3" || model_type == "qwen2" || model_type == "llama") return model_type;
  fail(origin + ": unsupported architecture '" + (model_type.empty() ? "(none)" : model_type) +
       "' (supported: qwen3, qwen2, llama)");
}

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(origin + ": field '" + key + "' has the wrong type");
  }
}

void read_rope_scaling(const nlohmann::json& rs, RopeScaling& out, const std::string& origin) {
  if (rs.is_null()) return;
  HEARTH_CHECK(rs.is_object(), origin + ": rope_scaling must be an object");
  out.rope_type = get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "default", origin), origin);
  out.factor = get_or<double>(rs, "factor", 1.0, origin);
  out.original_max_position_embeddings = get_or<int64_t>(rs, "original_max_position_embeddings", 0, origin);
  out.low_freq_factor = get_or<double>(rs, "low_freq_factor", 1.0, origin);
  out.high_freq_factor = get_or<double>(rs, "high_freq_factor", 4.0, origin);
  out.beta_fast = get_or<double>(rs, "beta_fast", 32.0, origin);
  out.beta_slow = get_or<double>(rs, "beta_slow", 1.0, origin);
  if (rs.contains("attention_factor") && !rs["attention_factor"].is_null())
    out.attention_factor = get_or<double>(rs, "attention_factor", 1.0, origin);
}

}  // namespace

void ModelConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* name, int64_t max) {
    HEARTH_CHECK(v > 0 && v <= max, origin + ": " + name + " = " + std::to_string(v) + " is out of range");
  };
  positive(hidden_size, "hidden_size", 1 << 20);
  positive(num_hidden_layers, "num_hidden_layers", 4096);
  positive(num_attention_heads, "num_attention_heads", 4096);
  positive(num_key_value_heads, "num_key_value_heads", 4096);
  positive(head_dim, "head_dim", 4096);
  positive(intermediate_size, "intermediate_size", 1 << 22);
  positive(vocab_size, "vocab_size", 1 << 24);
  positive(max_position_embeddings, "max_position_embeddings", int64_t{1} << 32);
  HEARTH_CHECK(num_attention_heads % num_key_value_heads == 0,
               origin + ": num_attention_heads is not a multiple of num_key_value_heads");
  HEARTH_CHECK(head_dim % 2 == 0, origin + ": head_dim must be even");
  HEARTH_CHECK(rms_norm_eps > 0 && rms_norm_eps < 1, origin + ": rms_norm_eps is out of range");
  HEARTH_CHECK(rope_theta > 0, origin + ": rope_theta must be positive");
  const auto& t = rope_scaling.rope_type;
  HEARTH_CHECK(t == "default" || t == "linear" || t == "yarn" || t == "llama3",
               origin + ": unsupported rope_scaling type '" + t + "'");
  HEARTH_CHECK(rope_scaling.factor > 0, origin + ": rope_scaling.factor must be positive");
}

ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& origin) {
  HEARTH_CHECK(j.is_object(), origin + ": config is not a JSON object");
  ModelConfig c;
  c.architecture = arch_from_hf(j, origin);
  c.hidden_size = get_or<int64_t>(j, "hidden_size", 0, origin);
  c.num_hidden_layers = get_or<int64_t>(j, "num_hidden_layers", 0, origin);
  c.num_attention_heads = get_or<int64_t>(j, "num_attention_heads", 0, origin);
  c.num_key_value_heads = get_or<int64_t>(j, "num_key_value_heads", c.num_attention_heads, origin);
  c.head_dim = get_or<int64_t>(j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0,
                               origin);
  c.intermediate_size = get_or<int64_t>(j, "intermediate_size", 0, origin);
  c.vocab_size = get_or<int64_t>(j, "vocab_size", 0, origin);
  c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 4096, origin);
  c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6, origin);
  c.rope_theta = get_or<double>(j, "rope_theta", 10000.0, origin);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, origin);
  c.attention_bias = get_or<bool>(j, "attention_bias", c.architecture == "qwen2", origin);
  // transformers >= 5 writes "rope_parameters" (with rope_theta inside); older files
  // write "rope_scaling" next to a top-level rope_theta.
  if (j.contains("rope_scaling")) read_rope_scaling(j["rope_scaling"], c.rope_scaling, origin);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    read_rope_scaling(j["rope_parameters"], c.rope_scaling, origin);
    c.rope_theta = get_or<double>(j["rope_parameters"], "rope_theta", c.rope_theta, origin);
  }
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_id.push_back(e.get<int32_t>());
    if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) c.eos_token_id.push_back(x.get<int32_t>());
  }
  if (c.rope_scaling.original_max_position_embeddings == 0)
    c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
  c.validate(origin);
  return c;
}

ModelConfig config_from_gguf(const GgufFile& f) {
  ModelConfig c;
  const std::string arch = f.get_string("general.architecture");
  if (arch != "qwen3" && arch != "qwen2" && arch != "llama")
    fail(f.path() + ": unsupported architecture '" + arch + "' (supported: qwen3, qwen2, llama)");
  c.architecture = arch;
  const std::string p = arch + ".";
  c.hidden_size = f.get_int(p + "embedding_length");
  c.num_hidden_layers = f.get_int(p + "block_count");
  c.num_attention_heads = f.get_int(p + "attention.head_count");
  c.num_key_value_heads = f.get_int_or(p + "attention.head_count_kv", c.num_attention_heads);
  c.head_dim = f.get_int_or(p + "attention.key_length",
                            c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  HEARTH_CHECK(f.get_int_or(p + "attention.value_length", c.head_dim) == c.head_dim,
               f.path() + ": value_length differs from key_length, which hearth does not support");
  c.intermediate_size = f.get_int(p + "feed_forward_length");
  c.max_position_embeddings = f.get_int(p + "context_length");
  c.rms_norm_eps = f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = f.get_float_or(p + "rope.freq_base", 10000.0);
  const int64_t n_rot = f.get_int_or(p + "rope.dimension_count", c.head_dim);
  HEARTH_CHECK(n_rot == c.head_dim, f.path() + ": partial rotary embeddings (rope.dimension_count " +
                                        std::to_string(n_rot) + " < head_dim) are not supported");
  std::string scaling = f.get_string_or(p + "rope.scaling.type", "none");
  const double factor = f.get_float_or(p + "rope.scaling.factor", 1.0);
  if (scaling == "none" || (scaling == "linear" && factor == 1.0)) scaling = "default";
  c.rope_scaling.rope_type = scaling;
  c.rope_scaling.factor = factor;
  c.rope_scaling.original_max_position_embeddings =
      f.get_int_or(p + "rope.scaling.original_context_length", c.max_position_embeddings);
  c.rope_scaling.beta_fast = f.get_float_or(p + "rope.scaling.yarn_beta_fast", 32.0);
  c.rope_scaling.beta_slow = f.get_float_or(p + "rope.scaling.yarn_beta_slow", 1.0);
  if (f.find(p + "rope.scaling.attn_factor")) c.rope_scaling.attention_factor = f.get_float(p + "rope.scaling.attn_factor");
  // Tensors decide tying and biases; the loader fills those in.
  if (const auto* tokens = f.find("tokenizer.ggml.tokens")) c.vocab_size = static_cast<int64_t>(tokens->array_size());
  c.vocab_size = f.get_int_or(p + "vocab_size", c.vocab_size);
  if (f.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = static_cast<int32_t>(f.get_int("tokenizer.ggml.bos_token_id"));
  if (f.find("tokenizer.ggml.eos_token_id"))
    c.eos_token_id.push_back(static_cast<int32_t>(f.get_int("tokenizer.ggml.eos_token_id")));
  return c;
}

}  // namespace hearth
