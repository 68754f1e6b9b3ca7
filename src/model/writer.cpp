// Model writer: see writer.h. Per-tensor types follow llama.cpp's conventions as facts:
// 1-D tensors (norms, biases) stay f32 in GGUF; a row length that is not a whole number
// of the chosen blocks falls back to q8_0, then f16; the _M mixes give the output head
// q6_K and give attn_v / ffn_down more bits in the first and last eighth of the layers
// and in every third layer between.
#include "model/writer.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/quant.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

std::optional<DType> parse_type(const std::string& t) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"f32", DType::F32},     {"f16", DType::F16},       {"bf16", DType::BF16},    {"q8_0", DType::Q8_0},
      {"q4_0", DType::Q4_0},   {"q4_1", DType::Q4_1},     {"q5_0", DType::Q5_0},    {"q5_1", DType::Q5_1},
      {"q2_k", DType::Q2_K},   {"q3_k", DType::Q3_K},     {"q4_k", DType::Q4_K},    {"q5_k", DType::Q5_K},
      {"q6_k", DType::Q6_K},   {"iq4_nl", DType::IQ4_NL}, {"iq4_xs", DType::IQ4_XS},
  };
  for (const auto& [name, type] : kTypes)
    if (t == name) return type;
  return std::nullopt;
}

bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

// The GGUF type of one tensor under `type` (a single type or an _M mix).
DType gguf_tensor_type(const std::string& type, const SourceTensor& t, int n_layers) {
  if (t.shape.size() == 1) return DType::F32;
  DType want;
  if (type == "q4_k_m" || type == "q5_k_m") {
    const DType base = type == "q4_k_m" ? DType::Q4_K : DType::Q5_K;
    want = base;
    if (t.role == TensorRole::OUTPUT) want = DType::Q6_K;
    if ((t.role == TensorRole::ATTN_V || t.role == TensorRole::FFN_DOWN) && use_more_bits(t.layer, n_layers))
      want = DType::Q6_K;
  } else {
    const auto parsed = parse_type(type);
    if (!parsed) fail("unknown GGUF type '" + type + "'");
    want = *parsed;
  }
  const int64_t cols = t.shape.back();
  for (DType d : {want, DType::Q8_0, DType::F16})
    if (cols % dtype_info(d).block_elems == 0) return d;
  return DType::F16;
}

size_t numel(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::vector<float> produce(const SourceTensor& t) {
  std::vector<float> data(numel(t.shape));
  t.fill(data.data());
  return data;
}

std::vector<uint8_t> encode_rows(DType type, const std::vector<float>& data, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(data.size()) / cols;
  const int64_t row_bytes = dtype_row_bytes(type, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  ThreadPool::global().parallel_for(rows, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) quant::quantize_row(type, data.data() + r * cols, out.data() + r * row_bytes, cols);
  });
  return out;
}

// llama.cpp's llama converter reorders q/k rows inside each head so that RoPE rotates
// adjacent pairs: GGUF row 2i (2i+1) of a head = HF row i (i + hd/2).
std::vector<float> permute_for_gguf_llama(const std::vector<float>& data, int64_t rows, int64_t cols, int64_t n_heads) {
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<float> out(data.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t pair = 0; pair < 2; ++pair) {
        const int64_t src = h * hd + pair * half + i, dst = h * hd + 2 * i + pair;
        std::copy_n(data.begin() + src * cols, cols, out.begin() + dst * cols);
      }
  return out;
}

nlohmann::ordered_json hf_config_json(const ModelConfig& c, const std::string& dtype) {
  static const std::map<std::string, std::string> kClass = {
      {"qwen3", "Qwen3ForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"llama", "LlamaForCausalLM"}};
  nlohmann::ordered_json j;
  j["architectures"] = {kClass.at(c.architecture)};
  j["model_type"] = c.architecture;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = dtype;
  if (c.rope_scaling.rope_type != "default") {
    const auto& rs = c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", rs.rope_type},
                         {"factor", rs.factor},
                         {"original_max_position_embeddings", rs.original_max_position_embeddings}};
    if (rs.rope_type == "llama3") {
      j["rope_scaling"]["low_freq_factor"] = rs.low_freq_factor;
      j["rope_scaling"]["high_freq_factor"] = rs.high_freq_factor;
    }
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (!c.eos_token_id.empty()) j["eos_token_id"] = c.eos_token_id.size() == 1 ? nlohmann::ordered_json(c.eos_token_id[0])
                                                                             : nlohmann::ordered_json(c.eos_token_id);
  return j;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) fail(path.string() + ": cannot write");
}

void copy_tokenizer_files(const std::string& tokenizer_dir, const fs::path& out_dir) {
  if (tokenizer_dir.empty()) return;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"}) {
    const fs::path src = fs::path(tokenizer_dir) / f;
    if (fs::exists(src)) fs::copy_file(src, out_dir / f, fs::copy_options::overwrite_existing);
  }
}

std::vector<uint8_t> float_bytes(DType type, const std::vector<float>& data) {
  return encode_rows(type, data, static_cast<int64_t>(data.size()));
}

// generation_config.json's sampling values as llama.cpp's converter keeps them in a GGUF
// (general.sampling.*, read back by the runtime), where the file exists; copied as they are.
void write_gguf_sampling(GgufWriter& w, const fs::path& generation_config) {
  if (!fs::exists(generation_config)) return;
  std::ifstream in(generation_config);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object()) fail(generation_config.string() + ": not a JSON object");
  if (j.contains("top_k") && j["top_k"].is_number_integer())
    w.add_int32("general.sampling.top_k", j["top_k"].get<int32_t>());
  static constexpr std::pair<const char*, const char*> kFloats[] = {
      {"temperature", "general.sampling.temp"}, {"top_p", "general.sampling.top_p"},
      {"min_p", "general.sampling.min_p"},      {"repetition_penalty", "general.sampling.penalty_repeat"}};
  for (const auto& [name, key] : kFloats)
    if (j.contains(name) && j[name].is_number()) w.add_float32(key, j[name].get<float>());
}

void write_gguf(const ModelConfig& c, const std::vector<SourceTensor>& tensors, const WriteOptions& o,
                const std::string& path) {
  GgufWriter w;
  const std::string a = c.architecture;
  w.add_string("general.architecture", a);
  w.add_string("general.name", o.name);
  w.add_uint32("general.quantization_version", 2);
  w.add_uint32(a + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_uint32(a + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_uint32(a + ".block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.add_uint32(a + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_uint32(a + ".attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.add_uint32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.add_uint32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.add_uint32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.add_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_float32(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  const auto& rs = c.rope_scaling;
  if (rs.rope_type == "yarn" || rs.rope_type == "linear") {
    w.add_string(a + ".rope.scaling.type", rs.rope_type);
    w.add_float32(a + ".rope.scaling.factor", static_cast<float>(rs.factor));
    w.add_uint32(a + ".rope.scaling.original_context_length", static_cast<uint32_t>(rs.original_max_position_embeddings));
  }
  if (!o.tokenizer_dir.empty()) {
    const Tokenizer tok = Tokenizer::from_hf_json((fs::path(o.tokenizer_dir) / "tokenizer.json").string());
    std::string chat_template;
    const fs::path cfg = fs::path(o.tokenizer_dir) / "tokenizer_config.json";
    if (fs::exists(cfg)) {
      std::ifstream in(cfg);
      const auto j = nlohmann::json::parse(in, nullptr, false);
      if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) chat_template = j["chat_template"];
    }
    tok.write_to_gguf(w, chat_template, static_cast<int32_t>(c.vocab_size));
    write_gguf_sampling(w, fs::path(o.tokenizer_dir) / "generation_config.json");
  }
  for (const auto& t : tensors) {
    const std::string name = tensor_base_name(NameScheme::GGUF, t.role, t.layer) + t.suffix;
    std::vector<float> data = produce(t);
    if (a == "llama" && (t.role == TensorRole::ATTN_Q || t.role == TensorRole::ATTN_K)) {
      const int64_t heads = t.role == TensorRole::ATTN_Q ? c.num_attention_heads : c.num_key_value_heads;
      data = permute_for_gguf_llama(data, t.shape[0], t.shape.size() == 2 ? t.shape[1] : 1, heads);
    }
    const DType type = gguf_tensor_type(o.type, t, static_cast<int>(c.num_hidden_layers));
    w.add_tensor(name, type, t.shape, encode_rows(type, data, t.shape.back()));
  }
  if (a == "llama" && rs.rope_type == "llama3") {
    // Llama 3.1 GGUFs carry the per-frequency divisors as a tensor.
    std::vector<float> factors(static_cast<size_t>(c.head_dim / 2));
    ModelConfig plain = c;
    plain.rope_scaling = RopeScaling{};
    for (size_t i = 0; i < factors.size(); ++i) {
      const double base = 1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
      const double lo_wl = static_cast<double>(rs.original_max_position_embeddings) / rs.low_freq_factor;
      const double hi_wl = static_cast<double>(rs.original_max_position_embeddings) / rs.high_freq_factor;
      const double wl = 2 * M_PI / base;
      double f = 1;
      if (wl > lo_wl) {
        f = rs.factor;
      } else if (wl >= hi_wl) {
        const double s = (static_cast<double>(rs.original_max_position_embeddings) / wl - rs.low_freq_factor) /
                         (rs.high_freq_factor - rs.low_freq_factor);
        f = 1.0 / ((1 - s) / rs.factor + s);
      }
      factors[i] = static_cast<float>(f);
    }
    w.add_tensor("rope_freqs.weight", DType::F32, {static_cast<int64_t>(factors.size())}, float_bytes(DType::F32, factors));
  }
  w.write(path);
}

void write_folder(const ModelConfig& c, const std::vector<SourceTensor>& tensors, const WriteOptions& o,
                  const std::string& path, bool mlx) {
  const auto float_type = parse_type(o.type);
  if (!float_type || (*float_type != DType::F32 && *float_type != DType::F16 && *float_type != DType::BF16))
    fail("folder models are written as f32, f16 or bf16 (got '" + o.type + "')");
  fs::create_directories(path);
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : tensors) {
    const std::string base = tensor_base_name(NameScheme::HF, t.role, t.layer);
    const std::vector<float> data = produce(t);
    const bool quantize = mlx && t.shape.size() == 2 && t.shape[1] % o.mlx_group_size == 0;
    if (!quantize) {
      entries.push_back({base + t.suffix, *float_type, t.shape, float_bytes(*float_type, data)});
      continue;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const int64_t words = cols * o.mlx_bits / 32, groups = cols / o.mlx_group_size;
    const int64_t scale_bytes = *float_type == DType::F32 ? 4 : 2;
    std::vector<uint8_t> packed(static_cast<size_t>(rows * words * 4)), scales(static_cast<size_t>(rows * groups * scale_bytes)),
        biases(scales.size());
    ThreadPool::global().parallel_for(rows, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r)
        quant::quantize_row_mlx(data.data() + r * cols, reinterpret_cast<uint32_t*>(packed.data()) + r * words,
                                scales.data() + r * groups * scale_bytes, biases.data() + r * groups * scale_bytes,
                                *float_type, o.mlx_bits, o.mlx_group_size, cols);
    });
    entries.push_back({base + ".weight", DType::U32, {rows, words}, std::move(packed)});
    entries.push_back({base + ".scales", *float_type, {rows, groups}, std::move(scales)});
    entries.push_back({base + ".biases", *float_type, {rows, groups}, std::move(biases)});
  }
  std::map<std::string, std::string> metadata{{"format", mlx ? "mlx" : "pt"}};
  write_safetensors((fs::path(path) / "model.safetensors").string(), entries, metadata);
  auto config = hf_config_json(c, o.type == "f32" ? "float32" : o.type == "f16" ? "float16" : "bfloat16");
  if (mlx) {
    config["quantization"] = {{"group_size", o.mlx_group_size}, {"bits", o.mlx_bits}, {"mode", "affine"}};
    config["quantization_config"] = config["quantization"];
  }
  write_text(fs::path(path) / "config.json", config.dump(2) + "\n");
  copy_tokenizer_files(o.tokenizer_dir, path);
}

}  // namespace

void write_model(const ModelConfig& config, const std::vector<SourceTensor>& tensors, const WriteOptions& options,
                 const std::string& path) {
  config.validate("model to write");
  switch (options.format) {
    case OutputFormat::GGUF: write_gguf(config, tensors, options, path); break;
    case OutputFormat::HF: write_folder(config, tensors, options, path, false); break;
    case OutputFormat::MLX: write_folder(config, tensors, options, path, true); break;
  }
}

}  // namespace hearth
