// StopMatcher: see sampler_stop.h. Stop strings are short and few, so plain searches over
// the small held-back buffer are cheaper than any automaton would be to build.
#include "engine/sampler_stop.h"

#include <algorithm>

namespace hearth {

size_t utf8_incomplete_tail(std::string_view text) {
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto byte = static_cast<unsigned char>(text[n - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = 1;
    if ((byte & 0xE0) == 0xC0) need = 2;
    else if ((byte & 0xF0) == 0xE0) need = 3;
    else if ((byte & 0xF8) == 0xF0) need = 4;
    return back < need ? back : 0;
  }
  return 0;  // only continuation bytes: not a sequence we can complete
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

size_t StopMatcher::partial_tail() const {
  const std::string_view held = held_;
  const size_t longest = std::min(held.size(), max_len_ == 0 ? 0 : max_len_ - 1);
  for (size_t len = longest; len > 0; --len) {
    const std::string_view tail = held.substr(held.size() - len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).starts_with(tail)) return len;
    }
  }
  return 0;
}

StopMatcher::Result StopMatcher::feed(std::string_view piece) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    return result;
  }
  const size_t old_size = held_.size();
  held_.append(piece);

  // held_[0, old_size) contained no complete stop string, so a match must end in the new
  // text. Keep the one that ends first, then the one that starts first.
  size_t best_start = std::string::npos;
  size_t best_end = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const std::string& s = stops_[i];
    const size_t from = old_size + 1 > s.size() ? old_size + 1 - s.size() : 0;
    const size_t pos = held_.find(s, from);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_start = pos;
      best_end = end;
      result.stop_index = static_cast<int>(i);
    }
  }
  if (result.stop_index >= 0) {
    result.text = held_.substr(0, best_start);
    result.stopped = true;
    stopped_ = true;
    held_.clear();
    return result;
  }

  const size_t hold = partial_tail();
  size_t emit = held_.size() - hold;
  // A stop-string prefix starts on a character boundary, so only a trailing incomplete
  // character (no held prefix after it) needs holding back for the rest of its bytes.
  if (hold == 0) emit -= utf8_incomplete_tail(held_);
  result.text = held_.substr(0, emit);
  held_.erase(0, emit);
  return result;
}

std::string StopMatcher::flush() {
  std::string rest;
  if (!stopped_) rest.swap(held_);
  held_.clear();
  return rest;
}

}  // namespace hearth
