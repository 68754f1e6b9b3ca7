// The direct-mode CLI end to end (build/bin/hearth as a child process, on the tiny model):
// `run` (seeded reproducibility, JSON fields, the --prompt-tokens form, stop strings via
// flags, context overflow), `chat` driven through a pipe, `batch` with bad lines and a
// resumed second run, `bench model --json`, and bad flags (non-zero exit, one line).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "direct_test_util.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

using namespace hearth;
using namespace hearth::test;
using json = nlohmann::json;

namespace {

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = tiny_model();
    if (model_.empty()) GTEST_SKIP() << "the Qwen3 tokenizer is not installed (scripts/setup.sh)";
  }
  // `hearth run -m tiny --ctx 512 ARGS --json`, parsed.
  json run_json(const std::string& args) {
    const auto r = run_hearth("run -m " + model_ + " --ctx 512 " + args + " --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
  std::string model_;
};

TEST_F(Cli, RunWithSeedIsReproducible) {
  const std::string args = "-p 'Write a poem about rain' -n 12 --temp 0.9 --top-k 100 --seed ";
  const json a = run_json(args + "42");
  const json b = run_json(args + "42");
  const json c = run_json(args + "43");
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_EQ(a["text"], b["text"]);
  EXPECT_NE(a["tokens"], c["tokens"]);
  EXPECT_EQ(a["tokens"].size(), 12u);
}

TEST_F(Cli, RunJsonCarriesTextTokensStatsAndLogprobs) {
  const json j = run_json("-p 'Hello' --system 'Be brief.' --no-think -n 5 --temp 0 --ignore-eos --logprobs 3");
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_EQ(j["tokens"].size(), 5u);
  EXPECT_EQ(j["finish_reason"], "length");
  const json& s = j["stats"];
  for (const char* key : {"load_s", "prompt_tokens", "prompt_s", "ttft_s", "completion_tokens", "decode_tokens_per_s",
                          "end_to_end_tokens_per_s"})
    EXPECT_TRUE(s.contains(key)) << key;
  EXPECT_GT(s["prompt_tokens"].get<int>(), 10);  // the chat template was applied
  EXPECT_EQ(s["completion_tokens"], 5);
  EXPECT_EQ(s["memory"]["kv_cache_bytes"].get<int64_t>() % 512, 0);
  EXPECT_GT(s["memory"]["weights_bytes"].get<int64_t>(), 0);
  EXPECT_GT(s["memory"]["peak_rss_bytes"].get<int64_t>(), 0);
  ASSERT_EQ(j["logprobs"].size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(j["logprobs"][i]["top"].size(), 3u);
    EXPECT_EQ(j["logprobs"][i]["top"][0]["id"], j["tokens"][i]);  // greedy takes the best
  }
}

TEST_F(Cli, RunPromptTokensForm) {
  const auto r = run_hearth("run -m " + model_ + " --raw --prompt-tokens 9707,1879 -n 4 --temp 0 --json --logprobs 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_FALSE(j["tokens"].empty());
  EXPECT_LE(j["tokens"].size(), 4u);
  EXPECT_EQ(j["logprobs"].size(), j["tokens"].size());
  EXPECT_EQ(j["logprobs"][0]["top"][0]["id"], j["tokens"][0]);
}

TEST_F(Cli, StopStringAndLogitBiasFlags) {
  const Tokenizer tok = Tokenizer::from_gguf(*GgufFile::open(model_));
  const auto the = tok.find_token("\xC4\xA0the");  // "Ġthe"
  ASSERT_TRUE(the.has_value());
  const json j = run_json("--raw -p 'Say' -n 10 --temp 0 --logit-bias " + std::to_string(*the) + "=100 --stop 'he the t'");
  EXPECT_EQ(j["text"], " t");
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["tokens"].size(), 3u);
}

TEST_F(Cli, ContextOverflowIsAnError) {
  const auto r = run_hearth("run -m " + model_ + " --ctx 16 -p 'one two three four five six seven eight nine ten eleven'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("context length exceeded"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("16"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST_F(Cli, ChatThroughAPipe) {
  const std::string dir = scratch_dir("chat_pipe");
  const std::string input = "Hello there\nHow are you?\n/stats\n/save " + dir + "/two.json\n/reset\n/system Be brief.\n" +
                            "Bye\n/save " + dir + "/one.json\n/nonsense\n/exit\nnever read\n";
  const auto r = run_hearth("chat -m " + model_ + " --ctx 512 -n 6 --seed 3", input);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[conversation reset]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cached)"), std::string::npos) << r.out;  // the second turn reused the first
  EXPECT_NE(r.out.find("session     2 turns"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("unknown command /nonsense"), std::string::npos) << r.err;
  const json two = json::parse(read_file(dir + "/two.json"));
  ASSERT_EQ(two["messages"].size(), 4u);
  EXPECT_EQ(two["messages"][0]["content"], "Hello there");
  EXPECT_EQ(two["messages"][1]["role"], "assistant");
  EXPECT_EQ(two["messages"][2]["content"], "How are you?");
  const json one = json::parse(read_file(dir + "/one.json"));
  ASSERT_EQ(one["messages"].size(), 3u);
  EXPECT_EQ(one["messages"][0]["role"], "system");
  EXPECT_EQ(one["messages"][1]["content"], "Bye");
}

// Four tokens forced in a cycle (biases 100 > 97 > 94 > 91, each penalised while it is among
// the last three): "<think> the</think> end<think> the</think> end".
TEST_F(Cli, ChatShowsOrHidesThinking) {
  const Tokenizer tok = Tokenizer::from_gguf(*GgufFile::open(model_));
  std::string bias;
  int value = 100;
  for (const char* t : {"<think>", "\xC4\xA0" "the", "</think>", "\xC4\xA0" "end"}) {
    const auto id = tok.find_token(t);
    ASSERT_TRUE(id.has_value()) << t;
    bias += " --logit-bias " + std::to_string(*id) + "=" + std::to_string(value);
    value -= 3;
  }
  const std::string args = "chat -m " + model_ + " --ctx 512 -n 8 --temp 0 --repeat-penalty 10 --repeat-last-n 3" + bias;
  const auto shown = run_hearth(args, "Hi\n");
  ASSERT_EQ(shown.status, 0) << shown.err;
  EXPECT_EQ(shown.out.find("<think> the</think> end<think> the</think> end\n"), 0u) << shown.out;
  const auto hidden = run_hearth(args + " --hide-think", "Hi\n");
  ASSERT_EQ(hidden.status, 0) << hidden.err;
  EXPECT_EQ(hidden.out.find(" end end\n"), 0u) << hidden.out;
  EXPECT_EQ(hidden.out.find("the"), std::string::npos) << hidden.out;
}

TEST_F(Cli, BatchReportsBadLinesAndResumes) {
  const std::string dir = scratch_dir("batch");
  const std::string in = dir + "/in.jsonl", out = dir + "/out.jsonl";
  std::ofstream(in) << R"({"id": "a", "prompt": "Hi", "max_tokens": 3, "seed": 1})" "\n"
                    << "this is not json\n"
                    << R"({"messages": [{"role": "user", "content": "Yo"}], "max_tokens": 2, "temperature": 0})" "\n"
                    << R"({"prompt": "x", "temperature": 7})" "\n";
  const std::string cmd = "batch -m " + model_ + " --ctx 256 --input " + in + " --output " + out;
  auto r = run_hearth(cmd);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<json> lines;
  auto load = [&] {
    lines.clear();
    std::ifstream f(out);
    for (std::string l; std::getline(f, l);) lines.push_back(json::parse(l));
  };
  load();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["id"], "a");
  EXPECT_EQ(lines[0]["stats"]["completion_tokens"], 3);
  EXPECT_EQ(lines[1]["line"], 2);
  EXPECT_TRUE(lines[1].contains("error"));
  EXPECT_EQ(lines[2]["finish_reason"], "length");
  EXPECT_NE(lines[3]["error"].get<std::string>().find("temperature"), std::string::npos);

  // An interrupted run leaves a half-written line; a new input line arrives.
  std::ofstream(out, std::ios::app) << R"({"line": 5, "text": "half)";
  std::ofstream(in, std::ios::app) << R"({"id": 7, "prompt": "More", "max_tokens": 2})" "\n";
  r = run_hearth(cmd);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("1 answered, 0 errors, 4 already"), std::string::npos) << r.err;
  load();
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[4]["id"], 7);
  EXPECT_EQ(lines[4]["line"], 5);
}

TEST_F(Cli, BenchModelJson) {
  const auto r = run_hearth("bench model -m " + model_ + " -p 16 -n 4 -r 2 --batch-sizes 2 --bandwidth-mib 16 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_GT(j["bandwidth_bytes_per_s"].get<double>(), 0);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][0]["test"], "pp16");
  EXPECT_EQ(j["results"][1]["test"], "tg4");
  EXPECT_EQ(j["results"][2]["test"], "tg4 @ batch 2");
  for (const auto& e : j["results"]) {
    EXPECT_EQ(e["samples"].size(), 2u);
    EXPECT_GT(e["tokens_per_s"].get<double>(), 0);
  }
  EXPECT_GT(j["results"][1]["bandwidth_fraction"].get<double>(), 0);
}

// --kv-cache-type q8_0 on the CPU: the answer is generated through the 8-bit cache, whose
// bytes (reported in the stats) are at most a third of the f32 cache's (8.5 of 32 bits an
// element, rows padded to 16 bytes); `info` estimates with the same type.
TEST_F(Cli, KvCacheTypeQ8_0) {
  const std::string args = "--device cpu -p 'Hello' -n 5 --temp 0 --ignore-eos ";
  const json q8 = run_json(args + "--kv-cache-type q8_0"), f32 = run_json(args + "--kv-cache-type f32");
  EXPECT_EQ(q8["tokens"].size(), 5u);
  const auto q8_bytes = q8["stats"]["memory"]["kv_cache_bytes"].get<int64_t>();
  const auto f32_bytes = f32["stats"]["memory"]["kv_cache_bytes"].get<int64_t>();
  EXPECT_GT(q8_bytes, f32_bytes / 4);
  EXPECT_LT(3 * q8_bytes, f32_bytes);
  const auto r = run_hearth("info " + model_ + " --ctx 512 --kv-cache-type q8_0 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info["memory"]["kv_cache_type"], "q8_0");
  EXPECT_EQ(info["memory"]["kv_cache_bytes"].get<int64_t>(), q8_bytes);
}

TEST_F(Cli, BadFlagsExitWithOneLine) {
  const std::string m = "-m " + model_ + " ";
  const std::vector<std::string> bad = {
      "run " + m + "-p hi --raw --system x",
      "run " + m + "-p hi --raw --no-think",
      "run " + m + "-p hi --prompt-tokens 1,2",
      "run " + m,
      "run " + m + "-p hi --temp -1",
      "run " + m + "-p hi -n -5",
      "run " + m + "-p hi --top-p 2",
      "run " + m + "-p hi --top-k -3",
      "run " + m + "-p hi --seed -1",
      "run " + m + "-p hi --ctx -3",
      "run " + m + "-p hi --ctx 100000000",
      "run " + m + "-p hi -t -1",
      "run " + m + "-p hi --logit-bias abc",
      "run " + m + "-p hi --logit-bias 1=500",
      "run " + m + "-p hi --logprobs 50",
      "run " + m + "-p hi --no-such-flag",
      "run -m /nonexistent/model.gguf -p hi",
      "chat " + m + "--repeat-penalty 0",
      "batch " + m + "--input /nonexistent.jsonl --output /tmp/x.jsonl",
      "bench model " + m + "-r 0",
      "bench model " + m + "-p 12,abc",
      "run " + m + "-p hi --kv-cache-type q4_0",
      "run " + m + "-p hi --device cpu --kv-cache-type f16",  // the CPU keeps f32 or q8_0
      "bench model " + m + "--kv-cache-type bf16",
  };
  for (const auto& args : bad) {
    const auto r = run_hearth(args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.status, -1) << args << ": crashed";
    EXPECT_EQ(r.err.rfind("hearth: error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << args << ": not one line: " << r.err;
  }
}

}  // namespace
