// Jinja lexer with the whitespace rules transformers configures: trim_blocks (the first
// newline after a block or comment tag is dropped), lstrip_blocks (spaces and tabs
// before a block or comment tag at the start of a line are dropped), `-` on either side
// of a tag strips all whitespace on that side, `+` turns the two options off for that
// side. The source given to lex() is already newline-normalised (\r\n and \r become
// \n) with one trailing newline removed, as jinja2 does with keep_trailing_newline off.
// Inside tags, end markers are only recognised outside brackets, so `{{ {'a': {}} }}`
// works; string literals are unescaped with Python's unicode-escape rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::jinja {

enum class Tok : uint8_t {
  Data,        // text outside tags
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // text holds the unescaped value
  Int,
  Float,
  Op,          // text holds the operator: + - * / // % ** ~ == != < > <= >= = . , : | ( ) [ ] { } ;
  Eof,
};

struct Token {
  Tok type = Tok::Eof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  size_t offset = 0;  // byte offset in the source, for line:column in messages
};

// Maps byte offsets to 1-based line and column (columns count code points) and formats
// messages as "NAME:LINE:COL: message".
class SourceMap {
 public:
  SourceMap(std::string name, std::string_view source);
  std::string where(size_t offset) const;  // "NAME:LINE:COL"
  [[noreturn]] void fail(size_t offset, const std::string& message) const;  // throws hearth::Error

 private:
  std::string name_;
  std::string_view source_;
  std::vector<size_t> line_starts_;
};

// Tokenises `source`; a lexical error throws hearth::Error "NAME:LINE:COL: message".
std::vector<Token> lex(std::string_view source, const SourceMap& map);

}  // namespace hearth::jinja
