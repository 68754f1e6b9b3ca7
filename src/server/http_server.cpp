// The HTTP transport (cpp-httplib): socket, thread pool, body limit, authentication,
// CORS, route table and the error policy. Routes live in routes_*.cpp.
//
// Error policy: a handler throws ApiError (its own status), ContextLengthError (400
// context_length_exceeded), QueueFullError (503 with Retry-After) or hearth::Error (400,
// the message names the field). Anything else is a bug of ours: 500, logged, and the
// server keeps going. Requests httplib itself refuses (unknown route 404, a known route
// with the wrong method 405, body too large 413, malformed HTTP 400) get the same JSON
// error shape from the error handler. Every refused request gets one "request ..." log
// line with its status and message.
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/log.h"
#include "server/server_state.h"

namespace hearth::server {

namespace {

// "temperature: 3 is out of range" -> "temperature": engine and sampler errors name the
// request field first.
std::string param_of(const std::string& message) {
  const size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0 || colon > 40) return "";
  for (size_t i = 0; i < colon; ++i) {
    const char c = message[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' || c == ']')) return "";
  }
  return message.substr(0, colon);
}

bool same_key(const std::string& a, const std::string& b) {
  // Constant time for equal lengths, so the key can't be guessed byte by byte.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

const char* status_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "server_busy";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  send_json(res, error_json(message, status_type(status), param, code), status);
}

using RouteFn = void (*)(State&, const httplib::Request&, httplib::Response&);

// The method a route is served with, or null for an unknown path.
const char* route_method(const std::string& path) {
  static const std::pair<const char*, const char*> kRoutes[] = {
      {"/v1/chat/completions", "POST"}, {"/chat/completions", "POST"}, {"/v1/completions", "POST"},
      {"/completions", "POST"},         {"/tokenize", "POST"},         {"/detokenize", "POST"},
      {"/v1/models", "GET"},            {"/models", "GET"},            {"/health", "GET"},
      {"/v1/health", "GET"},            {"/metrics", "GET"}};
  for (const auto& [p, method] : kRoutes)
    if (path == p) return method;
  if (path.rfind("/v1/models/", 0) == 0) return "GET";
  return nullptr;
}

// The log line of a request answered with an error before any generation (the routes
// write their own line for generations): the same "request ..." shape as RequestLog.
void log_refused(const std::string& route, int status, const std::string& message) {
  log_info("request id=- route=" + route + " status=" + std::to_string(status) + " error=\"" + message.substr(0, 200) +
           "\"");
}

}  // namespace

void send_json(httplib::Response& res, const Json& body, int status) {
  res.status = status;
  res.set_content(dump(body), "application/json; charset=utf-8");
}

Server::Server(ServedModel model, Engine& engine, ServerOptions options)
    : state_(std::make_unique<State>(std::move(model), engine, std::move(options))) {
  // A client that disconnects must not kill the process with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  State& st = *state_;
  httplib::Server& http = st.http;
  const int threads = std::max(4, st.options.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(st.options.max_body_bytes);
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(10);
  // httplib's own socket options, and the socket kept so bind() can raise its backlog.
  http.set_socket_options([&st](socket_t sock) {
    httplib::default_socket_options(sock);
    st.listen_fd = static_cast<int>(sock);
  });
  if (!st.options.cors_origin.empty())
    http.set_default_headers({{"Access-Control-Allow-Origin", st.options.cors_origin},
                              {"Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key"},
                              {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"}});

  http.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "OPTIONS") {
      res.status = st.options.cors_origin.empty() ? 405 : 204;
      if (res.status == 405) send_error(res, 405, "CORS is not enabled on this server (--cors)");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (st.options.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    std::string key = req.get_header_value("Authorization");
    if (key.rfind("Bearer ", 0) == 0) key = key.substr(7);
    if (key.empty()) key = req.get_header_value("X-Api-Key");
    if (same_key(key, st.options.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    const std::string message =
        key.empty() ? "Missing API key: send it as 'Authorization: Bearer KEY'" : "Incorrect API key provided";
    send_error(res, 401, message, "", "invalid_api_key");
    st.metrics.count_response("auth", 401);
    log_refused(req.path, 401, message);
    return httplib::Server::HandlerResponse::Handled;
  });

  // Every route goes through here: one place maps exceptions to responses.
  auto route = [&st](const char* name, RouteFn fn) {
    return [&st, name, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(st, req, res);
      } catch (const ApiError& e) {
        send_json(res, error_json(e), e.status);
      } catch (const ContextLengthError& e) {
        send_error(res, 400, e.what(), "messages", "context_length_exceeded");
      } catch (const QueueFullError& e) {
        send_error(res, 503, e.what());
        res.set_header("Retry-After", "1");
      } catch (const Error& e) {
        send_error(res, 400, e.what(), param_of(e.what()));
      } catch (const std::bad_alloc&) {
        send_error(res, 503, "out of memory while handling the request");
        res.set_header("Retry-After", "1");
      } catch (const std::exception& e) {
        log_error(std::string("server: ") + name + ": " + e.what());
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
      if (res.status == -1) res.status = 200;  // a content provider leaves it unset
      st.metrics.count_response(name, res.status);
      if (res.status >= 400) {
        const Json body = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
        const auto error = body.is_object() ? body.find("error") : body.end();
        log_refused(name, res.status, error != body.end() && error->is_object() ? error->value("message", "") : "");
      }
    };
  };
  http.Post("/v1/chat/completions", route("/v1/chat/completions", handle_chat_completions));
  http.Post("/chat/completions", route("/v1/chat/completions", handle_chat_completions));
  http.Post("/v1/completions", route("/v1/completions", handle_completions));
  http.Post("/completions", route("/v1/completions", handle_completions));
  http.Get("/v1/models", route("/v1/models", handle_models));
  http.Get("/v1/models/(.+)", route("/v1/models", handle_models));
  http.Get("/models", route("/v1/models", handle_models));
  http.Get("/health", route("/health", handle_health));
  http.Get("/v1/health", route("/health", handle_health));
  http.Get("/metrics", route("/metrics", handle_metrics));
  http.Post("/tokenize", route("/tokenize", handle_tokenize));
  http.Post("/detokenize", route("/detokenize", handle_detokenize));

  http.set_error_handler(httplib::Server::HandlerWithResponse([&st](const httplib::Request& req, httplib::Response& res) {
    // Called for every status >= 400; bodies the routes wrote stay as they are.
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    const char* allowed = res.status == 404 ? route_method(req.path) : nullptr;
    if (allowed) {
      // A known route asked with the wrong method (GET /v1/chat/completions).
      res.status = 405;
      res.set_header("Allow", allowed);
      message = "Method not allowed: " + req.method + " " + req.path + " (use " + allowed + ")";
    } else if (res.status == 404) {
      message = "Unknown route: " + req.method + " " + req.path;
    } else if (res.status == 413) {
      message = "Request body too large (limit " + std::to_string(st.options.max_body_bytes) + " bytes)";
    } else {
      message = "Bad request";
    }
    send_error(res, res.status, message);
    st.metrics.count_response("other", res.status);
    log_refused(req.path, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_error("server: unhandled: " + what);
    send_error(res, 500, "internal error: " + what);
  });
}

Server::~Server() { stop(); }

int Server::bind() {
  State& st = *state_;
  if (st.options.port == 0) {
    st.port = st.http.bind_to_any_port(st.options.host);
  } else {
    st.port = st.http.bind_to_port(st.options.host, st.options.port) ? st.options.port : -1;
  }
  HEARTH_CHECK(st.port > 0, "serve: cannot listen on " + st.options.host + ":" + std::to_string(st.options.port) +
                                " (address in use or not available)");
  // Debian's httplib listens with a backlog of 5 (compiled into the library): when more
  // clients connect at once than the accept loop has taken, the kernel drops their SYNs and
  // they retry after a second. 16 agents starting a request together saw one request in 32
  // take twice as long (docs/benchmarks.md, session 12). listen() again on the listening
  // socket raises the backlog (Linux caps it at net.core.somaxconn).
  if (st.listen_fd >= 0 && ::listen(st.listen_fd, SOMAXCONN) != 0)
    log_warn("serve: could not raise the listen backlog: " + std::string(std::strerror(errno)));
  return st.port;
}

void Server::listen() { state_->http.listen_after_bind(); }

void Server::stop() {
  state_->stopping = true;
  state_->http.stop();
}

std::string Server::url() const {
  const std::string& h = state_->options.host;
  const bool v6 = h.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(state_->port);
}

void RequestLog::write() const {
  char buf[512];
  const double tps = decode_s > 0 && completion_tokens > 1 ? static_cast<double>(completion_tokens - 1) / decode_s : 0;
  std::snprintf(buf, sizeof buf,
                "request id=%s route=%s status=%d prompt_tokens=%lld cached_tokens=%lld completion_tokens=%lld "
                "ttft_ms=%.1f tokens_per_s=%.2f total_ms=%.1f finish=%s",
                id.c_str(), route.c_str(), status, static_cast<long long>(prompt_tokens),
                static_cast<long long>(cached_tokens), static_cast<long long>(completion_tokens), ttft_s * 1e3, tps,
                total_s * 1e3, finish.empty() ? "-" : finish.c_str());
  log_info(buf);
}

}  // namespace hearth::server
