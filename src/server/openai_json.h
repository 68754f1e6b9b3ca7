// OpenAI JSON mapping shared by the routes: errors in OpenAI's shape, typed readers for
// request fields that name the field when it has the wrong type, the sampling fields of
// chat and text completions, and the usage and logprobs objects of responses.
//
// Conventions: request bodies are parsed as ordered_json (the chat template and the chat
// output parser take it). Unknown fields are ignored (clients such as OpenCode copy model
// options into the body); known fields of the wrong type are a 400 naming the field.
// Output is always serialised with invalid UTF-8 replaced, never thrown on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace hearth::server {

using Json = nlohmann::ordered_json;

// An error answered as {"error": {"message", "type", "param", "code"}} with `status`.
class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : Error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type;
  std::string param;  // "" -> null
  std::string code;   // "" -> null
};

Json error_json(const std::string& message, const std::string& type, const std::string& param, const std::string& code);
Json error_json(const ApiError& e);

// Serialises compactly; invalid UTF-8 (a token cut in the middle of a character) is
// replaced with U+FFFD instead of throwing.
std::string dump(const Json& j);

// Parses a request body: must be a JSON object, nested at most 64 deep. ApiError 400 otherwise.
Json parse_body(const std::string& body);

// Typed field readers: absent or null -> nullopt; wrong type -> ApiError 400 naming the field.
std::optional<bool> get_bool(const Json& body, const char* key);
std::optional<int64_t> get_int(const Json& body, const char* key);
std::optional<double> get_number(const Json& body, const char* key);
std::optional<std::string> get_string(const Json& body, const char* key);
const Json* get_object(const Json& body, const char* key);
const Json* get_array(const Json& body, const char* key);

// What both completion routes read from a request.
struct CommonRequest {
  SamplingParams params;     // defaults overlaid with the request's sampling fields
  int32_t n = 1;             // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;     // chat: "logprobs": true; completions: "logprobs": N
  int32_t top_logprobs = 0;
  std::string user_model;    // "model" as sent (echoed back only through our alias)
};

// Reads the sampling fields (temperature, top_p, top_k, min_p, typical_p, penalties,
// repetition_penalty, seed, stop, stop_token_ids, ignore_eos, logit_bias, max_tokens /
// max_completion_tokens, n, stream, stream_options) over `defaults`.
// chat: logprobs is a bool with top_logprobs; completions: logprobs is an int 0..20.
CommonRequest read_common(const Json& body, const SamplingParams& defaults, bool chat, int32_t default_max_tokens);

// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details":
// {"cached_tokens"}, "completion_tokens_details": {"reasoning_tokens"}} summed over choices.
struct UsageTotals {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0, reasoning_tokens = 0;
  void add(const RequestStats& s, bool count_prompt);
};
Json usage_json(const UsageTotals& u);

// The text of one token for logprobs: its raw bytes, as a string (may be a partial UTF-8
// character; dump() replaces what isn't valid).
std::string token_piece(const Tokenizer* tok, int32_t id);
// Chat logprobs entry: {"token", "logprob", "bytes", "top_logprobs": [...]}.
Json chat_logprob_entry(const Tokenizer* tok, const SampleLogprobs& lp);

// "chatcmpl-…"/"cmpl-…" + 24 random alphanumerics.
std::string make_id(const char* prefix);
int64_t unix_time();

}  // namespace hearth::server
