// A hearth server running in-process for the server tests: a tiny random Qwen3 model is
// written once per test binary (with the Qwen3 tokenizer and chat template from
// tools/npm), opened, put behind an Engine and a Server on an ephemeral loopback port.
// Helpers post JSON and read SSE streams with cpp-httplib's client.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/runtime.h"
#include "server/server.h"

namespace hearth::test {

using Json = nlohmann::ordered_json;

struct HttpResult {
  int status = 0;  // 0: no response (connection failed)
  std::string body;
  Json json;  // parsed body when it is JSON, else null
  httplib::Headers headers;
};

struct SseResult {
  int status = 0;
  std::vector<Json> events;  // every "data:" payload except [DONE]
  bool done = false;         // "data: [DONE]" arrived
  int comments = 0;          // ": keep-alive" lines
  std::string raw;
};

// One running server (model, engine, HTTP) with its options.
class TestServer {
 public:
  struct Options {
    server::ServerOptions server;
    EngineConfig engine{.n_ctx = 512, .block_size = 16, .max_seqs = 4, .max_batch_tokens = 64};
    // The engine's step runner; null = the tiny model itself.
    std::function<std::unique_ptr<StepRunner>(Runtime&)> runner;
  };
  explicit TestServer(Options options);
  ~TestServer();

  int port() const { return port_; }
  httplib::Client client() const;
  HttpResult get(const std::string& path, const httplib::Headers& headers = {}) const;
  HttpResult post(const std::string& path, const std::string& body, const httplib::Headers& headers = {}) const;
  HttpResult post(const std::string& path, const char* body, const httplib::Headers& headers = {}) const {
    return post(path, std::string(body), headers);
  }
  HttpResult post(const std::string& path, const Json& body, const httplib::Headers& headers = {}) const {
    return post(path, body.dump(), headers);
  }
  SseResult stream(const std::string& path, const Json& body, const httplib::Headers& headers = {}) const;
  Runtime& runtime() { return *runtime_; }
  Engine& engine() { return *engine_; }

  // The tiny model, written on first use (GGUF with tokenizer and chat template).
  static const std::string& model_path();

 private:
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// Greedy tokens from direct mode (a Sequence on a separate copy of the model), skipping
// padding ids as the sampler does and stopping after an end-of-generation token: what the
// server must produce with temperature 0.
std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int n, bool stop_at_eog = true);
// log_softmax rows of the prompt positions (row i predicts prompt[i + 1]), direct mode.
std::vector<std::vector<double>> reference_prompt_logprobs(const std::vector<int32_t>& prompt);
Runtime& reference_runtime();

// A chat body with one user message.
Json chat_body(const std::string& text, int max_tokens, bool stream = false);

// A test suite whose tests share one default TestServer, started once for the suite:
// `class MySuite : public SharedServerTest<MySuite> {};`.
template <typename Suite>
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new TestServer({}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  TestServer& srv() { return *server_; }

 private:
  static inline TestServer* server_ = nullptr;
};

}  // namespace hearth::test
