// hearth bench endpoint / hearth bench report (src/bench does the work).
//   hearth bench endpoint --url http://127.0.0.1:PORT/v1 --model NAME --out results.json
//        [--label NAME] [--api-key K] [--suite file.jsonl] [--reps N] [--warmup N]
//        [--max-tokens N] [--concurrency 1,2,4,8] [--timeout S] [--pid P | --spawn "cmd"]
//        [--no-probe] [--note TEXT]
//   hearth bench report r1.json r2.json ... --out report.md
// Progress goes to stderr, one line per request: test, repetition, last figure.
#include <cstdio>
#include <sstream>

#include "bench/endpoint.h"
#include "bench/process.h"
#include "bench/report.h"
#include "cli/commands.h"
#include "core/error.h"

namespace hearth::cli {
namespace {

struct EndpointFlags {
  std::string url, model, label, api_key, suite, concurrency = "1,2,4,8", spawn, out, note, server_log;
  int reps = 3, warmup = 1, max_tokens = 200, sweep_requests = 2;
  double timeout = 300, load_timeout = 600;
  int64_t pid = 0;
  bool no_probe = false;
};

std::vector<int> parse_clients(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEARTH_CHECK(used == item.size() && !item.empty() && v >= 1 && v <= 1024,
                 "--concurrency: '" + item + "' is not a client count from 1 to 1024");
    out.push_back(v);
  }
  return out;
}

int run_endpoint_command(const EndpointFlags& f) {
  HEARTH_CHECK(f.pid == 0 || f.spawn.empty(), "--pid and --spawn: give one of them");
  HEARTH_CHECK(f.reps >= 1 && f.reps <= 1000, "--reps " + std::to_string(f.reps) + ": expected 1 to 1000");
  HEARTH_CHECK(f.warmup >= 0 && f.warmup <= 100, "--warmup " + std::to_string(f.warmup) + ": expected 0 to 100");
  HEARTH_CHECK(f.max_tokens >= 1 && f.max_tokens <= 1000000, "--max-tokens " + std::to_string(f.max_tokens) + ": expected 1 to 1000000");
  HEARTH_CHECK(f.timeout > 0 && f.timeout <= 86400, "--timeout: expected 1 to 86400 seconds");
  HEARTH_CHECK(f.sweep_requests >= 1 && f.sweep_requests <= 1000, "--sweep-requests: expected 1 to 1000");
  bench::EndpointOptions o;
  o.endpoint = bench::Endpoint::parse(f.url);
  o.endpoint.api_key = f.api_key;
  o.endpoint.timeout_s = f.timeout;
  o.endpoint.read_timeout_s = f.timeout;
  o.model = f.model;
  o.label = f.label.empty() ? f.model : f.label;
  o.suite = f.suite.empty() ? bench::default_suite() : bench::load_suite(f.suite);
  o.max_tokens = f.max_tokens;
  o.repetitions = f.reps;
  o.warmup = f.warmup;
  o.concurrency = f.concurrency.empty() ? std::vector<int>{} : parse_clients(f.concurrency);
  o.sweep_requests = f.sweep_requests;
  o.probe = !f.no_probe;
  o.note = f.note;
  o.progress = [](const std::string& line) {
    std::fprintf(stderr, "bench: %s\n", line.c_str());
    std::fflush(stderr);
  };
  std::unique_ptr<bench::ServerProcess> process;
  if (!f.spawn.empty()) {
    // Sockets may share a port (SO_REUSEPORT): a server already answering there would be
    // measured instead of ours, so refuse.
    bench::Endpoint quick = o.endpoint;
    quick.connect_timeout_s = 1;
    quick.timeout_s = quick.read_timeout_s = 5;
    HEARTH_CHECK(bench::http_get(quick, "/models").outcome == bench::Outcome::connection_refused,
                 "--spawn: something already answers at " + o.endpoint.url() + "; stop it or use another port");
    const std::string log = f.server_log.empty() ? f.out + ".server.log" : f.server_log;
    process = bench::ServerProcess::spawn(f.spawn, log);
    std::fprintf(stderr, "bench: started the server (pid %lld, output in %s), waiting for %s/models\n",
                 static_cast<long long>(process->metrics().pid), log.c_str(), o.endpoint.url().c_str());
    const double load = process->wait_ready(o.endpoint, f.load_timeout);
    std::fprintf(stderr, "bench: the server answered after %.2f s\n", load);
  } else if (f.pid != 0) {
    process = bench::ServerProcess::attach(f.pid);
  }
  o.process = process.get();
  {
    // A quick reachability check: a wrong URL should be one clear line, not 40 failures.
    bench::Endpoint quick = o.endpoint;
    quick.timeout_s = quick.read_timeout_s = std::min(30.0, f.timeout);
    const bench::HttpResponse r = bench::http_get(quick, "/models");
    HEARTH_CHECK(r.outcome != bench::Outcome::connection_refused, "--url " + f.url + ": " + r.error);
  }
  const bench::RunResults results = bench::run_endpoint(o);
  bench::write_results(results, f.out);
  int ok = 0, total = 0;
  for (const auto& c : results.cases)
    for (const auto& q : c.requests) total++, ok += q.outcome == bench::Outcome::ok;
  std::fprintf(stderr, "bench: %d/%d requests ok; results in %s\n", ok, total, f.out.c_str());
  return 0;
}

}  // namespace

Command add_bench_endpoint(CLI::App& sub) {
  auto f = std::make_shared<EndpointFlags>();
  sub.add_option("--url", f->url, "base URL of the OpenAI API, e.g. http://127.0.0.1:8080/v1")->required();
  sub.add_option("--model", f->model, "model name sent in every request")->required();
  sub.add_option("--out", f->out, "results file to write (JSON, format_version 1)")->required();
  sub.add_option("--label", f->label, "the system's name in reports (default: the model name)");
  sub.add_option("--api-key", f->api_key, "sent as 'Authorization: Bearer KEY'");
  sub.add_option("--suite", f->suite, "JSONL test cases (default: the four security prompts)");
  sub.add_option("--reps", f->reps, "recorded repetitions of each case (default 3)");
  sub.add_option("--warmup", f->warmup, "unrecorded warm-up requests per case (default 1)");
  sub.add_option("--max-tokens", f->max_tokens, "max_tokens of each request (default 200)");
  sub.add_option("--concurrency", f->concurrency, "client counts of the sweep (default 1,2,4,8; \"\" = none)");
  sub.add_option("--sweep-requests", f->sweep_requests, "requests per client at each sweep level (default 2)");
  sub.add_option("--timeout", f->timeout, "seconds allowed per request (default 300)");
  sub.add_option("--pid", f->pid, "the server's process id: sample its memory, notice a crash");
  sub.add_option("--spawn", f->spawn, "start the server with this shell command, measure its load time, stop it at the end");
  sub.add_option("--server-log", f->server_log, "where --spawn's server output goes (default: OUT.server.log)");
  sub.add_option("--load-timeout", f->load_timeout, "seconds --spawn waits for the server to answer (default 600)");
  sub.add_flag("--no-probe", f->no_probe, "skip the feature probe");
  sub.add_option("--note", f->note, "a note on the machine for the report (e.g. other load)");
  return [f] { return run_endpoint_command(*f); };
}

Command add_bench_report(CLI::App& sub) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  sub.add_option("results", *files, "results files of bench endpoint / bench model --out")->required();
  sub.add_option("--out", *out, "the Markdown report; charts and NAME.summary.json go next to it")->required();
  return [files, out] {
    std::vector<bench::RunResults> runs;
    for (const auto& f : *files) runs.push_back(bench::read_results(f));
    bench::write_report(runs, *out);
    std::fprintf(stderr, "bench: report written to %s\n", out->c_str());
    return 0;
  };
}

}  // namespace hearth::cli
