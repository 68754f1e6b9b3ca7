// A StepRunner that plays a script instead of running a model, so the chat path (engine,
// stream parser, both response encoders) can be tested with output a random tiny model
// never writes: reasoning, tool calls, stop strings. Used in-process by the scripted
// GoogleTests and by tests/server/scripted_serve.cpp for the npm client tests.
//
// Each sequence's context is read back through its block table (as a backend does); the
// answer is counted from the last generation prompt (`marker`) in it. The script is either
// fixed (set_script: token ids counted from the generation prompt) or, when none is set and
// a tokenizer is given, taken from the request itself: the text between "<<<SCRIPT" and
// "SCRIPT>>>" in the prompt (so concurrent requests each get their own; see
// next_from_prompt). After the script comes `eos`.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace hearth::test {

class ScriptedRunner : public StepRunner {
 public:
  static constexpr const char* kOpen = "<<<SCRIPT";
  static constexpr const char* kClose = "SCRIPT>>>";

  ScriptedRunner(int32_t n_vocab, std::vector<int32_t> marker, int32_t eos, const Tokenizer* tokenizer = nullptr)
      : n_vocab_(n_vocab), marker_(std::move(marker)), eos_(eos), tokenizer_(tokenizer) {}
  // A fixed answer for every request; empty = read it from each prompt (needs the tokenizer).
  void set_script(std::vector<int32_t> s) {
    std::lock_guard lk(mu_);
    script_ = std::move(s);
  }
  // Wall time each step takes (ms): a test of cancellation needs steps slower than the
  // handler that cancels, or the script can run out first.
  std::atomic<int> step_sleep_ms{0};
  int32_t n_vocab() const override { return n_vocab_; }
  void init_kv_cache(int32_t n_blocks, int32_t block_size) override {
    std::lock_guard lk(mu_);
    block_size_ = block_size;
    kv_.assign(static_cast<size_t>(n_blocks) * static_cast<size_t>(block_size), -1);
  }
  void forward(const StepBatch& b, float* logits) override {
    if (const int ms = step_sleep_ms.load(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    std::lock_guard lk(mu_);
    for (size_t t = 0; t < b.tokens.size(); ++t) kv_.at(static_cast<size_t>(b.slots[t])) = b.tokens[t];
    for (size_t r = 0; r < b.logit_rows.size(); ++r) {
      const auto t = static_cast<size_t>(b.logit_rows[r]);
      const StepSequence& s = b.seqs[static_cast<size_t>(b.seq_of[t])];
      std::vector<int32_t> ctx;
      for (int32_t p = 0; p <= b.positions[t]; ++p)
        ctx.push_back(kv_.at(static_cast<size_t>(s.block_table[static_cast<size_t>(p / block_size_)]) *
                                 static_cast<size_t>(block_size_) +
                             static_cast<size_t>(p % block_size_)));
      size_t start = 0;
      for (size_t i = 0; i + marker_.size() <= ctx.size(); ++i)
        if (std::equal(marker_.begin(), marker_.end(), ctx.begin() + static_cast<std::ptrdiff_t>(i)))
          start = i + marker_.size();
      int32_t next = eos_;
      if (!script_.empty()) {
        const size_t k = ctx.size() - start;
        if (k < script_.size()) next = script_[k];
      } else {
        next = next_from_prompt(ctx, start);
      }
      float* row = logits + r * static_cast<size_t>(n_vocab_);
      std::fill(row, row + n_vocab_, -10.0f);
      row[next] = 10.0f;
    }
  }

 private:
  // Prompt scripts: the text after the generation prompt (a server prefill, then what was
  // generated) must be a prefix of the script; the next token is the first of the rest,
  // re-tokenized, so the output decodes to exactly the script. eos when it is all out, or
  // when the output has left the script (a prefill the script doesn't start with).
  int32_t next_from_prompt(const std::vector<int32_t>& ctx, size_t start) const {
    if (!tokenizer_ || start == 0) return eos_;
    const auto at = [&](size_t i) { return ctx.begin() + static_cast<std::ptrdiff_t>(i); };
    const std::string prompt = tokenizer_->decode(std::vector<int32_t>(ctx.begin(), at(start)));
    const size_t open = prompt.rfind(kOpen);
    if (open == std::string::npos) return eos_;
    const size_t begin = open + std::string(kOpen).size();
    const size_t close = prompt.find(kClose, begin);
    if (close == std::string::npos) return eos_;
    const std::string script = prompt.substr(begin, close - begin);
    const std::string so_far = tokenizer_->decode(std::vector<int32_t>(at(start), ctx.end()));
    if (script.size() <= so_far.size() || script.compare(0, so_far.size(), so_far) != 0) return eos_;
    const auto rest = tokenizer_->encode(std::string_view(script).substr(so_far.size()), /*parse_special=*/true);
    return rest.empty() ? eos_ : rest[0];
  }

  std::mutex mu_;
  int32_t n_vocab_, block_size_ = 16;
  std::vector<int32_t> marker_, script_, kv_;
  int32_t eos_;
  const Tokenizer* tokenizer_;
};

}  // namespace hearth::test
