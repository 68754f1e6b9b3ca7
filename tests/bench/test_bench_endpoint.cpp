// The bench client end to end: every misbehaviour of bench_fake_server is classified as
// what it is (and none hangs: every request has a 1 s timeout here), the feature probe
// passes on a well-behaved server and fails with evidence where it should, a crashing
// spawned server is recorded as a crash, and a short suite against `hearth serve` with the
// demo model succeeds, its usage agreeing with the server's own /tokenize count.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "bench/endpoint.h"
#include "bench/process.h"
#include "core/error.h"

namespace hearth::bench {
namespace {

// A port nobody listens on right now (the kernel's choice for port 0).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

std::string tmp_dir() {
  const auto d = std::filesystem::path(HEARTH_BINARY_DIR) / "test_tmp" / "bench";
  std::filesystem::create_directories(d);
  return d.string();
}

Endpoint endpoint_at(int port, double timeout_s) {
  Endpoint ep = Endpoint::parse("http://127.0.0.1:" + std::to_string(port) + "/v1");
  ep.connect_timeout_s = 1;
  ep.read_timeout_s = timeout_s;
  ep.timeout_s = timeout_s;
  return ep;
}

Json body(const std::string& model, bool stream, const std::string& text = "hi") {
  Json b{{"model", model}, {"messages", Json::array({Json{{"role", "user"}, {"content", text}}})}, {"max_tokens", 8}};
  if (stream) b["stream"] = true;
  return b;
}

class FakeServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    port_ = free_port();
    process_ = ServerProcess::spawn(std::string(BENCH_FAKE_SERVER) + " " + std::to_string(port_), tmp_dir() + "/fake.log").release();
    process_->wait_ready(endpoint_at(port_, 5), 30);
  }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }
  static Endpoint ep() { return endpoint_at(port_, 1.5); }
  static int port_;
  static ServerProcess* process_;
};
int FakeServer::port_ = 0;
ServerProcess* FakeServer::process_ = nullptr;

TEST_F(FakeServer, WellBehavedStreamIsMeasured) {
  const ChatResult r = run_chat(ep(), body("good", true));
  EXPECT_EQ(r.record.outcome, Outcome::ok) << r.record.error;
  EXPECT_EQ(r.content, "w0 w1 w2 w3 w4 w5 w6 w7");
  EXPECT_EQ(r.record.completion_tokens, 8);
  EXPECT_EQ(r.record.prompt_tokens, 5);
  EXPECT_FALSE(r.record.usage_missing);
  EXPECT_EQ(r.record.finish_reason, "length");
  EXPECT_GE(r.record.ttft_s, 0);
  EXPECT_GE(r.record.total_s, r.record.ttft_s);
  EXPECT_GT(r.record.decode_tokens_per_s, 0);
  EXPECT_NEAR(r.record.e2e_tokens_per_s, 8 / r.record.total_s, 1e-9);
}

TEST_F(FakeServer, WellBehavedWholeResponse) {
  const ChatResult r = run_chat(ep(), body("good", false));
  EXPECT_EQ(r.record.outcome, Outcome::ok) << r.record.error;
  EXPECT_EQ(r.content, "w0 w1 w2 w3 w4 w5 w6 w7");
  EXPECT_EQ(r.record.completion_tokens, 8);
  EXPECT_LT(r.record.ttft_s, 0);  // no first token in a whole response
}

TEST_F(FakeServer, MissingUsageIsCountedInStreamsAndUnknownOtherwise) {
  const ChatResult s = run_chat(ep(), body("no_usage", true));
  EXPECT_EQ(s.record.outcome, Outcome::ok) << s.record.error;
  EXPECT_TRUE(s.record.usage_missing);
  EXPECT_EQ(s.record.completion_tokens, 8);  // one per content event
  EXPECT_EQ(s.record.prompt_tokens, -1);
  const ChatResult w = run_chat(ep(), body("no_usage", false));
  EXPECT_EQ(w.record.outcome, Outcome::ok);
  EXPECT_TRUE(w.record.usage_missing);
  EXPECT_EQ(w.record.completion_tokens, -1);
  EXPECT_LT(w.record.e2e_tokens_per_s, 0);
}

TEST_F(FakeServer, EveryMisbehaviourIsClassified) {
  struct Case {
    const char* model;
    bool stream;
    Outcome want;
  } cases[] = {
      {"http500", false, Outcome::http_error},          {"http500", true, Outcome::http_error},
      {"drop", false, Outcome::connection_reset},       {"drop", true, Outcome::connection_reset},
      {"stall", false, Outcome::timeout},               {"stall", true, Outcome::timeout},
      {"malformed", false, Outcome::malformed_stream},  {"malformed", true, Outcome::malformed_stream},
  };
  for (const auto& c : cases) {
    const ChatResult r = run_chat(ep(), body(c.model, c.stream));
    EXPECT_EQ(r.record.outcome, c.want) << c.model << (c.stream ? " stream: " : ": ") << outcome_name(r.record.outcome)
                                        << " " << r.record.error;
    EXPECT_FALSE(r.record.error.empty()) << c.model;
    EXPECT_EQ(r.record.error.find('\n'), std::string::npos) << "one line: " << r.record.error;
  }
  const ChatResult e = run_chat(ep(), body("http500", false));
  EXPECT_EQ(e.record.http_status, 500);
  EXPECT_NE(e.record.error.find("internal failure (scripted)"), std::string::npos) << e.record.error;
  const ChatResult partial = run_chat(ep(), body("drop", true));
  EXPECT_EQ(partial.content, "w0 w1 w2 ");  // what came before the drop is kept
}

TEST_F(FakeServer, ConnectionRefused) {
  const ChatResult r = run_chat(endpoint_at(free_port(), 1), body("good", true));
  EXPECT_EQ(r.record.outcome, Outcome::connection_refused) << r.record.error;
}

TEST_F(FakeServer, ProbePassesOnAWellBehavedServer) {
  EndpointOptions o;
  o.endpoint = ep();
  o.model = "good";
  const auto checks = probe_features(o);
  ASSERT_EQ(checks.size(), 9u);
  for (const auto& f : checks) {
    EXPECT_EQ(f.status, "pass") << f.id << ": " << f.detail;
    EXPECT_FALSE(f.detail.empty());
  }
}

TEST_F(FakeServer, ProbeFailsWithEvidence) {
  EndpointOptions o;
  o.endpoint = ep();
  o.model = "no_usage";
  std::map<std::string, FeatureCheck> by_id;
  for (const auto& f : probe_features(o)) by_id[f.id] = f;
  EXPECT_EQ(by_id["usage_in_stream"].status, "fail");
  EXPECT_EQ(by_id["streaming"].status, "pass");
  o.model = "http500";
  by_id.clear();
  for (const auto& f : probe_features(o)) by_id[f.id] = f;
  EXPECT_EQ(by_id["streaming"].status, "fail");
  EXPECT_EQ(by_id["streaming"].http_status, 500);
  EXPECT_NE(by_id["streaming"].excerpt.find("internal failure"), std::string::npos) << by_id["streaming"].excerpt;
  EXPECT_EQ(by_id["tool_calling"].status, "fail");
  EXPECT_EQ(by_id["models"].status, "pass");  // listed
}

TEST(BenchCrash, ASpawnedServerDyingIsACrash) {
  const int port = free_port();
  auto proc = ServerProcess::spawn(std::string(BENCH_FAKE_SERVER) + " " + std::to_string(port), tmp_dir() + "/crash.log");
  EndpointOptions o;
  o.endpoint = endpoint_at(port, 2);
  const double load = proc->wait_ready(o.endpoint, 30);
  EXPECT_GT(load, 0);
  o.model = "crash";
  o.label = "crashy";
  o.suite = {default_suite()[0]};
  o.max_tokens = 8;
  o.repetitions = 2;
  o.warmup = 0;
  o.concurrency = {};
  o.probe = false;
  o.process = proc.get();
  const RunResults r = run_endpoint(o);
  ASSERT_EQ(r.cases.size(), 2u);
  for (const auto& c : r.cases)
    for (const auto& q : c.requests) EXPECT_EQ(q.outcome, Outcome::crash) << q.error;
  EXPECT_TRUE(r.process.died);
  EXPECT_EQ(r.process.exit_detail, "exit status 3");
  EXPECT_GT(r.process.peak_rss_bytes, 0);
}

TEST(BenchSuite, JsonlErrorsNameTheLine) {
  const std::string path = tmp_dir() + "/suite.jsonl";
  std::ofstream(path) << "{\"name\": \"a\", \"prompt\": \"x\"}\n\n{\"name\": \"b\"}\n";
  try {
    load_suite(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ":3: needs \"prompt\" (a string) or \"messages\"");
  }
  std::ofstream(path) << "{\"name\": \"a\", \"prompt\": \"x\", \"stream\": false, \"max_tokens\": 7}\n"
                      << "{\"name\": \"b\", \"messages\": [{\"role\": \"user\", \"content\": \"y\"}], "
                         "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}\n";
  const auto suite = load_suite(path);
  ASSERT_EQ(suite.size(), 2u);
  EXPECT_TRUE(suite[0].tools.is_null());
  ASSERT_TRUE(suite[1].tools.is_array());
  EXPECT_EQ(suite[1].tools[0]["function"]["name"], "f");
  EXPECT_FALSE(suite[0].stream);
  EXPECT_TRUE(suite[0].non_stream);
  EXPECT_EQ(suite[0].max_tokens, 7);
  EXPECT_TRUE(suite[1].stream && suite[1].non_stream);
  EXPECT_THROW(Endpoint::parse("https://x/v1"), Error);
  EXPECT_THROW(Endpoint::parse("http://x:99999/v1"), Error);
}

// The CLI: bench report writes the golden report; a URL where nothing listens is one line.
TEST(BenchCli, ReportAndUnreachableEndpoint) {
  const std::string dir = tmp_dir();
  const std::string data = std::string(HEARTH_SOURCE_DIR) + "/tests/bench/";
  ASSERT_EQ(std::system((std::string(HEARTH_BIN) + " bench report " + data + "data/server.json " + data +
                         "data/direct.json --out " + dir + "/report.md 2>/dev/null").c_str()),
            0);
  std::ifstream a(dir + "/report.md"), b(data + "golden/report.md");
  const std::string got((std::istreambuf_iterator<char>(a)), {}), want((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(got, want);
  const std::string err = dir + "/cli_err.txt";
  const int rc = std::system((std::string(HEARTH_BIN) + " bench endpoint --url http://127.0.0.1:" + std::to_string(free_port()) +
                              "/v1 --model m --no-probe --out " + dir + "/never.json 2>" + err).c_str());
  EXPECT_NE(rc, 0);
  std::ifstream e(err);
  const std::string msg((std::istreambuf_iterator<char>(e)), {});
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
  EXPECT_NE(msg.find("hearth: error: --url http://127.0.0.1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("connection refused"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(dir + "/never.json"));
}

// bench model --out: the suite in-process, in the shared results format.
TEST(BenchCli, ModelRunWritesResults) {
  const std::string model = std::string(HEARTH_SOURCE_DIR) + "/models/demo-qwen3-tiny-q8_0.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no demo model (scripts/setup.sh writes it)";
  const std::string out = tmp_dir() + "/direct.json";
  ASSERT_EQ(std::system((std::string(HEARTH_BIN) + " bench model -m " + model + " -t 2 -p 16 -n 8 -r 1 --bandwidth-mib 16 " +
                         "--max-tokens 4 --label Direct --out " + out + " >/dev/null 2>&1").c_str()),
            0);
  const RunResults r = read_results(out);
  EXPECT_EQ(r.kind, "model");
  EXPECT_EQ(r.label, "Direct");
  ASSERT_EQ(r.cases.size(), 4u);
  for (const auto& c : r.cases) {
    EXPECT_FALSE(c.stream);
    ASSERT_EQ(c.requests.size(), 1u);
    EXPECT_EQ(c.requests[0].outcome, Outcome::ok);
    EXPECT_GE(c.requests[0].completion_tokens, 1);
    EXPECT_LE(c.requests[0].completion_tokens, 4);
    EXPECT_GT(c.requests[0].prompt_tokens, 5);
  }
  ASSERT_TRUE(r.direct.has_value());
  ASSERT_EQ(r.direct->tests.size(), 2u);
  EXPECT_EQ(r.direct->tests[0].test, "pp16");
  EXPECT_EQ(r.direct->tests[1].test, "tg8");
  EXPECT_GT(r.direct->weights_bytes, 0);
  EXPECT_GT(r.direct->peak_rss_bytes, r.direct->weights_bytes / 2);
}

// `hearth serve` with the demo model, spawned as a user would with --spawn.
TEST(BenchHearthServe, ShortSuiteAgainstTheDemoModel) {
  const std::string model = std::string(HEARTH_SOURCE_DIR) + "/models/demo-qwen3-tiny-q8_0.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no demo model (scripts/setup.sh writes it)";
  const int port = free_port();
  auto proc = ServerProcess::spawn(std::string(HEARTH_BIN) + " serve -m " + model + " --alias demo -t 2 -c 512 --port " +
                                       std::to_string(port), tmp_dir() + "/serve.log");
  EndpointOptions o;
  o.endpoint = endpoint_at(port, 120);
  proc->wait_ready(o.endpoint, 120);
  o.model = "demo";
  o.label = "hearth (Server)";
  o.suite = default_suite();
  o.suite.resize(2);
  o.max_tokens = 6;
  o.repetitions = 1;
  o.warmup = 0;
  o.concurrency = {1, 2};
  o.sweep_requests = 1;
  o.process = proc.get();
  const RunResults r = run_endpoint(o);
  ASSERT_EQ(r.cases.size(), 4u);
  for (const auto& c : r.cases) {
    ASSERT_EQ(c.requests.size(), 1u);
    const RequestRecord& q = c.requests[0];
    EXPECT_EQ(q.outcome, Outcome::ok) << c.name << ": " << q.error;
    EXPECT_FALSE(q.usage_missing);
    EXPECT_GE(q.completion_tokens, 1);
    EXPECT_LE(q.completion_tokens, 6);
    if (c.stream) {
      EXPECT_GE(q.ttft_s, 0);
    }
    // The prompt size in usage is the server's own count of the rendered chat prompt.
    Endpoint root = o.endpoint;
    root.base_path = "";
    const HttpResponse t = http_post(root, "/tokenize",
                                     Json{{"messages", Json::array({Json{{"role", "user"}, {"content", c.prompt}}})}}.dump());
    const Json tj = Json::parse(t.body, nullptr, false);
    ASSERT_TRUE(tj.is_object() && tj.contains("tokens")) << t.body;
    EXPECT_EQ(q.prompt_tokens, static_cast<int64_t>(tj["tokens"].size())) << c.name;
  }
  ASSERT_EQ(r.concurrency.size(), 2u);
  EXPECT_EQ(r.concurrency[1].ok, 2);
  EXPECT_GT(r.concurrency[1].aggregate_tokens_per_s, 0);
  std::map<std::string, std::string> status;
  for (const auto& f : r.features) status[f.id] = f.status;
  for (const char* id : {"models", "streaming", "usage_in_stream", "parallel_clients", "error_shape", "context_overflow"})
    EXPECT_EQ(status[id], "pass") << id;
  EXPECT_TRUE(r.process.present);
  EXPECT_FALSE(r.process.died);
  EXPECT_GT(r.process.peak_rss_bytes, 1 << 20);
  EXPECT_GT(r.process.load_s, 0);
  // The file round-trips.
  const std::string path = tmp_dir() + "/serve.json";
  write_results(r, path);
  EXPECT_EQ(to_json(read_results(path)).dump(), to_json(r).dump());
}

}  // namespace
}  // namespace hearth::bench
