// Values of the Jinja interpreter, modelled on the Python objects jinja2 works with:
// Undefined, None, bool, int, float, str, list/tuple, dict, objects with attributes
// (namespace, loop) and callables (macros, globals, bound methods). Python semantics
// are kept where templates can observe them: int and float stay distinct, bool is an
// int in arithmetic and equality, dict keeps insertion order, `1 == 1.0 == True`.
// Strings, lists and dicts are immutable once built (jinja2's sandbox forbids
// mutating them), so a Value copies in O(1) by sharing its payload. Only namespaces
// are mutable; the interpreter clears them after a render to break reference cycles.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth::jinja {

class Value;
class Context;
using ValueList = std::vector<Value>;

// An error raised while rendering, without a location yet: the interpreter adds
// "NAME:LINE:COL: " of the innermost node being evaluated and rethrows hearth::Error.
class EvalError : public std::runtime_error {
 public:
  explicit EvalError(const std::string& message) : std::runtime_error(message) {}
};

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object, Callable };

// Lists and dicts record how deeply they nest so that no value can grow deep enough
// to overflow the stack of the recursive walkers (repr, tojson, ==) or destructors.
constexpr uint32_t kMaxValueDepth = 512;

struct List {
  ValueList items;
  bool tuple = false;  // a Python tuple: prints as (a, b) and is never equal to a list
  uint32_t depth = 1;
  const char* view = nullptr;  // "dict_items" etc.: prints as dict_items([...]) like Python
  // A Python generator or iterator (what |map, |select, |items... return in jinja2):
  // always truthy, no len(), no indexing, not JSON; iterating and |list work.
  bool lazy = false;
};

// Insertion-ordered mapping with Python key equality; string keys are also indexed.
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);  // insert or overwrite in place
  size_t size() const { return items_.size(); }
  uint32_t depth() const { return depth_; }
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }

 private:
  std::vector<std::pair<Value, Value>> items_;
  uint32_t depth_ = 1;
  std::unordered_map<std::string, size_t> index_;  // string key -> position in items_
};

// Arguments of a call: positional, then keyword in source order.
struct Args {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Callable {
 public:
  virtual ~Callable() = default;
  virtual Value call(Context& ctx, Args& args) const = 0;
  virtual std::string repr() const = 0;
};

// An object with attributes: namespace(), the loop variable.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  virtual Value get_attr(std::string_view name) const = 0;
  virtual std::string repr() const = 0;
  virtual bool is_namespace() const { return false; }
  virtual void clear() {}  // drops the values it holds (end of a render)
};

class Value {
 public:
  Value() : v_(UndefinedPayload{}) {}  // undefined
  Value(std::nullptr_t) : v_(nullptr) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(int64_t i) : v_(i) {}
  Value(double f) : v_(f) {}
  Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}
  Value(const char* s) : Value(std::string(s)) {}

  // Undefined with the message jinja2 reports when it is used ("'x' is undefined").
  static Value undefined(std::string hint);
  static Value list(ValueList items, bool tuple = false);
  static Value dict_view(ValueList items, const char* name);  // dict.items()/keys()/values()
  static Value generator(ValueList items, const char* name);  // name as Python reprs it
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);
  static Value callable(std::shared_ptr<const Callable> c);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python numbers.Number
  bool is_integral() const { return is_int() || is_bool(); }             // usable as a Python int
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }  // list or tuple
  bool is_tuple() const { return is_list() && std::get<ListPtr>(v_)->tuple; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_object() const { return kind() == Kind::Object; }
  bool is_callable() const { return kind() == Kind::Callable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;   // int or bool
  double as_float() const;  // any number
  const std::string& as_string() const { return *std::get<StrPtr>(v_); }
  const ValueList& as_list() const { return std::get<ListPtr>(v_)->items; }
  const char* list_view() const { return is_list() ? std::get<ListPtr>(v_)->view : nullptr; }
  bool is_lazy() const { return is_list() && std::get<ListPtr>(v_)->lazy; }
  const Dict& as_dict() const { return *std::get<DictPtr>(v_); }
  Object& as_object() const { return *std::get<ObjectPtr>(v_); }
  const std::shared_ptr<Object>& object_ptr() const { return std::get<ObjectPtr>(v_); }
  const Callable& as_callable() const { return *std::get<CallablePtr>(v_); }
  const std::string& undefined_hint() const;
  uint32_t depth() const;  // 0 for scalars, 1 + deepest child for lists and dicts

  bool truthy() const;            // Python bool()
  std::string type_name() const;  // Python type name for messages: 'str', 'dict', ...

 private:
  struct UndefinedPayload {
    std::shared_ptr<const std::string> hint;
  };
  using StrPtr = std::shared_ptr<const std::string>;
  using ListPtr = std::shared_ptr<const List>;
  using DictPtr = std::shared_ptr<const Dict>;
  using ObjectPtr = std::shared_ptr<Object>;
  using CallablePtr = std::shared_ptr<const Callable>;
  static Value make_list(List list);  // computes depth, enforces kMaxValueDepth
  // Alternatives in the order of Kind.
  std::variant<UndefinedPayload, std::nullptr_t, bool, int64_t, double, StrPtr, ListPtr, DictPtr, ObjectPtr,
               CallablePtr>
      v_;
};

// Python `==`; never throws. Undefined equals only Undefined, as in jinja2.
bool equals(const Value& a, const Value& b);
// Python ordering for `<`, `<=`, `>`, `>=`: numbers, strings, lists. Returns <0, 0, >0;
// an EvalError names `op` and both types when they cannot be ordered.
int compare(const Value& a, const Value& b, std::string_view op);
// Python str() and repr(). str(Undefined) is "" as jinja2 prints it.
std::string to_str(const Value& v);
std::string repr(const Value& v);
// Python's `x in container`.
bool contains(const Value& container, const Value& item);

// JSON (nlohmann::ordered_json keeps key order) -> Value. Strings must be valid UTF-8,
// which nlohmann guarantees for parsed input.
Value from_json(const nlohmann::ordered_json& j);

}  // namespace hearth::jinja
