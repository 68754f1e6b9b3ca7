// hearth chat: an interactive multi-turn conversation on stdin/stdout.
//   hearth chat -m MODEL [--system TEXT] [--no-think] [--hide-think] [sampling flags]
// Each line is a user message (a line ending in '\' continues on the next); lines starting
// with '/' are commands (/help lists them). The answer streams as it is produced; thinking
// (<think>...</think>) is shown dimmed on a terminal, plainly in a pipe, or not at all with
// --hide-think. Ctrl-C stops the current answer and keeps the session; Ctrl-D or /exit ends
// it. The KV cache is reused across turns: each turn only computes its new tokens.
// Works with stdin and stdout as pipes (no prompt, no colours), which is how tests drive it.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"

namespace hearth::cli {
namespace {

struct ChatOptions {
  ModelFlags model;
  SamplingFlags sampling;
  std::string system;
  bool no_think = false;
  bool hide_think = false;
  bool verbose = false;
};

constexpr const char* kDim = "\x1b[2m";
constexpr const char* kReset = "\x1b[0m";
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Splits streamed answer text into thinking and answer and prints each as asked. A tag may
// arrive cut into pieces, so a tail that could begin one is held until it is decided.
class ThinkPrinter {
 public:
  ThinkPrinter(bool hide, bool color) : hide_(hide), color_(color) {}

  void feed(std::string_view piece) {
    held_.append(piece);
    for (;;) {
      const std::string_view tag = in_think_ ? kClose : kOpen;
      const size_t at = held_.find(tag);
      if (at != std::string::npos) {
        out(held_.substr(0, at));
        if (!hide_) out(std::string(tag), /*is_tag=*/true);
        held_.erase(0, at + tag.size());
        in_think_ = !in_think_;
        if (!in_think_ && color_ && !hide_) std::fputs(kReset, stdout);
        skip_newlines_ = !in_think_ && hide_;
        continue;
      }
      size_t keep = 0;  // longest tail of held_ that is a proper prefix of the tag
      for (size_t n = std::min(tag.size() - 1, held_.size()); n > 0; --n)
        if (tag.compare(0, n, held_, held_.size() - n, n) == 0) {
          keep = n;
          break;
        }
      out(held_.substr(0, held_.size() - keep));
      held_.erase(0, held_.size() - keep);
      break;
    }
    std::fflush(stdout);
  }
  // End of the answer: prints what was held and closes the colour.
  void finish() {
    out(held_);
    held_.clear();
    if (in_think_ && color_ && !hide_) std::fputs(kReset, stdout);
    if (printed_any_ && !last_newline_) std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  void out(std::string text, bool is_tag = false) {
    if (in_think_ && hide_ && !is_tag) return;
    if (skip_newlines_) {
      const size_t start = text.find_first_not_of('\n');
      text = start == std::string::npos ? "" : text.substr(start);
      if (!text.empty()) skip_newlines_ = false;
    }
    if (text.empty()) return;
    if (is_tag && in_think_ == false && color_) std::fputs(kDim, stdout);  // opening tag: dim from here
    std::fwrite(text.data(), 1, text.size(), stdout);
    printed_any_ = true;
    last_newline_ = text.back() == '\n';
  }

  bool hide_, color_;
  bool in_think_ = false;
  bool skip_newlines_ = false;
  bool printed_any_ = false;
  bool last_newline_ = false;
  std::string held_;
};

// One line from stdin without the newline; nullopt at end of input. Ctrl-C while waiting
// returns an empty line.
std::optional<std::string> read_line() {
  std::string line;
  for (;;) {
    errno = 0;
    const int c = std::fgetc(stdin);
    if (c == EOF) {
      if (errno == EINTR) {
        std::clearerr(stdin);
        interrupted().store(false);
        std::fputs("\n", stdout);
        return std::string();
      }
      if (line.empty()) return std::nullopt;
      return line;
    }
    if (c == '\n') break;
    line.push_back(static_cast<char>(c));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

const char* kHelp =
    "/reset        forget the conversation (the system prompt stays)\n"
    "/system TEXT  set the system prompt (/system alone shows it)\n"
    "/think on|off turn thinking on or off\n"
    "/stats        statistics of the last answer and the session\n"
    "/save FILE    write the conversation as JSON\n"
    "/help         this list\n"
    "/exit         end the session (also Ctrl-D)\n"
    "Ctrl-C stops an answer. End a line with \\ to continue on the next.\n";

class ChatSession {
 public:
  ChatSession(const ChatOptions& o, std::shared_ptr<LocalModel> model, SamplingParams params)
      : o_(o), model_(model), conv_(model, o.system), params_(std::move(params)) {
    conv_.set_thinking(!o.no_think);
  }

  // Returns false when the session should end.
  bool command(const std::string& line) {
    const size_t space = line.find(' ');
    const std::string name = line.substr(0, space);
    std::string arg;
    if (space != std::string::npos && line.find_first_not_of(' ', space) != std::string::npos)
      arg = line.substr(line.find_first_not_of(' ', space));
    if (name == "/exit" || name == "/quit") return false;
    if (name == "/help") {
      std::fputs(kHelp, stdout);
    } else if (name == "/reset") {
      conv_.reset();
      std::printf("[conversation reset]\n");
    } else if (name == "/system") {
      if (arg.empty()) {
        std::printf("[system prompt: %s]\n", conv_.system_prompt().empty() ? "(none)" : conv_.system_prompt().c_str());
      } else {
        conv_.set_system_prompt(arg);
        std::printf("[system prompt set]\n");
      }
    } else if (name == "/think") {
      HEARTH_CHECK(arg == "on" || arg == "off", "/think: expected on or off");
      conv_.set_thinking(arg == "on");
      std::printf("[thinking %s]\n", arg.c_str());
    } else if (name == "/stats") {
      print_stats();
    } else if (name == "/save") {
      HEARTH_CHECK(!arg.empty(), "/save: give a file name");
      std::ofstream out(arg, std::ios::binary);
      HEARTH_CHECK(out.good(), arg + ": cannot write");
      out << conv_.to_json() << "\n";
      HEARTH_CHECK(out.good(), arg + ": write failed");
      std::printf("[saved %zu messages to %s]\n", conv_.messages().size(), arg.c_str());
    } else {
      fail("unknown command " + name + " (try /help)");
    }
    std::fflush(stdout);
    return true;
  }

  void turn(const std::string& text) {
    ThinkPrinter printer(o_.hide_think, is_tty(STDOUT_FILENO));
    GenerateControl control;
    control.cancel = &interrupted();
    control.on_text = [&](std::string_view piece) { printer.feed(piece); };
    interrupted().store(false);
    Reply r = conv_.send(text, params_, control);
    printer.finish();
    if (r.finish_reason == "cancelled") std::printf("[stopped]\n");
    else if (r.finish_reason == "length") std::printf("[length limit reached]\n");
    std::fflush(stdout);
    interrupted().store(false);
    last_ = r.stats;
    ++turns_;
    total_tokens_ += r.stats.completion_tokens;
    total_s_ += r.stats.total_s;
    if (o_.verbose) std::fprintf(stderr, "%s", format_stats(r.stats).c_str());
  }

 private:
  void print_stats() {
    if (turns_ == 0) {
      std::printf("[no answer yet] context %lld tokens, load %.1f ms\n", static_cast<long long>(model_->context_length()),
                  model_->load_seconds() * 1000);
    } else {
      std::fputs(format_stats(last_).c_str(), stdout);
    }
    std::printf("session     %d turns, %lld tokens generated in %.2f s, %zu messages, context %lld tokens\n", turns_,
                static_cast<long long>(total_tokens_), total_s_, conv_.messages().size(),
                static_cast<long long>(model_->context_length()));
  }

  const ChatOptions& o_;
  std::shared_ptr<LocalModel> model_;
  Conversation conv_;
  SamplingParams params_;
  GenerationStats last_;
  int turns_ = 0;
  int64_t total_tokens_ = 0;
  double total_s_ = 0;
};

int run_chat(const ChatOptions& o) {
  auto model = load_model(o.model);
  HEARTH_CHECK(model->has_tokenizer(), model->path() + ": the model has no tokenizer, so it cannot chat");
  ChatSession session(o, model, sampling_params(o.sampling, model->default_params(), model->vocab_size()));
  install_interrupt_handler();
  const bool interactive = is_tty(STDIN_FILENO);
  if (interactive) std::printf("hearth chat: %s (/help for commands, Ctrl-D to quit)\n", model->path().c_str());
  std::string pending;
  for (;;) {
    if (interactive) {
      std::fputs(pending.empty() ? "> " : ". ", stdout);
      std::fflush(stdout);
    }
    const auto line = read_line();
    if (!line) break;
    if (!line->empty() && line->back() == '\\') {
      pending += line->substr(0, line->size() - 1) + "\n";
      continue;
    }
    const std::string text = pending + *line;
    pending.clear();
    if (text.find_first_not_of(" \t\n") == std::string::npos) continue;
    try {
      if (text[0] == '/') {
        if (!session.command(text)) break;
      } else {
        session.turn(text);
      }
    } catch (const Error& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "hearth: error: %s\n", e.what());
    }
  }
  return 0;
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  add_model_flags(app, o->model);
  app.add_option("--system", o->system, "system prompt");
  app.add_flag("--no-think", o->no_think, "turn thinking off (chat_template_kwargs enable_thinking=false)");
  app.add_flag("--hide-think", o->hide_think, "don't show the model's thinking");
  app.add_flag("--verbose", o->verbose, "print the stats of each answer to stderr");
  add_sampling_flags(app, o->sampling);
  return [o] { return run_chat(*o); };
}

}  // namespace hearth::cli
