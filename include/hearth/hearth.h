// hearth's C++ library API: load a model, hold conversations with it, and generate text
// with a per-token callback, the sampling options of the CLI and the server
// (hearth::SamplingParams) and the measured statistics of `hearth run --verbose`
// (hearth::GenerationStats). Link the CMake target hearth_api.
//
//   auto model = hearth::LocalModel::load("qwen3-8b-q4_k_m.gguf");
//   hearth::Conversation chat(model, "You are terse.");
//   hearth::SamplingParams p = model->default_params();
//   p.max_tokens = 200;
//   hearth::Reply r = chat.send("Why is the sky blue?", p, [](int32_t, std::string_view text) {
//     std::cout << text << std::flush;
//     return true;  // false stops the answer
//   });
//   std::cout << "\n" << r.stats.decode_tokens_per_s() << " tok/s\n";
//
// Errors a caller can cause (a bad path, a prompt longer than the context, out-of-range
// sampling values) throw hearth::Error (core/error.h) with a one-line message.
// Thread safety: one LocalModel runs one generation at a time (calls from several threads
// are serialised); conversations sharing a model take turns on its KV cache, and each
// turn reuses whatever prefix of the cache still matches its prompt.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "engine/generation_stats.h"
#include "engine/sampler.h"
#include "engine/sampling_params.h"

namespace hearth {

struct LoadOptions {
  int threads = 0;      // CPU threads; 0 = all
  int64_t context = 0;  // KV cache size in tokens; 0 = the trained context capped by free memory
  int32_t batch = 0;    // prompt tokens per forward pass; 0 = the device's (2048 on a GPU, 512 on the CPU)
  std::string device = "auto";  // "cuda", "cpu" or "auto" (cuda when a GPU is present)
  std::string kv_cache_type;    // "f16", "q8_0" (8-bit: ~1.9x the tokens) or "f32"; "" = the device's default
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct Reply {
  std::string text;              // the answer (thinking included, stop string excluded)
  std::vector<int32_t> tokens;   // generated ids, the stop token included
  std::string finish_reason;     // "stop" | "length" | "cancelled"
  std::vector<SampleLogprobs> logprobs;  // per token, when params.logprobs
  GenerationStats stats;         // times, token counts and memory of this call
};

// Called after each generated token with the text that became final with it (may be
// empty while a multi-byte character or a possible stop string is held back). Return
// false to stop the generation (finish_reason "cancelled").
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

// Optional controls of one generation.
struct GenerateControl {
  TokenCallback on_token;
  // Every piece of the answer's text as it becomes final, including what is held back to
  // the very end (a possible stop string that never completed): for printing a stream.
  std::function<void(std::string_view text)> on_text;
  const std::atomic<bool>* cancel = nullptr;  // set it (e.g. from a SIGINT handler) to stop
};

class LocalModel {
 public:
  // Loads a .gguf file (first shard of a split one) or a model folder and allocates its KV
  // cache. Throws Error for a missing or broken model and an impossible context.
  static std::shared_ptr<LocalModel> load(const std::string& path, const LoadOptions& options = {});
  ~LocalModel();
  LocalModel(const LocalModel&) = delete;
  LocalModel& operator=(const LocalModel&) = delete;

  const std::string& path() const;
  int64_t context_length() const;   // tokens the KV cache holds
  int64_t trained_context() const;  // the model's max_position_embeddings
  int32_t vocab_size() const;
  bool has_tokenizer() const;
  // The model's generation config over OpenAI defaults: start from these.
  const SamplingParams& default_params() const;
  double load_seconds() const;
  MemoryStats memory() const;

  // Text <-> token ids (special tokens in text are parsed). Need a tokenizer.
  std::vector<int32_t> tokenize(std::string_view text) const;
  std::string detokenize(const std::vector<int32_t>& ids) const;
  // The chat template applied to messages; template_kwargs_json is a JSON object of extra
  // template variables ("{\"enable_thinking\": false}") or "".
  std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                          const std::string& template_kwargs_json = "") const;

  // Continues raw text (no chat template; BOS first when the tokenizer wants it).
  Reply complete(std::string_view text, const SamplingParams& params, const GenerateControl& control = {});
  // Continues a prompt given as token ids (works without a tokenizer; text stays empty).
  Reply generate(const std::vector<int32_t>& prompt, const SamplingParams& params, const GenerateControl& control = {});

 private:
  struct Impl;
  explicit LocalModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Conversation;
};

// A multi-turn chat: a system prompt, the messages so far, and template options.
class Conversation {
 public:
  explicit Conversation(std::shared_ptr<LocalModel> model, std::string system_prompt = "");

  const std::string& system_prompt() const { return system_; }
  void set_system_prompt(std::string system_prompt) { system_ = std::move(system_prompt); }
  // Qwen3-style thinking switch (chat_template_kwargs enable_thinking); on by default.
  void set_thinking(bool enabled) { thinking_ = enabled; }
  bool thinking() const { return thinking_; }
  // Extra chat-template variables as a JSON object, merged over enable_thinking. "" clears.
  void set_template_kwargs(std::string json_object);

  // Messages after the system prompt, oldest first.
  const std::vector<ChatMessage>& messages() const { return messages_; }
  void add(std::string role, std::string content);
  // Forgets the messages, keeps the system prompt.
  void reset() { messages_.clear(); }

  // Adds `user_text` as a user message, answers it and adds the answer as an assistant
  // message (a cancelled answer is kept as far as it got). If the answer cannot start (the
  // conversation no longer fits the context), the user message is taken back and Error
  // "context length exceeded: ..." is thrown.
  Reply send(const std::string& user_text, const SamplingParams& params, const GenerateControl& control = {});
  // Answers the messages as they are, without adding anything to the conversation.
  Reply answer(const SamplingParams& params, const GenerateControl& control = {});
  // The prompt tokens answer() would run.
  std::vector<int32_t> prompt_tokens() const;

  // {"model": path, "messages": [{"role", "content"}...]} as pretty JSON, the system prompt
  // first when there is one (the chat's /save; a line of `hearth batch` input takes it).
  std::string to_json() const;

 private:
  std::shared_ptr<LocalModel> model_;
  std::string system_;
  std::vector<ChatMessage> messages_;
  bool thinking_ = true;
  std::string kwargs_json_;
};

}  // namespace hearth
