// Scopes, limit counters, argument binding for builtins and iteration (see context.h
// and builtins.h).
#include "tokenizer/jinja/context.h"

#include <algorithm>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/objects.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent_.get()) {
    auto it = f->vars_.find(name);
    if (it != f->vars_.end()) return &it->second;
  }
  return nullptr;
}

Context::Context(const SourceMap& m, const RenderOptions& o) : map(m), options(o) {
  frame = std::make_shared<Frame>(nullptr);  // globals
  add_globals(*this);
  root = std::make_shared<Frame>(frame);
  frame = root;
}

Context::~Context() {
  for (auto& o : tracked_) o->clear();
}

Value Context::lookup(const std::string& name) const {
  if (const Value* v = frame->find(name)) return *v;
  return Value::undefined("'" + name + "' is undefined");
}

Context::Scope::Scope(Context& ctx, std::shared_ptr<Frame> parent) : ctx_(ctx), saved_(ctx.frame) {
  ctx.frame = std::make_shared<Frame>(std::move(parent));
}

void Context::step(uint64_t n) {
  steps_ += n;
  if (steps_ > options.limits.max_steps)
    throw EvalError("template exceeded its evaluation budget (" + std::to_string(options.limits.max_steps) +
                    " steps)");
}

void Context::loop_iteration() {
  if (++iterations_ > options.limits.max_loop_iterations)
    throw EvalError("template exceeded the loop iteration limit (" +
                    std::to_string(options.limits.max_loop_iterations) + ")");
}

void Context::enter_eval() {
  if (++eval_depth_ > options.limits.max_eval_depth) {
    --eval_depth_;
    throw EvalError("template nested too deeply at run time");
  }
}

void Context::enter_call() {
  if (++call_depth_ > options.limits.max_call_depth) {
    --call_depth_;
    throw EvalError("macro recursion deeper than " + std::to_string(options.limits.max_call_depth));
  }
}

void Context::charge(size_t bytes) {
  if (bytes > options.limits.max_value_bytes)
    throw EvalError("value of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                    std::to_string(options.limits.max_value_bytes));
  allocated_ += bytes;
  if (allocated_ > options.limits.max_alloc_bytes)
    throw EvalError("template allocated more than " + std::to_string(options.limits.max_alloc_bytes) + " bytes");
}

void Context::emit(std::string& out, std::string_view text) const {
  if (out.size() + text.size() > options.limits.max_output_bytes)
    throw EvalError("output exceeds the limit of " + std::to_string(options.limits.max_output_bytes) + " bytes");
  out += text;
}

std::tm Context::now() const {
  if (options.now) return *options.now;
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

Value ArgReader::get(size_t i, std::string_view name) {
  if (i < args_.positional.size()) {
    for (auto& kw : args_.keyword)
      if (kw.first == name) throw EvalError(fn_ + "() got multiple values for argument '" + kw.first + "'");
    return args_.positional[i];
  }
  used_.resize(args_.keyword.size(), false);
  for (size_t k = 0; k < args_.keyword.size(); ++k) {
    if (args_.keyword[k].first != name) continue;
    used_[k] = true;
    return args_.keyword[k].second;
  }
  return Value();
}

bool ArgReader::has(size_t i, std::string_view name) const {
  if (i < args_.positional.size()) return true;
  return std::any_of(args_.keyword.begin(), args_.keyword.end(), [&](auto& kw) { return kw.first == name; });
}

void ArgReader::done(size_t n_params) const {
  if (args_.positional.size() > n_params)
    throw EvalError(fn_ + "() takes at most " + std::to_string(n_params) + " argument(s), " +
                    std::to_string(args_.positional.size()) + " given");
  for (size_t k = 0; k < args_.keyword.size(); ++k)
    if (k >= used_.size() || !used_[k])
      throw EvalError(fn_ + "() got an unexpected keyword argument '" + args_.keyword[k].first + "'");
}

ValueList iterate(Context& ctx, const Value& v) {
  switch (v.kind()) {
    case Kind::List:
      ctx.step(v.as_list().size());
      return v.as_list();
    case Kind::Dict: {
      ValueList keys;
      keys.reserve(v.as_dict().size());
      for (auto& kv : v.as_dict().items()) keys.push_back(kv.first);
      ctx.step(keys.size());
      return keys;
    }
    case Kind::String: {
      ValueList chars;
      std::string c;
      for (char32_t cp : utf8::decode(v.as_string())) {
        c.clear();
        utf8::append(c, cp);
        chars.emplace_back(c);
      }
      ctx.step(chars.size());
      ctx.charge(chars.size() * sizeof(Value));
      return chars;
    }
    case Kind::Undefined:
      return {};
    case Kind::Object:
      if (auto* loop = dynamic_cast<LoopObject*>(&v.as_object())) return loop->items();
      [[fallthrough]];
    default:
      throw EvalError("'" + v.type_name() + "' object is not iterable");
  }
}

Value call_value(Context& ctx, const Value& callee, Args& args) {
  if (callee.is_callable()) return callee.as_callable().call(ctx, args);
  if (callee.is_undefined()) throw EvalError(callee.undefined_hint());
  throw EvalError("'" + callee.type_name() + "' object is not callable");
}

}  // namespace hearth::jinja
