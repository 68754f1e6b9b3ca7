// PCRE2-backed pre-tokenizer (see pretokenize.h). The compiled code is immutable and
// shared; each thread keeps its own match context and JIT stack, since PCRE2 forbids
// sharing a JIT stack between concurrent matches. Match and depth limits are lifted:
// the split patterns backtrack at most over one run of equal-class characters, so the
// work stays linear, and a 10 MB run of spaces must not end in a "match limit" error.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hearth {

namespace {

// Oniguruma's \s for UTF-8 subjects, as the inside of a character class.
constexpr std::string_view kWhiteSpaceClass = R"(\x{09}-\x{0D}\x{85}\p{Z})";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: a match context that points at a private JIT stack.
struct ThreadMatchEnv {
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  ThreadMatchEnv() {
    mctx = pcre2_match_context_create(nullptr);
    if (!mctx) fail("pre-tokenizer: out of memory creating a PCRE2 match context");
    pcre2_set_match_limit(mctx, UINT32_MAX);
    pcre2_set_depth_limit(mctx, UINT32_MAX);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (jit_stack) pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~ThreadMatchEnv() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
  }
  ThreadMatchEnv(const ThreadMatchEnv&) = delete;
  ThreadMatchEnv& operator=(const ThreadMatchEnv&) = delete;

  static ThreadMatchEnv& get() {
    thread_local ThreadMatchEnv env;
    return env;
  }
};

}  // namespace

std::string onig_to_pcre2(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        if (in_class) {
          out += kWhiteSpaceClass;
        } else {
          out += '[';
          out += kWhiteSpaceClass;
          out += ']';
        }
      } else if (e == 'S') {
        if (in_class) fail("pre-tokenizer regex: \\S inside a character class is not supported: " + std::string(pattern));
        out += "[^";
        out += kWhiteSpaceClass;
        out += ']';
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;  // pcre2_jit_match skips the interpreter's entry checks
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::string_view pattern) : pattern_(pattern) {
  const std::string translated = onig_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  auto compiled = std::make_shared<Compiled>();
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                 PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (!compiled->code)
    fail("pre-tokenizer regex " + std::string(pattern) + ": " + pcre2_message(err) + " at offset " +
         std::to_string(err_offset));
  // JIT is an optimisation only: without it (unsupported CPU) the interpreter runs.
  compiled->jit = pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE) == 0;
  re_ = std::move(compiled);
}

void PreTokenizer::split(std::string_view text, const std::function<void(std::string_view)>& piece) const {
  if (text.empty()) return;
  ThreadMatchEnv& env = ThreadMatchEnv::get();
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_->code, nullptr);
  if (!md) fail("pre-tokenizer: out of memory creating PCRE2 match data");
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md_owner(md, &pcre2_match_data_free);

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t pos = 0, gap = 0;  // search position; start of the text not yet emitted
  while (pos < n) {
    const int rc = re_->jit ? pcre2_jit_match(re_->code, subject, n, pos, 0, md, env.mctx)
                            : pcre2_match(re_->code, subject, n, pos, PCRE2_NO_UTF_CHECK, md, env.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("pre-tokenizer: regex match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (e == s) {
      // An empty match produces no piece; step over one character, which joins the gap.
      if (s >= n) break;
      pos = s + unicode::utf8_step(text, s).len;
      continue;
    }
    if (s > gap) piece(text.substr(gap, s - gap));
    piece(text.substr(s, e - s));
    pos = gap = e;
  }
  if (gap < n) piece(text.substr(gap));
}

}  // namespace hearth
