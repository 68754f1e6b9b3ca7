// Runtime: everything needed to talk to a model, opened from one path: the backend, the
// model, its tokenizer, its chat template and the sampling defaults of its generation
// config. Direct mode and the server both start here.
//
// Context sizing: a KV cache holds `n_ctx` tokens. default_context() is the model's
// trained context, capped (with a log line) so the cache fits in the memory it will live
// in: the GPU's free memory on CUDA, else what the kernel reports available
// (MemAvailable) next to the weights; resolve_context() checks a requested size.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/generation_stats.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hearth {

struct RuntimeOptions {
  int threads = 0;  // CPU threads, 0 = all
  // "cuda", "cpu" or "auto": the GPU when cuda_available(), else the CPU (with a note on
  // stderr in builds that have the CUDA backend).
  std::string device = "auto";
  // --kv-cache-type: "f16", "q8_0" or "f32"; "" = the backend's own (f16 on CUDA, f32 on
  // the CPU). A backend that cannot keep its cache in that type refuses it at open().
  std::string kv_cache_type;
};

struct Runtime {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;  // the model's, or ChatML when it has none
  SamplingParams defaults;  // generation_config.json (a GGUF: general.sampling.*) over OpenAI defaults
  SamplerVocab vocab;
  std::string path;   // as given to open()
  double load_s = 0;  // wall time of open()

  // Throws Error when the model has no tokenizer (text needs one; token ids don't).
  const Tokenizer& tok() const;
  static Runtime open(const std::string& path, const RuntimeOptions& options = {});

  // Renders OpenAI-style messages ([{"role", "content"}...]) with the chat template and
  // `template_kwargs` (e.g. {"enable_thinking": false}) as extra template variables.
  std::string render_chat(const nlohmann::ordered_json& messages,
                          const nlohmann::ordered_json& template_kwargs = nlohmann::ordered_json::object(),
                          bool add_generation_prompt = true) const;
  // render_chat, tokenized with special tokens parsed; BOS first when the tokenizer wants it.
  std::vector<int32_t> chat_prompt(const nlohmann::ordered_json& messages,
                                   const nlohmann::ordered_json& template_kwargs = nlohmann::ordered_json::object(),
                                   bool add_generation_prompt = true) const;
  // Plain text without a template (BOS first when the tokenizer wants it).
  std::vector<int32_t> text_prompt(const std::string& text) const;

  // Tokens per forward pass when the user names none: 2048 on a GPU, where every step
  // decodes each weight into f16 tiles once, so longer steps amortise it (H100, 8B Q4_K_M,
  // a 4,096-token prompt: 19,745 tok/s in 512-token steps, 27,973 in 2048-token steps, with
  // 513 MiB of scratch); 512 on the CPU, whose speed does not depend on it.
  int32_t default_batch() const { return backend->device() == Device::CUDA ? 2048 : 512; }
  // A -b/--batch value: itself when positive, else default_batch().
  int32_t resolve_batch(int64_t requested) const {
    return requested > 0 ? static_cast<int32_t>(requested) : default_batch();
  }

  // Bytes of KV cache per token of context.
  int64_t kv_bytes_per_token() const;
  // The trained context capped by available memory, a multiple of 16, at least 16.
  int32_t default_context() const;
  // Bytes the KV cache may take (the device's free memory, or the host's less the
  // weights), -1 when unknown.
  int64_t kv_budget_bytes() const;
  // requested > 0: checked against the trained context and available memory (Error naming
  // the flag value and the limit); 0: default_context().
  int32_t resolve_context(int64_t requested) const;

  // Weights, KV cache and scratch as allocated now, and the process's RSS and peak RSS.
  MemoryStats memory() const;
  // Bytes read from memory to generate one token at context depth `n_past`: every weight
  // matrix once (the embedding table only when it doubles as the output matrix), plus the
  // keys and values of n_past positions.
  int64_t bytes_per_token(int64_t n_past) const;
};

}  // namespace hearth
