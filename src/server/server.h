// hearth's OpenAI-compatible HTTP server. It talks to the model only through the
// Engine's queue API (submit a request, read its event stream, cancel it) and never sees
// tensors. Routes:
//   POST /v1/chat/completions, POST /v1/completions   (stream and non-stream)
//   GET  /v1/models, /v1/models/{id}, /health, /metrics
//   POST /tokenize, /detokenize
// Everything a client can get wrong is a 4xx in OpenAI's error shape; the process keeps
// serving whatever arrives (see http_server.cpp for the transport rules).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hearth::server {

// What the routes need to know about the model being served; the pointers stay owned by
// the caller and must outlive the Server.
struct ServedModel {
  std::string id = "hearth";  // the name clients use in "model" (--alias)
  const Tokenizer* tokenizer = nullptr;          // null: token ids only (no chat, no text)
  const ChatTemplate* chat_template = nullptr;   // null: no /v1/chat/completions
  SamplingParams defaults;                       // generation_config.json over OpenAI's
  int32_t n_ctx = 0;                             // tokens per request, prompt + completion
  int64_t created = 0;                           // unix time reported by /v1/models
};

// Where Qwen3's thinking goes in responses: reasoning_content (OpenCode, llama.cpp,
// DeepSeek), reasoning (vLLM, Ollama), or both.
enum class ReasoningField { ReasoningContent, Reasoning, Both };

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0 = any free port (tests)
  std::string api_key;                   // "" = no authentication
  std::string cors_origin;               // "" = no CORS headers; "*" or an origin
  int http_threads = 128;                // connections served at once
  size_t max_body_bytes = 32u << 20;     // larger bodies get 413
  double keepalive_s = 5.0;              // SSE ": keep-alive" after this much silence
  ReasoningField reasoning_field = ReasoningField::ReasoningContent;
};

class Server {
 public:
  Server(ServedModel model, Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws Error when it can't.
  int bind();
  // Serves until stop() is called (from any thread). Call bind() first.
  void listen();
  void stop();
  std::string url() const;  // "http://HOST:PORT"

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace hearth::server
