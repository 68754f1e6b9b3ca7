// Stop strings over streamed text. The detokenizer hands over text one piece per token; a
// stop string may straddle pieces, so the matcher holds back the longest tail that could
// still become one, and never emits half of a UTF-8 character. When a stop string is
// completed, the text before it is emitted and the stop string itself is not (as OpenAI).
//
// If several stop strings could match, the one that is completed first while reading the
// text left to right wins (on a tie, the one that starts earlier). That rule depends only
// on the text, not on how it was cut into pieces.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hearth {

class StopMatcher {
 public:
  // Empty strings in stops are ignored (SamplingParams::validate rejects them anyway).
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;     // safe to emit now
    bool stopped = false;  // a stop string was completed: end the generation
    int stop_index = -1;   // which of the stops, when stopped
  };

  // Appends a piece of generated text. After a stop, further pieces are ignored.
  Result feed(std::string_view piece);

  // End of generation without a stop string: returns what was held back.
  std::string flush();

  bool stopped() const { return stopped_; }

 private:
  // Length of the longest tail of held_ that is a proper prefix of some stop string.
  size_t partial_tail() const;

  std::vector<std::string> stops_;
  size_t max_len_ = 0;  // longest stop string
  std::string held_;    // received but not yet emitted
  bool stopped_ = false;
};

// Length of the tail of text that is an incomplete UTF-8 sequence (0-3 bytes).
size_t utf8_incomplete_tail(std::string_view text);

}  // namespace hearth
