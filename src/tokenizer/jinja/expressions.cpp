// Expression evaluation (see ast.h). Operators, lookups and the filter/test library
// live in operators.cpp, methods.cpp and the filter files; this file wires nodes to
// them and adds each node's location to errors raised beneath it.
#include <cmath>
#include <variant>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/objects.h"

namespace hearth::jinja {

Value Expr::evaluate(Context& ctx) const {
  try {
    ctx.enter_eval();
    struct Leave {
      Context& c;
      ~Leave() { c.leave_eval(); }
    } leave{ctx};
    ctx.step();
    return eval(ctx);
  } catch (const EvalError& e) {
    ctx.map.fail(offset, e.what());
  } catch (const std::bad_variant_access&) {  // a builtin read an argument of the wrong type
    ctx.map.fail(offset, "argument of the wrong type");
  }
}

Args CallArgs::evaluate(Context& ctx) const {
  Args a;
  a.positional.reserve(positional.size());
  for (const auto& p : positional) a.positional.push_back(p->evaluate(ctx));
  for (const auto& [k, v] : keyword) a.keyword.emplace_back(k, v->evaluate(ctx));
  return a;
}

Value FilterCall::apply(Context& ctx, Value input) const {
  Args a = args.evaluate(ctx);
  try {
    return apply_filter(ctx, name, input, a);
  } catch (const EvalError& e) {
    ctx.map.fail(offset, e.what());
  }
}

Value Literal::eval(Context&) const { return value; }

Value NameExpr::eval(Context& ctx) const { return ctx.lookup(name); }

Value ListExpr::eval(Context& ctx) const {
  ValueList values;
  values.reserve(items.size());
  for (const auto& i : items) values.push_back(i->evaluate(ctx));
  ctx.charge(values.size() * sizeof(Value));
  return Value::list(std::move(values), tuple);
}

Value DictExpr::eval(Context& ctx) const {
  Dict d;
  for (const auto& [k, v] : items) {
    Value key = k->evaluate(ctx);
    if (key.is_list() && !key.is_tuple()) throw EvalError("unhashable type: 'list'");
    if (key.is_dict()) throw EvalError("unhashable type: 'dict'");
    d.set(std::move(key), v->evaluate(ctx));
  }
  ctx.charge(d.size() * 2 * sizeof(Value));
  return Value::dict(std::move(d));
}

Value GetAttr::eval(Context& ctx) const { return get_attr(ctx, obj->evaluate(ctx), name); }

Value GetItem::eval(Context& ctx) const {
  Value o = obj->evaluate(ctx);
  return get_item(ctx, o, index->evaluate(ctx));
}

Value SliceExpr::eval(Context& ctx) const {
  Value o = obj->evaluate(ctx);
  Value a = start ? start->evaluate(ctx) : Value(nullptr);
  Value b = stop ? stop->evaluate(ctx) : Value(nullptr);
  Value c = step ? step->evaluate(ctx) : Value(nullptr);
  return get_slice(ctx, o, a, b, c);
}

Value CallExpr::eval(Context& ctx) const {
  Value f = callee->evaluate(ctx);
  Args a = args.evaluate(ctx);
  return call_value(ctx, f, a);
}

Value FilterExpr::eval(Context& ctx) const { return filter.apply(ctx, obj->evaluate(ctx)); }

Value TestExpr::eval(Context& ctx) const {
  Value v = obj->evaluate(ctx);
  Args a = args.evaluate(ctx);
  bool r = apply_test(ctx, name, v, a);
  return Value(negated ? !r : r);
}

Value UnaryExpr::eval(Context& ctx) const { return unary_op(op, operand->evaluate(ctx)); }

Value BinaryExpr::eval(Context& ctx) const {
  Value a = left->evaluate(ctx);
  Value b = right->evaluate(ctx);
  return binary_op(ctx, op, a, b);
}

Value LogicExpr::eval(Context& ctx) const {
  Value l = left->evaluate(ctx);
  if (is_and ? !l.truthy() : l.truthy()) return l;
  return right->evaluate(ctx);
}

// Any ordering involving a float NaN is false in Python.
static bool nan(const Value& a, const Value& b) {
  return (a.is_float() && std::isnan(a.as_float())) || (b.is_float() && std::isnan(b.as_float()));
}

Value CompareExpr::eval(Context& ctx) const {
  Value a = first->evaluate(ctx);
  for (const auto& [op, expr] : rest) {
    Value b = expr->evaluate(ctx);
    bool ok;
    switch (op) {
      case CmpOp::Eq: ok = equals(a, b); break;
      case CmpOp::Ne: ok = !equals(a, b); break;
      case CmpOp::Lt: ok = compare(a, b, "<") < 0 && !nan(a, b); break;
      case CmpOp::Le: ok = compare(a, b, "<=") <= 0 && !nan(a, b); break;
      case CmpOp::Gt: ok = compare(a, b, ">") > 0 && !nan(a, b); break;
      case CmpOp::Ge: ok = compare(a, b, ">=") >= 0 && !nan(a, b); break;
      case CmpOp::In: ok = contains(b, a); break;
      default: ok = !contains(b, a); break;
    }
    if (!ok) return Value(false);
    a = std::move(b);
  }
  return Value(true);
}

Value CondExpr::eval(Context& ctx) const {
  if (cond->evaluate(ctx).truthy()) return then->evaluate(ctx);
  if (otherwise) return otherwise->evaluate(ctx);
  return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
}

}  // namespace hearth::jinja
