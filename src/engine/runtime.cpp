// Runtime::open and the helpers around it: chat prompts, context sizing against the
// memory the kernel reports available, and the memory figures of the stats.
#include "engine/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "io/gguf.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

std::optional<nlohmann::ordered_json> read_json(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path);
  auto j = nlohmann::ordered_json::parse(in, nullptr, false);
  if (j.is_discarded()) fail(path.string() + ": invalid JSON");
  return j;
}

// The backend --device asks for.
std::unique_ptr<Backend> make_backend(const RuntimeOptions& options) {
  const std::string& d = options.device;
  HEARTH_CHECK(d == "auto" || d == "cuda" || d == "cpu", "--device '" + d + "': expected cuda, cpu or auto");
  if (d == "cpu") return make_cpu_backend(options.threads);
  if (cuda_available()) return make_cuda_backend(0);
  HEARTH_CHECK(d != "cuda", "--device cuda: no CUDA device is available (no GPU or driver, or a build without CUDA)");
#ifdef HEARTH_HAVE_CUDA
  // Shown with --verbose: on the CPU-only machines most users run, a note on every
  // command would be noise (and stderr carries one-line errors). --device cuda fails above.
  log_info("no CUDA device found, running on the CPU");
#endif
  return make_cpu_backend(options.threads);
}

// llama.cpp's converter keeps generation_config.json's sampling values in a GGUF as
// general.sampling.* (Qwen3: temp 0.6, top_k 20, top_p 0.95), the defaults an HF folder's
// file gives; without them every request that names no top_k would sample from the whole
// vocabulary (and, on a GPU, read back whole logits rows). A value of the wrong type or
// out of range leaves the file's values out with a warning; the model still loads.
void apply_gguf_sampling(const GgufFile& gguf, SamplingParams& defaults, int32_t n_vocab) {
  static constexpr std::pair<const char*, const char*> kKeys[] = {
      {"general.sampling.temp", "temperature"}, {"general.sampling.top_k", "top_k"},
      {"general.sampling.top_p", "top_p"},      {"general.sampling.min_p", "min_p"},
      {"general.sampling.penalty_repeat", "repetition_penalty"}};
  try {
    nlohmann::json config = nlohmann::json::object();
    for (const auto& [key, name] : kKeys) {
      if (!gguf.find(key)) continue;
      if (std::string_view(name) == "top_k") config[name] = gguf.get_int(key);
      else config[name] = gguf.get_float(key);
    }
    SamplingParams p = defaults;
    apply_generation_config(config, p);
    if (const char* key = "general.sampling.penalty_last_n"; gguf.find(key))
      p.penalty_last_n = static_cast<int32_t>(std::clamp<int64_t>(gguf.get_int(key), -2, int64_t{1} << 30));
    p.validate(n_vocab);
    defaults = p;
  } catch (const Error& e) {
    log_warn(std::string("ignoring the model's sampling defaults (general.sampling.*): ") + e.what());
  }
}

constexpr int32_t kBlock = 16;          // context sizes are whole KV blocks
constexpr int64_t kMargin = 512ll << 20;  // memory left to scratch, the process and the OS

}  // namespace

const Tokenizer& Runtime::tok() const {
  HEARTH_CHECK(tokenizer, model->info().path + ": the model has no tokenizer, so it cannot take text (use --prompt-tokens)");
  return *tokenizer;
}

Runtime Runtime::open(const std::string& path, const RuntimeOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  Runtime rt;
  rt.path = path;
  rt.backend = make_backend(options);
  if (!options.kv_cache_type.empty()) rt.backend->set_kv_dtype(parse_kv_cache_type(options.kv_cache_type));
  rt.model = Model::load(path, *rt.backend);
  std::string template_source;
  std::vector<int32_t> config_eos;
  if (const GgufFile* gguf = rt.model->gguf()) {
    if (gguf->find("tokenizer.ggml.tokens")) rt.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*gguf));
    template_source = gguf->get_string_or("tokenizer.chat_template", "");
    apply_gguf_sampling(*gguf, rt.defaults, static_cast<int32_t>(rt.model->config().vocab_size));
  } else {
    const fs::path dir = rt.model->folder();
    if (fs::exists(dir / "tokenizer.json")) {
      const fs::path cfg = dir / "tokenizer_config.json";
      rt.tokenizer = std::make_unique<Tokenizer>(
          Tokenizer::from_hf_json((dir / "tokenizer.json").string(), fs::exists(cfg) ? cfg.string() : ""));
    }
    if (auto cfg = read_json(dir / "tokenizer_config.json"))
      template_source = chat_template_from_tokenizer_config(*cfg).value_or("");
    if (fs::exists(dir / "chat_template.jinja")) {
      std::ifstream in(dir / "chat_template.jinja");
      template_source.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (auto gen = read_json(dir / "generation_config.json")) {
      apply_generation_config(*gen, rt.defaults);
      config_eos = generation_config_eos(*gen);
    }
  }
  const auto& c = rt.model->config();
  rt.vocab.n_vocab = static_cast<int32_t>(c.vocab_size);
  if (rt.tokenizer) {
    rt.vocab.n_tokens = std::min<int32_t>(rt.tokenizer->n_vocab(), static_cast<int32_t>(c.vocab_size));
    for (int32_t id = 0; id < rt.vocab.n_tokens; ++id)
      if (rt.tokenizer->is_eog(id)) rt.vocab.eog.push_back(id);
  }
  config_eos.insert(config_eos.end(), c.eos_token_id.begin(), c.eos_token_id.end());
  for (int32_t id : config_eos)
    if (std::find(rt.vocab.eog.begin(), rt.vocab.eog.end(), id) == rt.vocab.eog.end() && id >= 0 && id < c.vocab_size)
      rt.vocab.eog.push_back(id);
  if (rt.tokenizer) {
    const auto name = [&](int32_t id) { return id >= 0 ? rt.tokenizer->token_text(id) : std::string(); };
    rt.chat_template = std::make_unique<ChatTemplate>(template_source.empty() ? ChatTemplate::kChatml : template_source,
                                                      name(rt.tokenizer->bos_id()), name(rt.tokenizer->eos_id()));
  }
  rt.load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rt;
}

std::string Runtime::render_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& template_kwargs,
                                 bool add_generation_prompt) const {
  tok();
  HEARTH_CHECK(messages.is_array() && !messages.empty(), "messages: expected a non-empty list");
  HEARTH_CHECK(template_kwargs.is_object() || template_kwargs.is_null(), "chat_template_kwargs: expected an object");
  nlohmann::ordered_json request;
  request["messages"] = messages;
  if (template_kwargs.is_object() && !template_kwargs.empty()) request["chat_template_kwargs"] = template_kwargs;
  return chat_template->apply(request, add_generation_prompt);
}

std::vector<int32_t> Runtime::chat_prompt(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& template_kwargs,
                                          bool add_generation_prompt) const {
  const std::string text = render_chat(messages, template_kwargs, add_generation_prompt);
  std::vector<int32_t> ids;
  // A template that writes the BOS token itself (Llama 3) must not get a second one.
  const Tokenizer& t = tok();
  const bool bos_in_text = t.bos_id() != kNoToken && text.rfind(t.token_text(t.bos_id()), 0) == 0;
  if (t.add_bos() && t.bos_id() != kNoToken && !bos_in_text) ids.push_back(t.bos_id());
  const auto body = t.encode(text, /*parse_special=*/true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int32_t> Runtime::text_prompt(const std::string& text) const {
  const Tokenizer& t = tok();
  std::vector<int32_t> ids;
  if (t.add_bos() && t.bos_id() != kNoToken) ids.push_back(t.bos_id());
  const auto body = t.encode(text, /*parse_special=*/true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

int64_t Runtime::kv_bytes_per_token() const { return model->kv_bytes_per_token(model->backend().kv_dtype()); }

// The memory a KV cache may take: the device's free memory where the backend has its own
// (the weights are already there), else the host's MemAvailable less the mapped weights
// (which count as reclaimable cache in it) and a margin. -1: unknown.
int64_t Runtime::kv_budget_bytes() const {
  const int64_t device_free = backend->kv_memory_free();
  if (device_free >= 0) return device_free;
  const int64_t avail = mem_available_bytes();
  if (avail <= 0) return -1;
  return std::max<int64_t>(avail - static_cast<int64_t>(model->info().weight_bytes) - kMargin, 0);
}

int32_t Runtime::default_context() const {
  const int64_t trained = model->config().max_position_embeddings > 0 ? model->config().max_position_embeddings : 4096;
  int64_t ctx = std::min<int64_t>(trained, 1 << 30);
  const int64_t budget = kv_budget_bytes();
  if (budget >= 0) ctx = std::min<int64_t>(ctx, budget / kv_bytes_per_token());
  ctx = std::max<int64_t>(ctx / kBlock * kBlock, std::min<int64_t>(trained, 256));
  if (ctx < trained)
    log_info("context capped at " + std::to_string(ctx) + " tokens (the model's is " + std::to_string(trained) +
             "): its KV cache would need " + human_bytes(static_cast<double>(trained * kv_bytes_per_token())) +
             ", and " + human_bytes(static_cast<double>(std::max<int64_t>(budget, 0))) + " is free for it on " +
             backend->name() + " (--ctx sets it)");
  return static_cast<int32_t>(ctx);
}

int32_t Runtime::resolve_context(int64_t requested) const {
  if (requested == 0) return default_context();
  HEARTH_CHECK(requested > 0, "--ctx " + std::to_string(requested) + ": the context size must be positive");
  const int64_t trained = model->config().max_position_embeddings;
  HEARTH_CHECK(trained <= 0 || requested <= trained, "--ctx " + std::to_string(requested) +
                                                         " exceeds the model's trained context of " + std::to_string(trained));
  const int64_t need = requested * kv_bytes_per_token();
  const int64_t budget = kv_budget_bytes();
  HEARTH_CHECK(budget < 0 || need <= budget, "--ctx " + std::to_string(requested) + " needs " +
                                                 human_bytes(static_cast<double>(need)) + " of KV cache but only " +
                                                 human_bytes(static_cast<double>(budget)) + " is free for it on " +
                                                 backend->name());
  return static_cast<int32_t>(requested);
}

MemoryStats Runtime::memory() const {
  const BackendMemory b = backend->memory();
  MemoryStats m;
  // The CPU computes from the mapped file (plus small f32 copies of norms and biases); a
  // GPU from its own copies.
  const auto mapped = static_cast<int64_t>(model->info().weight_bytes);
  m.weights_bytes = backend->device() == Device::CUDA ? b.weights : mapped + b.weights;
  m.kv_cache_bytes = b.kv_cache;
  m.scratch_bytes = b.scratch;
  m.rss_bytes = process_rss_bytes();
  m.peak_rss_bytes = process_peak_rss_bytes();
  return m;
}

int64_t Runtime::bytes_per_token(int64_t n_past) const {
  const auto& c = model->config();
  const auto& info = model->info();
  int64_t weights = static_cast<int64_t>(info.weight_bytes);
  if (!c.tie_word_embeddings) {
    // Only one row of a separate embedding table is read per token.
    const StoredTensor* embd = model->gguf() ? model->gguf()->tensors().find("token_embd.weight") : nullptr;
    if (embd) {
      weights -= static_cast<int64_t>(embd->nbytes);
    } else if (info.n_params > 0) {
      const double share = static_cast<double>(c.vocab_size * c.hidden_size) / static_cast<double>(info.n_params);
      weights -= static_cast<int64_t>(share * static_cast<double>(weights));
    }
  }
  return weights + n_past * kv_bytes_per_token();
}

}  // namespace hearth
