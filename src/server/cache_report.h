// Explaining the prefix cache to clients (issue 9). For every generation request the
// server asks the engine what the cache holds for the prompt as it arrives
// (Engine::probe) and reports:
//   - a response header, x-hearth-cache: cached=N; prompt=M[; diverged_at=T; message=I;
//     role=R; excerpt="..."; cached_excerpt="..."], sent before the body;
//   - usage.prompt_tokens_details.cache_miss {diverged_at, message, role, excerpt,
//     cached_excerpt} on a partial miss (usage.prompt_tokens_details.cached_tokens is the
//     final count, decided when the request is scheduled);
//   - an info line on the log.
// "Diverged" means the prompt shares at least one block's worth of tokens with the most
// similar recent request (prompt and answer) but parts from it before its own end: a
// turn's new message, or a changed system prompt or tool list, which the message index
// and the excerpts make visible. Unrelated prompts get no divergence report.
//
// The session key of a request (its blocks are evicted after one-off requests' blocks)
// comes from the x-session-affinity or x-session-id header (OpenCode sends them), else
// the body's session_id, else its user field.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "server/server_state.h"

namespace hearth::server {

// "" when the request names no session.
std::string session_key(const httplib::Request& req, const Json& body);

struct CacheReport {
  int32_t n_prompt = 0;
  int32_t n_cached = 0;         // as the request arrived
  bool diverged = false;        // parts from an earlier request before its own end
  int32_t diverged_at = 0;      // token offset of the first differing token
  int message = -1;             // chat: index of the message holding it; -1 = unknown
  std::string role;             // chat: that message's role, or "tools" for the tool list
  std::string excerpt;          // this prompt's text from the divergence (short)
  std::string cached_excerpt;   // the earlier request's text from there

  std::string header() const;  // the x-hearth-cache value (ASCII, no ';' or '"' inside fields)
  Json json() const;           // the cache_miss object
};

// prompt: the request's tokens; messages/tools: the chat body's arrays (null for
// /v1/completions); text: the rendered prompt (chat) or "".
CacheReport explain_cache(const State& st, std::span<const int32_t> prompt, const Json* messages, const Json* tools,
                          const std::string& text);

// Sets the header and writes the log line; adds cache_miss to a usage object.
void announce_cache(const CacheReport& report, const std::string& route, httplib::Response& res);
void add_cache_miss(Json& usage, const CacheReport& report);

}  // namespace hearth::server
