// The small routes: GET /v1/models, /health, /metrics; POST /tokenize, /detokenize; and
// the helpers the completion routes share (engine submission, prompt encoding).
//
// /tokenize takes {"content": text} (llama.cpp) or {"prompt": text} (vLLM), or
// {"messages": [...]} to tokenize a chat prompt; "add_special" (default true) adds BOS
// where the model wants one, "with_pieces" adds each token's text. /detokenize takes
// {"tokens": [ids]} and answers {"content": text}.
#include <algorithm>

#include "server/server_state.h"

namespace hearth::server {

std::vector<std::shared_ptr<RequestStream>> submit_all(State& st, std::vector<EngineRequest> requests) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    for (auto& r : requests) streams.push_back(st.engine.submit(std::move(r)));
  } catch (...) {
    for (auto& s : streams) st.engine.cancel(*s);
    throw;
  }
  return streams;
}

SamplingParams choice_params(const SamplingParams& params, int i) {
  SamplingParams p = params;
  if (p.seed && i > 0) p.seed = *p.seed + static_cast<uint64_t>(i);
  return p;
}

void RequestLog::add(State& st, const RequestStats& s, const std::string& finish_reason, bool first_choice) {
  st.metrics.observe_generation(s, finish_reason);
  if (first_choice) {
    prompt_tokens += s.prompt_tokens;
    cached_tokens += s.cached_tokens;
    ttft_s = s.ttft_s;
    finish = finish_reason;
  }
  completion_tokens += s.completion_tokens;
  decode_s = std::max(decode_s, s.decode_s);
  total_s = std::max(total_s, s.total_s);
}

std::vector<int32_t> encode_prompt(const State& st, const std::string& text) {
  const Tokenizer* tok = st.model.tokenizer;
  if (!tok) throw ApiError(400, "this model has no tokenizer: send the prompt as token ids", "invalid_request_error", "prompt");
  std::vector<int32_t> ids;
  // A template that writes the BOS token itself (Llama 3) must not get a second one.
  const bool bos_in_text = tok->bos_id() != kNoToken && text.rfind(tok->token_text(tok->bos_id()), 0) == 0;
  if (tok->add_bos() && tok->bos_id() != kNoToken && !bos_in_text) ids.push_back(tok->bos_id());
  const auto body = tok->encode(text, /*parse_special=*/true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

void handle_models(State& st, const httplib::Request& req, httplib::Response& res) {
  Json m = Json::object();
  m["id"] = st.model.id;
  m["object"] = "model";
  m["created"] = st.model.created;
  m["owned_by"] = "hearth";
  // The served window under the names clients look for (vLLM, llama.cpp, LM Studio).
  m["context_length"] = st.model.n_ctx;
  m["max_model_len"] = st.model.n_ctx;
  m["meta"] = Json{{"n_ctx", st.model.n_ctx}, {"n_vocab", st.engine.n_vocab()}};
  if (req.matches.size() > 1) {
    if (req.matches[1] != st.model.id)
      throw ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist", "not_found_error", "model",
                     "model_not_found");
    return send_json(res, m);
  }
  send_json(res, Json{{"object", "list"}, {"data", Json::array({m})}});
}

void handle_health(State& st, const httplib::Request&, httplib::Response& res) {
  const EngineStats e = st.engine.stats();
  send_json(res, Json{{"status", "ok"}, {"requests_running", e.running}, {"requests_waiting", e.waiting}});
}

void handle_metrics(State& st, const httplib::Request&, httplib::Response& res) {
  res.set_content(st.metrics.render(st.engine.stats()), "text/plain; version=0.0.4; charset=utf-8");
}

void handle_tokenize(State& st, const httplib::Request& req, httplib::Response& res) {
  const Json body = parse_body(req.body);
  const Tokenizer* tok = st.model.tokenizer;
  if (!tok) throw ApiError(400, "this model has no tokenizer");
  const bool add_special = get_bool(body, "add_special").value_or(true);
  const bool with_pieces = get_bool(body, "with_pieces").value_or(false);
  std::vector<int32_t> ids;
  if (get_array(body, "messages")) {
    if (!st.model.chat_template) throw ApiError(400, "this model has no chat template");
    Json chat = body;
    const bool agp = get_bool(body, "add_generation_prompt").value_or(true);
    ids = encode_prompt(st, st.model.chat_template->apply(chat, agp));
  } else {
    std::optional<std::string> text = get_string(body, "content");
    if (!text) text = get_string(body, "prompt");
    if (!text) throw ApiError(400, "content: expected the text to tokenize", "invalid_request_error", "content");
    if (add_special) {
      ids = encode_prompt(st, *text);
    } else {
      ids = tok->encode(*text, /*parse_special=*/true);
    }
  }
  Json tokens = Json::array();
  for (int32_t id : ids) {
    if (with_pieces) tokens.push_back(Json{{"id", id}, {"piece", tok->token_to_piece(id)}});
    else tokens.push_back(id);
  }
  send_json(res, Json{{"tokens", tokens}, {"count", ids.size()}, {"max_model_len", st.model.n_ctx}});
}

void handle_detokenize(State& st, const httplib::Request& req, httplib::Response& res) {
  const Json body = parse_body(req.body);
  const Tokenizer* tok = st.model.tokenizer;
  if (!tok) throw ApiError(400, "this model has no tokenizer");
  const Json* arr = get_array(body, "tokens");
  if (!arr) throw ApiError(400, "tokens: expected an array of token ids", "invalid_request_error", "tokens");
  std::vector<int32_t> ids;
  for (const auto& v : *arr) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok->n_vocab())
      throw ApiError(400, "tokens: expected token ids in 0.." + std::to_string(tok->n_vocab() - 1),
                     "invalid_request_error", "tokens");
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  send_json(res, Json{{"content", tok->decode(ids)}});
}

}  // namespace hearth::server
