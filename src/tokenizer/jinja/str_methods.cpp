// Python str methods on UTF-8 strings. Searching works on bytes (UTF-8 is
// self-synchronising, so a byte match is a code-point match) and positions are
// converted to code-point indices where Python returns or accepts them.
#include <algorithm>
#include <array>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

std::string format_method(Context& ctx, const std::string& fmt, Args& args);  // str_format.cpp

namespace {

constexpr std::array<std::string_view, 38> kStrMethods = {
    "capitalize", "casefold",  "center",     "count",     "endswith",  "find",      "format",  "index",
    "isalnum",    "isalpha",   "isdecimal",  "isdigit",   "islower",   "isnumeric", "isspace", "isupper",
    "join",       "ljust",     "lower",      "lstrip",    "partition", "removeprefix", "removesuffix",
    "replace",    "rfind",     "rindex",     "rjust",     "rpartition", "rsplit",    "rstrip",  "split",
    "splitlines", "startswith", "strip",     "swapcase",  "title",     "upper",     "zfill"};

std::string need_str(const Value& v, const std::string& fn) {
  if (!v.is_string()) throw EvalError(fn + "() argument must be str, not " + v.type_name());
  return v.as_string();
}

// Byte range of s[start:end] with Python's index clamping; start/end in code points.
std::pair<size_t, size_t> byte_range(const std::string& s, const Value& start, const Value& end) {
  if (start.is_undefined() && end.is_undefined()) return {0, s.size()};
  std::vector<size_t> offsets;  // byte offset of each code point, plus the end
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  offsets.push_back(s.size());
  auto len = static_cast<int64_t>(offsets.size() - 1);
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!v.is_integral()) throw EvalError("slice indices must be integers or None");
    int64_t i = v.as_int();
    if (i < 0) i = std::max<int64_t>(0, i + len);
    return std::min(i, len);
  };
  int64_t b = clamp(start, 0), e = clamp(end, len);
  if (e < b) e = b;
  return {offsets[static_cast<size_t>(b)], offsets[static_cast<size_t>(e)]};
}

Value pad(Context& ctx, const std::string& s, const std::string& fn, Args& args) {
  ArgReader r(args, fn);
  Value width = r.get(0, "width");
  Value fill = r.has(1, "fillchar") ? r.get(1, "fillchar") : Value(" ");
  r.done(2);
  if (!width.is_integral()) throw EvalError(fn + "() width must be an integer");
  std::string f = need_str(fill, fn);
  if (utf8::length(f) != 1) throw EvalError("The fill character must be exactly one character long");
  int64_t len = static_cast<int64_t>(utf8::length(s));
  int64_t marg = width.as_int() - len;
  if (marg <= 0) return Value(s);
  ctx.charge(static_cast<size_t>(marg) * f.size() + s.size());
  int64_t left = fn == "ljust" ? 0 : fn == "rjust" ? marg : marg / 2 + (marg & width.as_int() & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += f;
  out += s;
  for (int64_t i = left; i < marg; ++i) out += f;
  return Value(std::move(out));
}

Value split(Context& ctx, const std::string& s, Args& args, bool from_right) {
  ArgReader r(args, from_right ? "rsplit" : "split");
  Value sep = r.get(0, "sep");
  Value max = r.get(1, "maxsplit");
  r.done(2);
  long maxsplit = max.is_integral() ? static_cast<long>(max.as_int()) : -1;
  std::vector<std::string> parts;
  if (sep.is_none() || sep.is_undefined()) {
    parts = utf8::split_whitespace(s, maxsplit, from_right);
  } else {
    std::string d = need_str(sep, "split");
    if (d.empty()) throw EvalError("empty separator");
    if (!from_right) {
      size_t pos = 0;
      for (long n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        size_t i = s.find(d, pos);
        if (i == std::string::npos) break;
        parts.push_back(s.substr(pos, i - pos));
        pos = i + d.size();
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      for (long n = 0; (maxsplit < 0 || n < maxsplit) && end >= d.size(); ++n) {
        size_t i = s.rfind(d, end - d.size());
        if (i == std::string::npos) break;
        parts.push_back(s.substr(i + d.size(), end - i - d.size()));
        end = i;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  ctx.charge(s.size() + parts.size() * sizeof(Value));
  ValueList out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value::list(std::move(out));
}

Value replace(Context& ctx, const std::string& s, Args& args) {
  ArgReader r(args, "replace");
  std::string from = need_str(r.get(0, "old"), "replace");
  std::string to = need_str(r.get(1, "new"), "replace");
  Value count = r.get(2, "count");
  r.done(3);
  int64_t limit = count.is_integral() ? count.as_int() : -1;
  std::vector<size_t> hits;  // byte positions where `to` goes
  if (from.empty()) {
    for (size_t i = 0; i <= s.size(); ++i)
      if (i == s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) hits.push_back(i);
  } else {
    for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + from.size())) hits.push_back(i);
  }
  if (limit >= 0 && hits.size() > static_cast<size_t>(limit)) hits.resize(static_cast<size_t>(limit));
  ctx.charge(s.size() + hits.size() * to.size());
  std::string out;
  size_t pos = 0;
  for (size_t h : hits) {
    out.append(s, pos, h - pos);
    out += to;
    pos = h + from.size();
  }
  out.append(s, std::min(pos, s.size()));
  return Value(std::move(out));
}

template <typename Pred>
Value all_chars(const std::string& s, Pred pred) {
  std::u32string cs = utf8::decode(s);
  return Value(!cs.empty() && std::all_of(cs.begin(), cs.end(), pred));
}

// isupper / islower: at least one cased character and none of the other case.
Value case_test(const std::string& s, bool upper) {
  bool cased = false;
  for (char32_t c : utf8::decode(s)) {
    if (upper ? utf8::is_lower(c) : utf8::is_upper(c)) return Value(false);
    cased = cased || (upper ? utf8::is_upper(c) : utf8::is_lower(c));
  }
  return Value(cased);
}

}  // namespace

bool is_str_method(std::string_view name) {
  return std::find(kStrMethods.begin(), kStrMethods.end(), name) != kStrMethods.end();
}

Value call_str_method(Context& ctx, const std::string& s, const std::string& name, Args& args) {
  ctx.step(1 + s.size() / 64);
  if (name == "format") return Value(format_method(ctx, s, args));
  if (name == "split" || name == "rsplit") return split(ctx, s, args, name == "rsplit");
  if (name == "replace") return replace(ctx, s, args);
  if (name == "center" || name == "ljust" || name == "rjust") return pad(ctx, s, name, args);
  ArgReader r(args, name);
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Value chars = r.get(0, "chars");
    r.done(1);
    std::string set;
    bool have = !(chars.is_none() || chars.is_undefined());
    if (have) set = need_str(chars, name);
    return Value(utf8::strip(s, have ? &set : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    Value prefix = r.get(0, "prefix");
    Value start = r.get(1, "start"), end = r.get(2, "end");
    r.done(3);
    auto [b, e] = byte_range(s, start, end);
    std::string_view view(s.data() + b, e - b);
    ValueList options = prefix.is_tuple() ? prefix.as_list() : ValueList{prefix};
    for (const Value& p : options) {
      std::string x = need_str(p, name);
      bool hit = name == "startswith" ? view.substr(0, x.size()) == x
                                      : view.size() >= x.size() && view.substr(view.size() - x.size()) == x;
      if (hit && x.size() <= view.size()) return Value(true);
    }
    return Value(false);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    std::string sub = need_str(r.get(0, "sub"), name);
    Value start = r.get(1, "start"), end = r.get(2, "end");
    r.done(3);
    auto [b, e] = byte_range(s, start, end);
    std::string_view view(s.data() + b, e - b);
    if (name == "count") {
      if (sub.empty()) return Value(static_cast<int64_t>(utf8::length(view) + 1));
      int64_t n = 0;
      for (size_t i = view.find(sub); i != std::string_view::npos; i = view.find(sub, i + sub.size())) ++n;
      return Value(n);
    }
    size_t i = name[0] == 'r' ? view.rfind(sub) : view.find(sub);
    if (i == std::string_view::npos) {
      if (name == "index" || name == "rindex") throw EvalError("substring not found");
      return Value(int64_t{-1});
    }
    return Value(static_cast<int64_t>(utf8::length(std::string_view(s).substr(0, b + i))));
  }
  if (name == "join") {
    Value seq = r.get(0, "iterable");
    r.done(1);
    ValueList items = iterate(ctx, seq);
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        throw EvalError("sequence item " + std::to_string(i) + ": expected str instance, " + items[i].type_name() +
                        " found");
      if (i) out += s;
      out += items[i].as_string();
      if (out.size() > ctx.options.limits.max_value_bytes) ctx.charge(out.size());
    }
    ctx.charge(out.size());
    return Value(std::move(out));
  }
  if (name == "partition" || name == "rpartition") {
    std::string sep = need_str(r.get(0, "sep"), name);
    r.done(1);
    if (sep.empty()) throw EvalError("empty separator");
    size_t i = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (i == std::string::npos)
      return name == "partition" ? Value::list({Value(s), Value(""), Value("")}, true)
                                 : Value::list({Value(""), Value(""), Value(s)}, true);
    return Value::list({Value(s.substr(0, i)), Value(sep), Value(s.substr(i + sep.size()))}, true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string x = need_str(r.get(0, name == "removeprefix" ? "prefix" : "suffix"), name);
    r.done(1);
    if (name == "removeprefix") return Value(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    bool ends = s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value(ends ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "splitlines") {
    Value keep = r.get(0, "keepends");
    r.done(1);
    ValueList out;
    for (auto& line : utf8::splitlines(s, keep.truthy())) out.emplace_back(std::move(line));
    return Value::list(std::move(out));
  }
  if (name == "zfill") {
    Value width = r.get(0, "width");
    r.done(1);
    if (!width.is_integral()) throw EvalError("zfill() width must be an integer");
    int64_t fill = width.as_int() - static_cast<int64_t>(utf8::length(s));
    if (fill <= 0) return Value(s);
    ctx.charge(s.size() + static_cast<size_t>(fill));
    size_t sign = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    return Value(s.substr(0, sign) + std::string(static_cast<size_t>(fill), '0') + s.substr(sign));
  }
  r.done(0);
  if (name == "upper") return Value(utf8::upper(s));
  if (name == "lower" || name == "casefold") return Value(utf8::lower(s));
  if (name == "title") return Value(utf8::title(s));
  if (name == "capitalize") return Value(utf8::capitalize(s));
  if (name == "swapcase") return Value(utf8::swapcase(s));
  if (name == "isalnum") return all_chars(s, [](char32_t c) { return utf8::is_alpha(c) || utf8::is_numeric(c); });
  if (name == "isalpha") return all_chars(s, utf8::is_alpha);
  if (name == "isdigit" || name == "isdecimal") return all_chars(s, utf8::is_digit);
  if (name == "isnumeric") return all_chars(s, utf8::is_numeric);
  if (name == "isspace") return all_chars(s, utf8::is_space);
  if (name == "isupper" || name == "islower") return case_test(s, name == "isupper");
  throw EvalError("'str' object has no attribute '" + name + "'");
}

}  // namespace hearth::jinja
