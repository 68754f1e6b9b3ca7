// POST /v1/completions: raw text completion, no chat template. The prompt is a string,
// an array of token ids, or an array of either (one set of choices per prompt); echo
// puts the prompt in front of the text; logprobs N reports each token's log-probability
// and the N most likely alternatives in the legacy {"tokens", "token_logprobs",
// "top_logprobs", "text_offset"} shape, prompt tokens included with echo (the first has
// no logprob). Streaming sends "text_completion" chunks over SSE, then [DONE].
#include "server/cache_report.h"
#include "server/server_state.h"
#include "server/sse.h"

namespace hearth::server {
namespace {

struct Prompt {
  std::vector<int32_t> ids;
  std::string text;  // for echo
};

std::vector<Prompt> read_prompts(const State& st, const Json& body) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) throw ApiError(400, "prompt: required", "invalid_request_error", "prompt");
  const Tokenizer* tok = st.model.tokenizer;
  auto from_ids = [&](const Json& arr) {
    Prompt p;
    for (const auto& v : arr) {
      if (!v.is_number_integer()) throw ApiError(400, "prompt: expected a string, an array of token ids, or an array of those",
                                                 "invalid_request_error", "prompt");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= st.engine.n_vocab())
        throw ApiError(400, "prompt: token id " + std::to_string(id) + " is not in the vocabulary", "invalid_request_error",
                       "prompt");
      p.ids.push_back(static_cast<int32_t>(id));
    }
    if (tok) p.text = tok->decode(p.ids);
    return p;
  };
  auto from_text = [&](const std::string& text) { return Prompt{encode_prompt(st, text), text}; };
  std::vector<Prompt> out;
  if (it->is_string()) {
    out.push_back(from_text(it->get<std::string>()));
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    out.push_back(from_ids(*it));
  } else if (it->is_array() && !it->empty()) {
    for (const auto& p : *it) {
      if (p.is_string()) out.push_back(from_text(p.get<std::string>()));
      else if (p.is_array()) out.push_back(from_ids(p));
      else throw ApiError(400, "prompt: expected a string, an array of token ids, or an array of those",
                          "invalid_request_error", "prompt");
    }
  } else {
    throw ApiError(400, "prompt: expected a non-empty string, array of token ids, or array of those",
                   "invalid_request_error", "prompt");
  }
  if (out.size() > 16) throw ApiError(400, "prompt: at most 16 prompts per request", "invalid_request_error", "prompt");
  for (const Prompt& p : out)
    if (p.ids.empty()) throw ApiError(400, "prompt: the prompt is empty", "invalid_request_error", "prompt");
  return out;
}

// The legacy logprobs object of one choice, built as tokens arrive.
struct LegacyLogprobs {
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(),
       text_offset = Json::array();
  size_t offset = 0;

  void add(const Tokenizer* tok, int32_t id, std::optional<float> lp, const std::vector<TokenLogprob>* top) {
    const std::string piece = token_piece(tok, id);
    tokens.push_back(piece);
    token_logprobs.push_back(lp ? Json(*lp) : Json(nullptr));
    if (top) {
      Json t = Json::object();
      for (const TokenLogprob& x : *top) t[token_piece(tok, x.id)] = x.logprob;
      top_logprobs.push_back(t);
    } else {
      top_logprobs.push_back(nullptr);
    }
    text_offset.push_back(offset);
    offset += piece.size();
  }
  void add_prompt(const Tokenizer* tok, const std::vector<int32_t>& ids, const std::vector<SampleLogprobs>& lps) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i == 0) add(tok, ids[0], std::nullopt, nullptr);
      else if (i - 1 < lps.size()) add(tok, ids[i], lps[i - 1].sampled.logprob, &lps[i - 1].top);
    }
  }
  void add_sample(const Tokenizer* tok, const SampleLogprobs& lp) { add(tok, lp.sampled.id, lp.sampled.logprob, &lp.top); }
  Json json() const {
    return Json{{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
                {"text_offset", text_offset}};
  }
  // The entries added since `from` (for a streamed chunk).
  Json slice(size_t from) const {
    auto part = [&](const Json& a) {
      Json out = Json::array();
      for (size_t i = from; i < a.size(); ++i) out.push_back(a[i]);
      return out;
    };
    return Json{{"tokens", part(tokens)}, {"token_logprobs", part(token_logprobs)}, {"top_logprobs", part(top_logprobs)},
                {"text_offset", part(text_offset)}};
  }
};

struct Choice {
  std::string text;
  LegacyLogprobs lps;
  std::string finish_reason;
  bool error = false;
  std::string error_message;
};

}  // namespace

void handle_completions(State& st, const httplib::Request& req, httplib::Response& res) {
  const Json body = parse_body(req.body);
  const CommonRequest c = read_common(body, st.model.defaults, /*chat=*/false, /*default_max_tokens=*/16);
  const bool echo = get_bool(body, "echo").value_or(false);
  const std::vector<Prompt> prompts = read_prompts(st, body);

  // The cache report covers the first prompt (the only one, in practice).
  const CacheReport cache = explain_cache(st, prompts[0].ids, nullptr, nullptr, "");
  const std::string session = session_key(req, body);
  std::vector<EngineRequest> requests;
  for (const Prompt& p : prompts)
    for (int i = 0; i < c.n; ++i)
      requests.push_back({.prompt = p.ids,
                          .params = choice_params(c.params, i),
                          .prompt_logprobs = echo && c.logprobs,
                          .session = session});
  auto streams = submit_all(st, std::move(requests));

  struct Response {
    std::vector<Prompt> prompts;
    CommonRequest c;
    bool echo = false;
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<Choice> choices;
    RequestLog log;
    UsageTotals usage;
    CacheReport cache;
    Json usage_json() const {
      Json u = server::usage_json(usage);
      add_cache_miss(u, cache);
      return u;
    }
  };
  auto r = std::make_shared<Response>();
  r->prompts = prompts;
  r->c = c;
  r->echo = echo;
  r->streams = streams;
  r->choices.resize(streams.size());
  r->cache = cache;
  r->log.id = make_id("cmpl-");
  r->log.route = "/v1/completions";
  announce_cache(cache, r->log.route, res);
  const int64_t created = unix_time();
  const Tokenizer* tok = st.model.tokenizer;
  const auto n = static_cast<size_t>(c.n);

  auto chunk = [&st, r, created](size_t i, const std::string& text, Json logprobs, const Json& finish) {
    Json ch = Json{{"index", i}, {"text", text}, {"logprobs", std::move(logprobs)}, {"finish_reason", finish}};
    return Json{{"id", r->log.id}, {"object", "text_completion"}, {"created", created}, {"model", st.model.id},
                {"choices", Json::array({ch})}};
  };

  // Applies one engine event to its choice; returns the text it added.
  auto apply = [&st, r, tok, n](size_t i, const EngineEvent& e) -> std::string {
    Choice& ch = r->choices[i];
    const Prompt& p = r->prompts[i / n];
    std::string added = e.text;
    if (e.kind == EngineEvent::Kind::Prompt && r->c.logprobs) ch.lps.add_prompt(tok, p.ids, e.prompt_logprobs);
    if (e.kind == EngineEvent::Kind::Token && e.logprobs) ch.lps.add_sample(tok, *e.logprobs);
    if (e.kind == EngineEvent::Kind::Finish) {
      if (e.finish == FinishReason::Error) {
        ch.error = true;
        ch.error_message = e.error;
      }
      ch.finish_reason = e.finish == FinishReason::Length ? "length" : "stop";
      r->usage.add(e.stats, i % n == 0);
      r->log.add(st, e.stats, ch.finish_reason, i % n == 0);
    }
    ch.text += added;
    return added;
  };
  // With echo and logprobs the prompt's entries come first; without logprobs the prompt
  // text is all echo needs, and it is known now.
  if (echo)
    for (size_t i = 0; i < r->choices.size(); ++i) r->choices[i].text = r->prompts[i / n].text;

  auto release = [&st, r](bool) {
    cancel_all(st, r->streams);
    r->log.write();
  };

  if (!c.stream) {
    res.set_chunked_content_provider(
        "application/json; charset=utf-8",
        [&st, r, apply, created](size_t, httplib::DataSink& sink) {
          SinkWriter w(sink);
          const bool ok = pump(
              st, r->streams,
              [&](size_t i, const EngineEvent& e) {
                apply(i, e);
                return true;
              },
              [&] { return w.write(" "); }, w, std::min(1.0, st.options.keepalive_s));
          if (!ok) return false;
          for (const Choice& ch : r->choices)
            if (ch.error) {
              w.write(dump(error_json("generation failed: " + ch.error_message, "server_error", "", "")));
              sink.done();
              return true;
            }
          Json choices = Json::array();
          for (size_t i = 0; i < r->choices.size(); ++i) {
            const Choice& ch = r->choices[i];
            choices.push_back(Json{{"index", i}, {"text", ch.text},
                                   {"logprobs", r->c.logprobs ? ch.lps.json() : Json(nullptr)},
                                   {"finish_reason", ch.finish_reason}});
          }
          Json out = Json{{"id", r->log.id}, {"object", "text_completion"}, {"created", created},
                          {"model", st.model.id}, {"choices", choices}, {"usage", r->usage_json()}};
          w.write(dump(out));
          sink.done();
          return true;
        },
        release);
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&st, r, apply, chunk, created](size_t, httplib::DataSink& sink) {
        SinkWriter w(sink);
        std::vector<size_t> sent_lps(r->choices.size(), 0);
        if (r->echo && !r->c.logprobs)
          for (size_t i = 0; i < r->choices.size(); ++i)
            if (!w.sse(chunk(i, r->choices[i].text, nullptr, nullptr))) return false;
        const bool ok = pump(
            st, r->streams,
            [&](size_t i, const EngineEvent& e) {
              Choice& ch = r->choices[i];
              std::string text = apply(i, e);
              if (e.kind == EngineEvent::Kind::Prompt && r->echo) text = r->prompts[i / static_cast<size_t>(r->c.n)].text;
              const bool fin = e.kind == EngineEvent::Kind::Finish;
              if (fin && ch.error) {
                w.sse(error_json("generation failed: " + ch.error_message, "server_error", "", ""));
                return w.ok();
              }
              Json lps = nullptr;
              if (r->c.logprobs && ch.lps.tokens.size() > sent_lps[i]) {
                lps = ch.lps.slice(sent_lps[i]);
                sent_lps[i] = ch.lps.tokens.size();
              }
              if (text.empty() && lps.is_null() && !fin) return true;
              return w.sse(chunk(i, text, lps, fin ? Json(ch.finish_reason) : Json(nullptr)));
            },
            [&] { return w.sse_comment(); }, w, st.options.keepalive_s);
        if (!ok) return false;
        if (r->c.include_usage)
          w.sse(Json{{"id", r->log.id}, {"object", "text_completion"}, {"created", created},
                     {"model", st.model.id}, {"choices", Json::array()}, {"usage", r->usage_json()}});
        w.sse_done();
        sink.done();
        return true;
      },
      release);
}

}  // namespace hearth::server
