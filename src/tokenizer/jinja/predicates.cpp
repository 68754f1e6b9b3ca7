// Jinja tests (`x is defined`, `x is string`, ...), with jinja2's definitions in terms
// of Python types: bool counts as a number but not as an integer, a str is iterable
// and a sequence, an Undefined is iterable (it iterates as empty) but not a mapping.
#include <algorithm>
#include <array>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/filters.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

namespace {

constexpr std::array<std::string_view, 37> kTests = {
    "boolean", "callable", "defined",  "divisibleby", "eq",      "equalto", "==",      "escaped",
    "even",    "false",    "filter",   "float",       "ge",      ">=",      "gt",      "greaterthan",
    ">",       "in",       "integer",  "iterable",    "le",      "<=",      "lower",   "lt",
    "lessthan", "<",       "mapping",  "ne",          "!=",      "none",    "number",  "odd",
    "sameas",  "sequence", "string",   "true",        "undefined"};

bool is_one_of(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

bool has_test(std::string_view name) {
  return std::find(kTests.begin(), kTests.end(), name) != kTests.end() || name == "test" || name == "upper";
}

bool apply_test(Context& ctx, const std::string& name, const Value& v, Args& args) {
  ctx.step();
  ArgReader r(args, name);
  if (is_one_of(name, {"eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan",
                       ">", "ge", ">=", "in", "sameas", "divisibleby"})) {
    Value other = r.get(0, "other");
    r.done(1);
    if (is_one_of(name, {"eq", "equalto", "=="})) return equals(v, other);
    if (is_one_of(name, {"ne", "!="})) return !equals(v, other);
    if (is_one_of(name, {"lt", "lessthan", "<"})) return compare(v, other, "<") < 0;
    if (is_one_of(name, {"le", "<="})) return compare(v, other, "<=") <= 0;
    if (is_one_of(name, {"gt", "greaterthan", ">"})) return compare(v, other, ">") > 0;
    if (is_one_of(name, {"ge", ">="})) return compare(v, other, ">=") >= 0;
    if (name == "in") return contains(other, v);
    if (name == "divisibleby") return equals(binary_op(ctx, BinOp::Mod, v, other), Value(0));
    // sameas: Python identity. Scalars compare by value within one type (CPython
    // interns the values templates produce); containers by identity.
    if (v.kind() != other.kind()) return false;
    if (v.is_list() || v.is_dict()) return v.is_list() ? &v.as_list() == &other.as_list() : &v.as_dict() == &other.as_dict();
    return equals(v, other);
  }
  r.done(0);
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "callable") return v.is_callable() || v.is_undefined();  // Undefined has __call__
  if (name == "escaped") return false;
  if (name == "filter") return v.is_string() && has_filter(v.as_string());
  if (name == "test") return v.is_string() && has_test(v.as_string());
  if (name == "iterable")
    return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() ||
           (v.is_object() && !v.as_object().is_namespace());
  if (name == "sequence") return v.is_string() || (v.is_list() && !v.list_view()) || v.is_dict() || v.is_undefined();
  if (name == "even" || name == "odd") {  // value % 2, so floats work as in Python
    if (!v.is_number()) throw EvalError("unsupported operand type(s) for %: '" + v.type_name() + "' and 'int'");
    return equals(binary_op(ctx, BinOp::Mod, v, Value(2)), Value(name == "odd" ? 1 : 0));
  }
  if (name == "lower" || name == "upper") {
    Args none;
    return call_str_method(ctx, to_str(v), name == "lower" ? "islower" : "isupper", none).truthy();
  }
  throw EvalError("no test named '" + name + "'");
}

}  // namespace hearth::jinja
