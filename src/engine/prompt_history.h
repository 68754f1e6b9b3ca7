// PromptHistory: the token sequences of recent requests (prompt, then what was generated),
// kept so a new prompt can be compared with the most similar earlier one. The prefix
// cache reuses whole blocks; this says, to the token, where a prompt stopped matching
// what came before (a timestamp in the system prompt, a reordered tool list), which the
// server reports on partial misses. Thread-safe; bounded by entries and by tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

namespace hearth {

class PromptHistory {
 public:
  PromptHistory(size_t max_entries = 64, size_t max_tokens = size_t{1} << 21)
      : max_entries_(max_entries), max_tokens_(max_tokens) {}

  struct Match {
    bool found = false;              // there was an earlier sequence to compare with
    int32_t common = 0;              // leading tokens shared with the most similar one
    int32_t other_length = 0;        // its length
    std::vector<int32_t> other_next;  // [<= 32] its tokens from `common` on
  };
  // The earlier sequence sharing the longest prefix with `tokens` (the newest on ties).
  Match best(std::span<const int32_t> tokens) const;
  // Records (or replaces) the sequence of request `id`.
  void put(uint64_t id, std::span<const int32_t> tokens);

 private:
  struct Entry {
    uint64_t id = 0;
    std::vector<int32_t> tokens;
  };
  size_t max_entries_, max_tokens_;
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // oldest first
  size_t n_tokens_ = 0;
};

}  // namespace hearth
