// Hostile and broken model files: every one must end in a hearth::Error whose one-line
// message names the file and the problem, and the CLI must exit non-zero with one line
// on stderr. (The byte-level GGUF/safetensors parsers are fuzzed in tests/fuzz.)
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "model/writer.h"
#include "model_test_util.h"

namespace fs = std::filesystem;
using namespace hearth;
using namespace hearth::test;

namespace {

ModelConfig tiny() {
  ModelConfig c = qwen3_shape("tiny");
  c.vocab_size = 100;
  return c;
}

// Loads `path` and returns the error message, or "" when it loaded.
std::string load_error(const std::string& path) {
  auto backend = make_cpu_backend(1);
  try {
    Model::load(path, *backend);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& path, const std::string& needle) {
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
}

std::string write(const std::string& name, std::vector<SourceTensor> tensors, ModelConfig c = tiny()) {
  const std::string path = temp_dir("bad_" + name) + "/m.gguf";
  WriteOptions o;
  o.type = "f32";
  write_model(c, tensors, o, path);
  return path;
}

TEST(BadModels, MissingTensor) {
  auto tensors = random_tensors(tiny(), 1);
  tensors.erase(tensors.begin() + 5);
  expect_error(write("missing", tensors), "missing tensor 'blk.0.");
}

TEST(BadModels, WrongShape) {
  auto tensors = random_tensors(tiny(), 1);
  for (auto& t : tensors)
    if (t.role == TensorRole::FFN_UP && t.layer == 1) {
      t.shape[0] -= 32;
      auto fill = t.fill;
      t.fill = [fill, n = t.shape[0] * t.shape[1]](float* dst) {
        std::vector<float> tmp(static_cast<size_t>(n + 32 * 64));
        fill(tmp.data());
        std::copy_n(tmp.begin(), n, dst);
      };
    }
  expect_error(write("shape", tensors), "blk.1.ffn_up.weight");
}

TEST(BadModels, UnknownArchitecture) {
  GgufWriter w;
  w.add_string("general.architecture", "gptneox");
  const std::string path = temp_dir("bad_arch") + "/m.gguf";
  w.write(path);
  expect_error(path, "unsupported architecture 'gptneox'");
}

TEST(BadModels, WrongTensorType) {
  const std::string good = write("type_src", random_tensors(tiny(), 1));
  // Rebuild the file with one weight stored as i32 (same byte size as f32).
  auto gguf = GgufFile::open(good);
  GgufWriter w;
  for (const auto& [key, value] : gguf->metadata()) w.add_value(key, value);
  for (const auto& [name, t] : gguf->tensors().tensors()) {
    const DType type = name == "blk.0.attn_q.weight" ? DType::I32 : t.dtype;
    w.add_tensor(name, type, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  }
  const std::string path = temp_dir("bad_type") + "/m.gguf";
  w.write(path);
  expect_error(path, "blk.0.attn_q.weight");
}

TEST(BadModels, TruncatedFile) {
  const std::string good = write("trunc_src", random_tensors(tiny(), 1));
  const std::string path = temp_dir("bad_trunc") + "/m.gguf";
  fs::copy_file(good, path);
  fs::resize_file(path, fs::file_size(path) - 1000);
  expect_error(path, path);
}

TEST(BadModels, FolderProblems) {
  const std::string dir = temp_dir("bad_folder");
  expect_error(dir, "config.json");
  std::ofstream(dir + "/config.json") << "{not json";
  expect_error(dir, "invalid JSON");
  std::ofstream(dir + "/config.json") << R"({"model_type": "mamba", "hidden_size": 8})";
  expect_error(dir, "unsupported architecture 'mamba'");
  expect_error(dir + "/nope", "no such file");
}

TEST(BadModels, MlxScalesOfWrongShape) {
  ModelConfig c = tiny();
  c.hidden_size = 128;
  c.intermediate_size = 256;
  const std::string dir = temp_dir("bad_mlx") + "/m";
  WriteOptions o;
  o.format = OutputFormat::MLX;
  o.type = "f16";
  write_model(c, random_tensors(c, 2), o, dir);
  // A config that claims 8 bits while the packed weights hold 4.
  std::ifstream in(dir + "/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const auto pos = text.find("\"bits\": 4");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 9, "\"bits\": 8");
  std::ofstream(dir + "/config.json") << text;
  expect_error(dir, "expected");
}

// The CLI turns these into one line on stderr and exit code 1.
TEST(BadModels, CliReportsOneLine) {
  const std::string bin = std::string(HEARTH_BINARY_DIR) + "/bin/hearth";
  const std::string dir = temp_dir("bad_cli");
  std::ofstream(dir + "/x.gguf") << "GGUF\x03garbage";
  const std::string cmd = bin + " info " + dir + "/x.gguf 2>" + dir + "/err.txt";
  const int status = std::system(cmd.c_str());
  EXPECT_NE(status, 0);
  std::ifstream err(dir + "/err.txt");
  std::string line, rest;
  std::getline(err, line);
  EXPECT_EQ(line.rfind("hearth: error: ", 0), 0u) << line;
  EXPECT_NE(line.find("x.gguf"), std::string::npos) << line;
  EXPECT_FALSE(std::getline(err, rest)) << "more than one line: " << rest;
}

TEST(BadModels, CliRejectsTokensOutsideVocabulary) {
  const std::string bin = std::string(HEARTH_BINARY_DIR) + "/bin/hearth";
  const std::string model = fixture_model("qwen3-a");
  for (const char* tokens : {"1,2,384", "-1", "1,,2", "abc", "1e3"}) {
    const std::string cmd = bin + " run -m " + model + " --raw --prompt-tokens '" + tokens + "' -n 2 --temp 0 --json 2>/dev/null >/dev/null";
    EXPECT_NE(std::system(cmd.c_str()), 0) << tokens;
  }
}

}  // namespace
