// Writing responses while the engine works: a writer over httplib's DataSink that notices
// a client that went away, SSE framing ("data: {...}\n\n", "data: [DONE]", ": keep-alive"
// comments), and pump(), the loop that waits for a request's engine events and keeps the
// connection alive while a long prompt is processed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <httplib.h>

#include "server/openai_json.h"
#include "server/server.h"

namespace hearth::server {

class SinkWriter {
 public:
  explicit SinkWriter(httplib::DataSink& sink) : sink_(sink), last_(std::chrono::steady_clock::now()) {}
  // False once a write has failed (the client is gone); later writes do nothing.
  bool write(std::string_view bytes);
  bool sse(const Json& j) { return write("data: " + dump(j) + "\n\n"); }
  bool sse_done() { return write("data: [DONE]\n\n"); }
  bool sse_comment() { return write(": keep-alive\n\n"); }
  double idle_s() const;
  bool ok() const { return ok_; }

 private:
  httplib::DataSink& sink_;
  std::chrono::steady_clock::time_point last_;
  bool ok_ = true;
};

// Waits for the events of `streams` (the choices of one response) until all have
// finished, handing each to on_event(choice index, event). When `writer` has written
// nothing for keepalive_s, keepalive() is called (which writes something, so a client
// that went away is noticed even while nothing else is sent). If on_event or keepalive returns false (the client
// is gone) or the server is stopping, every stream is cancelled and pump returns false.
bool pump(Server::State& st, const std::vector<std::shared_ptr<RequestStream>>& streams,
          const std::function<bool(size_t, const EngineEvent&)>& on_event, const std::function<bool()>& keepalive,
          const SinkWriter& writer, double keepalive_s);

// Cancels every stream that has not finished (a response that ended early).
void cancel_all(Server::State& st, const std::vector<std::shared_ptr<RequestStream>>& streams);

}  // namespace hearth::server
