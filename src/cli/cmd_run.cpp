// hearth run: one generation, streamed to stdout as it is produced.
//   hearth run -m MODEL -p "Why is the sky blue?" [--system TEXT] [--no-think] [sampling flags]
//   hearth run -m MODEL --raw -p "Once upon a time"          (no chat template)
//   hearth run -m MODEL --raw --prompt-tokens 1,2,3 -n 24 --temp 0 --json --logprobs 5
// --json prints one object instead: {"text", "tokens", "finish_reason", "stats"} and, with
// --logprobs K, "logprobs": [{"token", "logprob", "top": [{"id", "logprob"}...]}...].
// --verbose prints the stats to stderr. Ctrl-C stops the answer and still prints them.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"

namespace hearth::cli {
namespace {

struct RunOptions {
  ModelFlags model;
  SamplingFlags sampling;
  std::string prompt;
  std::string prompt_file;
  std::string prompt_tokens;
  std::string system;
  bool raw = false;
  bool no_think = false;
  bool json = false;
  bool verbose = false;
};

std::vector<int32_t> parse_token_list(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      fail("--prompt-tokens: '" + item + "' is not a token id");
    }
    HEARTH_CHECK(used == item.size() || item.find_first_not_of(" ", used) == std::string::npos,
                 "--prompt-tokens: '" + item + "' is not a token id");
    HEARTH_CHECK(v >= 0 && v < vocab, "--prompt-tokens: token id " + std::to_string(v) + " is outside the vocabulary (0.." +
                                          std::to_string(vocab - 1) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  HEARTH_CHECK(!ids.empty(), "--prompt-tokens: empty list");
  return ids;
}

// Flag combinations that make no sense, before anything is loaded.
void check_flags(const RunOptions& o) {
  const int sources = !o.prompt.empty() + !o.prompt_file.empty() + !o.prompt_tokens.empty();
  HEARTH_CHECK(sources <= 1, "run: give only one of -p, -f and --prompt-tokens");
  HEARTH_CHECK(sources == 1, "run: no prompt (give -p TEXT, -f FILE or --prompt-tokens IDS)");
  const bool raw = o.raw || !o.prompt_tokens.empty();
  HEARTH_CHECK(!(raw && !o.system.empty()), "run: --system needs the chat template, which --raw/--prompt-tokens skip");
  HEARTH_CHECK(!(raw && o.no_think), "run: --no-think needs the chat template, which --raw/--prompt-tokens skip");
}

std::string read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  HEARTH_CHECK(in.good(), path + ": cannot open the prompt file");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  HEARTH_CHECK(!text.empty(), path + ": the prompt file is empty");
  return text;
}

nlohmann::ordered_json logprobs_json(const std::vector<SampleLogprobs>& steps) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& s : steps) {
    auto top = nlohmann::ordered_json::array();
    for (const auto& t : s.top) top.push_back({{"id", t.id}, {"logprob", t.logprob}});
    out.push_back({{"token", s.sampled.id}, {"logprob", s.sampled.logprob}, {"top", top}});
  }
  return out;
}

int run_run(const RunOptions& o) {
  check_flags(o);
  auto model = load_model(o.model);
  SamplingParams params = sampling_params(o.sampling, model->default_params(), model->vocab_size());
  const bool token_mode = !o.prompt_tokens.empty();
  const std::string text = !o.prompt_file.empty() ? read_prompt_file(o.prompt_file) : o.prompt;

  GenerateControl control;
  control.cancel = &interrupted();
  bool first = true;
  bool ends_with_newline = true;
  if (!o.json) {
    if (token_mode && !model->has_tokenizer()) {
      control.on_token = [&](int32_t token, std::string_view) {
        std::printf("%s%d", first ? "" : ",", token);
        std::fflush(stdout);
        first = false;
        ends_with_newline = false;
        return true;
      };
    } else {
      control.on_text = [&](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        first = false;
        ends_with_newline = piece.back() == '\n';
      };
    }
  }
  install_interrupt_handler();
  Reply r;
  if (token_mode) {
    r = model->generate(parse_token_list(o.prompt_tokens, model->vocab_size()), params, control);
  } else if (o.raw) {
    r = model->complete(text, params, control);
  } else {
    Conversation conv(model, o.system);
    conv.set_thinking(!o.no_think);
    conv.add("user", text);
    r = conv.answer(params, control);
  }
  if (!o.json) {
    if (!ends_with_newline || first) std::printf("\n");
    std::fflush(stdout);
  }
  if (o.json) {
    nlohmann::ordered_json out;
    out["text"] = r.text;
    out["tokens"] = r.tokens;
    out["finish_reason"] = r.finish_reason;
    out["stats"] = stats_to_json(r.stats);
    if (params.logprobs) out["logprobs"] = logprobs_json(r.logprobs);
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  }
  if (o.verbose || r.finish_reason == "cancelled") {
    std::fprintf(stderr, "finish      %s\n%s", r.finish_reason.c_str(), format_stats(r.stats).c_str());
  }
  return 0;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  add_model_flags(app, o->model);
  app.add_option("-p,--prompt", o->prompt, "the prompt (a user message unless --raw)");
  app.add_option("-f,--file", o->prompt_file, "read the prompt from this file");
  app.add_option("--prompt-tokens", o->prompt_tokens, "prompt as comma-separated token ids (implies --raw)");
  app.add_option("--system", o->system, "system prompt");
  app.add_flag("--raw", o->raw, "do not apply the chat template");
  app.add_flag("--no-think", o->no_think, "turn thinking off (chat_template_kwargs enable_thinking=false)");
  app.add_flag("--json", o->json, "print one JSON object with text, tokens, finish_reason and stats");
  app.add_flag("--verbose", o->verbose, "print the stats to stderr");
  add_sampling_flags(app, o->sampling, /*with_logprobs=*/true);
  return [o] { return run_run(*o); };
}

}  // namespace hearth::cli
