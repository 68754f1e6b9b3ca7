// StopMatcher: fixed cases (stop strings split across pieces, multi-byte characters,
// overlapping prefixes) and a randomized comparison with a whole-text reference that scans
// for the earliest-ending stop string, over many random cuttings of the same text.
#include <gtest/gtest.h>

#include <random>

#include "engine/sampler_stop.h"

using namespace hearth;

namespace {

struct Outcome {
  std::string text;
  bool stopped = false;
  int index = -1;
  bool operator==(const Outcome&) const = default;
};

Outcome run_pieces(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                   std::vector<std::string>* emitted = nullptr) {
  StopMatcher matcher(stops);
  Outcome out;
  for (const auto& piece : pieces) {
    auto r = matcher.feed(piece);
    if (emitted) emitted->push_back(r.text);
    out.text += r.text;
    if (r.stopped) {
      out.stopped = true;
      out.index = r.stop_index;
      return out;
    }
  }
  out.text += matcher.flush();
  return out;
}

// Whole-text reference: the first position where some stop string ends; among stops ending
// there, the earliest start.
Outcome reference(const std::vector<std::string>& stops, const std::string& text) {
  for (size_t end = 1; end <= text.size(); ++end) {
    int best = -1;
    size_t best_start = 0;
    for (size_t i = 0; i < stops.size(); ++i) {
      const auto& s = stops[i];
      if (s.size() > end || text.compare(end - s.size(), s.size(), s) != 0) continue;
      if (best < 0 || end - s.size() < best_start) best = static_cast<int>(i), best_start = end - s.size();
    }
    if (best >= 0) return {text.substr(0, best_start), true, best};
  }
  return {text, false, -1};
}

std::vector<std::string> split_bytes(const std::string& text) {
  std::vector<std::string> out;
  for (char c : text) out.emplace_back(1, c);
  return out;
}

bool valid_utf8_boundary(const std::string& s) { return utf8_incomplete_tail(s) == 0; }

}  // namespace

TEST(StopMatcher, StopSplitAcrossPieces) {
  const std::vector<std::string> stops = {"</answer>"};
  std::vector<std::string> emitted;
  const auto out = run_pieces(stops, {"The result is 4", "2.</ans", "wer> trailing"}, &emitted);
  EXPECT_EQ(out, (Outcome{"The result is 42.", true, 0}));
  EXPECT_EQ(emitted[1], "2.");  // "</ans" held back
}

TEST(StopMatcher, FalseStartIsReleased) {
  std::vector<std::string> emitted;
  const auto out = run_pieces({"STOP"}, {"ab ST", "OLE", "N"}, &emitted);
  EXPECT_EQ(out, (Outcome{"ab STOLEN", false, -1}));
  EXPECT_EQ(emitted[0], "ab ");
  EXPECT_EQ(emitted[1], "STOLE");
}

TEST(StopMatcher, OverlappingPrefixes) {
  // The held tail must be the longest one that can still match: "abab" -> keep "ab".
  EXPECT_EQ(run_pieces({"abac"}, {"abab", "ac"}), (Outcome{"ab", true, 0}));
  EXPECT_EQ(run_pieces({"aab"}, split_bytes("aaab")), (Outcome{"a", true, 0}));
  // Two stops: the one completed first wins even though the other started earlier.
  EXPECT_EQ(run_pieces({"abcde", "bc"}, {"abcde"}), (Outcome{"a", true, 1}));
  EXPECT_EQ(run_pieces({"abcde", "bc"}, split_bytes("abcde")), (Outcome{"a", true, 1}));
  // Same end: the earlier start (the longer stop) wins.
  EXPECT_EQ(run_pieces({"cd", "bcd"}, {"ab", "cd"}), (Outcome{"a", true, 1}));
}

TEST(StopMatcher, MultiByteCharacters) {
  // "→" is 3 bytes, "é" 2: fed byte by byte, no emitted piece may end mid-character.
  const std::string text = "café → done → 終わり";
  std::vector<std::string> emitted;
  const auto out = run_pieces({"→ 終"}, split_bytes(text), &emitted);
  EXPECT_EQ(out, (Outcome{"café → done ", true, 0}));
  for (const auto& piece : emitted) EXPECT_TRUE(valid_utf8_boundary(piece)) << piece;

  emitted.clear();
  const auto none = run_pieces({"xyz"}, split_bytes(text), &emitted);
  EXPECT_EQ(none.text, text);
  for (const auto& piece : emitted) EXPECT_TRUE(valid_utf8_boundary(piece)) << piece;
}

TEST(StopMatcher, NothingAfterStop) {
  StopMatcher matcher({"\n\n"});
  auto r = matcher.feed("line\n\nmore");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "line");
  r = matcher.feed("ignored");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher matcher({});
  EXPECT_EQ(matcher.feed("abc").text, "abc");
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopMatcher, RandomSplitsAgreeWithWholeTextReference) {
  std::mt19937_64 gen(42);
  const std::vector<std::string> alphabet = {"a", "b", "c", "é", "→", " "};
  auto random_string = [&](size_t len) {
    std::string s;
    for (size_t i = 0; i < len; ++i) s += alphabet[gen() % alphabet.size()];
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops;
    const size_t n_stops = 1 + gen() % 3;
    for (size_t i = 0; i < n_stops; ++i) stops.push_back(random_string(1 + gen() % 4));
    const std::string text = random_string(gen() % 40);
    const Outcome want = reference(stops, text);
    for (int cut = 0; cut < 5; ++cut) {
      std::vector<std::string> pieces;
      for (size_t pos = 0; pos < text.size();) {
        const size_t len = 1 + gen() % 6;
        pieces.push_back(text.substr(pos, len));  // may split a multi-byte character
        pos += len;
      }
      std::vector<std::string> emitted;
      const Outcome got = run_pieces(stops, pieces, &emitted);
      ASSERT_EQ(got, want) << "trial " << trial << " text '" << text << "' stop[0] '" << stops[0] << "'";
      for (const auto& piece : emitted) ASSERT_TRUE(valid_utf8_boundary(piece)) << "trial " << trial;
    }
  }
}
