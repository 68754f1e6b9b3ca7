// Chat templates: turn an OpenAI chat-completions request body into the exact prompt
// text Hugging Face's `tokenizer.apply_chat_template(..., tokenize=False)` produces for
// the same conversation with the model's own Jinja template.
//
// What reaches the template is what transformers passes: `messages`, `tools` (None
// when absent), `documents` (None), `add_generation_prompt`, the special tokens
// `bos_token` / `eos_token` (left undefined when the model has none, as transformers
// leaves tokens that are None out), and every key of `chat_template_kwargs` (e.g.
// {"enable_thinking": false}). Before that, messages are normalised the way OpenAI-style
// servers do it (vLLM, llama.cpp): a null or missing `content` becomes "", and a list
// of content parts becomes the "\n"-joined text of its {"type": "text"} parts. Every
// other field (tool_calls with string or object arguments, reasoning_content, ...) is
// passed through untouched.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/template.h"

namespace hearth {

class ChatTemplate {
 public:
  // Parses the template; a syntax error throws hearth::Error "template:LINE:COL: ...".
  // An empty bos_token / eos_token means the model has none.
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token);

  // The template used when a model ships none: plain ChatML.
  static const char* const kChatml;

  // The prompt for `request` (an OpenAI chat-completions body). Bad requests and
  // template errors (including raise_exception) throw hearth::Error.
  std::string apply(const nlohmann::ordered_json& request, bool add_generation_prompt = true) const;

  // strftime_now() reads this time instead of the clock (reproducible tests).
  void set_fixed_time(const std::tm& t) { options_.now = t; }
  void set_limits(const jinja::Limits& limits) { options_.limits = limits; }
  const std::string& source() const { return source_; }

 private:
  std::string source_, bos_token_, eos_token_;
  jinja::Template template_;
  jinja::RenderOptions options_;
};

// The messages of a request as they are handed to the template (see above).
nlohmann::ordered_json normalize_chat_messages(const nlohmann::ordered_json& messages);

// The chat template of a Hugging Face tokenizer_config.json: its "chat_template" string,
// or, when it holds a list of {"name", "template"}, the one named "default".
std::optional<std::string> chat_template_from_tokenizer_config(const nlohmann::ordered_json& config);

// The text of a special token entry of tokenizer_config.json: a string, an AddedToken
// object ({"content": ...}) or null (-> "").
std::string special_token_from_config(const nlohmann::ordered_json& entry);

}  // namespace hearth
