// A test server for the npm client tests: the real HTTP server, engine, chat template and
// output parser in front of a ScriptedRunner (scripted_runner.h) instead of the model, so
// a client can ask for exactly the output it wants to see parsed: each request's answer is
// the text between "<<<SCRIPT" and "SCRIPT>>>" in its prompt. Without a script the answer
// is empty (just end of turn).
//   scripted_serve MODEL [--api-key KEY]
// MODEL supplies the tokenizer and chat template (its weights are never run). Prints
// "serving at http://127.0.0.1:PORT/v1" once listening on a free loopback port, and exits
// 0 on SIGTERM or SIGINT.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <thread>

#include "core/error.h"
#include "engine/runtime.h"
#include "scripted_runner.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace hearth;
  if (argc < 2) {
    std::fprintf(stderr, "usage: scripted_serve MODEL [--api-key KEY]\n");
    return 2;
  }
  std::string api_key;
  for (int i = 2; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--api-key") == 0) api_key = argv[i + 1];

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    Runtime rt = Runtime::open(argv[1], {.threads = 1});
    const Tokenizer& tok = *rt.tokenizer;
    auto runner = std::make_unique<test::ScriptedRunner>(static_cast<int32_t>(rt.model->config().vocab_size),
                                                         tok.encode("<|im_start|>assistant\n"),
                                                         *tok.find_token("<|im_end|>"), &tok);
    EngineConfig ec{.n_ctx = 16384, .block_size = 16, .max_seqs = 4, .max_batch_tokens = 512};
    Engine engine(std::move(runner), rt.tokenizer.get(), rt.vocab, ec);
    server::ServedModel m;
    m.id = "scripted";
    m.tokenizer = rt.tokenizer.get();
    m.chat_template = rt.chat_template.get();
    m.defaults = rt.defaults;
    m.n_ctx = ec.n_ctx;
    server::ServerOptions so;
    so.port = 0;
    so.api_key = api_key;
    server::Server srv(m, engine, so);
    srv.bind();
    std::printf("serving at %s/v1\n", srv.url().c_str());
    std::fflush(stdout);
    std::atomic<bool> signalled{false};
    std::thread stopper([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      signalled = true;
      srv.stop();
    });
    srv.listen();
    if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);  // listen() failed: wake the stopper
    stopper.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scripted_serve: %s\n", e.what());
    return 1;
  }
  return 0;
}
