// hearth info MODEL [--json]: architecture, parameter count, tensor types, context
// length, tokenizer kind and the memory a model will need at its full context.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/commands.h"
#include "model/model.h"

namespace hearth::cli {
namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  int64_t ctx = 0;
  std::string kv_cache_type = "f32";  // of the estimate: what the cache will hold
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

const char* format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::GGUF: return "gguf";
    case ModelFormat::SAFETENSORS: return "safetensors";
    case ModelFormat::MLX: return "mlx";
  }
  return "?";
}

int run_info(const InfoOptions& o) {
  auto backend = make_cpu_backend(1);
  auto model = Model::load(o.model, *backend);
  const auto& c = model->config();
  const auto& info = model->info();
  const int64_t ctx = o.ctx > 0 ? o.ctx : c.max_position_embeddings;
  const DType kv_type = parse_kv_cache_type(o.kv_cache_type);
  const int64_t kv_bytes = model->kv_bytes_per_token(kv_type) * ctx;
  // Scratch for a 512-token prompt batch plus one row of logits.
  const int64_t scratch =
      4 * 512 * (3 * c.hidden_size + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.intermediate_size) + 8 * c.vocab_size;
  const int64_t total = static_cast<int64_t>(info.weight_bytes) + kv_bytes + scratch;
  nlohmann::ordered_json j;
  j["path"] = info.path;
  j["format"] = format_name(info.format);
  j["name"] = info.name;
  j["architecture"] = c.architecture;
  j["parameters"] = info.n_params;
  j["weight_bytes"] = info.weight_bytes;
  j["tensor_types"] = info.tensor_types;
  j["context_length"] = c.max_position_embeddings;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.intermediate_size;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = c.rope_scaling.rope_type;
  j["tokenizer"] = info.tokenizer_kind;
  j["memory"] = {{"context", ctx},
                 {"weights_bytes", info.weight_bytes},
                 {"kv_cache_bytes", kv_bytes},
                 {"kv_cache_type", o.kv_cache_type},
                 {"scratch_bytes", scratch},
                 {"total_bytes", total}};
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model          %s (%s)\n", info.path.c_str(), format_name(info.format));
  std::printf("name           %s\n", info.name.c_str());
  std::printf("architecture   %s\n", c.architecture.c_str());
  std::printf("parameters     %.3f B (%lld)\n", static_cast<double>(info.n_params) / 1e9,
              static_cast<long long>(info.n_params));
  std::printf("shape          hidden %lld, layers %lld, heads %lld/%lld kv, head_dim %lld, ffn %lld, vocab %lld%s\n",
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.num_key_value_heads),
              static_cast<long long>(c.head_dim), static_cast<long long>(c.intermediate_size),
              static_cast<long long>(c.vocab_size), c.tie_word_embeddings ? ", tied output" : "");
  std::string types;
  for (const auto& [t, n] : info.tensor_types) types += (types.empty() ? "" : ", ") + t + " x" + std::to_string(n);
  std::printf("tensor types   %s\n", types.c_str());
  std::printf("context        %lld (rope %s, theta %g)\n", static_cast<long long>(c.max_position_embeddings),
              c.rope_scaling.rope_type.c_str(), c.rope_theta);
  std::printf("tokenizer      %s\n", info.tokenizer_kind.c_str());
  std::printf("memory         %s weights + %s KV cache (%s, %lld tokens) + %s scratch = %s\n",
              human_bytes(static_cast<double>(info.weight_bytes)).c_str(), human_bytes(static_cast<double>(kv_bytes)).c_str(),
              o.kv_cache_type.c_str(), static_cast<long long>(ctx), human_bytes(static_cast<double>(scratch)).c_str(),
              human_bytes(static_cast<double>(total)).c_str());
  return 0;
}

}  // namespace

Command add_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  app.add_option("model", o->model, "a .gguf file (first shard of a split model) or a model folder")->required();
  app.add_flag("--json", o->json, "print one JSON object");
  app.add_option("--ctx", o->ctx, "context length for the memory estimate (default: the model's)");
  app.add_option("--kv-cache-type", o->kv_cache_type, "KV cache type of the estimate: f32 (default, the CPU's), f16 or q8_0");
  return [o] { return run_info(*o); };
}

}  // namespace hearth::cli
