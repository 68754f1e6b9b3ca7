// hearth: command-line entry point. Every error a user can cause ends as one line
// "hearth: error: ..." on stderr and exit code 1 (2 for bad flags, as CLI11 does).
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"

int main(int argc, char** argv) {
  CLI::App app{"hearth: local LLM inference engine and OpenAI-compatible server"};
  app.require_subcommand(1);
  // Bad flags are one line too (CLI11's default adds a second, "Run with --help ...").
  app.failure_message([](const CLI::App*, const CLI::Error& e) { return "hearth: error: " + std::string(e.what()) + "\n"; });
  app.set_version_flag("--version", std::string("hearth 0.1.0"));
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "log progress to stderr");
  std::map<CLI::App*, hearth::cli::Command> commands;
  auto add = [&](const char* name, const char* help, auto fn) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = fn(*sub);
  };
  add("info", "describe a model file or folder", hearth::cli::add_info);
  add("run", "generate from a prompt", hearth::cli::add_run);
  add("chat", "interactive multi-turn chat in the terminal", hearth::cli::add_chat);
  add("batch", "answer a JSONL file of chat requests", hearth::cli::add_batch);
  add("bench", "benchmarks: model (in-process), endpoint (any OpenAI server), report", hearth::cli::add_bench);
  add("serve", "OpenAI-compatible HTTP server (continuous batching)", hearth::cli::add_serve);
  add("tokenize", "UTF-8 text on stdin -> token ids", hearth::cli::add_tokenize);
  add("detokenize", "token ids on stdin -> text", hearth::cli::add_detokenize);
  add("chat-template", "OpenAI chat request on stdin -> the exact prompt the model gets", hearth::cli::add_chat_template);
  add("perplexity", "perplexity of a model on a text file (sliding windows)", hearth::cli::add_perplexity);
  add("make-model", "write a synthetic Qwen3-shaped model (GGUF, HF or MLX folder)", hearth::cli::add_make_model);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (verbose) hearth::set_log_level(hearth::LogLevel::Info);
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const hearth::Error& e) {
    std::fprintf(stderr, "hearth: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hearth: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hearth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
