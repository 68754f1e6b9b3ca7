// Jinja lexer (see lexer.h). It follows jinja2's lexer state machine: text up to the
// next tag opener, then tag tokens until the matching closer. `line_starting` mirrors
// jinja2's flag of the same name: whether the last consumed piece ended in a newline,
// which decides if lstrip_blocks applies to a tag with no text before it.
#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

SourceMap::SourceMap(std::string name, std::string_view source) : name_(std::move(name)), source_(source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i)
    if (source[i] == '\n') line_starts_.push_back(i + 1);
}

std::string SourceMap::where(size_t offset) const {
  offset = std::min(offset, source_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t line = static_cast<size_t>(it - line_starts_.begin());
  size_t start = line_starts_[line - 1];
  size_t col = utf8::length(source_.substr(start, offset - start)) + 1;
  return name_ + ":" + std::to_string(line) + ":" + std::to_string(col);
}

void SourceMap::fail(size_t offset, const std::string& message) const {
  throw Error(where(offset) + ": " + message);
}

namespace {

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(char c) { return c >= '0' && c <= '9'; }

// Skips Python regex `\s*` (Unicode whitespace) from byte offset i.
size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size()) {
    size_t n = 1;
    auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x80) n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    n = std::min(n, s.size() - i);
    std::u32string c = utf8::decode(s.substr(i, n));
    if (c.empty() || !utf8::is_space(c[0])) break;
    i += n;
  }
  return i;
}

class Lexer {
 public:
  Lexer(std::string_view src, const SourceMap& map) : src_(src), map_(map) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t p = find_opener(pos_);
      if (p == std::string_view::npos) {
        add_data(src_.substr(pos_), pos_);
        break;
      }
      char kind = src_[p + 1];
      char sign = (p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+')) ? src_[p + 2] : 0;
      std::string text(src_.substr(pos_, p - pos_));
      if (sign == '-') {
        text = utf8::strip(text, nullptr, false, true);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks: block and comment tags only
        size_t l_pos = text.rfind('\n');
        l_pos = (l_pos == std::string::npos) ? 0 : l_pos + 1;
        bool blank = text.find_first_not_of(" \t", l_pos) == std::string::npos;
        if ((l_pos > 0 || line_starting_) && blank) text.resize(l_pos);
      }
      add_data(text, pos_);
      size_t q = p + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        lex_comment(p, q);
      } else if (kind == '%' && raw_begin(q)) {
        lex_raw(p);
      } else {
        lex_tag(p, q, kind == '%');
      }
    }
    out_.push_back(Token{Tok::Eof, "", 0, 0, src_.size()});
    return std::move(out_);
  }

 private:
  size_t find_opener(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string_view::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string_view::npos;
  }

  void add_data(std::string_view text, size_t offset) {
    if (!text.empty()) out_.push_back(Token{Tok::Data, std::string(text), 0, 0, offset});
  }

  // Consumes a closer at i ("%}" / "}}" / "#}" with its sign) and the whitespace it
  // swallows; returns the position after it.
  size_t close(size_t i, size_t closer_len) {
    bool minus = src_[i] == '-', plus = src_[i] == '+';
    size_t e = i + closer_len + ((minus || plus) ? 1 : 0);
    bool trims = src_[e - 1] != '}' || src_[e - 2] != '}';  // block and comment closers trim
    if (minus) {
      e = skip_space(src_, e);
    } else if (!plus && trims && e < src_.size() && src_[e] == '\n') {
      ++e;
    }
    line_starting_ = e > 0 && src_[e - 1] == '\n';
    return e;
  }

  void lex_comment(size_t open, size_t q) {
    size_t end = src_.find("#}", q);
    if (end == std::string_view::npos) map_.fail(open, "missing end of comment tag");
    size_t at = (end > q && (src_[end - 1] == '-' || src_[end - 1] == '+')) ? end - 1 : end;
    pos_ = close(at, 2);
  }

  // `{% raw %}` (with optional signs) starting after the opener at q.
  bool raw_begin(size_t q) const {
    size_t i = q;
    while (i < src_.size() && ascii_space(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0 || (i + 3 < src_.size() && ident_char(src_[i + 3]))) return false;
    i += 3;
    while (i < src_.size() && ascii_space(src_[i])) ++i;
    return src_.compare(i, 2, "%}") == 0 || src_.compare(i, 3, "-%}") == 0 || src_.compare(i, 3, "+%}") == 0;
  }

  void lex_raw(size_t open) {
    size_t i = src_.find("raw", open) + 3;
    while (ascii_space(src_[i])) ++i;
    pos_ = close(i, 2);
    for (size_t p = find_opener(pos_); p != std::string_view::npos; p = find_opener(p + 1)) {
      if (src_[p + 1] != '%') continue;
      char sign = (src_[p + 2] == '-' || src_[p + 2] == '+') ? src_[p + 2] : 0;
      size_t j = p + 2 + (sign ? 1 : 0);
      while (j < src_.size() && ascii_space(src_[j])) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && ascii_space(src_[j])) ++j;
      if (src_.compare(j, 2, "%}") != 0 && src_.compare(j, 3, "-%}") != 0 && src_.compare(j, 3, "+%}") != 0)
        continue;
      std::string text(src_.substr(pos_, p - pos_));
      if (sign == '-') text = utf8::strip(text, nullptr, false, true);
      add_data(text, pos_);
      pos_ = close(j, 2);
      return;
    }
    map_.fail(open, "missing end of raw directive");
  }

  void lex_tag(size_t open, size_t i, bool block) {
    out_.push_back(Token{block ? Tok::BlockBegin : Tok::VarBegin, "", 0, 0, open});
    const char* closer = block ? "%}" : "}}";
    std::vector<char> brackets;
    while (true) {
      if (i >= src_.size())
        map_.fail(open, std::string("unexpected end of template, expected '") + closer + "'");
      if (brackets.empty()) {
        size_t at = (src_[i] == '-' || src_[i] == '+') ? i + 1 : i;
        if (src_.compare(at, 2, closer) == 0 && (at == i || src_[i] == '-' || block)) {
          out_.push_back(Token{block ? Tok::BlockEnd : Tok::VarEnd, "", 0, 0, i});
          pos_ = close(i, 2);
          return;
        }
      }
      char c = src_[i];
      if (ascii_space(c)) {
        ++i;
      } else if (digit(c)) {
        i = lex_number(i);
      } else if (ident_start(c)) {
        size_t j = i;
        while (j < src_.size() && ident_char(src_[j])) ++j;
        out_.push_back(Token{Tok::Name, std::string(src_.substr(i, j - i)), 0, 0, i});
        i = j;
      } else if (c == '\'' || c == '"') {
        i = lex_string(i);
      } else {
        i = lex_operator(i, brackets);
      }
    }
  }

  size_t lex_operator(size_t i, std::vector<char>& brackets) {
    static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo)
      if (src_.compare(i, 2, op) == 0) {
        out_.push_back(Token{Tok::Op, op, 0, 0, i});
        return i + 2;
      }
    char c = src_[i];
    if (std::string_view("+-*/%~()[]{},.:|=<>;").find(c) == std::string_view::npos)
      map_.fail(i, std::string("unexpected char '") + c + "'");
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty() || brackets.back() != c) map_.fail(i, std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    out_.push_back(Token{Tok::Op, std::string(1, c), 0, 0, i});
    return i + 1;
  }

  // Digits with optional `_` separators, as Python and jinja2 accept them.
  size_t digits(size_t i, bool hex = false) const {
    auto ok = [&](char c) { return digit(c) || (hex && std::isxdigit(static_cast<unsigned char>(c))); };
    while (i < src_.size() && (ok(src_[i]) || (src_[i] == '_' && i + 1 < src_.size() && ok(src_[i + 1])))) ++i;
    return i;
  }

  size_t lex_number(size_t i) {
    size_t start = i;
    auto strip_underscores = [](std::string_view s) {
      std::string r;
      for (char ch : s)
        if (ch != '_') r.push_back(ch);
      return r;
    };
    char p = (i + 1 < src_.size()) ? static_cast<char>(std::tolower(static_cast<unsigned char>(src_[i + 1]))) : 0;
    if (src_[i] == '0' && (p == 'x' || p == 'o' || p == 'b')) {
      size_t j = digits(i + 2, p == 'x');
      std::string body = strip_underscores(src_.substr(i + 2, j - i - 2));
      int base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
      int64_t v = 0;
      auto r = std::from_chars(body.data(), body.data() + body.size(), v, base);
      if (body.empty() || r.ec != std::errc() || r.ptr != body.data() + body.size())
        map_.fail(i, "invalid integer literal");
      out_.push_back(Token{Tok::Int, std::string(src_.substr(i, j - i)), v, 0, i});
      return j;
    }
    size_t j = digits(i);
    bool is_float = false;
    bool after_dot = start > 0 && src_[start - 1] == '.';  // jinja2: `x.0.1` is two subscripts
    if (!after_dot && j + 1 < src_.size() && src_[j] == '.' && digit(src_[j + 1])) {
      j = digits(j + 1);
      is_float = true;
    }
    if (!after_dot && j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && digit(src_[k])) {
        j = digits(k);
        is_float = true;
      }
    }
    std::string text = strip_underscores(src_.substr(start, j - start));
    Token t{is_float ? Tok::Float : Tok::Int, std::string(src_.substr(start, j - start)), 0, 0, start};
    if (is_float) {
      auto r = std::from_chars(text.data(), text.data() + text.size(), t.float_value);
      if (r.ec == std::errc::result_out_of_range) {  // Python: 1e400 is inf, 1e-400 is 0.0
        size_t e = text.find_first_of("eE");
        bool tiny = e != std::string::npos && e + 1 < text.size() && text[e + 1] == '-';
        t.float_value = tiny ? 0.0 : HUGE_VAL;
      }
    } else {
      auto r = std::from_chars(text.data(), text.data() + text.size(), t.int_value);
      if (r.ec != std::errc()) map_.fail(start, "integer literal too large");
    }
    out_.push_back(std::move(t));
    return j;
  }

  static int hex_value(char c) {
    if (digit(c)) return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
  }

  size_t lex_string(size_t i) {
    char quote = src_[i];
    size_t j = i + 1;
    std::string value;
    while (true) {
      if (j >= src_.size()) map_.fail(i, "unterminated string literal");
      char c = src_[j];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++j;
        continue;
      }
      if (j + 1 >= src_.size()) map_.fail(i, "unterminated string literal");
      char e = src_[j + 1];
      j += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': value.push_back('\\'); break;
        case '\'': value.push_back('\''); break;
        case '"': value.push_back('"'); break;
        case 'a': value.push_back('\a'); break;
        case 'b': value.push_back('\b'); break;
        case 'f': value.push_back('\f'); break;
        case 'n': value.push_back('\n'); break;
        case 'r': value.push_back('\r'); break;
        case 't': value.push_back('\t'); break;
        case 'v': value.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            int h = j + k < src_.size() ? hex_value(src_[j + k]) : -1;
            if (h < 0) map_.fail(j - 2, std::string("truncated \\") + e + " escape in string literal");
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          if (cp > 0x10FFFF) map_.fail(j - 2, "illegal Unicode character in string literal");
          utf8::append(value, cp);
          j += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && j < src_.size() && src_[j] >= '0' && src_[j] <= '7'; ++k, ++j)
              cp = cp * 8 + static_cast<char32_t>(src_[j] - '0');
            utf8::append(value, cp);
          } else {  // unknown escapes are kept as written
            value.push_back('\\');
            value.push_back(e);
          }
      }
    }
    out_.push_back(Token{Tok::String, std::move(value), 0, 0, i});
    return j + 1;
  }

  std::string_view src_;
  const SourceMap& map_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const SourceMap& map) { return Lexer(source, map).run(); }

}  // namespace hearth::jinja
