// Tokenizer::from_gguf and Tokenizer::write_to_gguf: the tokenizer.ggml.* metadata keys
// as llama.cpp's converter writes them. GGUF carries no normalizer or regex, only the
// pre-tokenizer's name, so the name decides both: the Qwen2 family gets NFC because its
// tokenizer.json declares it (llama.cpp skips it; the two differ only on non-NFC input).
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "io/gguf.h"
#include "tokenizer/vocab.h"

namespace hearth {

namespace {

struct PreFamily {
  std::string_view regex;
  bool nfc;
  bool ignore_merges;
  bool add_bos;  // default when tokenizer.ggml.add_bos_token is absent
};

// Names as llama.cpp's converter writes them (read for the facts only).
std::optional<PreFamily> pre_family(std::string_view name) {
  if (name == "qwen2" || name == "deepseek-r1-qwen" || name == "megrez") return PreFamily{kRegexQwen2, true, false, false};
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") return PreFamily{kRegexLlama3, false, true, true};
  if (name == "gpt-2" || name == "default") return PreFamily{kRegexGpt2, false, false, false};
  return std::nullopt;
}

// An array-valued key of strings or of integers; nullptr when absent.
const GgufValue* find_array(const GgufFile& f, std::string_view key, bool strings) {
  const GgufValue* v = f.find(key);
  if (!v) return nullptr;
  const GgufType e = v->elem_type;
  const bool integer = e != GgufType::STRING && e != GgufType::ARRAY && e != GgufType::FLOAT32 && e != GgufType::FLOAT64;
  if (v->type != GgufType::ARRAY || (strings ? e != GgufType::STRING : !integer))
    fail(f.path() + ": " + std::string(key) + " is not an array of " + (strings ? "strings" : "integers"));
  return v;
}

int32_t special_id(const GgufFile& f, const char* key) {
  const int64_t id = f.get_int_or(key, kNoToken);
  if (id < kNoToken || id > INT32_MAX) fail(f.path() + ": " + key + " " + std::to_string(id) + " is out of range");
  return static_cast<int32_t>(id);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
  const std::string& src = f.path();
  const std::string model = f.get_string_or("tokenizer.ggml.model", "");
  if (model.empty()) fail(src + ": no tokenizer (tokenizer.ggml.model is missing)");
  if (model != "gpt2") fail(src + ": tokenizer model \"" + model + "\" is not supported (only byte-level BPE \"gpt2\")");

  VocabSpec spec;
  spec.source = src;
  spec.pre_name = f.get_string_or("tokenizer.ggml.pre", "");
  if (spec.pre_name.empty()) {
    log_warn(src + ": tokenizer.ggml.pre is missing, using the GPT-2 split regex");
    spec.pre_name = "default";
  }
  const std::optional<PreFamily> fam = pre_family(spec.pre_name);
  if (!fam)
    fail(src + ": tokenizer.ggml.pre \"" + spec.pre_name +
         "\" is not supported (known: qwen2, deepseek-r1-qwen, megrez, llama3, llama-v3, llama-bpe, gpt-2, default)");
  spec.pre_regex = fam->regex;
  spec.nfc = fam->nfc;
  spec.ignore_merges = fam->ignore_merges;

  const GgufValue* tokens = find_array(f, "tokenizer.ggml.tokens", true);
  if (!tokens) fail(src + ": tokenizer.ggml.tokens is missing");
  spec.tokens = tokens->strings;
  const size_t n = spec.tokens.size();
  spec.types.assign(n, TokenType::NORMAL);
  if (const GgufValue* types = find_array(f, "tokenizer.ggml.token_type", false)) {
    if (types->ints.size() != n)
      fail(src + ": tokenizer.ggml.token_type has " + std::to_string(types->ints.size()) + " entries for " +
           std::to_string(n) + " tokens");
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = types->ints[i];
      // Unknown type values (0 = undefined) are treated as ordinary tokens.
      spec.types[i] = t >= 1 && t <= 6 ? static_cast<TokenType>(t) : TokenType::NORMAL;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (spec.tokens[i].empty()) spec.types[i] = TokenType::UNUSED;  // becomes "[PADi]"
  }

  if (const GgufValue* merges = find_array(f, "tokenizer.ggml.merges", true)) {
    spec.merges.reserve(merges->strings.size());
    for (const std::string& m : merges->strings) {
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) fail(src + ": tokenizer.ggml.merges entry \"" + m + "\" is not \"a b\"");
      spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
  }

  spec.bos = special_id(f, "tokenizer.ggml.bos_token_id");
  spec.eos = special_id(f, "tokenizer.ggml.eos_token_id");
  spec.eot = special_id(f, "tokenizer.ggml.eot_token_id");
  spec.eom = special_id(f, "tokenizer.ggml.eom_token_id");
  spec.pad = special_id(f, "tokenizer.ggml.padding_token_id");
  spec.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", fam->add_bos);
  if (spec.add_bos && spec.bos == kNoToken) fail(src + ": tokenizer.ggml.add_bos_token is true but there is no BOS id");
  return Tokenizer(build_tokenizer(std::move(spec)));
}

Tokenizer Tokenizer::from_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    if (!fs::exists(json, ec)) fail(path + ": no tokenizer.json in this folder");
    return from_hf_json(json.string());
  }
  if (!fs::exists(path, ec)) fail(path + ": no such file or folder");
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return from_hf_json(path);
  return from_gguf(*GgufFile::open(path));
}

void Tokenizer::write_to_gguf(GgufWriter& w, const std::string& chat_template, int32_t n_vocab_padded) const {
  const TokenizerData& d = data();
  if (d.pre_name.empty())
    fail("write_to_gguf: the tokenizer's split regex has no GGUF pre-tokenizer name: " + d.pre->pattern());
  const int32_t n = std::max(n_vocab(), n_vocab_padded);
  std::vector<std::string> tokens(d.text.begin(), d.text.end());
  std::vector<int32_t> types;
  types.reserve(static_cast<size_t>(n));
  for (TokenType t : d.types) types.push_back(static_cast<int32_t>(t));
  for (int32_t i = n_vocab(); i < n; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(static_cast<int32_t>(TokenType::UNUSED));
  }
  std::vector<std::string> merges;
  merges.reserve(d.bpe.merges().size());
  for (const BpeMerge& m : d.bpe.merges()) merges.push_back(d.text[m.left] + " " + d.text[m.right]);

  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", d.pre_name);
  w.add_array_strings("tokenizer.ggml.tokens", tokens);
  w.add_array_int32("tokenizer.ggml.token_type", types);
  w.add_array_strings("tokenizer.ggml.merges", merges);
  const std::pair<const char*, int32_t> ids[] = {{"tokenizer.ggml.bos_token_id", d.bos},
                                                 {"tokenizer.ggml.eos_token_id", d.eos},
                                                 {"tokenizer.ggml.eot_token_id", d.eot},
                                                 {"tokenizer.ggml.eom_token_id", d.eom},
                                                 {"tokenizer.ggml.padding_token_id", d.pad}};
  for (const auto& [key, id] : ids)
    if (id != kNoToken) w.add_uint32(key, static_cast<uint32_t>(id));
  w.add_bool("tokenizer.ggml.add_bos_token", d.add_bos);
  if (!chat_template.empty()) w.add_string("tokenizer.chat_template", chat_template);
}

}  // namespace hearth
