// hearth batch: answers a JSONL file of chat requests, one output line per input line.
//   hearth batch -m MODEL --input prompts.jsonl --output results.jsonl [sampling flags]
// An input line is an object with "messages" (OpenAI chat messages) or "prompt" (one user
// message; with "raw": true the text is continued without the chat template), an optional
// "id", and OpenAI sampling fields: temperature, top_p, top_k, min_p, typical_p,
// repetition_penalty, presence_penalty, frequency_penalty, repeat_last_n, logit_bias, seed,
// max_tokens (or max_completion_tokens), stop, stop_token_ids, ignore_eos, logprobs,
// top_logprobs, chat_template_kwargs; "model" is ignored. Fields override the flags, which
// override the model's defaults. Blank lines are skipped.
// An output line is {"line": N, "id"?, "text", "finish_reason", "stats"} or
// {"line": N, "id"?, "error": "..."}: a bad line is reported and the rest go on.
// Resuming: lines already in the output file (matched by id, else by line number) are
// skipped and new results appended; each line is flushed as soon as it is written.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace hearth::cli {
namespace {

struct BatchOptions {
  ModelFlags model;
  SamplingFlags sampling;
  std::string input;
  std::string output;
  bool no_think = false;
  bool verbose = false;
};

// The key a line is known by in the output: its id when it has one, else its number.
std::string line_key(const json& id, int64_t line) {
  return id.is_null() ? "line:" + std::to_string(line) : "id:" + id.dump();
}

float number(const json& j, const char* key) {
  HEARTH_CHECK(j.at(key).is_number(), std::string(key) + ": expected a number");
  return j.at(key).get<float>();
}
int32_t integer(const json& j, const char* key) {
  const auto& v = j.at(key);
  HEARTH_CHECK(v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX,
               std::string(key) + ": expected an integer");
  return v.get<int32_t>();
}

// The request's sampling fields over `p`.
void apply_fields(const json& req, SamplingParams& p) {
  static const std::set<std::string> kKnown = {
      "id", "messages", "prompt", "raw", "model", "stream", "n", "temperature", "top_p", "top_k", "min_p", "typical_p",
      "repetition_penalty", "presence_penalty", "frequency_penalty", "repeat_last_n", "logit_bias", "seed", "max_tokens",
      "max_completion_tokens", "stop", "stop_token_ids", "ignore_eos", "logprobs", "top_logprobs", "chat_template_kwargs"};
  for (const auto& [key, value] : req.items())
    HEARTH_CHECK(kKnown.count(key), "unknown field '" + key + "'");
  if (req.contains("stream")) HEARTH_CHECK(req["stream"] == false, "stream: batch answers are not streamed");
  if (req.contains("n")) HEARTH_CHECK(req["n"] == 1, "n: only one answer per line");
  if (req.contains("temperature")) p.temperature = number(req, "temperature");
  if (req.contains("top_p")) p.top_p = number(req, "top_p");
  if (req.contains("top_k")) p.top_k = integer(req, "top_k");
  if (req.contains("min_p")) p.min_p = number(req, "min_p");
  if (req.contains("typical_p")) p.typical_p = number(req, "typical_p");
  if (req.contains("repetition_penalty")) p.repetition_penalty = number(req, "repetition_penalty");
  if (req.contains("presence_penalty")) p.presence_penalty = number(req, "presence_penalty");
  if (req.contains("frequency_penalty")) p.frequency_penalty = number(req, "frequency_penalty");
  if (req.contains("repeat_last_n")) p.penalty_last_n = integer(req, "repeat_last_n");
  if (req.contains("seed")) {
    HEARTH_CHECK(req["seed"].is_number_integer() && req["seed"].get<int64_t>() >= 0, "seed: expected a non-negative integer");
    p.seed = req["seed"].get<uint64_t>();
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (req.contains(key) && !req[key].is_null()) p.max_tokens = integer(req, key);
  if (req.contains("stop") && !req["stop"].is_null()) {
    const auto& s = req["stop"];
    HEARTH_CHECK(s.is_string() || s.is_array(), "stop: expected a string or a list of strings");
    p.stop.clear();
    if (s.is_string()) p.stop.push_back(s.get<std::string>());
    for (const auto& item : s.is_array() ? s : json::array()) {
      HEARTH_CHECK(item.is_string(), "stop: expected a string or a list of strings");
      p.stop.push_back(item.get<std::string>());
    }
  }
  if (req.contains("stop_token_ids")) {
    HEARTH_CHECK(req["stop_token_ids"].is_array(), "stop_token_ids: expected a list of token ids");
    for (const auto& item : req["stop_token_ids"]) {
      HEARTH_CHECK(item.is_number_integer(), "stop_token_ids: expected a list of token ids");
      p.stop_token_ids.push_back(item.get<int32_t>());
    }
  }
  if (req.contains("ignore_eos")) {
    HEARTH_CHECK(req["ignore_eos"].is_boolean(), "ignore_eos: expected true or false");
    p.ignore_eos = req["ignore_eos"].get<bool>();
  }
  if (req.contains("logit_bias")) {
    HEARTH_CHECK(req["logit_bias"].is_object(), "logit_bias: expected an object of token id -> bias");
    for (const auto& [id, bias] : req["logit_bias"].items()) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(id, &used);
      } catch (const std::exception&) {
      }
      HEARTH_CHECK(used == id.size() && v >= 0 && v <= INT32_MAX, "logit_bias: '" + id + "' is not a token id");
      HEARTH_CHECK(bias.is_number(), "logit_bias: the bias of " + id + " is not a number");
      p.logit_bias[static_cast<int32_t>(v)] = bias.get<float>();
    }
  }
  if (req.contains("logprobs")) {
    HEARTH_CHECK(req["logprobs"].is_boolean(), "logprobs: expected true or false");
    p.logprobs = req["logprobs"].get<bool>();
  }
  if (req.contains("top_logprobs")) p.top_logprobs = integer(req, "top_logprobs");
}

// Answers one parsed request line.
json answer(LocalModel& model, const std::shared_ptr<LocalModel>& shared, const json& req, SamplingParams p,
            bool no_think) {
  HEARTH_CHECK(req.is_object(), "expected a JSON object");
  HEARTH_CHECK(req.contains("messages") != req.contains("prompt"), "give exactly one of \"messages\" and \"prompt\"");
  apply_fields(req, p);
  p.validate(model.vocab_size());
  const bool raw = req.contains("raw") && req["raw"] == true;
  Reply r;
  if (req.contains("prompt")) {
    HEARTH_CHECK(req["prompt"].is_string(), "prompt: expected a string");
    if (raw) r = model.complete(req["prompt"].get<std::string>(), p);
  }
  if (!raw) {
    HEARTH_CHECK(!req.contains("raw") || req["raw"].is_boolean(), "raw: expected true or false");
    Conversation conv(shared);
    conv.set_thinking(!no_think);
    if (req.contains("chat_template_kwargs")) conv.set_template_kwargs(req["chat_template_kwargs"].dump());
    if (req.contains("prompt")) {
      conv.add("user", req["prompt"].get<std::string>());
    } else {
      HEARTH_CHECK(req["messages"].is_array() && !req["messages"].empty(), "messages: expected a non-empty list");
      for (const auto& m : req["messages"]) {
        HEARTH_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                         m["content"].is_string(),
                     "messages: each message needs a string \"role\" and \"content\"");
        conv.add(m["role"].get<std::string>(), m["content"].get<std::string>());
      }
    }
    r = conv.answer(p);
  }
  json out;
  out["text"] = r.text;
  out["finish_reason"] = r.finish_reason;
  out["usage"] = {{"prompt_tokens", r.stats.prompt_tokens}, {"completion_tokens", r.stats.completion_tokens}};
  out["stats"] = stats_to_json(r.stats);
  if (p.logprobs) {
    auto lp = json::array();
    for (const auto& s : r.logprobs) {
      auto top = json::array();
      for (const auto& t : s.top) top.push_back({{"id", t.id}, {"logprob", t.logprob}});
      lp.push_back({{"token", s.sampled.id}, {"logprob", s.sampled.logprob}, {"top", top}});
    }
    out["logprobs"] = lp;
  }
  return out;
}

// Keys of the lines already answered in `path`; cuts off a last line left half-written.
std::set<std::string> answered(const std::string& path) {
  std::set<std::string> keys;
  if (!fs::exists(path)) return keys;
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const size_t end = text.rfind('\n');
  const size_t keep = end == std::string::npos ? 0 : end + 1;
  if (keep < text.size()) fs::resize_file(path, keep);
  size_t start = 0;
  while (start < keep) {
    const size_t nl = text.find('\n', start);
    const auto j = json::parse(text.substr(start, nl - start), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("line") && j["line"].is_number_integer())
      keys.insert(line_key(j.contains("id") ? j["id"] : json(), j["line"].get<int64_t>()));
    start = nl + 1;
  }
  return keys;
}

void progress(int64_t done, int64_t total, int64_t errors, double tokens, double seconds) {
  constexpr int kWidth = 30;
  const int filled = total > 0 ? static_cast<int>(kWidth * done / total) : kWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %lld/%lld lines, %lld errors, %.1f tok/s ", bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total), static_cast<long long>(errors), seconds > 0 ? tokens / seconds : 0.0);
  std::fflush(stderr);
}

int run_batch(const BatchOptions& o) {
  HEARTH_CHECK(!o.input.empty() && !o.output.empty(), "batch: --input and --output are required");
  std::error_code ec;
  HEARTH_CHECK(!(fs::exists(o.output) && fs::equivalent(o.input, o.output, ec)), "batch: --output must not be the input file");
  std::ifstream in(o.input, std::ios::binary);
  HEARTH_CHECK(in.good(), o.input + ": cannot open the input file");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto model = load_model(o.model);
  const SamplingParams base = sampling_params(o.sampling, model->default_params(), model->vocab_size());
  const std::set<std::string> done_keys = answered(o.output);
  std::ofstream out(o.output, std::ios::binary | std::ios::app);
  HEARTH_CHECK(out.good(), o.output + ": cannot write");

  const bool bar = is_tty(STDERR_FILENO);
  int64_t answered_n = 0, errors = 0, skipped = 0, done = 0;
  double tokens = 0, seconds = 0;
  std::set<std::string> seen_ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t number = static_cast<int64_t>(i) + 1;
    const std::string& text = lines[i];
    ++done;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json req = json::parse(text, nullptr, false);
    const json id = !req.is_discarded() && req.is_object() && req.contains("id") ? req["id"] : json();
    if (done_keys.count(line_key(id, number))) {
      ++skipped;
      continue;
    }
    json result;
    result["line"] = number;
    if (!id.is_null()) result["id"] = id;
    try {
      HEARTH_CHECK(!req.is_discarded(), "not valid JSON");
      HEARTH_CHECK(id.is_null() || id.is_string() || id.is_number_integer(), "id: expected a string or an integer");
      HEARTH_CHECK(id.is_null() || seen_ids.insert(id.dump()).second, "id " + id.dump() + " appears twice");
      const json answered_line = answer(*model, model, req, base, o.no_think);
      for (const auto& [k, v] : answered_line.items()) result[k] = v;
      ++answered_n;
      tokens += result["stats"]["completion_tokens"].get<double>();
      seconds += result["stats"]["total_s"].get<double>();
    } catch (const std::exception& e) {
      result["error"] = e.what();
      ++errors;
    }
    out << result.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    out.flush();
    HEARTH_CHECK(out.good(), o.output + ": write failed");
    if (bar) progress(done, static_cast<int64_t>(lines.size()), errors, tokens, seconds);
    if (o.verbose) std::fprintf(stderr, "%sline %lld: %s\n", bar ? "\n" : "", static_cast<long long>(number),
                                result.contains("error") ? result["error"].get<std::string>().c_str() : "ok");
  }
  if (bar) std::fputc('\n', stderr);
  std::fprintf(stderr, "hearth: batch: %lld answered, %lld errors, %lld already in %s\n", static_cast<long long>(answered_n),
               static_cast<long long>(errors), static_cast<long long>(skipped), o.output.c_str());
  return 0;
}

}  // namespace

Command add_batch(CLI::App& app) {
  auto o = std::make_shared<BatchOptions>();
  add_model_flags(app, o->model);
  app.add_option("-i,--input", o->input, "JSONL file of chat requests")->required();
  app.add_option("-o,--output", o->output, "JSONL file of results (appended to; answered lines are skipped)")->required();
  app.add_flag("--no-think", o->no_think, "turn thinking off for every line (a line's chat_template_kwargs wins)");
  app.add_flag("--verbose", o->verbose, "report each line on stderr");
  add_sampling_flags(app, o->sampling);
  return [o] { return run_batch(*o); };
}

}  // namespace hearth::cli
