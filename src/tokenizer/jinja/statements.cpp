// Statement execution (see ast.h). Loops give each iteration a fresh frame under the
// frame the loop started in, which is what makes jinja2's scoping rule hold: a `set`
// in the body is visible for the rest of that iteration only.
#include <memory>
#include <variant>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/objects.h"

namespace hearth::jinja {

namespace {

struct EvalGuard {
  explicit EvalGuard(Context& c) : ctx(c) { ctx.enter_eval(); }
  ~EvalGuard() { ctx.leave_eval(); }
  Context& ctx;
};

}  // namespace

Flow Stmt::run(Context& ctx, std::string& out) const {
  try {
    EvalGuard guard(ctx);
    ctx.step();
    return exec(ctx, out);
  } catch (const EvalError& e) {
    ctx.map.fail(offset, e.what());
  } catch (const std::bad_variant_access&) {
    ctx.map.fail(offset, "argument of the wrong type");
  }
}

Flow run_body(const Body& body, Context& ctx, std::string& out) {
  for (const auto& stmt : body) {
    Flow f = stmt->run(ctx, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

void Target::assign(Context& ctx, const Value& v) const {
  if (!attribute.empty()) {
    Value ns = ctx.lookup(names[0]);
    if (!ns.is_object() || !ns.as_object().is_namespace())
      throw EvalError("cannot assign attribute on non-namespace object '" + names[0] + "'");
    static_cast<Namespace&>(ns.as_object()).set_attr(attribute, v);
    return;
  }
  if (!tuple) {
    ctx.set(names[0], v);
    return;
  }
  ValueList items = iterate(ctx, v);
  if (items.size() != names.size())
    throw EvalError(items.size() > names.size()
                        ? "too many values to unpack (expected " + std::to_string(names.size()) + ")"
                        : "not enough values to unpack (expected " + std::to_string(names.size()) + ", got " +
                              std::to_string(items.size()) + ")");
  for (size_t i = 0; i < names.size(); ++i) ctx.set(names[i], items[i]);
}

Flow TextStmt::exec(Context& ctx, std::string& out) const {
  ctx.emit(out, text);
  return Flow::Normal;
}

Flow PrintStmt::exec(Context& ctx, std::string& out) const {
  Value v = expr->evaluate(ctx);
  if (v.is_string()) {
    ctx.emit(out, v.as_string());
  } else {
    std::string s = to_str(v);
    ctx.charge(s.size());
    ctx.emit(out, s);
  }
  return Flow::Normal;
}

Flow IfStmt::exec(Context& ctx, std::string& out) const {
  for (const auto& [cond, body] : branches)
    if (cond->evaluate(ctx).truthy()) return run_body(body, ctx, out);
  return run_body(otherwise, ctx, out);
}

Flow ForStmt::exec(Context& ctx, std::string& out) const {
  ValueList items = iterate(ctx, iter->evaluate(ctx));
  std::shared_ptr<Frame> parent = ctx.frame;
  if (filter) {  // `for x in xs if cond`: the condition sees the target but not `loop`
    ValueList kept;
    for (auto& item : items) {
      ctx.loop_iteration();
      Context::Scope scope(ctx, parent);
      target.assign(ctx, item);
      if (filter->evaluate(ctx).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) return run_body(otherwise, ctx, out);  // loop controls here belong to an outer loop
  auto loop = std::make_shared<LoopObject>(std::move(items));
  Value loop_value = Value::object(loop);
  for (size_t i = 0; i < loop->items().size(); ++i) {
    ctx.loop_iteration();
    loop->index0 = i;
    Context::Scope scope(ctx, parent);
    ctx.set("loop", loop_value);
    target.assign(ctx, loop->items()[i]);
    if (run_body(body, ctx, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

Flow SetStmt::exec(Context& ctx, std::string&) const {
  target.assign(ctx, value->evaluate(ctx));
  return Flow::Normal;
}

Flow SetBlockStmt::exec(Context& ctx, std::string&) const {
  std::string buf;
  Flow flow = run_body(body, ctx, buf);
  Value v(std::move(buf));
  for (const auto& f : filters) v = f.apply(ctx, v);
  target.assign(ctx, v);
  return flow;
}

Flow MacroStmt::exec(Context& ctx, std::string&) const {
  ctx.set(name, Value::callable(std::make_shared<MacroFunction>(this, ctx.frame)));
  return Flow::Normal;
}

Flow FilterBlockStmt::exec(Context& ctx, std::string& out) const {
  std::string buf;
  Flow flow = run_body(body, ctx, buf);
  Value v(std::move(buf));
  for (const auto& f : filters) v = f.apply(ctx, v);
  std::string s = to_str(v);
  ctx.emit(out, s);
  return flow;
}

Flow WithStmt::exec(Context& ctx, std::string& out) const {
  std::vector<Value> values;  // evaluated in the enclosing scope, then bound
  for (const auto& a : assigns) values.push_back(a.second->evaluate(ctx));
  Context::Scope scope(ctx, ctx.frame);
  for (size_t i = 0; i < assigns.size(); ++i) assigns[i].first.assign(ctx, values[i]);
  return run_body(body, ctx, out);
}

Flow LoopControlStmt::exec(Context&, std::string&) const { return is_break ? Flow::Break : Flow::Continue; }

}  // namespace hearth::jinja
