// Python's two string formatting languages: str.format ("{0}, {name!r:>8.2f}") and
// printf-style `fmt % args` (also jinja2's |format filter). Both cover the common
// conversions (s r d i f e g x o c %), flags, fill/alignment, width and precision;
// the rarer parts (nested replacement fields in a spec, %-grouping) raise an error.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

namespace {

struct Spec {
  std::string fill = " ";
  char align = 0;  // < > ^ = or 0 for the type's default
  char sign = '-';
  bool alt = false;
  int width = -1;
  char grouping = 0;
  int precision = -1;
  char type = 0;
};

int read_int(const std::string& s, size_t& i) {
  int v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (s[i++] - '0');
    if (v > 100000) throw EvalError("format width or precision too large");
  }
  return v;
}

Spec parse_spec(const std::string& s) {
  Spec sp;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  std::u32string cs = utf8::decode(s.substr(0, 8));
  if (cs.size() >= 2 && cs[1] < 0x80 && is_align(static_cast<char>(cs[1]))) {
    sp.fill = utf8::encode(cs.substr(0, 1));
    sp.align = static_cast<char>(cs[1]);
    i = sp.fill.size() + 1;
  } else if (!s.empty() && is_align(s[0])) {
    sp.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) sp.sign = s[i++];
  if (i < s.size() && s[i] == '#') sp.alt = true, ++i;
  if (i < s.size() && s[i] == '0') {
    if (!sp.align) sp.fill.assign(1, '0'), sp.align = '=';
    ++i;
  }
  if (i < s.size() && s[i] >= '0' && s[i] <= '9') sp.width = read_int(s, i);
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) sp.grouping = s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    sp.precision = read_int(s, i);
  }
  if (i < s.size()) sp.type = s[i++];
  if (i != s.size()) throw EvalError("Invalid format specifier '" + s + "'");
  return sp;
}

std::string group_digits(std::string digits, char sep) {
  size_t end = digits.find_first_not_of("0123456789");
  if (end == std::string::npos) end = digits.size();
  for (size_t i = end; i > 3; i -= 3) digits.insert(i - 3, 1, sep);
  return digits;
}

// Formats a number's magnitude with a printf conversion, then applies sign, grouping,
// fill and alignment.
std::string format_number(const Value& v, const Spec& sp) {
  char type = sp.type;
  bool integral = v.is_integral() && (type == 0 || type == 'd' || type == 'n' || type == 'x' || type == 'X' ||
                                      type == 'o' || type == 'b' || type == 'c');
  bool negative = integral ? v.as_int() < 0 : std::signbit(v.as_float());
  std::string body;
  char buf[512];
  if (integral) {
    uint64_t mag = negative ? 0 - static_cast<uint64_t>(v.as_int()) : static_cast<uint64_t>(v.as_int());
    if (type == 'c') {
      utf8::append(body, static_cast<char32_t>(mag));
    } else if (type == 'b') {
      for (; mag; mag >>= 1) body.insert(body.begin(), static_cast<char>('0' + (mag & 1)));
      if (body.empty()) body = "0";
      if (sp.alt) body = "0b" + body;
    } else {
      const char* f = type == 'x' ? "%llx" : type == 'X' ? "%llX" : type == 'o' ? "%llo" : "%llu";
      std::snprintf(buf, sizeof buf, f, static_cast<unsigned long long>(mag));
      body = buf;
      if (sp.alt && (type == 'x' || type == 'X' || type == 'o')) body = std::string("0") + type + body;
    }
  } else {
    double d = std::fabs(v.as_float());
    if (!v.is_number()) throw EvalError("Unknown format code '" + std::string(1, type) + "' for object of type '" +
                                        v.type_name() + "'");
    if (type == 0 && sp.precision < 0) {
      body = float_repr(d);
    } else {
      char t = type == 0 ? 'g' : type == '%' ? 'f' : type;
      if (std::string("eEfFgG").find(t) == std::string::npos)
        throw EvalError("Unknown format code '" + std::string(1, type) + "' for object of type 'float'");
      int p = sp.precision < 0 ? 6 : sp.precision;
      std::snprintf(buf, sizeof buf, std::string("%.*").append(1, t).c_str(), p, type == '%' ? d * 100 : d);
      body = buf;
      if (type == '%') body += '%';
    }
  }
  if (sp.grouping) body = group_digits(body, sp.grouping);
  std::string sign = negative ? "-" : sp.sign == '+' ? "+" : sp.sign == ' ' ? " " : "";
  int64_t pad = sp.width - static_cast<int64_t>(utf8::length(sign + body));
  if (pad <= 0) return sign + body;
  std::string fill;
  for (int64_t i = 0; i < pad; ++i) fill += sp.fill;
  char align = sp.align ? sp.align : '>';
  if (align == '=') return sign + fill + body;
  if (align == '<') return sign + body + fill;
  if (align == '^') {
    std::string left, right;
    for (int64_t i = 0; i < pad / 2; ++i) left += sp.fill;
    for (int64_t i = pad / 2; i < pad; ++i) right += sp.fill;
    return left + sign + body + right;
  }
  return fill + sign + body;
}

std::string apply_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  Spec sp = parse_spec(spec);
  if (v.is_number()) return format_number(v, sp);
  if (!v.is_string()) throw EvalError("unsupported format string passed to " + v.type_name() + ".__format__");
  if (sp.type && sp.type != 's') throw EvalError("Unknown format code '" + std::string(1, sp.type) + "' for str");
  std::u32string cs = utf8::decode(v.as_string());
  if (sp.precision >= 0 && cs.size() > static_cast<size_t>(sp.precision)) cs.resize(static_cast<size_t>(sp.precision));
  int64_t pad = sp.width - static_cast<int64_t>(cs.size());
  std::string body = utf8::encode(cs), fill;
  for (int64_t i = 0; i < pad; ++i) fill += sp.fill;
  char align = sp.align ? sp.align : '<';
  if (align == '>') return fill + body;
  if (align == '^') {
    std::string left, right;
    for (int64_t i = 0; i < pad / 2; ++i) left += sp.fill;
    for (int64_t i = pad / 2; i < pad; ++i) right += sp.fill;
    return left + body + right;
  }
  return body + fill;
}

}  // namespace

std::string format_method(Context& ctx, const std::string& fmt, Args& args) {
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else throw EvalError("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw EvalError("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string::npos) throw EvalError("nested format fields are not supported");
    std::string spec, conv;
    if (size_t colon = field.find(':'); colon != std::string::npos) spec = field.substr(colon + 1), field.resize(colon);
    if (size_t bang = field.find('!'); bang != std::string::npos) conv = field.substr(bang + 1), field.resize(bang);
    size_t name_end = field.find_first_of(".[");
    std::string name = field.substr(0, name_end);
    Value v;
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) {
      (name.empty() ? used_auto : used_manual) = true;
      if (used_auto && used_manual)
        throw EvalError("cannot switch between manual field specification and automatic field numbering");
      if (name.size() > 9) throw EvalError("Too many decimal digits in format string");
      size_t index = name.empty() ? auto_index++ : std::stoul(name);
      if (index >= args.positional.size())
        throw EvalError("Replacement index " + std::to_string(index) + " out of range for positional args tuple");
      v = args.positional[index];
    } else {
      auto it = std::find_if(args.keyword.begin(), args.keyword.end(), [&](auto& kw) { return kw.first == name; });
      if (it == args.keyword.end()) throw EvalError("KeyError: " + str_repr(name));
      v = it->second;
    }
    for (size_t p = name_end; p != std::string::npos && p < field.size();) {  // .attr and [key] chains
      if (field[p] == '.') {
        size_t e = field.find_first_of(".[", p + 1);
        v = get_attr(ctx, v, field.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1));
        p = e;
      } else {
        size_t e = field.find(']', p);
        if (e == std::string::npos) throw EvalError("Missing ']' in format string");
        std::string key = field.substr(p + 1, e - p - 1);
        bool numeric = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
        v = get_item(ctx, v, numeric ? Value(static_cast<int64_t>(std::stoll(key))) : Value(key));
        p = e + 1;
      }
    }
    if (conv == "r" || conv == "a") v = Value(repr(v));
    else if (conv == "s") v = Value(to_str(v));
    else if (!conv.empty()) throw EvalError("Unknown conversion specifier " + conv);
    out += apply_spec(v, spec);
    ctx.charge(out.size() > ctx.options.limits.max_value_bytes ? out.size() : 0);
    i = close;
  }
  return out;
}

std::string percent_format(Context& ctx, const std::string& fmt, const Value& args) {
  ValueList positional = args.is_tuple() ? args.as_list() : ValueList{args};
  size_t next_arg = 0;
  bool used_mapping = false;
  std::string out;
  auto take = [&]() -> Value {
    if (next_arg >= positional.size()) throw EvalError("not enough arguments for format string");
    return positional[next_arg++];
  };
  auto take_int = [&]() -> int {
    Value v = take();
    if (!v.is_integral()) throw EvalError("* wants int");
    return static_cast<int>(std::clamp<int64_t>(v.as_int(), -100000, 100000));
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw EvalError("incomplete format");
    Value v;
    bool have_value = false;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw EvalError("incomplete format key");
      if (!args.is_dict()) throw EvalError("format requires a mapping");
      const Value* found = args.as_dict().find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!found) throw EvalError("KeyError: " + str_repr(fmt.substr(i + 1, close - i - 1)));
      v = *found;
      have_value = used_mapping = true;
      i = close + 1;
    }
    Spec sp;
    for (; i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos; ++i) {
      if (fmt[i] == '-') sp.align = '<';
      else if (fmt[i] == '+' || fmt[i] == ' ') sp.sign = sp.sign == '+' ? '+' : fmt[i];
      else if (fmt[i] == '#') sp.alt = true;
      else if (sp.align != '<') sp.fill.assign(1, '0'), sp.align = '=';
    }
    if (i < fmt.size() && fmt[i] == '*') sp.width = take_int(), ++i;
    else if (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) sp.width = read_int(fmt, i);
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      if (i < fmt.size() && fmt[i] == '*') sp.precision = take_int(), ++i;
      else sp.precision = read_int(fmt, i);
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) throw EvalError("incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!have_value) v = take();
    if (conv == 's' || conv == 'r' || conv == 'a') {
      std::u32string cs = utf8::decode(conv == 's' ? to_str(v) : repr(v));
      if (sp.precision >= 0 && cs.size() > static_cast<size_t>(sp.precision)) cs.resize(static_cast<size_t>(sp.precision));
      std::string body = utf8::encode(cs);
      std::string pad(sp.width > static_cast<int>(cs.size()) ? static_cast<size_t>(sp.width) - cs.size() : 0, ' ');
      out += sp.align == '<' ? body + pad : pad + body;
      continue;
    }
    if (!v.is_number()) throw EvalError(std::string("%") + conv + " format: a real number is required, not " + v.type_name());
    if (conv == 'd' || conv == 'i' || conv == 'u') {
      v = v.is_float() ? Value(static_cast<int64_t>(v.as_float())) : Value(v.as_int());
      conv = 'd';
    } else if ((conv == 'x' || conv == 'X' || conv == 'o') && v.is_float()) {
      throw EvalError(std::string("%") + conv + " format: an integer is required, not float");
    } else if (std::string("eEfFgG").find(conv) != std::string::npos) {
      v = Value(v.as_float());
      if (sp.precision < 0) sp.precision = 6;
    } else if (conv != 'x' && conv != 'X' && conv != 'o' && conv != 'c') {
      throw EvalError(std::string("unsupported format character '") + conv + "'");
    }
    if (!sp.align) sp.align = '>';
    sp.type = conv;
    out += format_number(v, sp);
    if (out.size() > ctx.options.limits.max_value_bytes) ctx.charge(out.size());
  }
  if (!used_mapping && !args.is_dict() && next_arg < positional.size())
    throw EvalError("not all arguments converted during string formatting");
  return out;
}

}  // namespace hearth::jinja
