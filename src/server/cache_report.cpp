// Prefix cache reports: session keys, divergence, header and usage field (cache_report.h).
#include "server/cache_report.h"

#include <algorithm>
#include <vector>

#include "core/log.h"

namespace hearth::server {
namespace {

constexpr int32_t kExcerptTokens = 12;
constexpr size_t kExcerptChars = 48;

// Printable ASCII for a header: control characters, quotes, ';' and bytes >= 0x80 become
// escapes; cut to kExcerptChars.
std::string header_safe(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= kExcerptChars) break;
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '"' || c == ';' || c == '\\' || c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string decode(const Tokenizer* tok, std::span<const int32_t> ids) {
  if (!tok) return "";
  try {
    return tok->decode(ids, /*skip_special=*/false);
  } catch (const Error&) {
    return "";
  }
}

// The text of a message's content (a string, or the text parts of an array).
std::string content_text(const Json& m) {
  auto c = m.find("content");
  if (c == m.end()) return "";
  if (c->is_string()) return c->get<std::string>();
  std::string out;
  if (c->is_array())
    for (const auto& part : *c)
      if (part.is_object() && part.contains("text") && part["text"].is_string()) out += part["text"].get<std::string>();
  return out;
}

// Strings a message renders, in order: its content, then for each tool call its name and
// its string argument values (templates re-serialize the arguments, so the values, not
// the JSON text, are what can be found).
std::vector<std::string> anchors(const Json& m) {
  std::vector<std::string> out;
  if (std::string c = content_text(m); !c.empty()) out.push_back(std::move(c));
  auto calls = m.find("tool_calls");
  if (calls == m.end() || !calls->is_array()) return out;
  for (const auto& call : *calls) {
    const Json* fn = call.is_object() && call.contains("function") ? &call["function"] : nullptr;
    if (!fn || !fn->is_object()) continue;
    if (fn->contains("name") && (*fn)["name"].is_string()) out.push_back((*fn)["name"].get<std::string>());
    if (!fn->contains("arguments") || !(*fn)["arguments"].is_string()) continue;
    const Json args = Json::parse((*fn)["arguments"].get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (args.is_object())
      for (const auto& [k, v] : args.items())
        if (v.is_string() && !v.get<std::string>().empty()) out.push_back(v.get<std::string>());
  }
  return out;
}

// Which message (or the tool list) holds character `at` of the rendered prompt: each
// message's rendered strings (anchors) are found in order; message i owns the text after
// message i-1's last anchor up to the end of its own, so template markup before a
// message's text belongs to it.
void locate(CacheReport& r, const Json& messages, const Json* tools, const std::string& text, size_t at) {
  if (tools && !tools->empty()) {
    size_t first = std::string::npos, last = 0;
    size_t from = 0;
    for (const auto& t : *tools) {
      const Json* fn = t.contains("function") ? &t["function"] : &t;
      if (!fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string()) continue;
      const size_t p = text.find("\"" + (*fn)["name"].get<std::string>() + "\"", from);
      if (p == std::string::npos) continue;
      first = std::min(first, p);
      last = std::max(last, p + (*fn).dump().size());
      from = p + 1;
    }
    // The schema of a tool starts a little before its name ({"type": "function", ...).
    if (first != std::string::npos && at + 64 >= first && at <= last) {
      r.role = "tools";
      return;
    }
  }
  size_t pos = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    size_t end = pos;
    if (messages[i].is_object())
      for (const std::string& a : anchors(messages[i]))
        if (const size_t p = text.find(a, end); p != std::string::npos) end = p + a.size();
    if (at < end || i + 1 == messages.size()) {
      r.message = static_cast<int>(i);
      auto role = messages[i].find("role");
      r.role = role != messages[i].end() && role->is_string() ? role->get<std::string>() : "";
      if (at >= end) r.role += " (after)";  // in the markup after the last message
      return;
    }
    pos = end;
  }
}

}  // namespace

std::string session_key(const httplib::Request& req, const Json& body) {
  for (const char* h : {"x-session-affinity", "x-session-id"}) {
    std::string v = req.get_header_value(h);
    if (!v.empty()) return v;
  }
  if (auto s = get_string(body, "session_id"); s && !s->empty()) return *s;
  if (auto s = get_string(body, "user"); s && !s->empty()) return *s;
  return "";
}

CacheReport explain_cache(const State& st, std::span<const int32_t> prompt, const Json* messages, const Json* tools,
                          const std::string& text) {
  const CacheProbe p = st.engine.probe(prompt);
  CacheReport r;
  r.n_prompt = static_cast<int32_t>(prompt.size());
  r.n_cached = p.n_cached;
  // A partial miss: the prompt shares at least a block's worth with an earlier request
  // but not all of it. A prompt unrelated to everything before is not explained.
  const int32_t min_shared = st.engine.config().block_size;
  if (!p.nearest.found || p.nearest.common < min_shared || p.nearest.common >= r.n_prompt) return r;
  r.diverged = true;
  r.diverged_at = p.nearest.common;
  const Tokenizer* tok = st.model.tokenizer;
  const auto from = prompt.subspan(static_cast<size_t>(r.diverged_at));
  r.excerpt = decode(tok, from.first(std::min<size_t>(from.size(), kExcerptTokens)));
  const auto& other = p.nearest.other_next;
  r.cached_excerpt = decode(tok, std::span<const int32_t>(other).first(std::min<size_t>(other.size(), kExcerptTokens)));
  if (messages && tok && !text.empty()) {
    // The decoded prefix has the rendered text's length when the ids came from it.
    const size_t at = decode(tok, prompt.first(static_cast<size_t>(r.diverged_at))).size();
    locate(r, *messages, tools, text, at);
  }
  return r;
}

std::string CacheReport::header() const {
  std::string h = "cached=" + std::to_string(n_cached) + "; prompt=" + std::to_string(n_prompt);
  if (!diverged) return h;
  h += "; diverged_at=" + std::to_string(diverged_at);
  if (message >= 0) h += "; message=" + std::to_string(message);
  if (!role.empty()) h += "; role=" + header_safe(role);
  h += "; excerpt=\"" + header_safe(excerpt) + "\"; cached_excerpt=\"" + header_safe(cached_excerpt) + "\"";
  return h;
}

Json CacheReport::json() const {
  Json j{{"diverged_at", diverged_at}};
  j["message"] = message >= 0 ? Json(message) : Json(nullptr);
  j["role"] = role.empty() ? Json(nullptr) : Json(role);
  j["excerpt"] = excerpt;
  j["cached_excerpt"] = cached_excerpt;
  return j;
}

void announce_cache(const CacheReport& r, const std::string& route, httplib::Response& res) {
  res.set_header("x-hearth-cache", r.header());
  if (r.diverged && r.n_cached < r.n_prompt)
    log_info("prefix cache: " + route + " " + std::to_string(r.n_cached) + "/" + std::to_string(r.n_prompt) +
             " prompt tokens cached; diverged from the nearest earlier request at token " + std::to_string(r.diverged_at) +
             (r.message >= 0 ? " (message " + std::to_string(r.message) + ", " + r.role + ")"
                             : r.role.empty() ? "" : " (" + r.role + ")") +
             ": \"" + header_safe(r.excerpt) + "\" where it had \"" + header_safe(r.cached_excerpt) + "\"");
}

void add_cache_miss(Json& usage, const CacheReport& r) {
  if (!r.diverged) return;
  usage["prompt_tokens_details"]["cache_miss"] = r.json();
}

}  // namespace hearth::server
