// POST /v1/chat/completions: the request body goes through the model's chat template
// (messages, tools, chat_template_kwargs as sent), the generated text through the chat
// output parser (server/chat_output.h): Qwen3 thinking becomes reasoning_content,
// <tool_call> blocks become tool_calls. Streamed and non-streamed responses use the same
// streaming parser, so they agree by construction.
//
// tool_choice is enforced: "none" leaves the tools out of the prompt and parses no calls;
// "required" and a named function put the start of a call after the generation prompt
// (closing an open think block first); a named function (and "required" with one tool)
// writes the name too. With several tools, "required" lets the model choose the name, but
// only among the tools: sampling is constrained (SamplingParams::forced_start) until one
// name and the start of its arguments are written.
// parallel_tool_calls false ends the generation after the first complete call.
#include "server/cache_report.h"
#include "server/chat_output.h"
#include "server/server_state.h"
#include "server/sse.h"

namespace hearth::server {
namespace {

struct PreparedChat {
  std::vector<int32_t> prompt;
  std::string text;  // the rendered prompt
  ChatParseOptions parse;
  bool parallel_tool_calls = true;
  // tool_choice "required" with several tools: the token spellings of each
  // `NAME", "arguments": {` that may follow the prefill (SamplingParams::forced_start).
  std::vector<std::vector<int32_t>> forced_names;
};

// The rest of a call's head after the "required" prefill, one per tool: the name as the
// template's tojson writes it (without the opening quote, which the prefill has) and the
// opening brace of the arguments (which keeps even a weak model inside the call, as for a
// named function). The closing quote ends every name, so none is a prefix of another.
std::vector<std::vector<int32_t>> forced_tool_names(const State& st, const Json& body) {
  std::vector<std::vector<int32_t>> out;
  if (const Json* tools = get_array(body, "tools")) {
    for (const auto& t : *tools) {
      const Json* fn = get_object(t, "function");
      const std::optional<std::string> name = fn ? get_string(*fn, "name") : std::nullopt;
      if (!name || name->empty()) continue;
      const std::string head = nlohmann::ordered_json(*name).dump().substr(1) + ", \"arguments\": {";
      out.push_back(st.model.tokenizer->encode(head, /*parse_special=*/false));
    }
  }
  return out;
}

std::string_view tail(std::string_view text) { return text.substr(text.size() > 64 ? text.size() - 64 : 0); }

// The prompt ends inside an open <think> block (a template that opens it).
bool ends_in_think(std::string_view text) {
  const std::string_view t = tail(text);
  const size_t open = t.rfind("<think>");
  if (open == std::string_view::npos) return false;
  const size_t close = t.rfind("</think>");
  return close == std::string_view::npos || close < open;
}

bool thinking_model(const State& st) {
  return st.model.tokenizer->find_token("<think>").has_value() &&
         st.model.chat_template->source().find("<think>") != std::string::npos;
}

PreparedChat prepare(const State& st, const Json& body) {
  if (!st.model.chat_template || !st.model.tokenizer)
    throw ApiError(400, "this model has no tokenizer or chat template: use /v1/completions with token ids");
  const Json* messages = get_array(body, "messages");
  if (!messages || messages->empty())
    throw ApiError(400, "messages: expected a non-empty array of messages", "invalid_request_error", "messages");
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw ApiError(400, where + ": expected an object", "invalid_request_error", where);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      throw ApiError(400, where + ".role: expected a string", "invalid_request_error", where + ".role");
  }
  if (const Json* tools = get_array(body, "tools"))
    for (const auto& t : *tools)
      if (!t.is_object()) throw ApiError(400, "tools: expected an array of objects", "invalid_request_error", "tools");
  get_object(body, "chat_template_kwargs");
  // Structured output needs constrained decoding, which hearth doesn't have: refusing it
  // clearly beats answering with text that may not parse (the wording is deliberately
  // nothing like a context overflow, which agents answer by compacting and retrying).
  if (const Json* rf = get_object(body, "response_format")) {
    const std::string type = get_string(*rf, "type").value_or("text");
    if (type != "text")
      throw ApiError(400, "response_format: type \"" + type + "\" is not supported (hearth has no constrained decoding); "
                     "leave response_format out or use {\"type\": \"text\"}, and ask for JSON in the prompt",
                     "invalid_request_error", "response_format");
  }
  ToolChoice choice;
  try {
    choice = parse_tool_choice(body);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "tool_choice");
  }

  PreparedChat p;
  Json for_template = body;
  if (choice.mode == ToolChoice::Mode::None) for_template.erase("tools");
  std::string text = st.model.chat_template->apply(for_template, /*add_generation_prompt=*/true);
  p.parse.starts_in_reasoning = ends_in_think(text);
  p.parse.prefill = tool_choice_prefill(choice);
  // A named call's arguments are an object: starting it here keeps even a weak model
  // inside the call (the parser then reports it whatever follows).
  if (choice.mode == ToolChoice::Mode::Function) p.parse.prefill += "{";
  if (!p.parse.prefill.empty()) {
    // A forced call comes after the thinking, which is closed (empty) first.
    if (p.parse.starts_in_reasoning) text += "\n\n</think>\n\n";
    else if (thinking_model(st) && tail(text).find("</think>") == std::string_view::npos) text += "<think>\n\n</think>\n\n";
    text += p.parse.prefill;
  }
  if (choice.mode == ToolChoice::Mode::Required) p.forced_names = forced_tool_names(st, body);
  p.parse.tool_calls = choice.mode != ToolChoice::Mode::None;
  p.parallel_tool_calls = get_bool(body, "parallel_tool_calls").value_or(true);
  p.prompt = encode_prompt(st, text);
  p.text = std::move(text);
  return p;
}

// Puts reasoning under the configured field name(s).
void reasoning_field(Json& obj, ReasoningField f) {
  auto it = obj.find("reasoning_content");
  if (it == obj.end() || f == ReasoningField::ReasoningContent) return;
  Json value = *it;
  if (f == ReasoningField::Reasoning) obj.erase("reasoning_content");
  obj["reasoning"] = std::move(value);
}

struct ChatChoice {
  explicit ChatChoice(const ChatParseOptions& o) : parser(o) {}
  ChatStreamParser parser;
  std::string text;                // generated text, stop strings removed
  std::vector<size_t> token_end;   // text.size() after each token
  Json logprobs = Json::array();   // chat logprob entries
  bool cut = false;                // parallel_tool_calls false: stopped after the first call
  bool finished = false;
  EngineEvent fin;
  int64_t reasoning_tokens = 0;
};

struct ChatResponse {
  PreparedChat prep;
  CommonRequest c;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<ChatChoice> choices;
  RequestLog log;
  UsageTotals usage;
  CacheReport cache;
  int64_t created = 0;

  Json usage_json() const {
    Json u = server::usage_json(usage);
    add_cache_miss(u, cache);
    return u;
  }
};

// Tokens up to and including the one that closed the thinking (all of them when it
// never closed), when the message has reasoning.
int64_t count_reasoning_tokens(const ChatChoice& ch, const ChatParseOptions& opts) {
  const ChatMessage& m = ch.parser.message();
  const size_t think_open = ch.text.find("<think>");
  if (m.reasoning_content.empty() && !opts.starts_in_reasoning && think_open == std::string::npos) return 0;
  const size_t close = ch.text.find("</think>");
  if (close == std::string::npos) return ch.fin.stats.completion_tokens;
  const size_t end = close + 8;
  int64_t n = 0;
  while (static_cast<size_t>(n) < ch.token_end.size() && ch.token_end[static_cast<size_t>(n)] < end) ++n;
  return n + 1;
}

// Feeds an engine event to a choice; returns the deltas to send (already filtered for
// parallel_tool_calls). Cancels the request once a lone allowed call is complete.
std::vector<ChatDelta> apply_event(State& st, ChatResponse& r, size_t i, const EngineEvent& e) {
  ChatChoice& ch = r.choices[i];
  std::vector<ChatDelta> deltas;
  if (ch.cut && e.kind != EngineEvent::Kind::Finish) return deltas;
  if (!e.text.empty()) {
    ch.text += e.text;
    if (!ch.cut) deltas = ch.parser.feed(e.text);
  }
  if (e.kind == EngineEvent::Kind::Token) {
    ch.token_end.push_back(ch.text.size());
    if (e.logprobs) ch.logprobs.push_back(chat_logprob_entry(st.model.tokenizer, *e.logprobs));
  }
  if (e.kind == EngineEvent::Kind::Finish) {
    ch.finished = true;
    ch.fin = e;
    if (!ch.cut) {
      auto rest = ch.parser.finish();
      deltas.insert(deltas.end(), rest.begin(), rest.end());
    }
  }
  if (!r.prep.parallel_tool_calls) {
    std::vector<ChatDelta> kept;
    for (ChatDelta& d : deltas) {
      if (ch.cut) break;
      const bool call = d.kind != ChatDelta::Kind::Reasoning && d.kind != ChatDelta::Kind::Content;
      if (call && d.index > 0) continue;
      if (d.kind == ChatDelta::Kind::ToolCallEnd && d.index == 0 && !ch.finished) {
        ch.cut = true;
        st.engine.cancel(*r.streams[i]);
      }
      kept.push_back(std::move(d));
    }
    deltas = std::move(kept);
  }
  if (e.kind == EngineEvent::Kind::Finish) {
    ch.reasoning_tokens = count_reasoning_tokens(ch, r.prep.parse);
    r.usage.add(e.stats, /*count_prompt=*/i == 0);  // the choices share one prompt
    r.usage.reasoning_tokens += ch.reasoning_tokens;
  }
  return deltas;
}

ChatMessage final_message(const ChatResponse& r, const ChatChoice& ch) {
  ChatMessage m = ch.parser.message();
  if (!r.prep.parallel_tool_calls && m.tool_calls.size() > 1) m.tool_calls.resize(1);
  return m;
}

std::string choice_finish(const ChatResponse& r, const ChatChoice& ch) {
  return finish_reason(final_message(r, ch), !ch.cut && ch.fin.finish == FinishReason::Length);
}

}  // namespace

void handle_chat_completions(State& st, const httplib::Request& req, httplib::Response& res) {
  const Json body = parse_body(req.body);
  auto r = std::make_shared<ChatResponse>();
  r->c = read_common(body, st.model.defaults, /*chat=*/true, /*default_max_tokens=*/-1);
  r->prep = prepare(st, body);
  r->cache = explain_cache(st, r->prep.prompt, get_array(body, "messages"), get_array(body, "tools"), r->prep.text);
  const std::string session = session_key(req, body);
  std::vector<EngineRequest> requests;
  for (int i = 0; i < r->c.n; ++i) {
    requests.push_back({.prompt = r->prep.prompt, .params = choice_params(r->c.params, i), .session = session});
    requests.back().params.forced_start = r->prep.forced_names;
  }
  r->streams = submit_all(st, std::move(requests));
  for (int i = 0; i < r->c.n; ++i) r->choices.emplace_back(r->prep.parse);
  r->log.id = make_id("chatcmpl-");
  r->log.route = "/v1/chat/completions";
  announce_cache(r->cache, r->log.route, res);
  r->created = unix_time();

  auto release = [&st, r](bool) {
    cancel_all(st, r->streams);
    for (size_t i = 0; i < r->choices.size(); ++i)
      if (r->choices[i].finished) r->log.add(st, r->choices[i].fin.stats, choice_finish(*r, r->choices[i]), i == 0);
    r->log.write();
  };

  if (!r->c.stream) {
    res.set_chunked_content_provider(
        "application/json; charset=utf-8",
        [&st, r](size_t, httplib::DataSink& sink) {
          SinkWriter w(sink);
          const bool ok = pump(
              st, r->streams,
              [&](size_t i, const EngineEvent& e) {
                apply_event(st, *r, i, e);
                return true;
              },
              [&] { return w.write(" "); }, w, std::min(1.0, st.options.keepalive_s));
          if (!ok) return false;
          Json choices = Json::array();
          for (size_t i = 0; i < r->choices.size(); ++i) {
            const ChatChoice& ch = r->choices[i];
            if (ch.fin.finish == FinishReason::Error) {
              w.write(dump(error_json("generation failed: " + ch.fin.error, "server_error", "", "")));
              sink.done();
              return true;
            }
            Json msg = message_json(final_message(*r, ch));
            reasoning_field(msg, st.options.reasoning_field);
            choices.push_back(Json{{"index", i}, {"message", msg},
                                   {"logprobs", r->c.logprobs ? Json{{"content", ch.logprobs}} : Json(nullptr)},
                                   {"finish_reason", choice_finish(*r, ch)}});
          }
          w.write(dump(Json{{"id", r->log.id}, {"object", "chat.completion"}, {"created", r->created},
                            {"model", st.model.id}, {"choices", choices}, {"usage", r->usage_json()}}));
          sink.done();
          return true;
        },
        release);
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&st, r](size_t, httplib::DataSink& sink) {
        SinkWriter w(sink);
        auto chunk = [&](size_t i, Json delta, const Json& finish, Json logprobs) {
          Json ch = Json{{"index", i}, {"delta", std::move(delta)}};
          if (!logprobs.is_null()) ch["logprobs"] = Json{{"content", std::move(logprobs)}};
          ch["finish_reason"] = finish;
          return w.sse(Json{{"id", r->log.id}, {"object", "chat.completion.chunk"}, {"created", r->created},
                            {"model", st.model.id}, {"choices", Json::array({ch})}});
        };
        // The role goes in the first delta of each choice, and only there.
        for (size_t i = 0; i < r->choices.size(); ++i)
          if (!chunk(i, Json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)) return false;
        std::vector<size_t> lp_sent(r->choices.size(), 0);
        const bool ok = pump(
            st, r->streams,
            [&](size_t i, const EngineEvent& e) {
              ChatChoice& ch = r->choices[i];
              const auto deltas = apply_event(st, *r, i, e);
              Json lps = nullptr;
              if (ch.logprobs.size() > lp_sent[i]) {
                lps = Json::array();
                for (size_t k = lp_sent[i]; k < ch.logprobs.size(); ++k) lps.push_back(ch.logprobs[k]);
                lp_sent[i] = ch.logprobs.size();
              }
              for (const ChatDelta& d : deltas) {
                Json dj = delta_json(d);
                if (dj.is_null()) continue;
                reasoning_field(dj, st.options.reasoning_field);
                if (!chunk(i, std::move(dj), nullptr, std::exchange(lps, nullptr))) return false;
              }
              if (!lps.is_null() && !chunk(i, Json::object(), nullptr, std::move(lps))) return false;
              if (e.kind != EngineEvent::Kind::Finish) return true;
              if (e.finish == FinishReason::Error) {
                w.sse(error_json("generation failed: " + e.error, "server_error", "", ""));
                return w.ok();
              }
              return chunk(i, Json::object(), choice_finish(*r, ch), nullptr);
            },
            [&] { return w.sse_comment(); }, w, st.options.keepalive_s);
        if (!ok) return false;
        if (r->c.include_usage)
          w.sse(Json{{"id", r->log.id}, {"object", "chat.completion.chunk"}, {"created", r->created},
                     {"model", st.model.id}, {"choices", Json::array()}, {"usage", r->usage_json()}});
        w.sse_done();
        sink.done();
        return true;
      },
      release);
}

}  // namespace hearth::server
