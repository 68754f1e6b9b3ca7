// Python float repr, str repr and json.dumps (see py_format.h). float repr takes the
// shortest round-trip digits from std::to_chars and lays them out with CPython's rule:
// exponent notation when the decimal point position is <= -4 or > 16.
#include "tokenizer/jinja/py_format.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // "-1.2345e+02"
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos))
    if (c != '.') digits.push_back(c);
  int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  int decpt = exponent + 1;  // position of the decimal point within digits
  int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (n > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  }
  return out;
}

// Python's str.isprintable for one code point: everything but categories C*, Z* other
// than the ASCII space.
static bool printable(char32_t c) {
  if (c == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return false;
    default:
      return true;
  }
}

std::string str_repr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : utf8::decode(s)) {
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (printable(c)) {
      utf8::append(out, c);
    } else {
      const char* fmt = c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x";
      std::snprintf(buf, sizeof buf, fmt, static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

namespace {

class Dumper {
 public:
  Dumper(const DumpOptions& o, size_t max_bytes) : o_(o), max_bytes_(max_bytes) {
    item_sep_ = o.item_separator ? *o.item_separator : (o.indent ? "," : ", ");
    key_sep_ = o.key_separator ? *o.key_separator : ": ";
  }

  void dump(const Value& v, int level) {
    if (level > 512) throw EvalError("tojson: value nested too deeply");
    check();
    switch (v.kind()) {
      case Kind::None:
        out += "null";
        break;
      case Kind::Bool:
        out += v.as_bool() ? "true" : "false";
        break;
      case Kind::Int:
        out += std::to_string(v.as_int());
        break;
      case Kind::Float:
        out += float_text(v.as_float());
        break;
      case Kind::String:
        string(v.as_string());
        break;
      case Kind::List:
        if (v.list_view()) throw EvalError("Object of type " + v.type_name() + " is not JSON serializable");
        sequence(v.as_list(), level);
        break;
      case Kind::Dict:
        mapping(v.as_dict(), level);
        break;
      default:
        throw EvalError("Object of type " + v.type_name() + " is not JSON serializable");
    }
  }

  std::string out;

 private:
  void check() const {
    if (out.size() > max_bytes_) throw EvalError("tojson: output exceeds the size limit");
  }

  static std::string float_text(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
    return float_repr(d);
  }

  void string(std::string_view s) {
    out.push_back('"');
    for (char32_t c : utf8::decode(s)) {
      switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        case '\b': out += "\\b"; continue;
        case '\f': out += "\\f"; continue;
        default: break;
      }
      char buf[16];
      if (c < 0x20 || (o_.ensure_ascii && c > 0x7E)) {
        if (c >= 0x10000) {  // UTF-16 surrogate pair, as Python writes it
          char32_t v = c - 0x10000;
          std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                        static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
        } else {
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        }
        out += buf;
      } else {
        utf8::append(out, c);
      }
    }
    out.push_back('"');
  }

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) {
      out += *o_.indent;
      check();
    }
  }

  void sequence(const ValueList& items, int level) {
    if (items.empty()) {
      out += "[]";
      return;
    }
    out.push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep_;
      if (o_.indent) newline(level + 1);
      dump(items[i], level + 1);
    }
    if (o_.indent) newline(level);
    out.push_back(']');
  }

  // Python converts keys: str as is, float by repr, True/False/None as JSON words,
  // int in decimal; anything else is a TypeError.
  std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Kind::String: return k.as_string();
      case Kind::Float: return float_text(k.as_float());
      case Kind::Bool: return k.as_bool() ? "true" : "false";
      case Kind::None: return "null";
      case Kind::Int: return std::to_string(k.as_int());
      default: throw EvalError("keys must be str, int, float, bool or None, not " + k.type_name());
    }
  }

  void mapping(const Dict& d, int level) {
    if (d.size() == 0) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> items;
    for (auto& kv : d.items()) items.push_back(&kv);
    if (o_.sort_keys)
      std::stable_sort(items.begin(), items.end(),
                       [](auto* a, auto* b) { return compare(a->first, b->first, "<") < 0; });
    out.push_back('{');
    bool first = true;
    for (auto* kv : items) {
      if (!first) out += item_sep_;
      first = false;
      if (o_.indent) newline(level + 1);
      string(key_text(kv->first));
      out += key_sep_;
      dump(kv->second, level + 1);
    }
    if (o_.indent) newline(level);
    out.push_back('}');
  }

  const DumpOptions& o_;
  size_t max_bytes_;
  std::string item_sep_, key_sep_;
};

}  // namespace

std::string json_dumps(const Value& v, const DumpOptions& options, size_t max_bytes) {
  Dumper d(options, max_bytes);
  d.dump(v, 0);
  if (d.out.size() > max_bytes) throw EvalError("tojson: output exceeds the size limit");
  return std::move(d.out);
}

}  // namespace hearth::jinja
