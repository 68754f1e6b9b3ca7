// Endpoint parsing, plain requests and the measured chat completion (client.h).
// Failure classes come from cpp-httplib's error codes plus our own clocks: a read error
// after the read timeout's worth of silence is a timeout, a cancel from our receiver after
// the overall deadline is a timeout, anything else after connecting is a reset.
#include "bench/client.h"

#include <chrono>
#include <memory>

#include <httplib.h>

#include "core/error.h"

namespace hearth::bench {
namespace {

using Clock = std::chrono::steady_clock;

// A whole (non-streamed) response is kept up to this size; beyond it is not an answer.
constexpr size_t kMaxBody = 64u << 20;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::unique_ptr<httplib::Client> make_client(const Endpoint& ep) {
  auto c = std::make_unique<httplib::Client>(ep.host, ep.port);
  auto usec = [](double s) { return static_cast<time_t>((s - static_cast<double>(static_cast<time_t>(s))) * 1e6); };
  const double read = std::min(ep.read_timeout_s, ep.timeout_s);
  c->set_connection_timeout(static_cast<time_t>(ep.connect_timeout_s), usec(ep.connect_timeout_s));
  c->set_read_timeout(static_cast<time_t>(read), usec(read));
  c->set_write_timeout(static_cast<time_t>(read), usec(read));
  c->set_keep_alive(false);
  return c;
}

httplib::Headers headers_of(const Endpoint& ep) {
  httplib::Headers h;
  if (!ep.api_key.empty()) h.emplace("Authorization", "Bearer " + ep.api_key);
  return h;
}

// Sends req (its content_receiver appends to `body`), classifying what went wrong.
struct Exchange {
  HttpResponse response;
  std::string content_type;
  bool deadline_hit = false;
  Clock::time_point last_byte;
};

void classify_error(const Endpoint& ep, httplib::Error err, Exchange& x) {
  HttpResponse& r = x.response;
  const double read = std::min(ep.read_timeout_s, ep.timeout_s);
  if (x.deadline_hit) {
    r.outcome = Outcome::timeout;
    r.error = "no complete response within the overall timeout of " + std::to_string(static_cast<int>(ep.timeout_s)) + " s";
  } else if (err == httplib::Error::Connection) {
    r.outcome = Outcome::connection_refused;
    r.error = "cannot connect to " + ep.host + ":" + std::to_string(ep.port) + " (connection refused)";
  } else if (err == httplib::Error::ConnectionTimeout) {
    r.outcome = Outcome::timeout;
    r.error = "connect timed out";
  } else if ((err == httplib::Error::Read || err == httplib::Error::Write) && seconds_since(x.last_byte) >= 0.95 * read) {
    r.outcome = Outcome::timeout;
    r.error = "no data for " + std::to_string(static_cast<int>(read)) + " s (read timeout)";
  } else {
    r.outcome = Outcome::connection_reset;
    r.error = "connection broken: " + httplib::to_string(err);
  }
}

Exchange send(const Endpoint& ep, const std::string& method, const std::string& path, const std::string& body,
              const std::function<bool(const Exchange&, const char*, size_t)>& on_data) {
  Exchange x;
  const auto start = Clock::now();
  x.last_byte = start;
  auto client = make_client(ep);
  httplib::Request req;
  req.method = method;
  req.path = ep.base_path + path;
  req.headers = headers_of(ep);
  if (method == "POST") {
    req.body = body;
    req.set_header("Content-Type", "application/json");
  }
  req.response_handler = [&](const httplib::Response& res) {
    x.response.status = res.status;
    x.content_type = res.get_header_value("Content-Type");
    x.last_byte = Clock::now();
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    x.last_byte = Clock::now();
    if (seconds_since(start) > ep.timeout_s) {
      x.deadline_hit = true;
      return false;
    }
    return on_data(x, data, n);
  };
  const auto res = client->send(req);
  x.response.total_s = seconds_since(start);
  if (!res) {
    classify_error(ep, res.error(), x);
  } else {
    x.response.status = res->status;
    if (x.response.total_s > ep.timeout_s) {
      x.deadline_hit = true;
      classify_error(ep, httplib::Error::Canceled, x);
    }
  }
  return x;
}

}  // namespace

Endpoint Endpoint::parse(const std::string& url) {
  const std::string scheme = "http://";
  HEARTH_CHECK(url.rfind(scheme, 0) == 0, "--url " + url + ": expected http://HOST:PORT/PATH (plain http)");
  const std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  Endpoint ep;
  ep.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
  const size_t colon = hostport.rfind(':');
  ep.host = hostport.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = hostport.substr(colon + 1);
    size_t used = 0;
    int p = -1;
    try {
      p = std::stoi(port, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEARTH_CHECK(used == port.size() && p > 0 && p <= 65535, "--url " + url + ": bad port '" + port + "'");
    ep.port = p;
  }
  HEARTH_CHECK(!ep.host.empty(), "--url " + url + ": no host");
  return ep;
}

std::string Endpoint::url() const { return "http://" + host + ":" + std::to_string(port) + base_path; }

HttpResponse http_get(const Endpoint& ep, const std::string& path) {
  std::string body;
  Exchange x = send(ep, "GET", path, "", [&](const Exchange&, const char* d, size_t n) {
    body.append(d, n);
    return true;
  });
  x.response.body = std::move(body);
  return x.response;
}

HttpResponse http_post(const Endpoint& ep, const std::string& path, const std::string& payload) {
  std::string body;
  Exchange x = send(ep, "POST", path, payload, [&](const Exchange&, const char* d, size_t n) {
    body.append(d, n);
    return true;
  });
  x.response.body = std::move(body);
  return x.response;
}

namespace {

// Applies one parsed chat.completion(.chunk) object to the result. `delta` is "delta" for
// stream chunks and "message" for whole responses. Returns whether it carried output.
bool absorb_choice(ChatResult& out, const Json& obj, const char* delta) {
  bool output = false;
  auto choices = obj.find("choices");
  if (choices == obj.end() || !choices->is_array() || choices->empty()) return false;
  const Json& c = (*choices)[0];
  if (!c.is_object()) return false;
  if (auto f = c.find("finish_reason"); f != c.end() && f->is_string()) out.record.finish_reason = f->get<std::string>();
  auto d = c.find(delta);
  if (d == c.end() || !d->is_object()) return false;
  auto text_of = [&](const char* key, std::string& into) {
    if (auto t = d->find(key); t != d->end() && t->is_string() && !t->get<std::string>().empty()) {
      into += t->get<std::string>();
      output = true;
    }
  };
  text_of("content", out.content);
  if (d->contains("reasoning_content")) text_of("reasoning_content", out.reasoning);
  else text_of("reasoning", out.reasoning);
  if (auto tc = d->find("tool_calls"); tc != d->end() && tc->is_array()) {
    for (const auto& call : *tc) {
      if (!call.is_object()) continue;
      // Streams address calls by "index"; whole messages list them in order.
      size_t index = out.tool_calls.size();
      if (auto i = call.find("index"); i != call.end() && i->is_number_unsigned()) index = i->get<size_t>();
      while (out.tool_calls.size() <= index) out.tool_calls.push_back(Json{{"id", ""}, {"name", ""}, {"arguments", ""}});
      Json& t = out.tool_calls[index];
      if (auto id = call.find("id"); id != call.end() && id->is_string()) t["id"] = *id;
      if (auto fn = call.find("function"); fn != call.end() && fn->is_object()) {
        if (auto n = fn->find("name"); n != fn->end() && n->is_string())
          t["name"] = t["name"].get<std::string>() + n->get<std::string>();
        if (auto a = fn->find("arguments"); a != fn->end() && a->is_string())
          t["arguments"] = t["arguments"].get<std::string>() + a->get<std::string>();
        else if (a != fn->end() && a->is_object())
          t["arguments"] = a->dump();
      }
      output = true;
    }
  }
  return output;
}

void absorb_usage(ChatResult& out, const Json& obj) {
  auto u = obj.find("usage");
  if (u == obj.end() || !u->is_object()) return;
  if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_integer()) out.record.prompt_tokens = p->get<int64_t>();
  if (auto c = u->find("completion_tokens"); c != u->end() && c->is_number_integer())
    out.record.completion_tokens = c->get<int64_t>();
  out.saw_usage_in_stream = true;
}

std::string error_message_of(const std::string& body) {
  const Json j = Json::parse(body, nullptr, false);
  if (j.is_object())
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) return (*e)["message"].get<std::string>();
      if (e->is_string()) return e->get<std::string>();
    }
  return excerpt_of(body, 160);
}

// Incremental SSE reader: splits events on blank lines, keeps "data:" payloads.
class SseParser {
 public:
  // Returns false once the stream is malformed (error() says how).
  bool feed(const char* data, size_t n, const std::function<bool(const std::string&)>& on_data) {
    buf_.append(data, n);
    for (;;) {
      size_t end = buf_.find("\n\n"), skip = 2;
      const size_t crlf = buf_.find("\r\n\r\n");
      if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) end = crlf, skip = 4;
      if (end == std::string::npos) {
        if (buf_.size() <= kMaxBody) return true;
        error_ = "an SSE event longer than 64 MiB";
        return false;
      }
      const std::string event = buf_.substr(0, end);
      buf_.erase(0, end + skip);
      std::string payload;
      bool has_data = false;
      size_t pos = 0;
      while (pos <= event.size()) {
        size_t nl = event.find('\n', pos);
        if (nl == std::string::npos) nl = event.size();
        std::string line = event.substr(pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == ':') continue;  // comment (keep-alive)
        if (line.rfind("data:", 0) == 0) {
          std::string v = line.substr(5);
          if (!v.empty() && v[0] == ' ') v.erase(0, 1);
          if (has_data) payload += "\n";
          payload += v;
          has_data = true;
        } else if (line.rfind("event:", 0) != 0 && line.rfind("id:", 0) != 0 && line.rfind("retry:", 0) != 0) {
          error_ = "not an SSE line: " + excerpt_of(line, 80);
          return false;
        }
      }
      if (has_data && !on_data(payload)) return false;
    }
  }
  const std::string& rest() const { return buf_; }
  std::string error_;

 private:
  std::string buf_;
};

}  // namespace

ChatResult run_chat(const Endpoint& ep, const Json& body) {
  ChatResult out;
  RequestRecord& rec = out.record;
  const bool stream = body.value("stream", false);
  std::string raw;
  const auto start = Clock::now();
  int64_t counted = 0;
  bool done = false;
  std::string malformed;
  SseParser sse;
  auto on_payload = [&](const std::string& payload) {
    if (done) {
      malformed = "data after [DONE]";
      return false;
    }
    if (payload == "[DONE]") {
      done = true;
      return true;
    }
    const Json obj = Json::parse(payload, nullptr, false);
    if (!obj.is_object()) {
      malformed = "event is not a JSON object: " + excerpt_of(payload, 80);
      return false;
    }
    if (obj.contains("error")) {
      malformed = "error event: " + error_message_of(payload);
      return false;
    }
    if (absorb_choice(out, obj, "delta")) {
      if (rec.ttft_s < 0) rec.ttft_s = seconds_since(start);
      ++counted;
    }
    absorb_usage(out, obj);
    return true;
  };
  bool parse_stream = false;
  Exchange x = send(ep, "POST", "/chat/completions", body.dump(), [&](const Exchange& ex, const char* d, size_t n) {
    if (raw.size() < 4096) raw.append(d, std::min(n, 4096 - raw.size()));
    // Only a 200 event stream is parsed as it arrives; anything else is read whole.
    parse_stream = stream && ex.response.status == 200 && ex.content_type.find("text/event-stream") != std::string::npos;
    if (!parse_stream) {
      if (out.excerpt.size() < kMaxBody) out.excerpt.append(d, std::min(n, kMaxBody - out.excerpt.size()));
      return true;
    }
    if (!sse.feed(d, n, on_payload)) {
      if (malformed.empty()) malformed = sse.error_;
      return false;
    }
    return true;
  });
  HttpResponse& r = x.response;
  rec.http_status = r.status;
  // From this function's start, like ttft_s: send() starts its own clock a little later,
  // and a request of a few milliseconds could then end before its first token.
  rec.total_s = seconds_since(start);
  const std::string whole = out.excerpt;  // the body when it was not parsed as a stream
  out.excerpt = excerpt_of(raw);
  if (!malformed.empty()) {
    // Our receiver stopped the transfer on purpose: the stream itself is at fault, or the
    // server reported an error inside a 200 stream.
    const bool error_event = malformed.rfind("error event", 0) == 0;
    rec.outcome = error_event ? Outcome::http_error : Outcome::malformed_stream;
    rec.error = malformed;
  } else if (r.outcome != Outcome::ok) {
    rec.outcome = r.outcome;
    rec.error = r.error;
  } else if (r.status != 200) {
    rec.outcome = Outcome::http_error;
    rec.error = "HTTP " + std::to_string(r.status) + ": " + error_message_of(whole);
  } else if (stream && !parse_stream) {
    rec.outcome = Outcome::malformed_stream;
    rec.error = "stream requested but the response is " + (x.content_type.empty() ? std::string("untyped") : x.content_type);
  } else if (stream) {
    if (sse.rest().find_first_not_of("\r\n") != std::string::npos) {
      rec.outcome = Outcome::malformed_stream;
      rec.error = "stream ended inside an event: " + excerpt_of(sse.rest(), 80);
    } else if (!done) {
      rec.outcome = Outcome::malformed_stream;
      rec.error = "stream ended without data: [DONE]";
    }
  } else {
    const Json obj = Json::parse(whole, nullptr, false);
    if (!obj.is_object() || !obj.contains("choices") || !obj["choices"].is_array() || obj["choices"].empty()) {
      rec.outcome = Outcome::malformed_stream;
      rec.error = "response is not a chat.completion object: " + excerpt_of(whole, 80);
    } else {
      absorb_choice(out, obj, "message");
      absorb_usage(out, obj);
    }
  }
  rec.content_chars = static_cast<int64_t>(out.content.size());
  rec.reasoning_chars = static_cast<int64_t>(out.reasoning.size());
  rec.tool_calls = static_cast<int>(out.tool_calls.size());
  if (!out.saw_usage_in_stream) {
    rec.usage_missing = true;
    if (stream) rec.completion_tokens = counted;  // one token per event with output
  }
  if (rec.outcome == Outcome::ok && rec.completion_tokens > 0 && rec.total_s > 0) {
    rec.e2e_tokens_per_s = static_cast<double>(rec.completion_tokens) / rec.total_s;
    if (stream && rec.ttft_s >= 0 && rec.completion_tokens > 1 && rec.total_s > rec.ttft_s)
      rec.decode_tokens_per_s = static_cast<double>(rec.completion_tokens - 1) / (rec.total_s - rec.ttft_s);
  }
  return out;
}

std::string excerpt_of(const std::string& text, size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) break;
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  if (out.size() < text.size()) {
    // Back off to a character boundary (never cut a UTF-8 sequence).
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80)) out.pop_back();
    out += "...";
  }
  return out;
}

}  // namespace hearth::bench
