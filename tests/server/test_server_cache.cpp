// The prefix cache through the HTTP server, on the tiny Qwen3 model: a multi-turn agent
// conversation (system prompt, tools, tool calls and results) replayed turn by turn
// computes only what the previous turn did not have (usage.cached_tokens, the
// x-hearth-cache header and /metrics agree) and answers exactly as a server with the
// cache off; a changed system prompt or reordered tool list is explained (offset,
// message, excerpts); concurrent requests sharing a prefix are exact; a restart finds the
// prefix in the cache folder, and corrupt or foreign files there are removed with a
// warning, never used.
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "server/cache_report.h"
#include "server_fixture.h"

namespace hearth::test {
namespace {

namespace fs = std::filesystem;

TestServer::Options cache_options(bool cache, const std::string& dir = "") {
  TestServer::Options o;
  o.engine = EngineConfig{.n_ctx = 1024, .n_kv_tokens = 4096, .block_size = 16, .max_seqs = 4, .max_batch_tokens = 128};
  o.engine.prefix_cache = cache;
  if (!dir.empty()) {
    o.engine.cache_dir = dir;
    o.engine.cache_disk_bytes = int64_t{1} << 30;
  }
  return o;
}

Json tool(const std::string& name, const std::string& description) {
  return Json{{"type", "function"},
              {"function",
               {{"name", name},
                {"description", description},
                {"parameters",
                 {{"type", "object"},
                  {"properties", {{"path", {{"type", "string"}, {"description", "file path"}}}}},
                  {"required", Json::array({"path"})}}}}}};
}

const std::string kSystem =
    "You are a coding agent working in a repository. Read files before editing them, keep changes small, run the "
    "tests after every change and explain what you did in one short paragraph. Never invent file contents.";

Json agent_body(const Json& messages, const Json& tools) {
  return Json{{"model", "tiny"}, {"messages", messages}, {"tools", tools}, {"max_tokens", 8}, {"temperature", 0}};
}

// "key=value" from the x-hearth-cache header; "" when absent.
std::string header_field(const HttpResult& r, const std::string& key) {
  auto it = r.headers.find("x-hearth-cache");
  if (it == r.headers.end()) return "";
  std::smatch m;
  const std::regex re("(?:^|; )" + key + "=(\"[^\"]*\"|[^;]*)");
  return std::regex_search(it->second, m, re) ? m[1].str() : "";
}

double metric(const TestServer& srv, const std::string& name) {
  const HttpResult r = srv.get("/metrics");
  std::smatch m;
  const std::regex re("\n" + name + " ([0-9.e+-]+)\n");
  if (!std::regex_search(r.body, m, re)) {
    ADD_FAILURE() << "no metric " << name;
    return -1;
  }
  return std::stod(m[1].str());
}

TEST(ServerCache, AnAgentConversationComputesOnlyNewTokensAndMatchesTheUncachedServer) {
  TestServer on(cache_options(true)), off(cache_options(false));
  const Json tools = Json::array({tool("read", "Read a file."), tool("edit", "Edit a file."), tool("bash", "Run a command.")});
  Json messages = Json::array({Json{{"role", "system"}, {"content", kSystem}},
                               Json{{"role", "user"}, {"content", "Fix the failing test in tests/test_io.cpp."}}});
  int64_t saved = 0, prompt_total = 0, prev_computed = 0;
  for (int turn = 0; turn < 5; ++turn) {
    const HttpResult a = on.post("/v1/chat/completions", agent_body(messages, tools));
    const HttpResult b = off.post("/v1/chat/completions", agent_body(messages, tools));
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(a.json["choices"][0]["message"], b.json["choices"][0]["message"]) << "turn " << turn;
    const Json& usage = a.json["usage"];
    const int64_t n_prompt = usage["prompt_tokens"], cached = usage["prompt_tokens_details"]["cached_tokens"];
    EXPECT_EQ(b.json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    EXPECT_EQ(header_field(a, "cached"), std::to_string(cached)) << "turn " << turn;  // sequential: the estimate is exact
    if (turn == 0) {
      EXPECT_EQ(cached, 0);
      EXPECT_EQ(header_field(a, "diverged_at"), "");
    } else {
      // Reused: every whole block of what the last turn computed that this prompt shares.
      const int64_t diverged = std::stoll(header_field(a, "diverged_at"));
      const int64_t want = std::min({diverged, n_prompt - 1, prev_computed}) / 16 * 16;
      EXPECT_EQ(cached, want) << "turn " << turn;
      EXPECT_GT(cached, 0);
      EXPECT_GE(std::stoi(header_field(a, "message")), 1);  // not in the system prompt or the tools
      EXPECT_TRUE(usage["prompt_tokens_details"].contains("cache_miss"));
    }
    saved += cached;
    prompt_total += n_prompt;
    prev_computed = n_prompt + static_cast<int64_t>(usage["completion_tokens"]) - 1;
    // The next turn: the answer, a tool call and its result, as an agent sends them.
    messages.push_back(a.json["choices"][0]["message"]);
    messages.back()["content"] = messages.back()["content"].is_null() ? "" : messages.back()["content"];
    messages.back().erase("tool_calls");
    messages.back().erase("reasoning_content");
    messages.push_back(Json{{"role", "user"}, {"content", "Tool output " + std::to_string(turn) + ": 3 tests failed."}});
  }
  EXPECT_EQ(metric(on, "hearth_prefix_cache_tokens_saved_total"), static_cast<double>(saved));
  EXPECT_EQ(metric(on, "hearth_engine_prompt_tokens_total"), static_cast<double>(prompt_total));
  EXPECT_EQ(metric(on, "hearth_prefix_cache_hits_total"), 4);
  EXPECT_NEAR(metric(on, "hearth_prefix_cache_hit_ratio"), static_cast<double>(saved) / static_cast<double>(prompt_total), 1e-5);
  EXPECT_EQ(metric(off, "hearth_prefix_cache_enabled"), 0);
  EXPECT_EQ(metric(off, "hearth_prefix_cache_tokens_saved_total"), 0);
  EXPECT_GT(metric(on, "hearth_kv_cache_blocks_cached"), 0);
}

TEST(ServerCache, AChangedSystemPromptOrToolOrderIsExplained) {
  TestServer srv(cache_options(true));
  const Json tools = Json::array({tool("read", "Read a file."), tool("edit", "Edit a file.")});
  const Json reordered = Json::array({tools[1], tools[0]});
  auto body = [&](const std::string& day, const Json& t) {
    return agent_body(Json::array({Json{{"role", "system"}, {"content", kSystem + " Today is " + day + "."}},
                                   Json{{"role", "user"}, {"content", "List the files."}}}),
                      t);
  };
  ASSERT_EQ(srv.post("/v1/chat/completions", body("Monday", tools)).status, 200);
  const HttpResult r = srv.post("/v1/chat/completions", body("Tuesday", tools));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(header_field(r, "message"), "0");
  EXPECT_EQ(header_field(r, "role"), "system");
  EXPECT_NE(header_field(r, "excerpt").find("Tues"), std::string::npos) << r.headers.find("x-hearth-cache")->second;
  EXPECT_NE(header_field(r, "cached_excerpt").find("Mon"), std::string::npos);
  const Json& miss = r.json["usage"]["prompt_tokens_details"]["cache_miss"];
  EXPECT_EQ(miss["message"], 0);
  EXPECT_EQ(miss["role"], "system");
  EXPECT_EQ(std::to_string(miss["diverged_at"].get<int>()), header_field(r, "diverged_at"));
  const int64_t cached = r.json["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_EQ(cached, miss["diverged_at"].get<int64_t>() / 16 * 16);

  const HttpResult t = srv.post("/v1/chat/completions", body("Tuesday", reordered));
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(header_field(t, "role"), "tools") << t.headers.find("x-hearth-cache")->second;

  // An agent step: the same request plus an assistant message holding only a tool call
  // (content "") and its result. It parts from the last request (whose answer the model
  // wrote differently) inside message 2, the assistant's.
  Json step = body("Tuesday", reordered);
  step["messages"].push_back(Json{{"role", "assistant"}, {"content", ""},
                                  {"tool_calls", Json::array({Json{{"id", "call_1"}, {"type", "function"},
                                                                   {"function", {{"name", "read"}, {"arguments", "{\"path\":\"src/main.cpp\"}"}}}}})}});
  step["messages"].push_back(Json{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "int main() { return 0; }"}});
  const HttpResult u = srv.post("/v1/chat/completions", step);
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(header_field(u, "message"), "2") << u.headers.find("x-hearth-cache")->second;
  EXPECT_EQ(header_field(u, "role"), "assistant");
  EXPECT_EQ(std::stoll(header_field(u, "diverged_at")), t.json["usage"]["prompt_tokens"].get<int64_t>());
}

TEST(ServerCache, ConcurrentRequestsSharingAPrefixAreExact) {
  TestServer on(cache_options(true)), off(cache_options(false));
  const Json tools = Json::array({tool("read", "Read a file.")});
  std::vector<Json> bodies;
  for (int i = 0; i < 6; ++i)
    bodies.push_back(agent_body(Json::array({Json{{"role", "system"}, {"content", kSystem}},
                                             Json{{"role", "user"}, {"content", "Question " + std::to_string(i * 7)}}}),
                                tools));
  std::vector<HttpResult> got(bodies.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < bodies.size(); ++i)
    clients.emplace_back([&, i] {
      const httplib::Headers h = {{"x-session-affinity", i % 2 ? "ses_main" : "ses_title"}};
      got[i] = on.post("/v1/chat/completions", bodies[i], h);
    });
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < bodies.size(); ++i) {
    ASSERT_EQ(got[i].status, 200) << got[i].body;
    const HttpResult want = off.post("/v1/chat/completions", bodies[i]);
    EXPECT_EQ(got[i].json["choices"][0]["message"], want.json["choices"][0]["message"]) << i;
  }
  const HttpResult again = on.post("/v1/chat/completions", bodies[0]);
  EXPECT_GT(again.json["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 100);
}

TEST(ServerCache, SessionKeyFromHeadersThenBodyFields) {
  httplib::Request req;
  EXPECT_EQ(server::session_key(req, Json::object()), "");
  EXPECT_EQ(server::session_key(req, Json{{"user", "u1"}}), "u1");
  EXPECT_EQ(server::session_key(req, Json{{"user", "u1"}, {"session_id", "s1"}}), "s1");
  EXPECT_THROW(server::session_key(req, Json{{"user", 5}}), server::ApiError);  // a 400, as OpenAI answers
  req.set_header("x-session-id", "ses_b");
  EXPECT_EQ(server::session_key(req, Json{{"session_id", "s1"}}), "ses_b");
  req.set_header("X-Session-Affinity", "ses_a");
  EXPECT_EQ(server::session_key(req, Json::object()), "ses_a");
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / name;
  fs::remove_all(d);
  return d;
}

TEST(ServerCache, ARestartFindsThePrefixOnDiskAndBadFilesAreIgnored) {
  const fs::path dir = fresh_dir("server_cache_disk");
  const Json tools = Json::array({tool("read", "Read a file."), tool("bash", "Run a command.")});
  const Json body = agent_body(Json::array({Json{{"role", "system"}, {"content", kSystem}},
                                            Json{{"role", "user"}, {"content", "What does main.cpp do?"}}}),
                               tools);
  Json first;
  {
    TestServer srv(cache_options(true, dir.string()));
    const HttpResult r = srv.post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    first = r.json;
  }  // shutdown writes the cached blocks
  std::vector<fs::path> files;
  for (const auto& sub : fs::directory_iterator(dir))
    for (const auto& f : fs::directory_iterator(sub.path())) files.push_back(f.path());
  ASSERT_GE(files.size(), 8u);
  const int64_t n_prompt = first["usage"]["prompt_tokens"];
  {
    TestServer srv(cache_options(true, dir.string()));
    const HttpResult r = srv.post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["choices"], first["choices"]);
    EXPECT_EQ(r.json["usage"]["prompt_tokens_details"]["cached_tokens"], (n_prompt - 1) / 16 * 16);
    EXPECT_EQ(metric(srv, "hearth_prefix_cache_disk_loads_total"), static_cast<double>((n_prompt - 1) / 16));
    EXPECT_EQ(metric(srv, "hearth_prefix_cache_rejected_files_total"), 0);
  }
  // Damage the folder: a flipped payload byte in every block file (caught by the checksum
  // when loaded) and a file of another model (caught by the header when scanning).
  const fs::path folder = files[0].parent_path();
  size_t n_blocks = 0;
  for (const auto& f : fs::directory_iterator(folder)) {
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(fs::file_size(f.path()) - 5));
    io.put('\x7f');
    ++n_blocks;
  }
  {
    std::vector<char> bytes(fs::file_size(files[0]));
    std::ifstream(files[0], std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes[20] ^= 1;  // the cache identity field
    std::ofstream(folder / "00000000000000aa.hkv", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  testing::internal::CaptureStderr();
  {
    TestServer srv(cache_options(true, dir.string()));
    const HttpResult r = srv.post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["choices"], first["choices"]);  // recomputed, never the damaged blocks
    EXPECT_EQ(r.json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    EXPECT_EQ(metric(srv, "hearth_prefix_cache_rejected_files_total"), 2);  // the foreign file and the first block
    EXPECT_EQ(metric(srv, "hearth_prefix_cache_disk_loads_total"), 0);
  }
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("another model"), std::string::npos) << log;
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(folder / "00000000000000aa.hkv"));
  EXPECT_GT(n_blocks, 0u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth::test
