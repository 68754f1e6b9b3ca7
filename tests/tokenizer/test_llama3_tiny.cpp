// A tiny Llama-3-style tokenizer (fixtures/tokenizer/llama3_tiny, written by
// scripts/make_tokenizer_fixtures.py --write-llama3-tiny): 256 byte tokens, a few dozen
// merges, whole-word tokens only ignore_merges can produce, Llama 3 special tokens and a
// TemplateProcessing BOS. Hand-derived expectations below; the corpus is
// compared with llama3_tiny_ids.jsonl from tokenizers/transformers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace hearth {
namespace {

using test::llama3_tiny;

// Id of the token whose raw bytes are `bytes`.
int32_t tok(std::string_view bytes) {
  const auto id = llama3_tiny().find_token(unicode::ByteMap::get().encode(bytes));
  EXPECT_TRUE(id.has_value()) << bytes;
  return id.value_or(-1);
}

int32_t special(std::string_view text) { return llama3_tiny().find_token(text).value_or(-1); }

TEST(Llama3Tiny, Metadata) {
  const Tokenizer& t = llama3_tiny();
  EXPECT_EQ(t.n_vocab(), 294);
  EXPECT_EQ(t.pre(), "llama-bpe");
  EXPECT_EQ(t.bos_id(), 287);  // from the TemplateProcessing post-processor
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.eos_id(), special("<|eot_id|>"));  // from tokenizer_config.json
  EXPECT_EQ(t.token_text(287), "<|begin_of_text|>");
  for (const char* eog : {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}) EXPECT_TRUE(t.is_eog(special(eog))) << eog;
  EXPECT_FALSE(t.is_eog(287));
  EXPECT_TRUE(t.is_special(287));
}

// Added tokens are numbered as tokenizers numbers them, not by their "id" fields: after
// the vocabulary, in file order, except one that is already a vocabulary entry. A gap in
// model.vocab ids becomes an UNUSED entry.
TEST(Llama3Tiny, AddedTokenIdsFollowTokenizersNumbering) {
  nlohmann::json j;
  std::ifstream(test::llama3_tiny_dir() + "/tokenizer.json") >> j;
  j["model"]["vocab"]["\xC4\xA0" "far"] = 400;  // "Ġfar", far past the others
  nlohmann::json added = nlohmann::json::array();
  added.push_back({{"id", 5000}, {"content", "<|a|>"}, {"special", true}});
  added.push_back({{"id", 7}, {"content", "xyz"}, {"special", false}});  // already in the vocabulary
  added.push_back({{"id", 5001}, {"content", "<|b|>"}, {"special", false}});
  added.push_back({{"id", 5002}, {"content", "<|a|>"}, {"special", false}});  // a repeat: ignored
  j["added_tokens"] = added;
  j.erase("post_processor");
  const std::string dir = std::string(HEARTH_BINARY_DIR) + "/tokenizer_renumbered";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  const Tokenizer t = Tokenizer::from_hf_json(dir + "/tokenizer.json");  // no tokenizer_config.json there
  // model.vocab has 288 entries (ids 0..286 and 400): added ids start at 288.
  EXPECT_EQ(t.find_token("<|a|>"), 288);
  EXPECT_EQ(t.find_token("<|b|>"), 289);
  const int32_t xyz = *t.find_token("xyz");
  EXPECT_LT(xyz, 287);
  EXPECT_EQ(t.token_type(xyz), TokenType::USER_DEFINED);
  EXPECT_TRUE(t.is_special(288));
  EXPECT_FALSE(t.is_special(289));
  EXPECT_EQ(t.n_vocab(), 401);
  EXPECT_EQ(t.token_type(300), TokenType::UNUSED);
  EXPECT_EQ(t.find_token("[PAD300]"), std::nullopt);
  EXPECT_EQ(t.encode("<|a|> far<|b|>xyz"), (std::vector<int32_t>{288, 400, 289, xyz}));
}

TEST(Llama3Tiny, HandDerivedIds) {
  const Tokenizer& t = llama3_tiny();
  using V = std::vector<int32_t>;
  // "h e" (rank 3) is merged before "e r" (rank 5).
  EXPECT_EQ(t.encode("her"), (V{tok("he"), tok("r")}));
  // ignore_merges: pieces that are whole tokens skip BPE (no merge path reaches them).
  EXPECT_EQ(t.encode(" hello"), (V{tok(" hello")}));
  EXPECT_EQ(t.encode("HELLO"), (V{tok("HELLO")}));
  EXPECT_EQ(t.encode("xyz"), (V{tok("xyz")}));
  EXPECT_EQ(t.encode(" xyz"), (V{tok(" "), tok("x"), tok("y"), tok("z")}));  // " xyz" is not a token
  // Digits in groups of up to three: 123 | 456 | 7, and "4 5" is a merge.
  EXPECT_EQ(t.encode("1234567"), (V{tok("123"), tok("45"), tok("6"), tok("7")}));
  EXPECT_EQ(t.encode("then the"), (V{tok("then"), tok(" the")}));
  EXPECT_EQ(t.encode("aaaaa"), (V{tok("aaaa"), tok("a")}));
  EXPECT_EQ(t.encode("\xC3\xA9\xC3\xA9\xC3\xA9"), (V{tok("\xC3\xA9\xC3\xA9"), tok("\xC3\xA9")}));
  EXPECT_EQ(t.encode("<|begin_of_text|>Hello world<|eot_id|>"),
            (V{287, tok("Hello"), tok(" world"), special("<|eot_id|>")}));
  // Qwen's added tokens are plain text here.
  EXPECT_EQ(t.decode(t.encode("<|im_end|>")), "<|im_end|>");
  EXPECT_GT(t.encode("<|im_end|>").size(), 1u);
  // No NFC for Llama 3: a decomposed é stays decomposed.
  EXPECT_EQ(t.decode(t.encode("e\xCC\x81")), "e\xCC\x81");
}

TEST(Llama3Tiny, MatchesReferenceFixture) {
  const auto rows = test::read_jsonl(test::ids_fixture("llama3_tiny_ids.jsonl"));
  if (rows.empty()) GTEST_SKIP() << "no llama3_tiny_ids.jsonl: run scripts/make_tokenizer_fixtures.py";
  const std::vector<std::string> texts = test::corpus();
  ASSERT_EQ(rows.size(), texts.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].at("text").get<std::string>(), texts[i]) << i;
    const std::vector<int32_t> want = test::ids_of(rows[i]);
    EXPECT_EQ(llama3_tiny().encode(texts[i]), want) << "corpus text " << i << ": " << nlohmann::json(texts[i]).dump();
    EXPECT_EQ(llama3_tiny().decode(want), rows[i].at("decoded").get<std::string>()) << i;
    EXPECT_EQ(llama3_tiny().decode(want, true), rows[i].at("decoded_skip").get<std::string>()) << i;
  }
}

TEST(Llama3Tiny, RoundTripIsIdentity) {
  for (const std::string& text : test::corpus()) {
    const std::vector<int32_t> ids = llama3_tiny().encode(text);
    EXPECT_EQ(llama3_tiny().decode(ids), text) << nlohmann::json(text).dump();
    bool valid = false;
    EXPECT_EQ(test::stream_decode(llama3_tiny(), ids, false, &valid), text);
    EXPECT_TRUE(valid);
  }
}

TEST(Llama3Tiny, ConfigPathIsOptionalButMustExistWhenGiven) {
  EXPECT_THROW(Tokenizer::from_hf_json(test::llama3_tiny_dir() + "/tokenizer.json", "/nonexistent/config.json"), Error);
  EXPECT_THROW(Tokenizer::from_hf_json("/nonexistent/tokenizer.json"), Error);
}

}  // namespace
}  // namespace hearth
