// The HTTP client side of `hearth bench endpoint`: one OpenAI-compatible endpoint, plain
// GET/POST and a measured chat completion (streamed or not) on cpp-httplib's client.
// Every request has a connect timeout, a read timeout (silence on the socket) and an
// overall deadline, so no misbehaving server can hang the benchmark.
// Timing: the clock starts when the request is handed to the client; TTFT ends at the
// first SSE event carrying content, reasoning or a tool-call delta (role-only and empty
// events don't count). Tokens come from `usage`, else (streams) from the number of events
// that carried text, which is one token per event on every server we know of.
#pragma once

#include <string>

#include "bench/results.h"

namespace hearth::bench {

struct Endpoint {
  std::string host;                // "127.0.0.1"
  int port = 80;
  std::string base_path;           // "/v1" (no trailing slash)
  std::string api_key;             // "" = no Authorization header
  double connect_timeout_s = 5;
  double read_timeout_s = 60;      // longest silence allowed on the socket
  double timeout_s = 300;          // overall per request

  // "http://HOST:PORT/v1" -> Endpoint; throws Error on anything else (https included:
  // the benchmark is for servers on this machine or the local network).
  static Endpoint parse(const std::string& url);
  std::string url() const;         // back to "http://HOST:PORT/v1"
};

struct HttpResponse {
  Outcome outcome = Outcome::ok;   // ok (any status), timeout, connection_refused/reset
  int status = 0;
  std::string body;
  std::string error;               // transport error, one line
  double total_s = 0;
};

// path is appended to base_path ("/models" -> "/v1/models").
HttpResponse http_get(const Endpoint& ep, const std::string& path);
HttpResponse http_post(const Endpoint& ep, const std::string& path, const std::string& body);

// A measured chat completion and what it returned.
struct ChatResult {
  RequestRecord record;
  std::string content;
  std::string reasoning;           // reasoning_content or reasoning
  Json tool_calls = Json::array(); // [{"id", "name", "arguments"}], arguments as sent (a string)
  std::string excerpt;             // the first bytes of the body or stream, as evidence
  bool saw_usage_in_stream = false;
};

// POSTs `body` to /chat/completions; streams when body["stream"] is true. Never throws
// for anything the server does: every failure is an outcome with a one-line error.
ChatResult run_chat(const Endpoint& ep, const Json& body);

// One line of at most `max` bytes (newlines folded), cut on a UTF-8 boundary.
std::string excerpt_of(const std::string& text, size_t max = 300);

}  // namespace hearth::bench
