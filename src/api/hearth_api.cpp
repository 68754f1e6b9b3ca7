// The public API (include/hearth/hearth.h) over the engine: a LocalModel is a Runtime plus
// one Sequence (the KV cache) behind a mutex; a Conversation renders its messages with the
// model's chat template on every turn and lets generate() reuse the matching prefix.
#include "hearth/hearth.h"

#include <mutex>

#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/runtime.h"
#include "engine/sequence.h"

namespace hearth {

struct LocalModel::Impl {
  Runtime rt;
  LoadOptions options;
  std::unique_ptr<Sequence> seq;
  SamplingParams defaults;
  std::mutex mu;

  Reply run(const std::vector<int32_t>& prompt, const SamplingParams& params, const GenerateControl& control) {
    std::lock_guard<std::mutex> lock(mu);
    GenerateOptions go;
    go.n_batch = options.batch;
    go.on_token = control.on_token;
    go.on_text = control.on_text;
    go.cancel = control.cancel;
    GenerationResult g = hearth::generate(*seq, rt.tokenizer.get(), prompt, params, rt.vocab, go);
    Reply r;
    r.text = std::move(g.text);
    r.tokens = std::move(g.tokens);
    r.finish_reason = std::move(g.finish_reason);
    r.logprobs = std::move(g.logprobs);
    r.stats = g.stats;
    r.stats.load_s = rt.load_s;
    r.stats.memory = rt.memory();
    return r;
  }
};

LocalModel::LocalModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LocalModel::~LocalModel() = default;

std::shared_ptr<LocalModel> LocalModel::load(const std::string& path, const LoadOptions& options) {
  HEARTH_CHECK(options.threads >= 0, "threads: " + std::to_string(options.threads) + " must not be negative");
  HEARTH_CHECK(options.batch >= 0, "batch: " + std::to_string(options.batch) + " must not be negative");
  auto impl = std::make_unique<Impl>();
  RuntimeOptions ro;
  ro.threads = options.threads;
  ro.device = options.device;
  ro.kv_cache_type = options.kv_cache_type;
  impl->rt = Runtime::open(path, ro);
  impl->options = options;
  impl->options.batch = impl->rt.resolve_batch(options.batch);
  const int32_t n_ctx = impl->rt.resolve_context(options.context);
  impl->seq = std::make_unique<Sequence>(*impl->rt.model, n_ctx);
  impl->options.context = n_ctx;
  return std::shared_ptr<LocalModel>(new LocalModel(std::move(impl)));
}

const std::string& LocalModel::path() const { return impl_->rt.path; }
int64_t LocalModel::context_length() const { return impl_->seq->n_ctx(); }
int64_t LocalModel::trained_context() const { return impl_->rt.model->config().max_position_embeddings; }
int32_t LocalModel::vocab_size() const { return impl_->rt.vocab.n_vocab; }
bool LocalModel::has_tokenizer() const { return impl_->rt.tokenizer != nullptr; }
const SamplingParams& LocalModel::default_params() const { return impl_->rt.defaults; }
double LocalModel::load_seconds() const { return impl_->rt.load_s; }
MemoryStats LocalModel::memory() const { return impl_->rt.memory(); }

std::vector<int32_t> LocalModel::tokenize(std::string_view text) const { return impl_->rt.tok().encode(text, true); }

std::string LocalModel::detokenize(const std::vector<int32_t>& ids) const { return impl_->rt.tok().decode(ids); }

namespace {

nlohmann::ordered_json messages_json(const std::vector<ChatMessage>& messages) {
  auto j = nlohmann::ordered_json::array();
  for (const auto& m : messages) j.push_back({{"role", m.role}, {"content", m.content}});
  return j;
}

nlohmann::ordered_json parse_kwargs(const std::string& text) {
  if (text.empty()) return nlohmann::ordered_json::object();
  auto j = nlohmann::ordered_json::parse(text, nullptr, false);
  HEARTH_CHECK(!j.is_discarded() && j.is_object(), "chat_template_kwargs: expected a JSON object");
  return j;
}

}  // namespace

std::string LocalModel::render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                    const std::string& template_kwargs_json) const {
  return impl_->rt.render_chat(messages_json(messages), parse_kwargs(template_kwargs_json), add_generation_prompt);
}

Reply LocalModel::complete(std::string_view text, const SamplingParams& params, const GenerateControl& control) {
  return impl_->run(impl_->rt.text_prompt(std::string(text)), params, control);
}

Reply LocalModel::generate(const std::vector<int32_t>& prompt, const SamplingParams& params,
                           const GenerateControl& control) {
  return impl_->run(prompt, params, control);
}

Conversation::Conversation(std::shared_ptr<LocalModel> model, std::string system_prompt)
    : model_(std::move(model)), system_(std::move(system_prompt)) {
  HEARTH_CHECK(model_ != nullptr, "a conversation needs a model");
}

void Conversation::set_template_kwargs(std::string json_object) {
  parse_kwargs(json_object);  // reject it now rather than at the next turn
  kwargs_json_ = std::move(json_object);
}

void Conversation::add(std::string role, std::string content) {
  HEARTH_CHECK(role == "system" || role == "user" || role == "assistant" || role == "tool",
               "message role '" + role + "' is not one of system, user, assistant, tool");
  messages_.push_back({std::move(role), std::move(content)});
}

std::vector<int32_t> Conversation::prompt_tokens() const {
  HEARTH_CHECK(!messages_.empty(), "the conversation has no messages to answer");
  std::vector<ChatMessage> all;
  if (!system_.empty()) all.push_back({"system", system_});
  all.insert(all.end(), messages_.begin(), messages_.end());
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
  kwargs["enable_thinking"] = thinking_;
  kwargs.update(parse_kwargs(kwargs_json_));
  return model_->impl_->rt.chat_prompt(messages_json(all), kwargs, /*add_generation_prompt=*/true);
}

Reply Conversation::answer(const SamplingParams& params, const GenerateControl& control) {
  return model_->impl_->run(prompt_tokens(), params, control);
}

Reply Conversation::send(const std::string& user_text, const SamplingParams& params, const GenerateControl& control) {
  add("user", user_text);
  Reply r;
  try {
    r = answer(params, control);
  } catch (...) {
    messages_.pop_back();
    throw;
  }
  add("assistant", r.text);
  return r;
}

std::string Conversation::to_json() const {
  nlohmann::ordered_json j;
  j["model"] = model_->path();
  auto msgs = nlohmann::ordered_json::array();
  if (!system_.empty()) msgs.push_back({{"role", "system"}, {"content", system_}});
  for (const auto& m : messages_) msgs.push_back({{"role", m.role}, {"content", m.content}});
  j["messages"] = msgs;
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace hearth
