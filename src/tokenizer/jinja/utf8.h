// UTF-8 helpers for the Jinja interpreter. Template strings are Python str objects in
// jinja2, so lengths, indices, slices, case mapping, whitespace and line splitting work
// on code points, with Python's own definitions (str.isspace, str.splitlines, ...).
// Strings are stored as UTF-8; every input (template source, request JSON) is checked
// to be valid UTF-8 at the boundary, so the decoder here never sees malformed bytes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hearth::jinja::utf8 {

bool valid(std::string_view s);
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append(std::string& out, char32_t c);
size_t length(std::string_view s);  // in code points

// Python's str predicates on one code point.
bool is_space(char32_t c);        // str.isspace
bool is_line_break(char32_t c);   // a separator of str.splitlines
bool is_alpha(char32_t c);        // categories L*
bool is_digit(char32_t c);        // category Nd
bool is_numeric(char32_t c);      // categories N*
bool is_cased(char32_t c);        // Lu, Ll, Lt
bool is_upper(char32_t c);
bool is_lower(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
char32_t to_title(char32_t c);

// Whole-string Python methods.
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize
std::string title(std::string_view s);       // str.title
std::string swapcase(std::string_view s);
// str.strip/lstrip/rstrip; `chars` null strips whitespace.
std::string strip(std::string_view s, const std::string* chars, bool left, bool right);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
// str.split()/rsplit() with no separator: runs of whitespace, at most `maxsplit` splits
// (negative: no limit).
std::vector<std::string> split_whitespace(std::string_view s, long maxsplit, bool from_right);

}  // namespace hearth::jinja::utf8
