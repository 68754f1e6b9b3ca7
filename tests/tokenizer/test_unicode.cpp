// Unicode helpers of the tokenizer against independent references: the UTF-8 replacement
// example of the Unicode standard (Table 3-8, which Python's errors="replace" follows),
// the GPT-2 byte map facts (formats.md 6.3), NFC results from the Unicode data files, and
// the Oniguruma White_Space set the \s rewrite must reproduce.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace hearth {
namespace {

using unicode::ByteMap;

std::vector<std::string> split_all(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> pieces;
  pre.split(text, [&](std::string_view p) { pieces.emplace_back(p); });
  return pieces;
}

TEST(Utf8, ReplacementFollowsUnicodeTable3_8) {
  // <61 F1 80 80 E1 80 C2 62 80 63 80 BF 64>: F1 80 80 and E1 80 are truncated maximal
  // subparts (one U+FFFD each), C2 before 'b' is one, lone 80 and 80 BF are one each.
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(unicode::replace_invalid_utf8(in), "a" + r + r + r + "b" + r + "c" + r + r + "d");
}

TEST(Utf8, RejectsOverlongsSurrogatesAndBeyondMax) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(unicode::replace_invalid_utf8("\xC0\xAF"), r + r);          // overlong '/'
  EXPECT_EQ(unicode::replace_invalid_utf8("\xE0\x80\xAF"), r + r + r);  // overlong, E0 needs A0..BF
  EXPECT_EQ(unicode::replace_invalid_utf8("\xED\xA0\x80"), r + r + r);  // surrogate D800
  EXPECT_EQ(unicode::replace_invalid_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // > U+10FFFF
  EXPECT_EQ(unicode::replace_invalid_utf8("\xF5\xFF"), r + r);
  EXPECT_EQ(unicode::replace_invalid_utf8("ok\xF0\x9F\x98"), "ok" + r);  // truncated at the end: one
  EXPECT_EQ(unicode::replace_invalid_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(unicode::is_valid_utf8(std::string("a\0b", 3)));
  EXPECT_FALSE(unicode::is_valid_utf8("\xC3"));
  EXPECT_TRUE(unicode::is_valid_utf8(""));
}

TEST(Utf8, StepReportsTruncation) {
  const unicode::Utf8Step s = unicode::utf8_step("\xE4\xBD", 0);
  EXPECT_EQ(s.kind, unicode::Utf8Kind::Truncated);
  EXPECT_EQ(s.len, 2);
  const unicode::Utf8Step c = unicode::utf8_step("\xE4\xBD\xA0", 0);
  EXPECT_EQ(c.kind, unicode::Utf8Kind::Char);
  EXPECT_EQ(c.cp, U'\u4F60');
}

TEST(ByteMap, Gpt2Alphabet) {
  const ByteMap& m = ByteMap::get();
  EXPECT_EQ(m.byte_to_cp(' '), U'\u0120');   // Ġ
  EXPECT_EQ(m.byte_to_cp('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(m.byte_to_cp(0x00), U'\u0100');  // Ā
  EXPECT_EQ(m.byte_to_cp('!'), U'!');
  EXPECT_EQ(m.byte_to_cp(0xAD), U'\u0143');  // the last of the 68 shifted bytes
  EXPECT_EQ(m.byte_to_cp(0xA0), U'\u0142');
  EXPECT_EQ(m.encode("Hello world"), "Hello\xC4\xA0world");
  std::string back;
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    ASSERT_TRUE(m.decode(m.encode(one), back));
    EXPECT_EQ(back, one);
  }
  EXPECT_FALSE(m.decode("\xE4\xBD\xA0", back));  // 你 is not in the alphabet
}

TEST(Nfc, ComposesAcrossAsciiBoundaries) {
  EXPECT_EQ(unicode::nfc("cafe\xCC\x81"), "caf\xC3\xA9");               // e + U+0301 -> é
  EXPECT_EQ(unicode::nfc("e\xCC\x81 x"), "\xC3\xA9 x");                 // at the start
  EXPECT_EQ(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(unicode::nfc("\xE2\x84\xAB"), "\xC3\x85");                  // Angstrom sign -> Å
  EXPECT_EQ(unicode::nfc("\xE2\x84\xAA"), "K");                         // Kelvin sign -> K
  EXPECT_EQ(unicode::nfc("q\xCC\x87\xCC\xA3"), "q\xCC\xA3\xCC\x87");    // canonical reordering
  EXPECT_EQ(unicode::nfc("\xEF\xAC\x81"), "\xEF\xAC\x81");              // ligature fi: NFKC only
  EXPECT_EQ(unicode::nfc(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(unicode::nfc(""), "");
  EXPECT_EQ(unicode::nfc("plain ascii"), "plain ascii");
}

TEST(PreTokenizer, OnigWhiteSpaceRewrite) {
  EXPECT_EQ(onig_to_pcre2(R"(\s+(?!\S))"), R"([\x{09}-\x{0D}\x{85}\p{Z}]+(?![^\x{09}-\x{0D}\x{85}\p{Z}]))");
  EXPECT_EQ(onig_to_pcre2(R"([^\s\p{L}])"), R"([^\x{09}-\x{0D}\x{85}\p{Z}\p{L}])");
  EXPECT_EQ(onig_to_pcre2(R"([]\s])"), R"([]\x{09}-\x{0D}\x{85}\p{Z}])");
  EXPECT_EQ(onig_to_pcre2(R"(\\s)"), R"(\\s)");  // an escaped backslash, then a letter
  EXPECT_THROW(onig_to_pcre2(R"([\S])"), std::exception);
  EXPECT_THROW(PreTokenizer("(unclosed"), std::exception);
}

TEST(PreTokenizer, Qwen2Pieces) {
  const PreTokenizer pre(kRegexQwen2);
  using V = std::vector<std::string>;
  EXPECT_EQ(split_all(pre, "Hello world 12345"), (V{"Hello", " world", " ", "1", "2", "3", "4", "5"}));
  EXPECT_EQ(split_all(pre, "I'M don't"), (V{"I", "'M", " don", "'t"}));
  EXPECT_EQ(split_all(pre, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split_all(pre, "x \n\n y"), (V{"x", " \n\n", " y"}));
  EXPECT_EQ(split_all(pre, "(hi)!!\n"), (V{"(hi", ")!!\n"}));
  EXPECT_EQ(split_all(pre, "   "), (V{"   "}));
  EXPECT_TRUE(split_all(pre, "").empty());
  // U+00A0 and U+3000 are White_Space; U+180E and U+200B are not (Cf).
  EXPECT_EQ(split_all(pre, "a\xC2\xA0" "b"), (V{"a", "\xC2\xA0" "b"}));
  EXPECT_EQ(split_all(pre, "a \xE3\x80\x80x"), (V{"a", " ", "\xE3\x80\x80x"}));
  EXPECT_EQ(split_all(pre, "a \xE1\xA0\x8E" "b"), (V{"a", " \xE1\xA0\x8E", "b"}));
  EXPECT_EQ(split_all(pre, "a\xC2\x85" "b"), (V{"a", "\xC2\x85" "b"}));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThree) {
  const PreTokenizer pre(kRegexLlama3);
  using V = std::vector<std::string>;
  EXPECT_EQ(split_all(pre, "1234567 x"), (V{"123", "456", "7", " x"}));
  EXPECT_EQ(split_all(pre, "\xD9\xA3\xD9\xA4\xD9\xA5\xD9\xA6"), (V{"\xD9\xA3\xD9\xA4\xD9\xA5", "\xD9\xA6"}));
}

TEST(PreTokenizer, Gpt2KeepsSpaceBeforeDigits) {
  const PreTokenizer pre(kRegexGpt2);
  using V = std::vector<std::string>;
  EXPECT_EQ(split_all(pre, "it's 2024!"), (V{"it", "'s", " 2024", "!"}));
}

TEST(PreTokenizer, LongRunsAreOnePiece) {
  const PreTokenizer pre(kRegexQwen2);
  for (const char* unit : {" ", "\n", "a", "!", "\r\n"}) {
    std::string text;
    while (text.size() < 4'000'000) text += unit;
    text += "z";
    size_t total = 0, count = 0;
    pre.split(text, [&](std::string_view p) { total += p.size(), ++count; });
    EXPECT_EQ(total, text.size()) << unit;
    EXPECT_LE(count, 3u) << unit;
  }
}

}  // namespace
}  // namespace hearth
