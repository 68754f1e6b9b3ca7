// The state every route handler shares: the served model, the engine, the options and
// the metrics. Internal to src/server.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include <httplib.h>

#include "server/metrics.h"
#include "server/openai_json.h"
#include "server/server.h"

namespace hearth::server {

struct Server::State {
  ServedModel model;
  Engine& engine;
  ServerOptions options;
  Metrics metrics;
  std::atomic<bool> stopping{false};
  httplib::Server http;
  int port = 0;
  int listen_fd = -1;  // the listening socket, seen as httplib makes it (Server::bind)

  State(ServedModel m, Engine& e, ServerOptions o) : model(std::move(m)), engine(e), options(std::move(o)) {}
};
using State = Server::State;

// Route handlers (routes_*.cpp). They throw ApiError / hearth::Error for client mistakes;
// the transport turns those into error responses.
void handle_chat_completions(State& st, const httplib::Request& req, httplib::Response& res);
void handle_completions(State& st, const httplib::Request& req, httplib::Response& res);
void handle_models(State& st, const httplib::Request& req, httplib::Response& res);
void handle_health(State& st, const httplib::Request& req, httplib::Response& res);
void handle_metrics(State& st, const httplib::Request& req, httplib::Response& res);
void handle_tokenize(State& st, const httplib::Request& req, httplib::Response& res);
void handle_detokenize(State& st, const httplib::Request& req, httplib::Response& res);

// Sends `body` as application/json with `status`.
void send_json(httplib::Response& res, const Json& body, int status = 200);
// Submits every request (the choices of one response) to the engine; if one is refused,
// those already submitted are cancelled and the refusal is rethrown (the transport maps
// ContextLengthError, QueueFullError and Error to their statuses).
std::vector<std::shared_ptr<RequestStream>> submit_all(State& st, std::vector<EngineRequest> requests);
// The request parameters of choice i of n: with a seed, choice i uses seed + i so the
// choices differ but the response is reproducible.
SamplingParams choice_params(const SamplingParams& params, int i);
// The prompt of a text: BOS when the tokenizer wants it, special tokens parsed.
std::vector<int32_t> encode_prompt(const State& st, const std::string& text);

// One line per request on the log: id, route, status, tokens, ttft, speed, finish.
struct RequestLog {
  std::string id, route;
  int status = 200;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double ttft_s = 0, decode_s = 0, total_s = 0;
  std::string finish;
  // Adds a finished choice (its stats, its OpenAI finish reason) and feeds the metrics.
  void add(State& st, const RequestStats& s, const std::string& finish_reason, bool first_choice);
  void write() const;
};

}  // namespace hearth::server
