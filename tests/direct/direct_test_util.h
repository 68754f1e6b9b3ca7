// Helpers of the direct-mode and API tests: the tiny synthetic Qwen3 model with the real
// tokenizer (written once per build tree), and running the hearth CLI as a child process.
#pragma once

#include <string>

namespace hearth::test {

// build/test_tmp/direct/tiny-q8_0.gguf, written on first use from qwen3_shape("tiny").
// Returns "" when the Qwen3 tokenizer is not installed (tests then skip).
std::string tiny_model();

// A fresh directory under build/test_tmp.
std::string scratch_dir(const std::string& name);

struct CliResult {
  int status = -1;  // exit code (-1: did not exit normally)
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `build/bin/hearth ARGS` through the shell, stdin from `stdin_text` (or /dev/null).
CliResult run_hearth(const std::string& args, const std::string& stdin_text = "");

std::string read_file(const std::string& path);

}  // namespace hearth::test
