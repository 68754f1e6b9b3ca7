// Tokenizer::from_hf_json: reads a Hugging Face tokenizer.json (and tokenizer_config.json)
// into a VocabSpec. Only what byte-level BPE needs is accepted; any other normalizer,
// pre-tokenizer or model option is refused with an Error that names it, rather than
// being silently ignored and producing different ids.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/vocab.h"

namespace hearth {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  json j = json::parse(buf.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(path + ": not valid JSON");
  return j;
}

bool is_type(const json& j, const char* type) { return j.is_object() && j.value("type", "") == type; }

// Normalizer: none, NFC, or a Sequence of NFCs.
bool read_normalizer(const json& j, const std::string& src) {
  if (j.is_null()) return false;
  if (is_type(j, "NFC")) return true;
  if (is_type(j, "Sequence")) {
    bool nfc = false;
    for (const json& n : j.at("normalizers")) nfc = read_normalizer(n, src) || nfc;
    return nfc;
  }
  fail(src + ": unsupported normalizer " + j.dump() + " (only NFC)");
}

// Pre-tokenizer: one Split (Regex, Isolated) plus ByteLevel without its own regex, or a
// ByteLevel with use_regex (the GPT-2 pattern). Returns the split regex.
std::string read_pre_tokenizer(const json& j, const std::string& src) {
  std::vector<json> steps;
  if (is_type(j, "Sequence")) {
    for (const json& p : j.at("pretokenizers")) steps.push_back(p);
  } else if (!j.is_null()) {
    steps.push_back(j);
  }
  std::string split;
  bool byte_level = false, byte_level_regex = false;
  for (const json& p : steps) {
    if (is_type(p, "Split")) {
      if (!split.empty()) fail(src + ": more than one Split pre-tokenizer is not supported");
      const json& pat = p.at("pattern");
      if (!pat.contains("Regex")) fail(src + ": Split pre-tokenizer with a non-regex pattern is not supported");
      if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
        fail(src + ": Split pre-tokenizer must have behavior Isolated and invert false");
      split = pat.at("Regex").get<std::string>();
      if (split.empty()) fail(src + ": Split pre-tokenizer has an empty regex");
    } else if (is_type(p, "ByteLevel")) {
      byte_level = true;
      byte_level_regex = p.value("use_regex", true);
      if (p.value("add_prefix_space", false)) fail(src + ": ByteLevel add_prefix_space is not supported");
    } else {
      fail(src + ": unsupported pre-tokenizer " + p.dump().substr(0, 200));
    }
  }
  if (!byte_level) fail(src + ": not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer)");
  if (byte_level_regex && !split.empty())
    fail(src + ": a Split pre-tokenizer followed by ByteLevel with use_regex is not supported");
  return byte_level_regex ? std::string(kRegexGpt2) : split;
}

// bos_token / eos_token / pad_token: a string, {"content": ...}, or null.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return "";
}

// The leading special token of a TemplateProcessing post-processor ("single" template),
// possibly inside a Sequence: that is how Llama 3 adds <|begin_of_text|>.
std::string template_bos(const json& pp) {
  if (is_type(pp, "Sequence")) {
    for (const json& p : pp.at("processors")) {
      std::string t = template_bos(p);
      if (!t.empty()) return t;
    }
    return "";
  }
  if (!is_type(pp, "TemplateProcessing")) return "";
  const json& single = pp.at("single");
  if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) return "";
  return single[0]["SpecialToken"].at("id").get<std::string>();
}

// Vocabulary and added tokens into spec.tokens / spec.types. model.vocab ids are used as
// written (a gap becomes an UNUSED entry). Added tokens are numbered the way tokenizers
// numbers them when it loads the file: one already in model.vocab keeps that id, any
// other takes the next id after the vocabulary and the added tokens before it; their
// "id" fields are not used (tokenizers only warns when they differ, and so do we).
void read_vocab(const json& j, const std::string& path, VocabSpec& spec) {
  std::unordered_map<std::string, int64_t> model_ids;
  int64_t max_id = -1;
  for (const auto& [text, v] : j.at("model").at("vocab").items()) {
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= (int64_t{1} << 30)) fail(path + ": token \"" + text + "\" has id " + std::to_string(id) + " out of range");
    if (text.empty()) fail(path + ": token " + std::to_string(id) + " is empty");
    model_ids.emplace(text, id);
    max_id = std::max(max_id, id);
  }
  const auto model_size = static_cast<int64_t>(model_ids.size());

  struct Added {
    std::string text;
    int64_t id;
    TokenType type;
  };
  std::vector<Added> added;
  std::unordered_map<std::string, int64_t> added_ids;
  int64_t max_added = -1;
  for (const json& t : j.value("added_tokens", json::array())) {
    std::string text = t.at("content").get<std::string>();
    if (text.empty() || added_ids.count(text)) continue;
    int64_t id;
    if (auto it = model_ids.find(text); it != model_ids.end()) {
      id = it->second;
    } else if (max_added < 0) {
      id = model_size;
    } else {
      id = max_added >= model_size || model_size == 0 ? max_added + 1 : model_size;
    }
    if (t.contains("id") && t["id"].get<int64_t>() != id)
      log_warn(path + ": added token \"" + text + "\" has id " + std::to_string(t["id"].get<int64_t>()) +
               " in the file; numbered " + std::to_string(id) + " as tokenizers does");
    max_added = std::max(max_added, id);
    added_ids.emplace(text, id);
    added.push_back({std::move(text), id, t.value("special", false) ? TokenType::CONTROL : TokenType::USER_DEFINED});
  }

  const auto n = static_cast<size_t>(std::max(max_id, max_added) + 1);
  spec.tokens.assign(n, "");
  spec.types.assign(n, TokenType::UNUSED);
  for (const auto& [text, id] : model_ids) {
    const auto i = static_cast<size_t>(id);
    if (!spec.tokens[i].empty())
      fail(path + ": id " + std::to_string(id) + " is used by both \"" + spec.tokens[i] + "\" and \"" + text + "\"");
    spec.tokens[i] = text;
    spec.types[i] = TokenType::NORMAL;
  }
  for (Added& a : added) {
    // An added token that is also a vocabulary entry keeps its id and takes its type.
    const auto i = static_cast<size_t>(a.id);
    if (!spec.tokens[i].empty() && spec.tokens[i] != a.text)
      fail(path + ": id " + std::to_string(a.id) + " is used by both \"" + spec.tokens[i] + "\" and added token \"" +
           a.text + "\"");
    spec.tokens[i] = std::move(a.text);
    spec.types[i] = a.type;
  }
}

VocabSpec read_spec(const std::string& path, const std::string& config_path) {
  const json j = read_json(path);
  VocabSpec spec;
  spec.source = path;
  const json& model = j.at("model");
  if (model.value("type", "BPE") != "BPE") fail(path + ": model type " + model.value("type", "") + " is not BPE");
  if (model.value("byte_fallback", false)) fail(path + ": BPE byte_fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      fail(path + ": BPE " + key + " is not supported");
  }
  spec.ignore_merges = model.value("ignore_merges", false);

  read_vocab(j, path, spec);

  for (const json& m : model.at("merges")) {
    if (m.is_array() && m.size() == 2) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      // Older files write "a b"; a token never contains a space here (it is Ġ).
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) fail(path + ": merge \"" + s + "\" is not two tokens separated by a space");
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      fail(path + ": malformed merge " + m.dump());
    }
  }

  spec.nfc = read_normalizer(j.value("normalizer", json()), path);
  spec.pre_regex = read_pre_tokenizer(j.value("pre_tokenizer", json()), path);
  spec.pre_name = pre_name_for_regex(spec.pre_regex);

  auto id_of = [&](const std::string& text, const std::string& src) {
    for (size_t i = 0; i < spec.tokens.size(); ++i)
      if (spec.tokens[i] == text) return static_cast<int32_t>(i);
    fail(src + ": token \"" + text + "\" is not in the vocabulary");
  };
  const std::string bos_template = template_bos(j.value("post_processor", json()));
  if (!bos_template.empty()) {
    spec.bos = id_of(bos_template, path);
    spec.add_bos = true;
  }
  if (!config_path.empty()) {
    const json cfg = read_json(config_path);
    if (const std::string t = config_token(cfg, "bos_token"); !t.empty()) spec.bos = id_of(t, config_path);
    if (const std::string t = config_token(cfg, "eos_token"); !t.empty()) spec.eos = id_of(t, config_path);
    if (const std::string t = config_token(cfg, "pad_token"); !t.empty()) spec.pad = id_of(t, config_path);
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) spec.add_bos = cfg["add_bos_token"].get<bool>();
  }
  if (spec.add_bos && spec.bos == kNoToken) fail(path + ": add_bos_token is true but there is no BOS token");
  return spec;
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(const std::string& tokenizer_json_path, const std::string& config_path) {
  std::string cfg = config_path;
  if (cfg.empty()) {
    const auto sibling = std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(sibling)) cfg = sibling.string();
  }
  VocabSpec spec;
  try {
    spec = read_spec(tokenizer_json_path, cfg);
  } catch (const nlohmann::json::exception& e) {
    fail(tokenizer_json_path + ": unexpected tokenizer JSON layout: " + e.what());
  }
  return Tokenizer(build_tokenizer(std::move(spec)));
}

}  // namespace hearth
