// UTF-8 decoding/encoding and Python str semantics on code points. Character classes
// come from utf8proc's Unicode tables; whitespace and line breaks are Python's exact
// lists (they are not a Unicode property of their own).
#include "tokenizer/jinja/utf8.h"

#include <utf8proc.h>

#include <algorithm>

namespace hearth::jinja::utf8 {

bool valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t c = 0;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) return false;
    i += static_cast<size_t>(n);
  }
  return true;
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    char32_t c;
    size_t n;
    if (b < 0x80) {
      c = b, n = 1;
    } else if ((b >> 5) == 0x6) {
      c = b & 0x1F, n = 2;
    } else if ((b >> 4) == 0xE) {
      c = b & 0x0F, n = 3;
    } else {
      c = b & 0x07, n = 4;
    }
    if (i + n > s.size()) n = s.size() - i;  // unreachable for validated input
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(c);
    i += n;
  }
  return out;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append(out, c);
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (char ch : s)
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++n;
  return n;
}

bool is_space(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x80) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

static utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

bool is_alpha(char32_t c) {
  auto k = category(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
         k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}
bool is_digit(char32_t c) { return category(c) == UTF8PROC_CATEGORY_ND; }
bool is_numeric(char32_t c) {
  auto k = category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}
bool is_upper(char32_t c) { return category(c) == UTF8PROC_CATEGORY_LU; }
bool is_lower(char32_t c) { return category(c) == UTF8PROC_CATEGORY_LL; }
bool is_cased(char32_t c) { return is_upper(c) || is_lower(c) || category(c) == UTF8PROC_CATEGORY_LT; }

char32_t to_upper(char32_t c) {
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_lower(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_title(char32_t c) {
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

template <typename F>
static std::string map_chars(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) append(out, f(c));
  return out;
}

std::string upper(std::string_view s) { return map_chars(s, to_upper); }
std::string lower(std::string_view s) { return map_chars(s, to_lower); }
std::string swapcase(std::string_view s) {
  return map_chars(s, [](char32_t c) { return is_upper(c) ? to_lower(c) : is_lower(c) ? to_upper(c) : c; });
}

std::string capitalize(std::string_view s) {
  bool first = true;
  return map_chars(s, [&](char32_t c) {
    char32_t r = first ? to_title(c) : to_lower(c);
    first = false;
    return r;
  });
}

std::string title(std::string_view s) {
  bool previous_cased = false;
  return map_chars(s, [&](char32_t c) {
    char32_t r = previous_cased ? to_lower(c) : to_title(c);
    previous_cased = is_cased(c);
    return r;
  });
}

std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::u32string cs = decode(s);
  std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strippable(cs[b])) ++b;
  if (right)
    while (e > b && strippable(cs[e - 1])) --e;
  return encode(std::u32string_view(cs).substr(b, e - b));
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::u32string cs = decode(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < cs.size()) {
    if (!is_line_break(cs[i])) {
      ++i;
      continue;
    }
    size_t brk = (cs[i] == '\r' && i + 1 < cs.size() && cs[i + 1] == '\n') ? 2 : 1;
    size_t end = keepends ? i + brk : i;
    out.push_back(encode(std::u32string_view(cs).substr(start, end - start)));
    i += brk;
    start = i;
  }
  if (start < cs.size()) out.push_back(encode(std::u32string_view(cs).substr(start)));
  return out;
}

std::vector<std::string> split_whitespace(std::string_view s, long maxsplit, bool from_right) {
  std::u32string cs = decode(s);
  std::vector<std::u32string> parts;
  long splits = 0;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < cs.size() && is_space(cs[i])) ++i;
      if (i >= cs.size()) break;
      if (maxsplit >= 0 && splits == maxsplit) {
        size_t e = cs.size();
        while (e > i && is_space(cs[e - 1])) --e;
        parts.push_back(cs.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < cs.size() && !is_space(cs[j])) ++j;
      parts.push_back(cs.substr(i, j - i));
      ++splits;
      i = j;
    }
  } else {
    size_t i = cs.size();
    while (true) {
      while (i > 0 && is_space(cs[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && splits == maxsplit) {
        size_t b = 0;
        while (b < i && is_space(cs[b])) ++b;
        parts.push_back(cs.substr(b, i - b));
        break;
      }
      size_t j = i;
      while (j > 0 && !is_space(cs[j - 1])) --j;
      parts.push_back(cs.substr(j, i - j));
      ++splits;
      i = j;
    }
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<std::string> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.push_back(encode(p));
  return out;
}

}  // namespace hearth::jinja::utf8
