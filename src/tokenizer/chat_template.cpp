// ChatTemplate: request validation and normalisation, the render context transformers
// builds, and reading the template out of tokenizer_config.json (see chat_template.h).
#include "tokenizer/chat_template.h"

#include "core/error.h"

namespace hearth {

const char* const ChatTemplate::kChatml =
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : source_(std::move(source)),
      bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      template_(source_, "template") {}

namespace {

std::string flatten_parts(const nlohmann::ordered_json& parts, size_t i) {
  std::string text;
  bool first = true;
  for (size_t j = 0; j < parts.size(); ++j) {
    const auto& part = parts[j];
    std::string where = "request: messages[" + std::to_string(i) + "].content[" + std::to_string(j) + "]";
    if (!part.is_object()) fail(where + ": a content part must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text")
      fail(where + ": only text content parts are supported");
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) fail(where + ": a text part needs a string 'text'");
    if (!first) text += "\n";
    text += t->get<std::string>();
    first = false;
  }
  return text;
}

}  // namespace

nlohmann::ordered_json normalize_chat_messages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array() || messages.empty()) fail("request: 'messages' must be a non-empty array");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    std::string where = "request: messages[" + std::to_string(i) + "]";
    if (!m.is_object()) fail(where + ": a message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) fail(where + ": missing string 'role'");
    nlohmann::ordered_json copy = m;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      copy["content"] = "";
    } else if (content->is_array()) {
      copy["content"] = flatten_parts(*content, i);
    } else if (!content->is_string()) {
      fail(where + ": 'content' must be a string, a list of parts or null");
    }
    out.push_back(std::move(copy));
  }
  return out;
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& request, bool add_generation_prompt) const {
  if (!request.is_object()) fail("request: the body must be a JSON object");
  auto messages = request.find("messages");
  if (messages == request.end()) fail("request: missing 'messages'");
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  vars["messages"] = normalize_chat_messages(*messages);
  auto tools = request.find("tools");
  if (tools != request.end() && !tools->is_null() && !tools->is_array()) fail("request: 'tools' must be an array");
  vars["tools"] = tools == request.end() ? nlohmann::ordered_json() : *tools;
  vars["documents"] = nullptr;
  vars["add_generation_prompt"] = add_generation_prompt;
  if (!bos_token_.empty()) vars["bos_token"] = bos_token_;
  if (!eos_token_.empty()) vars["eos_token"] = eos_token_;
  auto kwargs = request.find("chat_template_kwargs");
  if (kwargs != request.end() && !kwargs->is_null()) {
    if (!kwargs->is_object()) fail("request: 'chat_template_kwargs' must be an object");
    for (auto it = kwargs->begin(); it != kwargs->end(); ++it) {
      const std::string& key = it.key();
      if (key == "messages" || key == "tools" || key == "documents" || key == "add_generation_prompt")
        fail("request: chat_template_kwargs may not set '" + key + "'");
      vars[key] = it.value();
    }
  }
  return template_.render(vars, options_);
}

std::optional<std::string> chat_template_from_tokenizer_config(const nlohmann::ordered_json& config) {
  if (!config.is_object()) return std::nullopt;
  auto t = config.find("chat_template");
  if (t == config.end() || t->is_null()) return std::nullopt;
  if (t->is_string()) return t->get<std::string>();
  if (t->is_array()) {
    for (const auto& entry : *t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
  }
  return std::nullopt;
}

std::string special_token_from_config(const nlohmann::ordered_json& entry) {
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string())
    return entry["content"].get<std::string>();
  return "";
}

}  // namespace hearth
