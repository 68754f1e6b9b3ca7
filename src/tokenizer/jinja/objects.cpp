// namespace(), the loop variable, macro calls and the global functions of a render:
// range (capped at 100000 items like jinja2's sandbox), dict, namespace, and the two
// that transformers adds, raise_exception and strftime_now.
#include "tokenizer/jinja/objects.h"

#include <ctime>

#include "tokenizer/jinja/builtins.h"

namespace hearth::jinja {

Value Namespace::get_attr(std::string_view name) const {
  if (const Value* v = attrs_.find(name)) return *v;
  return Value::undefined("'Namespace object' has no attribute '" + std::string(name) + "'");
}

std::string Namespace::repr() const { return "<Namespace " + jinja::repr(Value::dict(attrs_)) + ">"; }

// loop.cycle(...) and loop.changed(...).
class LoopMethod : public Callable {
 public:
  LoopMethod(std::shared_ptr<LoopObject> loop, bool cycle) : loop_(std::move(loop)), cycle_(cycle) {}
  Value call(Context& ctx, Args& args) const override {
    if (!args.keyword.empty()) throw EvalError("loop methods take no keyword arguments");
    if (cycle_) {
      if (args.positional.empty()) throw EvalError("no items for cycling given");
      return args.positional[loop_->index0 % args.positional.size()];
    }
    Value current = Value::list(args.positional, true);
    if (!loop_->last_changed_.is_undefined() && equals(current, loop_->last_changed_)) return Value(false);
    if (loop_->last_changed_.is_undefined()) ctx.track_object(loop_);  // it now holds values
    loop_->last_changed_ = current;
    return Value(true);
  }
  std::string repr() const override { return cycle_ ? "<bound method cycle>" : "<bound method changed>"; }

 private:
  std::shared_ptr<LoopObject> loop_;
  bool cycle_;
};

Value LoopObject::get_attr(std::string_view name) const {
  auto length = static_cast<int64_t>(items_.size());
  auto i = static_cast<int64_t>(index0);
  if (name == "index") return Value(i + 1);
  if (name == "index0") return Value(i);
  if (name == "revindex") return Value(length - i);
  if (name == "revindex0") return Value(length - i - 1);
  if (name == "first") return Value(i == 0);
  if (name == "last") return Value(i == length - 1);
  if (name == "length") return Value(length);
  if (name == "depth") return Value(1);
  if (name == "depth0") return Value(0);
  if (name == "previtem") return i > 0 ? items_[index0 - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem") return i + 1 < length ? items_[index0 + 1] : Value::undefined("there is no next item");
  if (name == "cycle" || name == "changed") {
    auto self = std::const_pointer_cast<LoopObject>(shared_from_this());
    return Value::callable(std::make_shared<LoopMethod>(self, name == "cycle"));
  }
  return Value::undefined("'LoopContext object' has no attribute '" + std::string(name) + "'");
}

std::string LoopObject::repr() const {
  return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items_.size()) + ">";
}

Value MacroFunction::call(Context& ctx, Args& args) const {
  const auto& params = stmt_->params;
  std::shared_ptr<Frame> scope = scope_.lock();
  if (!scope) scope = ctx.root;
  ctx.enter_call();
  struct Leave {
    Context& c;
    ~Leave() { c.leave_call(); }
  } leave{ctx};
  Context::Scope frame(ctx, scope);

  if (args.positional.size() > params.size() && !stmt_->uses_varargs)
    throw EvalError("macro '" + stmt_->name + "' takes not more than " + std::to_string(params.size()) +
                    " argument(s)");
  std::vector<bool> bound(params.size(), false);
  for (size_t i = 0; i < args.positional.size() && i < params.size(); ++i) {
    ctx.set(params[i].first, args.positional[i]);
    bound[i] = true;
  }
  Dict extra_kwargs;
  for (auto& [key, value] : args.keyword) {
    size_t i = 0;
    while (i < params.size() && params[i].first != key) ++i;
    if (i == params.size()) {
      if (!stmt_->uses_kwargs)
        throw EvalError("macro '" + stmt_->name + "' takes no keyword argument '" + key + "'");
      extra_kwargs.set(Value(key), value);
    } else if (bound[i]) {
      throw EvalError("macro '" + stmt_->name + "' got multiple values for argument '" + key + "'");
    } else {
      ctx.set(key, value);
      bound[i] = true;
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {  // defaults see the parameters before them
    if (bound[i]) continue;
    ctx.set(params[i].first, params[i].second ? params[i].second->evaluate(ctx)
                                              : Value::undefined("parameter '" + params[i].first + "' was not provided"));
  }
  ValueList rest;
  for (size_t i = params.size(); i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
  ctx.set("varargs", Value::list(std::move(rest), true));
  ctx.set("kwargs", Value::dict(std::move(extra_kwargs)));

  std::string out;
  run_body(stmt_->body, ctx, out);
  ctx.charge(out.size());
  return Value(std::move(out));
}

namespace {

int64_t int_arg(const Value& v, const char* fn) {
  if (!v.is_integral())
    throw EvalError(std::string(fn) + "(): '" + v.type_name() + "' object cannot be interpreted as an integer");
  return v.as_int();
}

Value range_fn(Context& ctx, Args& args) {
  if (!args.keyword.empty()) throw EvalError("range() takes no keyword arguments");
  auto& a = args.positional;
  if (a.empty() || a.size() > 3) throw EvalError("range expected 1 to 3 arguments, got " + std::to_string(a.size()));
  int64_t start = 0, stop, step = 1;
  if (a.size() == 1) {
    stop = int_arg(a[0], "range");
  } else {
    start = int_arg(a[0], "range");
    stop = int_arg(a[1], "range");
    if (a.size() == 3) step = int_arg(a[2], "range");
  }
  if (step == 0) throw EvalError("range() arg 3 must not be zero");
  __int128 lo = start, hi = stop, st = step, count = 0;  // Python's len(range(...)), overflow-free
  if (st > 0 && lo < hi) count = (hi - lo - 1) / st + 1;
  if (st < 0 && lo > hi) count = (lo - hi - 1) / (-st) + 1;
  int64_t n = count > 1000000000 ? 1000000000 : static_cast<int64_t>(count);
  constexpr int64_t kMaxRange = 100000;  // jinja2 sandbox's MAX_RANGE
  if (n > kMaxRange)
    throw EvalError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  ctx.charge(static_cast<size_t>(n) * sizeof(Value));
  ValueList items;
  items.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) items.emplace_back(start + i * step);
  return Value::list(std::move(items));
}

// dict(mapping_or_pairs, **kwargs) and namespace(...) share Python's dict() arguments.
Dict dict_from_args(Context& ctx, Args& args, const char* fn) {
  Dict d;
  if (args.positional.size() > 1) throw EvalError(std::string(fn) + "() takes at most 1 positional argument");
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      d = src.as_dict();
    } else {
      for (const Value& pair : iterate(ctx, src)) {
        if (!pair.is_list() || pair.as_list().size() != 2)
          throw EvalError(std::string(fn) + "(): sequence elements must be pairs");
        d.set(pair.as_list()[0], pair.as_list()[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) d.set(Value(k), v);
  return d;
}

Value strftime_now(Context& ctx, Args& args) {
  ArgReader r(args, "strftime_now");
  Value format = r.get(0, "format");
  r.done(1);
  if (!format.is_string()) throw EvalError("strftime_now() argument must be str, not " + format.type_name());
  if (format.as_string().size() > 1024) throw EvalError("strftime_now(): format too long");
  std::tm tm = ctx.now();
  std::string buf(format.as_string().size() * 64 + 64, '\0');
  size_t n = std::strftime(buf.data(), buf.size(), format.as_string().c_str(), &tm);
  buf.resize(n);
  return Value(std::move(buf));
}

}  // namespace

void add_globals(Context& ctx) {
  auto fn = [&](const char* name, NativeFunction::Fn f) {
    ctx.set(name, Value::callable(std::make_shared<NativeFunction>(name, std::move(f))));
  };
  fn("range", range_fn);
  fn("dict", [](Context& c, Args& a) { return Value::dict(dict_from_args(c, a, "dict")); });
  fn("namespace", [](Context& c, Args& a) {
    auto ns = std::make_shared<Namespace>();
    Dict attrs = dict_from_args(c, a, "namespace");
    for (auto& [k, v] : attrs.items()) {
      if (!k.is_string()) throw EvalError("namespace() keywords must be strings");
      ns->set_attr(k.as_string(), v);
    }
    c.track_object(ns);
    return Value::object(ns);
  });
  fn("raise_exception", [](Context&, Args& a) -> Value {
    ArgReader r(a, "raise_exception");
    Value message = r.get(0, "message");
    r.done(1);
    throw EvalError(to_str(message));
  });
  fn("strftime_now", strftime_now);
}

}  // namespace hearth::jinja
