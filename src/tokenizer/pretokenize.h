// Pre-tokenizer: splits normalised text into pieces with the model's split regex
// (Hugging Face Split, behavior "Isolated": every match is a piece, and so is any text
// between matches). Patterns are written in the Oniguruma dialect that tokenizers uses and
// compiled with PCRE2 (UTF + UCP, JIT when available). The one dialect difference that
// matters here is rewritten before compiling: Oniguruma's \s is exactly the White_Space
// property (\t-\r, U+0085, \p{Z}), while PCRE2's UCP \s also matches U+180E.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace hearth {

// Split patterns of the families hearth knows by name (GGUF tokenizer.ggml.pre).
inline constexpr std::string_view kRegexGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kRegexQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kRegexLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Rewrites \s and \S to the White_Space class (see the file comment). Throws Error for a
// \S inside a character class, which has no direct PCRE2 spelling.
std::string onig_to_pcre2(std::string_view pattern);

class PreTokenizer {
 public:
  // Compiles `pattern` (Oniguruma dialect). Throws Error naming the pattern when PCRE2
  // rejects it.
  explicit PreTokenizer(std::string_view pattern);

  const std::string& pattern() const { return pattern_; }

  // Calls `piece` for each piece of `text` (valid UTF-8) in order; the pieces are
  // non-empty and concatenate to `text`. Linear in the text for the patterns above.
  void split(std::string_view text, const std::function<void(std::string_view)>& piece) const;

 private:
  struct Compiled;
  std::string pattern_;
  std::shared_ptr<const Compiled> re_;  // shared: a Tokenizer is copyable, the code immutable
};

}  // namespace hearth
