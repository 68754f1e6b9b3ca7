// Objects and callables the interpreter creates at render time: namespace() objects,
// the `loop` variable, macros, bound methods (`s.startswith`) and native functions
// (globals such as range or raise_exception).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

// namespace(a=1): the one mutable object; `{% set ns.a = 2 %}` writes through it.
class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  Value get_attr(std::string_view name) const override;
  std::string repr() const override;
  bool is_namespace() const override { return true; }
  void clear() override { attrs_ = Dict(); }
  void set_attr(const std::string& name, Value v) { attrs_.set(Value(name), std::move(v)); }

 private:
  Dict attrs_;
};

// The `loop` variable of a for-loop: index, index0, revindex, revindex0, first, last,
// length, previtem, nextitem, depth, depth0, cycle(...), changed(...).
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  explicit LoopObject(ValueList items) : items_(std::move(items)) {}
  std::string type_name() const override { return "LoopContext"; }
  Value get_attr(std::string_view name) const override;
  std::string repr() const override;
  void clear() override { last_changed_ = Value(); }

  const ValueList& items() const { return items_; }
  size_t index0 = 0;  // position of the current item

 private:
  friend class LoopMethod;
  ValueList items_;
  mutable Value last_changed_;  // for loop.changed()
};

class MacroFunction : public Callable {
 public:
  MacroFunction(const MacroStmt* stmt, std::weak_ptr<Frame> scope) : stmt_(stmt), scope_(std::move(scope)) {}
  Value call(Context& ctx, Args& args) const override;
  std::string repr() const override { return "<Macro '" + stmt_->name + "'>"; }

 private:
  const MacroStmt* stmt_;       // owned by the template, which outlives every render
  std::weak_ptr<Frame> scope_;  // where it was defined; weak so frames do not form cycles
};

// A method looked up on a str, list or dict, called later (methods.cpp).
class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  Value call(Context& ctx, Args& args) const override;
  std::string repr() const override;

 private:
  Value self_;
  std::string name_;
};

class NativeFunction : public Callable {
 public:
  using Fn = std::function<Value(Context&, Args&)>;
  NativeFunction(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  Value call(Context& ctx, Args& args) const override { return fn_(ctx, args); }
  std::string repr() const override { return "<built-in function " + name_ + ">"; }

 private:
  std::string name_;
  Fn fn_;
};

// Calls any callable Value; Undefined raises its hint, other values are not callable.
Value call_value(Context& ctx, const Value& callee, Args& args);

}  // namespace hearth::jinja
