// OpenAI JSON mapping: errors, field readers, sampling fields, usage and logprobs.
#include "server/openai_json.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace hearth::server {

Json error_json(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
  Json e = Json::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? Json(nullptr) : Json(param);
  e["code"] = code.empty() ? Json(nullptr) : Json(code);
  return Json{{"error", e}};
}

Json error_json(const ApiError& e) { return error_json(e.what(), e.type, e.param, e.code); }

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json parse_body(const std::string& body) {
  constexpr int kMaxDepth = 64;
  // The callback sees every value with its depth; deep nesting is refused before the
  // recursive parts of the server (templates, dump) ever see it.
  const auto limit_depth = [](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxDepth) throw ApiError(400, "Invalid JSON body: nested more than 64 levels deep");
    return true;
  };
  Json j;
  try {
    j = Json::parse(body, limit_depth);
  } catch (const Json::parse_error& e) {
    throw ApiError(400, std::string("Invalid JSON body: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "Invalid JSON body: expected an object");
  return j;
}

namespace {
[[noreturn]] void wrong_type(const char* key, const char* expected) {
  throw ApiError(400, std::string(key) + ": expected " + expected, "invalid_request_error", key);
}
const Json* find(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}
}  // namespace

std::optional<bool> get_bool(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(key, "a boolean");
  return v->get<bool>();
}

std::optional<int64_t> get_int(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  // 16.0 is an integer too (some clients serialise every number as a float).
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  wrong_type(key, "an integer");
}

std::optional<double> get_number(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number");
  return v->get<double>();
}

std::optional<std::string> get_string(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string");
  return v->get<std::string>();
}

const Json* get_object(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (v && !v->is_object()) wrong_type(key, "an object");
  return v;
}

const Json* get_array(const Json& body, const char* key) {
  const Json* v = find(body, key);
  if (v && !v->is_array()) wrong_type(key, "an array");
  return v;
}

namespace {

int32_t clamp_i32(int64_t v) { return static_cast<int32_t>(std::clamp<int64_t>(v, INT32_MIN, INT32_MAX)); }

void read_stop(const Json& body, SamplingParams& p) {
  const Json* v = find(body, "stop");
  if (!v) return;
  p.stop.clear();
  if (v->is_string()) {
    if (!v->get_ref<const std::string&>().empty()) p.stop.push_back(v->get<std::string>());
    return;
  }
  if (!v->is_array()) wrong_type("stop", "a string or an array of strings");
  if (v->size() > 16) throw ApiError(400, "stop: at most 16 stop strings are supported", "invalid_request_error", "stop");
  for (const auto& s : *v) {
    if (!s.is_string()) wrong_type("stop", "a string or an array of strings");
    if (!s.get_ref<const std::string&>().empty()) p.stop.push_back(s.get<std::string>());
  }
}

void read_logit_bias(const Json& body, SamplingParams& p) {
  const Json* bias = get_object(body, "logit_bias");
  if (!bias) return;
  for (const auto& [key, value] : bias->items()) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || id < 0 || id > INT32_MAX)
      throw ApiError(400, "logit_bias: '" + key + "' is not a token id", "invalid_request_error", "logit_bias");
    if (!value.is_number()) wrong_type("logit_bias", "an object of token id -> number");
    p.logit_bias[static_cast<int32_t>(id)] = value.get<float>();
  }
}

}  // namespace

CommonRequest read_common(const Json& body, const SamplingParams& defaults, bool chat, int32_t default_max_tokens) {
  CommonRequest r;
  SamplingParams& p = r.params;
  p = defaults;
  p.max_tokens = default_max_tokens;
  if (auto v = get_number(body, "temperature")) p.temperature = static_cast<float>(*v);
  if (auto v = get_number(body, "top_p")) p.top_p = static_cast<float>(*v);
  if (auto v = get_int(body, "top_k")) p.top_k = clamp_i32(*v);
  if (auto v = get_number(body, "min_p")) p.min_p = static_cast<float>(*v);
  if (auto v = get_number(body, "typical_p")) p.typical_p = static_cast<float>(*v);
  if (auto v = get_number(body, "repetition_penalty")) p.repetition_penalty = static_cast<float>(*v);
  if (auto v = get_number(body, "presence_penalty")) p.presence_penalty = static_cast<float>(*v);
  if (auto v = get_number(body, "frequency_penalty")) p.frequency_penalty = static_cast<float>(*v);
  if (auto v = get_int(body, "penalty_last_n")) p.penalty_last_n = clamp_i32(*v);
  if (auto v = get_int(body, "seed")) p.seed = static_cast<uint64_t>(*v);
  if (auto v = get_bool(body, "ignore_eos")) p.ignore_eos = *v;
  if (const Json* ids = get_array(body, "stop_token_ids")) {
    for (const auto& id : *ids) {
      if (!id.is_number_integer()) wrong_type("stop_token_ids", "an array of token ids");
      p.stop_token_ids.push_back(clamp_i32(id.get<int64_t>()));
    }
  }
  read_stop(body, p);
  read_logit_bias(body, p);
  std::optional<int64_t> max_tokens = get_int(body, "max_tokens");
  if (auto v = get_int(body, "max_completion_tokens")) max_tokens = v;
  if (max_tokens) {
    if (*max_tokens < 1)
      throw ApiError(400, "max_tokens: " + std::to_string(*max_tokens) + " is out of range, expected at least 1",
                     "invalid_request_error", "max_tokens");
    p.max_tokens = clamp_i32(*max_tokens);
  }
  if (auto v = get_int(body, "n")) {
    if (*v < 1 || *v > 16) throw ApiError(400, "n: expected 1 to 16", "invalid_request_error", "n");
    r.n = static_cast<int32_t>(*v);
  }
  r.stream = get_bool(body, "stream").value_or(false);
  if (const Json* so = get_object(body, "stream_options")) r.include_usage = get_bool(*so, "include_usage").value_or(false);
  if (chat) {
    r.logprobs = get_bool(body, "logprobs").value_or(false);
    if (auto v = get_int(body, "top_logprobs")) r.top_logprobs = clamp_i32(*v);
  } else if (auto v = get_int(body, "logprobs")) {
    r.logprobs = true;
    r.top_logprobs = clamp_i32(*v);
  }
  if (r.top_logprobs < 0 || r.top_logprobs > 20)
    throw ApiError(400, "top_logprobs: expected 0 to 20", "invalid_request_error", chat ? "top_logprobs" : "logprobs");
  p.logprobs = r.logprobs;
  p.top_logprobs = r.logprobs ? r.top_logprobs : 0;
  r.user_model = get_string(body, "model").value_or("");
  return r;
}

void UsageTotals::add(const RequestStats& s, bool count_prompt) {
  if (count_prompt) {
    prompt_tokens += s.prompt_tokens;
    cached_tokens += s.cached_tokens;
  }
  completion_tokens += s.completion_tokens;
}

Json usage_json(const UsageTotals& u) {
  Json j = Json::object();
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["prompt_tokens_details"] = Json{{"cached_tokens", u.cached_tokens}};
  j["completion_tokens_details"] = Json{{"reasoning_tokens", u.reasoning_tokens}};
  return j;
}

std::string token_piece(const Tokenizer* tok, int32_t id) {
  if (!tok || id < 0 || id >= tok->n_vocab()) {
    std::string s = std::to_string(id);  // (not "<" + s: GCC 12 -O3 warns on that wrongly)
    s.insert(s.begin(), '<');
    s.push_back('>');
    return s;
  }
  return tok->token_to_piece(id);
}

namespace {
Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

Json chat_logprob_entry(const Tokenizer* tok, const SampleLogprobs& lp) {
  const std::string piece = token_piece(tok, lp.sampled.id);
  Json e = Json::object();
  e["token"] = piece;
  e["logprob"] = lp.sampled.logprob;
  e["bytes"] = bytes_of(piece);
  Json top = Json::array();
  for (const TokenLogprob& t : lp.top) {
    const std::string p = token_piece(tok, t.id);
    top.push_back(Json{{"token", p}, {"logprob", t.logprob}, {"bytes", bytes_of(p)}});
  }
  e["top_logprobs"] = top;
  return e;
}

std::string make_id(const char* prefix) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace hearth::server
