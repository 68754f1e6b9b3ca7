// Value construction, Python equality/ordering/containment and str()/repr().
// Recursive walkers carry a depth count: containers are bounded by kMaxValueDepth when
// built, but namespaces are mutable and can be linked into longer chains.
#include "tokenizer/jinja/value.h"

#include <cmath>

#include "tokenizer/jinja/py_format.h"

namespace hearth::jinja {

namespace {

const std::string kNoHint = "undefined value";

void check_depth(int depth) {
  if (depth > static_cast<int>(kMaxValueDepth)) throw EvalError("value nested too deeply");
}

// Python compares int and float exactly; doubles hold every int64 only up to 2^53.
int compare_numbers(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) {
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  double x = a.as_float(), y = b.as_float();
  if (x < y) return -1;
  if (x > y) return 1;
  if (x == y && a.is_integral() != b.is_integral()) {
    // Equal as doubles: break the tie exactly when the float is within int64 range.
    double f = a.is_integral() ? y : x;
    int64_t i = a.is_integral() ? a.as_int() : b.as_int();
    if (f >= -9.2e18 && f <= 9.2e18) {
      auto fi = static_cast<int64_t>(f);
      int c = i < fi ? -1 : i > fi ? 1 : 0;
      return a.is_integral() ? c : -c;
    }
  }
  return 0;  // equal, or a NaN is involved (then no ordering holds; callers test == 0 only for ==)
}

bool equals_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() && std::isnan(a.as_float())) return false;
    if (b.is_float() && std::isnan(b.as_float())) return false;
    return compare_numbers(a, b) == 0;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.as_string() == b.as_string();
    case Kind::List: {
      if (a.is_lazy() || b.is_lazy()) return &a.as_list() == &b.as_list();  // identity, as for iterators
      if (a.is_tuple() != b.is_tuple() || a.list_view() != b.list_view()) return false;
      const ValueList &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals_at(x[i], y[i], depth + 1)) return false;
      return true;
    }
    case Kind::Dict: {
      const Dict &x = a.as_dict(), &y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (auto& [k, v] : x.items()) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::Object:
      return a.object_ptr() == b.object_ptr();
    case Kind::Callable:
      return &a.as_callable() == &b.as_callable();
    default:
      return false;
  }
}

// repr() recurses through namespaces via Object::repr, which cannot pass a depth along,
// so the depth is counted per thread.
thread_local int repr_depth = 0;

std::string repr_at(const Value& v) {
  struct Guard {
    Guard() {
      if (++repr_depth > static_cast<int>(kMaxValueDepth)) {
        --repr_depth;
        throw EvalError("value nested too deeply");
      }
    }
    ~Guard() { --repr_depth; }
  } guard;
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::String:
      return str_repr(v.as_string());
    case Kind::List: {
      if (v.is_lazy()) return std::string("<") + v.list_view() + " object>";
      const ValueList& items = v.as_list();
      std::string out(1, v.is_tuple() ? '(' : '[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += repr_at(items[i]);
      }
      if (v.is_tuple() && items.size() == 1) out += ",";
      out += v.is_tuple() ? ')' : ']';
      if (const char* view = v.list_view()) return std::string(view) + "(" + out + ")";
      return out;
    }
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (auto& [k, val] : v.as_dict().items()) {
        if (!first) out += ", ";
        first = false;
        out += repr_at(k) + ": " + repr_at(val);
      }
      return out + "}";
    }
    case Kind::Object:
      return v.as_object().repr();
    case Kind::Callable:
      return v.as_callable().repr();
    default:
      return to_str(v);
  }
}

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > static_cast<int>(kMaxValueDepth)) throw EvalError("JSON value nested too deeply");
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value(nullptr);
    case nlohmann::json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.set(Value(it.key()), from_json_at(it.value(), depth + 1));
      return Value::dict(std::move(d));
    }
    default:
      throw EvalError("unsupported JSON value (binary)");
  }
}

}  // namespace

uint32_t Value::depth() const {
  if (is_list()) return std::get<ListPtr>(v_)->depth;
  if (is_dict()) return as_dict().depth();
  return 0;
}

const Value* Dict::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (auto& kv : items_)
    if (equals(kv.first, key)) return &kv.second;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  uint32_t d = 1 + std::max(key.depth(), value.depth());
  if (d > kMaxValueDepth) throw EvalError("value nested too deeply");
  depth_ = std::max(depth_, d);
  if (Value* existing = const_cast<Value*>(find(key))) {
    *existing = std::move(value);
    return;
  }
  if (key.is_string()) index_.emplace(key.as_string(), items_.size());
  items_.emplace_back(std::move(key), std::move(value));
}

Value Value::undefined(std::string hint) {
  Value v;
  v.v_ = UndefinedPayload{std::make_shared<const std::string>(std::move(hint))};
  return v;
}

Value Value::make_list(List list) {
  for (auto& e : list.items) list.depth = std::max(list.depth, 1 + e.depth());
  if (list.depth > kMaxValueDepth) throw EvalError("value nested too deeply");
  Value v;
  v.v_ = std::make_shared<const List>(std::move(list));
  return v;
}

Value Value::list(ValueList items, bool tuple) { return make_list(List{std::move(items), tuple}); }

Value Value::dict_view(ValueList items, const char* name) {
  List l{std::move(items)};
  l.view = name;
  return make_list(std::move(l));
}

Value Value::generator(ValueList items, const char* name) {
  List l{std::move(items)};
  l.view = name;
  l.lazy = true;
  return make_list(std::move(l));
}

Value Value::dict(Dict d) {
  Value v;
  v.v_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.v_ = std::move(o);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.v_ = std::move(c);
  return v;
}

int64_t Value::as_int() const { return is_bool() ? int64_t{as_bool()} : std::get<int64_t>(v_); }

double Value::as_float() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

const std::string& Value::undefined_hint() const {
  auto& p = std::get<UndefinedPayload>(v_).hint;
  return p && !p->empty() ? *p : kNoHint;
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return as_bool();
    case Kind::Int: return as_int() != 0;
    case Kind::Float: return as_float() != 0.0;
    case Kind::String: return !as_string().empty();
    case Kind::List: return is_lazy() || !as_list().empty();
    case Kind::Dict: return as_dict().size() != 0;
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return list_view() ? list_view() : is_tuple() ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Object: return as_object().type_name();
    default: return "function";
  }
}

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }

int compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_undefined()) throw EvalError(a.undefined_hint());
  if (b.is_undefined()) throw EvalError(b.undefined_hint());
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.is_lazy() && !b.is_lazy() &&
      !a.list_view() && !b.list_view()) {
    const ValueList &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw EvalError("'" + std::string(op) + "' not supported between instances of '" + a.type_name() + "' and '" +
                  b.type_name() + "'");
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return v.as_bool() ? "True" : "False";
    case Kind::Int: return std::to_string(v.as_int());
    case Kind::Float: return float_repr(v.as_float());
    case Kind::String: return v.as_string();
    default: return repr_at(v);
  }
}

std::string repr(const Value& v) { return repr_at(v); }

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::String:
      if (!item.is_string())
        throw EvalError("'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Kind::List:
      for (auto& e : container.as_list())
        if (equals(e, item)) return true;
      return false;
    case Kind::Dict:
      return container.as_dict().find(item) != nullptr;
    case Kind::Undefined:
      return false;
    default:
      throw EvalError("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

}  // namespace hearth::jinja
