// Python arithmetic, `%` formatting, subscripts and slices with Python's semantics:
// int stays int (int64; overflow is an error rather than a bigint), `/` is true
// division, `//` and `%` round toward negative infinity, str and list repeat and
// concatenate, negative indices count from the end, slices clamp like
// PySlice_AdjustIndices. Every string or list built is charged to the render limits.
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

namespace {

const char* op_symbol(BinOp op) {
  switch (op) {
    case BinOp::Add: return "+";
    case BinOp::Sub: return "-";
    case BinOp::Mul: return "*";
    case BinOp::Div: return "/";
    case BinOp::FloorDiv: return "//";
    case BinOp::Mod: return "%";
    case BinOp::Pow: return "**";
    default: return "~";
  }
}

[[noreturn]] void unsupported(BinOp op, const Value& a, const Value& b) {
  throw EvalError(std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" + a.type_name() +
                  "' and '" + b.type_name() + "'");
}

// Call as checked(__builtin_add_overflow(x, y, &r), &r): the result is read only after
// the builtin has written it (argument evaluation order is unspecified).
Value checked(bool overflow, const int64_t* r) {
  if (overflow) throw EvalError("integer overflow");
  return Value(*r);
}

Value repeat(Context& ctx, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size() * sizeof(Value);
  if (unit && static_cast<uint64_t>(n) > ctx.options.limits.max_value_bytes / unit + 1)
    throw EvalError("repeated sequence exceeds the size limit");
  ctx.charge(unit * static_cast<size_t>(n));
  if (seq.is_string()) {
    std::string out;
    out.reserve(unit * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value::list(std::move(out), seq.is_tuple());
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = std::copysign(0.0, b);
  }
  return m;
}

double py_floordiv(double a, double b) {
  double m = std::fmod(a, b);
  double div = (a - m) / b;
  if (m != 0 && ((b < 0) != (m < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double f = std::floor(div);
  if (div - f > 0.5) f += 1.0;
  return f;
}

Value arithmetic(BinOp op, const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    int64_t x = a.as_int(), y = b.as_int(), r = 0;
    switch (op) {
      case BinOp::Add: return checked(__builtin_add_overflow(x, y, &r), &r);
      case BinOp::Sub: return checked(__builtin_sub_overflow(x, y, &r), &r);
      case BinOp::Mul: return checked(__builtin_mul_overflow(x, y, &r), &r);
      case BinOp::Div:
        if (y == 0) throw EvalError("division by zero");
        return Value(static_cast<double>(x) / static_cast<double>(y));
      case BinOp::FloorDiv:
      case BinOp::Mod: {
        if (y == 0) throw EvalError("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) throw EvalError("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) q -= 1, m += y;
        return Value(op == BinOp::FloorDiv ? q : m);
      }
      case BinOp::Pow: {
        if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        int64_t result = 1, base = x;
        bool overflow = false;
        for (int64_t e = y; e > 0 && !overflow; e >>= 1) {
          if (e & 1) overflow |= __builtin_mul_overflow(result, base, &result);
          if (e > 1) overflow |= __builtin_mul_overflow(base, base, &base);
        }
        return checked(overflow, &result);
      }
      default: break;
    }
  }
  double x = a.as_float(), y = b.as_float();
  switch (op) {
    case BinOp::Add: return Value(x + y);
    case BinOp::Sub: return Value(x - y);
    case BinOp::Mul: return Value(x * y);
    case BinOp::Div:
      if (y == 0) throw EvalError("float division by zero");
      return Value(x / y);
    case BinOp::FloorDiv:
      if (y == 0) throw EvalError("float floor division by zero");
      return Value(py_floordiv(x, y));
    case BinOp::Mod:
      if (y == 0) throw EvalError("float modulo");
      return Value(py_fmod(x, y));
    case BinOp::Pow:
      if (x == 0 && y < 0) throw EvalError("0.0 cannot be raised to a negative power");
      return Value(std::pow(x, y));
    default: unsupported(op, a, b);
  }
}

}  // namespace

Value binary_op(Context& ctx, BinOp op, const Value& a, const Value& b) {
  if (op == BinOp::Concat) {
    std::string s = to_str(a) + to_str(b);
    ctx.charge(s.size());
    return Value(std::move(s));
  }
  if (a.is_undefined()) throw EvalError(a.undefined_hint());
  if (b.is_undefined()) throw EvalError(b.undefined_hint());
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  switch (op) {
    case BinOp::Add:
      if (a.is_string() && b.is_string()) {
        ctx.charge(a.as_string().size() + b.as_string().size());
        return Value(a.as_string() + b.as_string());
      }
      if (a.is_string()) throw EvalError("can only concatenate str (not \"" + b.type_name() + "\") to str");
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.list_view() && !b.list_view()) {
        ctx.charge((a.as_list().size() + b.as_list().size()) * sizeof(Value));
        ValueList out = a.as_list();
        out.insert(out.end(), b.as_list().begin(), b.as_list().end());
        return Value::list(std::move(out), a.is_tuple());
      }
      break;
    case BinOp::Mul:
      if ((a.is_string() || (a.is_list() && !a.list_view())) && b.is_integral()) return repeat(ctx, a, b.as_int());
      if ((b.is_string() || (b.is_list() && !b.list_view())) && a.is_integral()) return repeat(ctx, b, a.as_int());
      break;
    case BinOp::Mod:
      if (a.is_string()) {
        std::string s = percent_format(ctx, a.as_string(), b);
        ctx.charge(s.size());
        return Value(std::move(s));
      }
      break;
    default:
      break;
  }
  unsupported(op, a, b);
}

Value unary_op(UnaryOp op, const Value& v) {
  if (op == UnaryOp::Not) return Value(!v.truthy());
  if (v.is_undefined()) throw EvalError(v.undefined_hint());
  if (v.is_integral()) {
    if (op == UnaryOp::Pos) return Value(v.as_int());
    if (v.as_int() == INT64_MIN) throw EvalError("integer overflow");
    return Value(-v.as_int());
  }
  if (v.is_float()) return Value(op == UnaryOp::Neg ? -v.as_float() : v.as_float());
  throw EvalError(std::string("bad operand type for unary ") + (op == UnaryOp::Neg ? "-" : "+") + ": '" +
                  v.type_name() + "'");
}

// jinja2 names the object in "has no attribute" messages as "'dict object'".
static std::string undefined_item(const Value& obj, const Value& key) {
  std::string who = obj.is_none() ? std::string("None") : std::string("'").append(obj.type_name()).append(" object'");
  if (key.is_string()) return who + " has no attribute " + repr(key);
  return who + " has no element " + repr(key);
}

Value get_item(Context& ctx, const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::Undefined:
      throw EvalError(obj.undefined_hint());
    case Kind::List:
      if (key.is_integral() && !obj.list_view()) {  // views and generators have no []
        auto n = static_cast<int64_t>(obj.as_list().size());
        int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
        if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
        return Value::undefined(undefined_item(obj, key));
      }
      break;
    case Kind::String:
      if (key.is_integral()) {
        std::u32string cs = utf8::decode(obj.as_string());
        auto n = static_cast<int64_t>(cs.size());
        int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
        if (i >= 0 && i < n) return Value(utf8::encode(cs.substr(static_cast<size_t>(i), 1)));
        return Value::undefined(undefined_item(obj, key));
      }
      break;
    case Kind::Dict:
      if (!(key.is_list() && !key.is_tuple()) && !key.is_dict())
        if (const Value* v = obj.as_dict().find(key)) return *v;
      break;
    default:
      break;
  }
  if (key.is_string()) {  // jinja2 falls back to attributes: d['items'] is the method
    Value v = get_attr(ctx, obj, key.as_string());
    if (!v.is_undefined()) return v;
  }
  return Value::undefined(undefined_item(obj, key));
}

Value get_slice(Context& ctx, const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) throw EvalError(obj.undefined_hint());
  // jinja2 compiles slices to a plain Python subscript (no getitem fallback): a TypeError.
  if ((!obj.is_string() && !obj.is_list()) || obj.list_view())
    throw EvalError(std::string("'").append(obj.type_name()).append("' object is not subscriptable"));
  for (const Value* v : {&start, &stop, &step})
    if (!v->is_none() && !v->is_integral())
      throw EvalError("slice indices must be integers or None or have an __index__ method");
  int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) throw EvalError("slice step cannot be zero");
  std::u32string cs;
  if (obj.is_string()) cs = utf8::decode(obj.as_string());
  auto len = static_cast<int64_t>(obj.is_string() ? cs.size() : obj.as_list().size());
  auto adjust = [&](const Value& v, int64_t if_none) {
    if (v.is_none()) return if_none;
    int64_t i = v.as_int();
    if (i < 0) {
      i += len;
      if (i < 0) i = st < 0 ? -1 : 0;
    } else if (i >= len) {
      i = st < 0 ? len - 1 : len;
    }
    return i;
  };
  int64_t b = adjust(start, st < 0 ? len - 1 : 0);
  int64_t e = adjust(stop, st < 0 ? -1 : len);
  std::vector<size_t> picks;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) picks.push_back(static_cast<size_t>(i));
  ctx.step(picks.size());
  if (obj.is_string()) {
    std::u32string out;
    for (size_t i : picks) out.push_back(cs[i]);
    return Value(utf8::encode(out));
  }
  ValueList out;
  for (size_t i : picks) out.push_back(obj.as_list()[i]);
  ctx.charge(out.size() * sizeof(Value));
  return Value::list(std::move(out), obj.is_tuple());
}

}  // namespace hearth::jinja
