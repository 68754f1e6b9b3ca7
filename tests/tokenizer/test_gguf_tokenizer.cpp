// GGUF path of the tokenizer: export with write_to_gguf, read back with from_gguf, and
// the result must encode the whole corpus exactly as the tokenizer.json original does;
// broken tokenizer metadata must end in an Error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer_test_util.h"

namespace hearth {
namespace {

std::unique_ptr<GgufFile> parse(const GgufWriter& w, const std::string& name = "tok.gguf") {
  return GgufFile::parse(MappedFile::from_bytes(name, w.serialize()));
}

// The tiny tokenizer's metadata with `edit` applied: it may replace or erase keys.
std::unique_ptr<GgufFile> edited_tiny(const std::function<void(std::map<std::string, GgufValue>&)>& edit) {
  GgufWriter w;
  test::llama3_tiny().write_to_gguf(w);
  const auto original = parse(w);  // kept alive: metadata() refers into it
  std::map<std::string, GgufValue> kv;
  for (const auto& [k, v] : original->metadata()) kv[k] = v;
  edit(kv);
  GgufWriter out;
  for (const auto& [k, v] : kv) out.add_value(k, v);
  return parse(out, "broken.gguf");
}

GgufValue str(const std::string& s) { return GgufValue{.type = GgufType::STRING, .s = s}; }

void expect_same_encoding(const Tokenizer& a, const Tokenizer& b) {
  for (const std::string& text : test::corpus()) {
    EXPECT_EQ(a.encode(text), b.encode(text)) << nlohmann::json(text).dump();
    EXPECT_EQ(a.encode(text, false), b.encode(text, false)) << nlohmann::json(text).dump();
  }
}

TEST(GgufTokenizer, Qwen3RoundTripWithPadding) {
  const Tokenizer& hf = test::qwen3();
  GgufWriter w;
  hf.write_to_gguf(w, "{{ messages }}", 151936);
  const auto f = parse(w);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(f->get_string("tokenizer.chat_template"), "{{ messages }}");
  EXPECT_EQ(f->find("tokenizer.ggml.merges")->strings.at(0), "\xC4\xA0 \xC4\xA0");  // "Ġ Ġ"
  const Tokenizer g = Tokenizer::from_gguf(*f);
  EXPECT_EQ(g.n_vocab(), 151936);
  EXPECT_EQ(g.token_type(151700), TokenType::UNUSED);
  EXPECT_EQ(g.token_text(151935), "[PAD151935]");
  EXPECT_EQ(g.bos_id(), kNoToken);
  EXPECT_EQ(g.eos_id(), 151645);
  EXPECT_EQ(g.pad_id(), 151643);
  EXPECT_FALSE(g.add_bos());
  EXPECT_EQ(g.pre_regex(), hf.pre_regex());
  for (int32_t id = 151640; id < 151669; ++id) {
    EXPECT_EQ(g.token_type(id), hf.token_type(id)) << id;
    EXPECT_EQ(g.is_eog(id), hf.is_eog(id)) << id;
    EXPECT_EQ(g.token_to_piece(id), hf.token_to_piece(id)) << id;
  }
  expect_same_encoding(hf, g);
}

TEST(GgufTokenizer, Llama3TinyRoundTrip) {
  const Tokenizer& hf = test::llama3_tiny();
  GgufWriter w;
  hf.write_to_gguf(w);
  const auto f = parse(w);
  EXPECT_EQ(f->find("tokenizer.chat_template"), nullptr);
  const Tokenizer g = Tokenizer::from_gguf(*f);
  EXPECT_EQ(g.pre(), "llama-bpe");
  EXPECT_EQ(g.n_vocab(), hf.n_vocab());
  EXPECT_EQ(g.bos_id(), 287);
  EXPECT_TRUE(g.add_bos());
  EXPECT_EQ(g.eos_id(), hf.eos_id());
  expect_same_encoding(hf, g);
}

TEST(GgufTokenizer, FromPathTakesGgufJsonOrFolder) {
  const std::string dir = std::string(HEARTH_BINARY_DIR) + "/tokenizer_from_path";
  std::filesystem::create_directories(dir);
  GgufWriter w;
  test::llama3_tiny().write_to_gguf(w);
  w.write(dir + "/tiny.gguf");
  const std::string text = "<|begin_of_text|>Hello world 1234567 her";
  const std::vector<int32_t> want = test::llama3_tiny().encode(text);
  EXPECT_EQ(Tokenizer::from_path(dir + "/tiny.gguf").encode(text), want);
  EXPECT_EQ(Tokenizer::from_path(test::llama3_tiny_dir()).encode(text), want);
  EXPECT_EQ(Tokenizer::from_path(test::llama3_tiny_dir() + "/tokenizer.json").encode(text), want);
  EXPECT_THROW(Tokenizer::from_path(dir), Error);  // a folder without tokenizer.json
  EXPECT_THROW(Tokenizer::from_path(dir + "/missing.gguf"), Error);
}

TEST(GgufTokenizer, PreNameSelectsRegexAndDefaults) {
  // llama3 names ignore_merges and add_bos=true when the key is absent.
  const auto f = edited_tiny([](auto& kv) {
    kv["tokenizer.ggml.pre"] = str("llama3");
    kv.erase("tokenizer.ggml.add_bos_token");
  });
  const Tokenizer t = Tokenizer::from_gguf(*f);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.encode(" hello").size(), 1u);
  // A missing pre falls back to the GPT-2 regex: digit runs are not cut in threes, so
  // "1245" is one piece (12 + 45) rather than "124" + "5" (12 + 4 + 5).
  const auto g = edited_tiny([](auto& kv) { kv.erase("tokenizer.ggml.pre"); });
  const Tokenizer d = Tokenizer::from_gguf(*g);
  EXPECT_EQ(d.pre(), "default");
  EXPECT_EQ(d.pre_regex(), kRegexGpt2);
  EXPECT_EQ(d.encode("1245").size(), 2u);
  EXPECT_EQ(t.encode("1245").size(), 3u);
}

TEST(GgufTokenizer, BrokenMetadataIsAnError) {
  using Edit = std::function<void(std::map<std::string, GgufValue>&)>;
  const Edit edits[] = {
      [](auto& kv) { kv["tokenizer.ggml.model"] = str("llama"); },
      [](auto& kv) { kv.erase("tokenizer.ggml.model"); },
      [](auto& kv) { kv["tokenizer.ggml.pre"] = str("no-such-pre"); },
      [](auto& kv) { kv.erase("tokenizer.ggml.tokens"); },
      [](auto& kv) { kv["tokenizer.ggml.tokens"] = str("not an array"); },
      [](auto& kv) { kv["tokenizer.ggml.token_type"].ints.pop_back(); },
      [](auto& kv) { kv["tokenizer.ggml.merges"].strings.push_back("nospace"); },
      [](auto& kv) { kv["tokenizer.ggml.merges"].strings.push_back("\xC4\xA0 zz"); },
      [](auto& kv) { kv["tokenizer.ggml.bos_token_id"].i = 295; },
      [](auto& kv) { kv["tokenizer.ggml.eos_token_id"].i = 100000; },
  };
  int k = 0;
  for (const Edit& e : edits) {
    try {
      Tokenizer::from_gguf(*edited_tiny(e));
      ADD_FAILURE() << "edit " << k << " was accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("broken.gguf"), std::string::npos) << err.what();
    }
    ++k;
  }
}

}  // namespace
}  // namespace hearth
