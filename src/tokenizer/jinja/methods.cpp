// Attribute lookup and the methods of list, tuple and dict. jinja2 looks attributes up
// the Python way first, so `d.items` is dict.items even when d has an "items" key and
// only then falls back to d["items"]; methods that would mutate a list or dict exist
// but are jinja2's "unsafe" Undefined: empty when printed, a SecurityError when called
// (ImmutableSandboxedEnvironment).
// String methods are in str_methods.cpp.
#include <algorithm>
#include <array>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/objects.h"

namespace hearth::jinja {

namespace {

constexpr std::array<std::string_view, 5> kDictMethods = {"copy", "get", "items", "keys", "values"};
constexpr std::array<std::string_view, 5> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr std::array<std::string_view, 3> kListMethods = {"copy", "count", "index"};
constexpr std::array<std::string_view, 8> kListUnsafe = {"append", "clear", "extend", "insert",
                                                         "pop",    "remove", "reverse", "sort"};

template <size_t N>
bool in(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool has_method(const Value& obj, std::string_view name) {
  if (obj.is_string()) return is_str_method(name);
  if (obj.is_dict()) return in(kDictMethods, name) || in(kDictUnsafe, name);
  if (obj.is_tuple()) return name == "count" || name == "index";
  if (obj.is_list()) return in(kListMethods, name) || in(kListUnsafe, name);
  return false;
}

Value items_of(const Dict& d) {
  ValueList out;
  out.reserve(d.size());
  for (auto& [k, v] : d.items()) out.push_back(Value::list({k, v}, true));
  return Value::list(std::move(out));
}

Value call_dict_method(Context& ctx, const Value& self, const std::string& name, Args& args) {
  const Dict& d = self.as_dict();
  ArgReader r(args, name);
  ctx.step(d.size());
  if (name == "get") {
    Value key = r.get(0, "key");
    Value fallback = r.has(1, "default") ? r.get(1, "default") : Value(nullptr);
    r.done(2);
    if (key.is_list() && !key.is_tuple()) throw EvalError("unhashable type: 'list'");
    const Value* v = d.find(key);
    return v ? *v : fallback;
  }
  r.done(0);
  if (name == "items") return Value::dict_view(items_of(d).as_list(), "dict_items");
  if (name == "copy") return self;
  ValueList out;
  for (auto& [k, v] : d.items()) out.push_back(name == "keys" ? k : v);
  return Value::dict_view(std::move(out), name == "keys" ? "dict_keys" : "dict_values");
}

Value call_list_method(Context& ctx, const Value& self, const std::string& name, Args& args) {
  const ValueList& items = self.as_list();
  ArgReader r(args, name);
  ctx.step(items.size());
  if (name == "copy") {
    r.done(0);
    return self;
  }
  Value x = r.get(0, "value");
  r.done(1);
  if (name == "count") return Value(static_cast<int64_t>(
                           std::count_if(items.begin(), items.end(), [&](const Value& e) { return equals(e, x); })));
  for (size_t i = 0; i < items.size(); ++i)
    if (equals(items[i], x)) return Value(static_cast<int64_t>(i));
  throw EvalError(repr(x) + " is not in list");
}

}  // namespace

Value get_attr(Context& ctx, const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::Undefined:
      throw EvalError(obj.undefined_hint());
    case Kind::Object:
      return obj.as_object().get_attr(name);
    case Kind::Dict:
      if (has_method(obj, name)) break;
      if (const Value* v = obj.as_dict().find(std::string_view(name))) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    default:
      break;
  }
  if ((obj.is_dict() && in(kDictUnsafe, name)) || (obj.is_list() && !obj.is_tuple() && in(kListUnsafe, name)))
    return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.");
  if (has_method(obj, name)) return Value::callable(std::make_shared<BoundMethod>(obj, name));
  (void)ctx;
  std::string who = obj.is_none() ? std::string("None") : std::string("'").append(obj.type_name()).append(" object'");
  return Value::undefined(who + " has no attribute '" + name + "'");
}

Value BoundMethod::call(Context& ctx, Args& args) const {
  if (self_.is_string()) return call_str_method(ctx, self_.as_string(), name_, args);
  if (self_.is_dict()) return call_dict_method(ctx, self_, name_, args);
  return call_list_method(ctx, self_, name_, args);
}

std::string BoundMethod::repr() const {
  return "<built-in method " + name_ + " of " + self_.type_name() + " object>";
}

}  // namespace hearth::jinja
