// hearth serve: the OpenAI-compatible server.
//   hearth serve -m MODEL [--host 127.0.0.1] [--port 8080] [-c CTX] [--parallel N]
//                [--api-key KEY | --api-key-file F] [--alias NAME] [-t THREADS]
//                [--no-prefix-cache] [--cache-ram SIZE] [--cache-dir DIR --cache-disk-size SIZE]
// Loads the model (the demo model without -m), starts the engine's compute thread and the
// HTTP server, prints the URL and an OpenCode provider config, and serves until SIGINT or
// SIGTERM, which end it cleanly (running requests finish with an error, sockets close).
// The prefix cache is on unless --no-prefix-cache: its device budget is the KV pool
// (--kv-tokens), its host budget --cache-ram, its disk tier --cache-dir/--cache-disk-size
// (the pool's cached blocks are saved there at shutdown and found again after a restart).
#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <pthread.h>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/runtime.h"
#include "server/server.h"

namespace hearth::cli {
namespace {

struct ServeOptions {
  std::string model, host = "127.0.0.1", api_key, api_key_file, alias, cors, device = "auto";
  std::string reasoning_field = "reasoning_content";
  std::string kv_cache_type;  // "" = the backend's default
  int port = 8080, parallel = 4, threads = 0, batch = 0, max_queue = 64;  // batch 0: Runtime::resolve_batch
  int64_t ctx = 0, kv_tokens = 0;
  bool prefix_cache = false;     // accepted for compatibility: the cache is on by default
  bool no_prefix_cache = false;
  std::string cache_dir, cache_disk_size = "4G", cache_ram = "0";
};

// "4G", "512M", "1.5GiB", "100000" (bytes) -> bytes.
int64_t parse_size(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();  // "GB", "GiB" -> "G", "GI"
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mult = 0;
  if (unit.empty()) mult = 1;
  else if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  HEARTH_CHECK(v >= 0 && mult > 0 && v * mult < 9.0e18,
               flag + " " + text + ": expected a size such as 512M, 4G or a number of bytes");
  return static_cast<int64_t>(v * mult);
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  HEARTH_CHECK(in.good(), "--api-key-file " + path + ": cannot read the file");
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  HEARTH_CHECK(!key.empty(), "--api-key-file " + path + ": the first line is empty");
  return key;
}

server::ReasoningField reasoning_field(const std::string& s) {
  if (s == "reasoning_content") return server::ReasoningField::ReasoningContent;
  if (s == "reasoning") return server::ReasoningField::Reasoning;
  if (s == "both") return server::ReasoningField::Both;
  fail("--reasoning-field " + s + ": expected reasoning_content, reasoning or both");
}

// The provider block OpenCode needs for this server (docs: opencode.md in the reference notes).
std::string opencode_snippet(const std::string& base_url, const std::string& id, int32_t n_ctx, bool key, bool thinking) {
  nlohmann::ordered_json model{{"name", id + " (hearth)"}, {"tool_call", true}, {"reasoning", thinking},
                               {"temperature", true}};
  if (thinking) model["interleaved"] = {{"field", "reasoning_content"}};
  model["limit"] = {{"context", n_ctx}, {"output", std::min<int32_t>(n_ctx / 2, 32000)}};
  nlohmann::ordered_json options{{"baseURL", base_url + "/v1"}};
  if (key) options["apiKey"] = "{env:HEARTH_API_KEY}";
  nlohmann::ordered_json cfg{
      {"$schema", "https://opencode.ai/config.json"},
      {"provider",
       {{"hearth",
         {{"npm", "@ai-sdk/openai-compatible"}, {"name", "hearth"}, {"options", options}, {"models", {{id, model}}}}}}},
      {"model", "hearth/" + id}};
  return cfg.dump(2);
}

int run_serve(const ServeOptions& o) {
  HEARTH_CHECK(o.api_key.empty() || o.api_key_file.empty(), "--api-key and --api-key-file: give one of them");
  HEARTH_CHECK(o.port >= 0 && o.port <= 65535, "--port " + std::to_string(o.port) + ": expected 0 to 65535");
  HEARTH_CHECK(o.parallel >= 1 && o.parallel <= 256, "--parallel " + std::to_string(o.parallel) + ": expected 1 to 256");
  HEARTH_CHECK(o.threads >= 0 && o.threads <= 1024, "-t/--threads " + std::to_string(o.threads) + ": expected 0 (all) to 1024");
  HEARTH_CHECK(o.batch == 0 || (o.batch >= 16 && o.batch <= 65536),
               "-b/--batch " + std::to_string(o.batch) + ": expected 16 to 65536");
  HEARTH_CHECK(o.max_queue >= 1, "--max-queue must be at least 1");
  const server::ReasoningField field = reasoning_field(o.reasoning_field);
  HEARTH_CHECK(!(o.prefix_cache && o.no_prefix_cache), "--prefix-cache and --no-prefix-cache: give one of them");
  HEARTH_CHECK(!o.no_prefix_cache || (o.cache_dir.empty() && o.cache_ram == "0"),
               "--cache-dir/--cache-ram need the prefix cache: drop --no-prefix-cache");
  const int64_t cache_ram = parse_size("--cache-ram", o.cache_ram);
  const int64_t cache_disk = parse_size("--cache-disk-size", o.cache_disk_size);
  HEARTH_CHECK(o.cache_dir.empty() || cache_disk > 0, "--cache-disk-size must be positive with --cache-dir");
  const std::string key = o.api_key_file.empty() ? o.api_key : read_key_file(o.api_key_file);

  // SIGINT/SIGTERM are taken by a waiting thread (sigwait), so every thread started from
  // here on inherits the blocked mask and no handler runs in the middle of the engine.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const std::string path = resolve_model(o.model);
  if (o.model.empty()) std::fprintf(stderr, "hearth: using the demo model %s (%s)\n", path.c_str(), kDemoModelNote);
  Runtime rt = Runtime::open(path, {.threads = o.threads, .device = o.device, .kv_cache_type = o.kv_cache_type});
  const int32_t n_ctx = rt.resolve_context(o.ctx);
  HEARTH_CHECK(o.kv_tokens == 0 || o.kv_tokens >= n_ctx,
               "--kv-tokens " + std::to_string(o.kv_tokens) + ": must hold at least one full context (" +
                   std::to_string(n_ctx) + ")");
  EngineConfig ec{.n_ctx = n_ctx,
                  .n_kv_tokens = static_cast<int32_t>(o.kv_tokens),
                  .block_size = 16,
                  .max_seqs = o.parallel,
                  .max_batch_tokens = rt.resolve_batch(o.batch),
                  .max_queue = o.max_queue,
                  .prefix_cache = !o.no_prefix_cache,
                  .cache_dir = o.cache_dir,
                  .cache_disk_bytes = cache_disk,
                  .cache_ram_bytes = cache_ram};
  Engine engine(std::make_unique<ModelRunner>(*rt.model), rt.tokenizer.get(), rt.vocab, ec);

  server::ServedModel m;
  m.id = o.alias.empty() ? std::filesystem::path(path).filename().replace_extension().string() : o.alias;
  if (m.id.empty()) m.id = "hearth";
  m.tokenizer = rt.tokenizer.get();
  m.chat_template = rt.chat_template.get();
  m.defaults = rt.defaults;
  m.n_ctx = n_ctx;
  m.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.api_key = key;
  so.cors_origin = o.cors;
  so.reasoning_field = field;
  so.http_threads = std::max(64, 8 * o.parallel);
  server::Server srv(m, engine, so);
  srv.bind();

  const bool thinking = rt.tokenizer && rt.tokenizer->find_token("<think>").has_value() && rt.chat_template &&
                        rt.chat_template->source().find("<think>") != std::string::npos;
  std::printf("hearth: serving %s as \"%s\" at %s/v1 (context %d tokens, %d parallel)\n", path.c_str(), m.id.c_str(),
              srv.url().c_str(), n_ctx, o.parallel);
  std::printf("OpenCode provider config (opencode.json%s):\n%s\n", key.empty() ? "" : "; export HEARTH_API_KEY",
              opencode_snippet(srv.url(), m.id, n_ctx, !key.empty(), thinking).c_str());
  std::fflush(stdout);
  if (log_level() < LogLevel::Info) set_log_level(LogLevel::Info);  // one line per request

  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    signalled = true;
    log_info(std::string("serve: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", shutting down");
    srv.stop();
  });
  srv.listen();
  // listen() also returns when the socket fails; wake the stopper so it can be joined.
  if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return 0;
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  app.add_option("-m,--model", o->model, std::string("a .gguf file or a model folder (default: ") + kDemoModel + ")");
  app.add_option("--host", o->host, "address to listen on (default 127.0.0.1: this machine only)");
  app.add_option("--port", o->port, "TCP port (default 8080; 0 = any free port)");
  app.add_option("-c,--ctx", o->ctx, "tokens per request, prompt + completion (default: the model's, capped by free memory)");
  app.add_option("--parallel", o->parallel, "requests decoded together (default 4); more wait in a queue");
  app.add_option("--max-queue", o->max_queue, "requests waiting beyond --parallel before 503s (default 64)");
  app.add_option("--kv-tokens", o->kv_tokens,
                 "KV pool size in tokens, shared by running requests and the prefix cache (default: --ctx)");
  app.add_flag("--no-prefix-cache", o->no_prefix_cache, "recompute every prompt (the prefix cache is on by default)");
  app.add_flag("--prefix-cache", o->prefix_cache, "reuse cached prompt prefixes (the default)");
  app.add_option("--cache-ram", o->cache_ram, "host memory for KV blocks evicted from the pool, e.g. 2G (default 0)");
  app.add_option("--cache-dir", o->cache_dir, "folder where evicted (and, at shutdown, cached) KV blocks are kept");
  app.add_option("--cache-disk-size", o->cache_disk_size, "most bytes of block files in --cache-dir (default 4G)");
  app.add_option("--api-key", o->api_key, "require 'Authorization: Bearer KEY'");
  app.add_option("--api-key-file", o->api_key_file, "read the key from the first line of a file");
  app.add_option("--alias", o->alias, "model name in the API (default: the file name)");
  app.add_option("--cors", o->cors, "allow browser requests from this origin ('*' for any); off by default");
  app.add_option("--reasoning-field", o->reasoning_field, "reasoning_content (default), reasoning or both");
  app.add_option("-t,--threads", o->threads, "CPU threads (default: all)");
  app.add_option("-b,--batch", o->batch,
                 "tokens per forward pass, shared by prompts and decodes (default 2048 on a GPU, 512 on the CPU)");
  app.add_option("--device", o->device, "cuda, cpu or auto (default auto)");
  app.add_option("--kv-cache-type", o->kv_cache_type, kKvCacheTypeHelp);
  return [o] { return run_serve(*o); };
}

}  // namespace hearth::cli
