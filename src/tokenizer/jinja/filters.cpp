// Filters on strings and scalars, with jinja2's parameter names and defaults, and
// transformers' tojson (json.dumps with ensure_ascii=False). Also the filter lookup.
#include "tokenizer/jinja/filters.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

namespace {

Value str_method(Context& ctx, const Value& v, const char* name, Args& args) {
  return call_str_method(ctx, to_str(v), name, args);
}

Value f_abs(Context&, const Value& v, Args& args) {
  ArgReader(args, "abs").done(0);
  if (v.is_integral()) {
    if (v.as_int() == INT64_MIN) throw EvalError("integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  throw EvalError("bad operand type for abs(): '" + v.type_name() + "'");
}

Value f_attr(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "attr");
  Value name = r.get(0, "name");
  r.done(1);
  if (!name.is_string()) throw EvalError("attribute name must be a string");
  if (v.is_dict() && !is_str_method(name.as_string())) {  // attributes only, never items
    Value a = get_attr(ctx, v, name.as_string());
    return a.is_callable() ? a : Value::undefined("'dict object' has no attribute '" + name.as_string() + "'");
  }
  return get_attr(ctx, v, name.as_string());
}

Value f_capitalize(Context&, const Value& v, Args& args) {
  ArgReader(args, "capitalize").done(0);
  return Value(utf8::capitalize(to_str(v)));
}

Value f_center(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "center");
  Value width = r.has(0, "width") ? r.get(0, "width") : Value(80);
  r.done(1);
  Args a;
  a.positional.push_back(width);
  return str_method(ctx, v, "center", a);
}

Value f_default(Context&, const Value& v, Args& args) {
  ArgReader r(args, "default");
  Value fallback = r.has(0, "default_value") ? r.get(0, "default_value") : Value("");
  Value boolean = r.get(1, "boolean");
  r.done(2);
  if (v.is_undefined() || (boolean.truthy() && !v.truthy())) return fallback;
  return v;
}

Value f_escape(Context&, const Value& v, Args& args) {
  ArgReader(args, "escape").done(0);
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

// Python float(str): surrounding whitespace, underscores between digits, inf/nan words.
bool parse_float(std::string s, double& out) {
  s = utf8::strip(s, nullptr, true, true);
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 1])))
      continue;
    t += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  std::string_view body = t;
  bool neg = !body.empty() && body[0] == '-';
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
  if (body == "inf" || body == "infinity") return out = neg ? -HUGE_VAL : HUGE_VAL, true;
  if (body == "nan") return out = std::nan(""), true;
  if (body.empty() || body[0] == '+' || body[0] == '-') return false;
  auto r = std::from_chars(body.data(), body.data() + body.size(), out);
  if (r.ptr != body.data() + body.size()) return false;
  if (r.ec == std::errc::result_out_of_range) out = body.find("e-") != std::string_view::npos ? 0.0 : HUGE_VAL;
  if (neg) out = -out;
  return true;
}

// Python int(str, base): whitespace, sign, underscores, and a 0x/0o/0b prefix that must
// match base (base 0 infers it).
bool parse_int(std::string s, int base, int64_t& out) {
  s = utf8::strip(s, nullptr, true, true);
  std::string_view b = s;
  bool neg = false;
  if (!b.empty() && (b[0] == '-' || b[0] == '+')) neg = b[0] == '-', b.remove_prefix(1);
  if (b.size() > 1 && b[0] == '0' && std::isalpha(static_cast<unsigned char>(b[1]))) {
    char p = static_cast<char>(std::tolower(static_cast<unsigned char>(b[1])));
    int prefix_base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefix_base && (base == 0 || base == prefix_base)) base = prefix_base, b.remove_prefix(2);
  }
  if (base == 0) base = 10;
  std::string digits;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] == '_' && i > 0 && i + 1 < b.size() && b[i - 1] != '_') continue;
    digits += b[i];
  }
  if (digits.empty()) return false;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return false;
  if (neg) out = -out;
  return true;
}

Value f_float(Context&, const Value& v, Args& args) {
  ArgReader r(args, "float");
  Value fallback = r.has(0, "default") ? r.get(0, "default") : Value(0.0);
  r.done(1);
  double d;
  if (v.is_undefined()) throw EvalError(v.undefined_hint());  // float(Undefined) fails in jinja2
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string() && parse_float(v.as_string(), d)) return Value(d);
  return fallback;
}

Value f_int(Context&, const Value& v, Args& args) {
  ArgReader r(args, "int");
  Value fallback = r.has(0, "default") ? r.get(0, "default") : Value(0);
  Value base = r.has(1, "base") ? r.get(1, "base") : Value(10);
  r.done(2);
  if (!base.is_integral() || base.as_int() < 0 || base.as_int() == 1 || base.as_int() > 36)
    throw EvalError("int() base must be >= 2 and <= 36, or 0");
  if (v.is_undefined()) throw EvalError(v.undefined_hint());  // int(Undefined) fails in jinja2
  if (v.is_integral()) return Value(v.as_int());
  if (v.is_float()) {
    if (!std::isfinite(v.as_float())) throw EvalError("cannot convert float infinity or NaN to integer");
    return Value(static_cast<int64_t>(v.as_float()));
  }
  if (v.is_string()) {
    int64_t i;
    double d;
    if (parse_int(v.as_string(), static_cast<int>(base.as_int()), i)) return Value(i);
    if (parse_float(v.as_string(), d) && std::isfinite(d)) return Value(static_cast<int64_t>(d));
  }
  return fallback;
}

Value f_format(Context& ctx, const Value& v, Args& args) {
  Value params;
  if (!args.keyword.empty()) {
    Dict d;
    for (auto& [k, x] : args.keyword) d.set(Value(k), x);
    params = Value::dict(std::move(d));
  } else {
    params = Value::list(args.positional, true);
  }
  return Value(percent_format(ctx, to_str(v), params));
}

Value f_indent(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "indent");
  Value width = r.has(0, "width") ? r.get(0, "width") : Value(4);
  Value first = r.get(1, "first"), blank = r.get(2, "blank");
  r.done(3);
  std::string pad = width.is_string() ? width.as_string() : std::string(width.is_integral() && width.as_int() > 0
                                                                            ? static_cast<size_t>(width.as_int())
                                                                            : 0, ' ');
  if (!v.is_string())  // jinja2 appends "\n" to the value itself
    throw EvalError("unsupported operand type(s) for +=: '" + v.type_name() + "' and 'str'");
  std::vector<std::string> lines = utf8::splitlines(v.as_string() + "\n", false);
  ctx.charge(lines.size() * pad.size() + v.as_string().size());
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    bool indent = i > 0 && (blank.truthy() || !lines[i].empty());
    if (indent) out += pad;
    out += lines[i];
  }
  if (first.truthy()) out = pad + out;
  return Value(std::move(out));
}

Value f_lower(Context&, const Value& v, Args& args) {
  ArgReader(args, "lower").done(0);
  return Value(utf8::lower(to_str(v)));
}

Value f_upper(Context&, const Value& v, Args& args) {
  ArgReader(args, "upper").done(0);
  return Value(utf8::upper(to_str(v)));
}

Value f_replace(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "replace");
  Args a;
  a.positional = {r.get(0, "old"), r.get(1, "new")};
  Value count = r.get(2, "count");
  r.done(3);
  if (!count.is_undefined() && !count.is_none()) a.positional.push_back(count);
  return str_method(ctx, v, "replace", a);
}

Value f_round(Context&, const Value& v, Args& args) {
  ArgReader r(args, "round");
  Value precision = r.has(0, "precision") ? r.get(0, "precision") : Value(0);
  Value method = r.has(1, "method") ? r.get(1, "method") : Value("common");
  r.done(2);
  if (!method.is_string() || (method.as_string() != "common" && method.as_string() != "ceil" &&
                              method.as_string() != "floor"))
    throw EvalError("method must be common, ceil or floor");
  if (!v.is_number()) throw EvalError("type " + v.type_name() + " doesn't define __round__ method");
  if (!precision.is_integral()) throw EvalError("round(): precision must be an integer");
  int64_t p = std::clamp<int64_t>(precision.as_int(), -400, 400);
  if (method.as_string() == "common") {
    if (v.is_integral() && p >= 0) return Value(v.as_int());
    double x = v.as_float(), rounded;
    if (p >= 0) {  // correctly rounded, ties to even, as Python's round(x, n)
      std::string buf(800, '\0');
      int n = std::snprintf(buf.data(), buf.size(), "%.*f", static_cast<int>(p), x);
      if (!std::isfinite(x)) return v;
      std::from_chars(buf.data(), buf.data() + std::max(n, 0), rounded);
    } else {
      double scale = std::pow(10.0, static_cast<double>(-p));
      rounded = std::nearbyint(x / scale) * scale;
    }
    if (v.is_integral()) return Value(static_cast<int64_t>(rounded));
    return Value(rounded);
  }
  double scale = std::pow(10.0, static_cast<double>(p));
  double x = v.as_float() * scale;
  return Value((method.as_string() == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_string(Context&, const Value& v, Args& args) {
  ArgReader(args, "string").done(0);
  return Value(to_str(v));
}

Value f_title(Context&, const Value& v, Args& args) {  // jinja2's own title, not str.title
  ArgReader(args, "title").done(0);
  std::u32string cs = utf8::decode(to_str(v));
  bool word_start = true;
  for (char32_t& c : cs) {
    bool sep = utf8::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      word_start = true;
      continue;
    }
    c = word_start ? utf8::to_upper(c) : utf8::to_lower(c);
    word_start = false;
  }
  return Value(utf8::encode(cs));
}

Value f_tojson(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "tojson");
  Value ensure_ascii = r.get(0, "ensure_ascii"), indent = r.get(1, "indent");
  Value separators = r.get(2, "separators"), sort_keys = r.get(3, "sort_keys");
  r.done(4);
  DumpOptions o;
  o.ensure_ascii = ensure_ascii.truthy();
  o.sort_keys = sort_keys.truthy();
  if (indent.is_string()) {
    o.indent = indent.as_string();
  } else if (indent.is_integral()) {
    if (indent.as_int() > 4096) throw EvalError("tojson: indent too large");
    o.indent = std::string(indent.as_int() > 0 ? static_cast<size_t>(indent.as_int()) : 0, ' ');
  } else if (!indent.is_none() && !indent.is_undefined()) {
    throw EvalError("tojson: indent must be an int or a string");
  }
  if (separators.is_list()) {
    auto& s = separators.as_list();
    if (s.size() != 2 || !s[0].is_string() || !s[1].is_string())
      throw EvalError("tojson: separators must be a pair of strings");
    o.item_separator = s[0].as_string();
    o.key_separator = s[1].as_string();
  }
  std::string out = json_dumps(v, o, ctx.options.limits.max_value_bytes);
  ctx.charge(out.size());
  return Value(std::move(out));
}

Value f_trim(Context&, const Value& v, Args& args) {
  ArgReader r(args, "trim");
  Value chars = r.get(0, "chars");
  r.done(1);
  std::string set = chars.is_string() ? chars.as_string() : "";
  return Value(utf8::strip(to_str(v), chars.is_string() ? &set : nullptr, true, true));
}

Value f_wordcount(Context&, const Value& v, Args& args) {
  ArgReader(args, "wordcount").done(0);
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8::decode(to_str(v))) {
    bool w = utf8::is_alpha(c) || utf8::is_numeric(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

}  // namespace

const FilterTable& scalar_filters() {
  static const FilterTable table = {
      {"abs", f_abs},         {"attr", f_attr},       {"capitalize", f_capitalize}, {"center", f_center},
      {"default", f_default}, {"d", f_default},       {"escape", f_escape},         {"e", f_escape},
      {"forceescape", f_escape}, {"float", f_float},  {"format", f_format},         {"indent", f_indent},
      {"int", f_int},         {"lower", f_lower},     {"replace", f_replace},       {"round", f_round},
      {"safe", f_string},     {"string", f_string},   {"title", f_title},           {"tojson", f_tojson},
      {"trim", f_trim},       {"upper", f_upper},     {"wordcount", f_wordcount},
  };
  return table;
}

bool has_filter(std::string_view name) {
  return scalar_filters().count(name) || sequence_filters().count(name);
}

Value apply_filter(Context& ctx, const std::string& name, const Value& input, Args& args) {
  ctx.step();
  for (const FilterTable* table : {&scalar_filters(), &sequence_filters()}) {
    auto it = table->find(name);
    if (it != table->end()) return it->second(ctx, input, args);
  }
  throw EvalError("no filter named '" + name + "'");
}

}  // namespace hearth::jinja
