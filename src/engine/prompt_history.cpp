// PromptHistory: longest-common-prefix search over recent sequences (prompt_history.h).
#include "engine/prompt_history.h"

#include <algorithm>

namespace hearth {

PromptHistory::Match PromptHistory::best(std::span<const int32_t> tokens) const {
  std::lock_guard lk(mu_);
  Match m;
  const Entry* best = nullptr;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    const auto& t = it->tokens;
    const size_t n = std::min(t.size(), tokens.size());
    const auto mis = std::mismatch(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(n), tokens.begin());
    const auto common = static_cast<int32_t>(mis.first - t.begin());
    if (!best || common > m.common) {
      best = &*it;
      m.common = common;
    }
  }
  if (!best) return m;
  m.found = true;
  m.other_length = static_cast<int32_t>(best->tokens.size());
  const auto from = best->tokens.begin() + m.common;
  m.other_next.assign(from, from + std::min<std::ptrdiff_t>(32, best->tokens.end() - from));
  return m;
}

void PromptHistory::put(uint64_t id, std::span<const int32_t> tokens) {
  std::lock_guard lk(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->id == id) {
      n_tokens_ -= it->tokens.size();
      entries_.erase(it);
      break;
    }
  if (tokens.size() > max_tokens_) return;
  entries_.push_back({id, std::vector<int32_t>(tokens.begin(), tokens.end())});
  n_tokens_ += tokens.size();
  while (entries_.size() > max_entries_ || n_tokens_ > max_tokens_) {
    n_tokens_ -= entries_.front().tokens.size();
    entries_.pop_front();
  }
}

}  // namespace hearth
