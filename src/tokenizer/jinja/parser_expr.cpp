// Expression parsing (see parser.h for the precedence table). Each function mirrors the
// jinja2 parser method of the same name so that odd inputs parse the same way, e.g.
// `-x|abs` filters the negation and `x is divisibleby 3` takes a bare argument.
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/parser.h"

#include <algorithm>

namespace hearth::jinja {

// Height of the deepest argument, so that calls count towards the expression depth cap.
static uint32_t args_depth(const CallArgs& args) {
  uint32_t d = 0;
  for (auto& a : args.positional) d = std::max(d, a->depth);
  for (auto& a : args.keyword) d = std::max(d, a.second->depth);
  return d;
}

ExprPtr Parser::binary(const Token& at, BinOp op, ExprPtr l, ExprPtr r) {
  auto e = node<BinaryExpr>(at);
  e->op = op;
  e->left = std::move(l);
  e->right = std::move(r);
  set_depth(*e, {e->left.get(), e->right.get()});
  return e;
}

ExprPtr Parser::parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> end_names,
                            bool explicit_parens) {
  const Token& at = cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    bool end = cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")");
    for (auto n : end_names) end = end || is_name(n);
    if (end) break;
    items.push_back(parse_expression(with_condexpr));
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) fail(cur(), "expected an expression, got " + describe(cur()));
  }
  auto e = node<ListExpr>(at);
  e->tuple = true;
  e->items = std::move(items);
  for (auto& i : e->items) e->depth = std::max(e->depth, i->depth + 1);
  set_depth(*e, {});
  return e;
}

ExprPtr Parser::parse_expression(bool with_condexpr) {
  Nest nest(*this);
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr Parser::parse_condexpr() {
  ExprPtr expr = parse_or();
  while (is_name("if")) {
    auto e = node<CondExpr>(next());
    e->cond = parse_or();
    if (is_name("else")) {
      next();
      e->otherwise = parse_condexpr();
    }
    e->then = std::move(expr);
    set_depth(*e, {e->cond.get(), e->then.get(), e->otherwise.get()});
    expr = std::move(e);
  }
  return expr;
}

ExprPtr Parser::parse_or() {
  ExprPtr left = parse_and();
  while (is_name("or")) {
    auto e = node<LogicExpr>(next());
    e->is_and = false;
    e->left = std::move(left);
    e->right = parse_and();
    set_depth(*e, {e->left.get(), e->right.get()});
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::parse_and() {
  ExprPtr left = parse_not();
  while (is_name("and")) {
    auto e = node<LogicExpr>(next());
    e->left = std::move(left);
    e->right = parse_not();
    set_depth(*e, {e->left.get(), e->right.get()});
    left = std::move(e);
  }
  return left;
}

ExprPtr Parser::parse_not() {
  if (!is_name("not")) return parse_compare();
  Nest nest(*this);
  auto e = node<UnaryExpr>(next());
  e->op = UnaryOp::Not;
  e->operand = parse_not();
  set_depth(*e, {e->operand.get()});
  return e;
}

ExprPtr Parser::parse_compare() {
  const Token& at = cur();
  ExprPtr first = parse_math1();
  std::vector<std::pair<CmpOp, ExprPtr>> rest;
  while (true) {
    CmpOp op;
    if (is_op("==")) op = CmpOp::Eq;
    else if (is_op("!=")) op = CmpOp::Ne;
    else if (is_op("<")) op = CmpOp::Lt;
    else if (is_op("<=")) op = CmpOp::Le;
    else if (is_op(">")) op = CmpOp::Gt;
    else if (is_op(">=")) op = CmpOp::Ge;
    else if (is_name("in")) op = CmpOp::In;
    else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
      next();
      op = CmpOp::NotIn;
    } else {
      break;
    }
    next();
    rest.emplace_back(op, parse_math1());
  }
  if (rest.empty()) return first;
  auto e = node<CompareExpr>(at);
  e->first = std::move(first);
  e->rest = std::move(rest);
  e->depth = e->first->depth + 1;
  for (auto& r : e->rest) e->depth = std::max(e->depth, r.second->depth + 1);
  set_depth(*e, {});
  return e;
}

ExprPtr Parser::parse_math1() {
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    const Token& at = next();
    left = binary(at, at.text == "+" ? BinOp::Add : BinOp::Sub, std::move(left), parse_concat());
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  ExprPtr left = parse_math2();
  while (is_op("~")) {
    const Token& at = next();
    left = binary(at, BinOp::Concat, std::move(left), parse_math2());
  }
  return left;
}

ExprPtr Parser::parse_math2() {
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token& at = next();
    BinOp op = at.text == "*" ? BinOp::Mul : at.text == "/" ? BinOp::Div : at.text == "//" ? BinOp::FloorDiv : BinOp::Mod;
    left = binary(at, op, std::move(left), parse_pow());
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  ExprPtr left = parse_unary(true);
  while (is_op("**")) {
    const Token& at = next();
    left = binary(at, BinOp::Pow, std::move(left), parse_unary(true));
  }
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  Nest nest(*this);
  ExprPtr expr;
  if (is_op("-") || is_op("+")) {
    auto e = node<UnaryExpr>(cur());
    e->op = next().text == "-" ? UnaryOp::Neg : UnaryOp::Pos;
    e->operand = parse_unary(false);
    set_depth(*e, {e->operand.get()});
    expr = std::move(e);
  } else {
    expr = parse_primary();
  }
  expr = parse_postfix(std::move(expr));
  if (with_filter) expr = parse_filter_expr(std::move(expr));
  return expr;
}

ExprPtr Parser::parse_primary() {
  const Token& t = cur();
  if (t.type == Tok::Name) {
    next();
    auto lit = [&](Value v) {
      auto e = node<Literal>(t);
      e->value = std::move(v);
      return e;
    };
    if (t.text == "true" || t.text == "True") return lit(Value(true));
    if (t.text == "false" || t.text == "False") return lit(Value(false));
    if (t.text == "none" || t.text == "None") return lit(Value(nullptr));
    auto e = node<NameExpr>(t);
    e->name = t.text;
    if (!macros_.empty() && t.text == "varargs") macros_.back()->uses_varargs = true;
    if (!macros_.empty() && t.text == "kwargs") macros_.back()->uses_kwargs = true;
    return e;
  }
  if (t.type == Tok::String) {  // adjacent literals concatenate: 'a' 'b'
    std::string s;
    while (cur().type == Tok::String) s += next().text;
    auto e = node<Literal>(t);
    e->value = Value(std::move(s));
    return e;
  }
  if (t.type == Tok::Int || t.type == Tok::Float) {
    next();
    auto e = node<Literal>(t);
    e->value = t.type == Tok::Int ? Value(t.int_value) : Value(t.float_value);
    return e;
  }
  if (is_op("(")) {
    next();
    ExprPtr e = parse_tuple(true, {}, true);
    expect_op(")");
    return e;
  }
  if (is_op("[")) {
    auto e = node<ListExpr>(next());
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression());
      e->depth = std::max(e->depth, e->items.back()->depth + 1);
    }
    next();
    set_depth(*e, {});
    return e;
  }
  if (is_op("{")) {
    auto e = node<DictExpr>(next());
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression();
      expect_op(":");
      ExprPtr value = parse_expression();
      e->depth = std::max({e->depth, key->depth + 1, value->depth + 1});
      e->items.emplace_back(std::move(key), std::move(value));
    }
    next();
    set_depth(*e, {});
    return e;
  }
  fail(t, "unexpected " + describe(t));
}

ExprPtr Parser::parse_postfix(ExprPtr expr) {
  while (true) {
    if (is_op(".") || is_op("[")) {
      expr = parse_subscript(std::move(expr));
    } else if (is_op("(")) {
      auto e = node<CallExpr>(cur());
      e->offset = expr->offset;  // errors point at the start of the called expression
      e->args = parse_call_args();
      e->callee = std::move(expr);
      e->depth = args_depth(e->args) + 1;
      set_depth(*e, {e->callee.get()});
      expr = std::move(e);
    } else {
      return expr;
    }
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr expr) {
  while (true) {
    if (is_op("|")) {
      next();
      auto e = node<FilterExpr>(cur());
      e->filter.offset = cur().offset;
      e->filter.name = expect_name();
      if (!has_filter(e->filter.name)) map_.fail(e->offset, "no filter named '" + e->filter.name + "'");
      if (is_op("(")) e->filter.args = parse_call_args();
      e->obj = std::move(expr);
      e->depth = args_depth(e->filter.args) + 1;
      set_depth(*e, {e->obj.get()});
      expr = std::move(e);
    } else if (is_name("is")) {
      expr = parse_test(std::move(expr));
    } else if (is_op("(")) {
      auto e = node<CallExpr>(cur());
      e->offset = expr->offset;  // errors point at the start of the called expression
      e->args = parse_call_args();
      e->callee = std::move(expr);
      e->depth = args_depth(e->args) + 1;
      set_depth(*e, {e->callee.get()});
      expr = std::move(e);
    } else {
      return expr;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr obj) {
  const Token& at = next();
  if (at.text == ".") {
    if (cur().type == Tok::Name) {
      auto e = node<GetAttr>(at);
      e->offset = obj->offset;
      e->name = next().text;
      e->obj = std::move(obj);
      set_depth(*e, {e->obj.get()});
      return e;
    }
    if (cur().type != Tok::Int) fail(cur(), "expected a name or number after '.', got " + describe(cur()));
    auto e = node<GetItem>(at);
    e->offset = obj->offset;
    auto index = node<Literal>(cur());
    index->value = Value(next().int_value);
    e->index = std::move(index);
    e->obj = std::move(obj);
    set_depth(*e, {e->obj.get()});
    return e;
  }
  // '[' expression ']' or a slice with up to three parts.
  ExprPtr parts[3];
  int n_colons = 0;
  while (!is_op("]")) {
    if (is_op(":")) {
      if (++n_colons > 2) fail(cur(), "too many ':' in slice");
      next();
    } else if (is_op(",")) {
      fail(cur(), "tuple subscripts are not supported");
    } else {
      if (parts[n_colons]) fail(cur(), "expected ':' or ']', got " + describe(cur()));
      parts[n_colons] = parse_expression();
    }
  }
  next();
  if (n_colons == 0) {
    if (!parts[0]) fail(at, "empty subscript");
    auto e = node<GetItem>(at);
    e->offset = obj->offset;
    e->obj = std::move(obj);
    e->index = std::move(parts[0]);
    set_depth(*e, {e->obj.get(), e->index.get()});
    return e;
  }
  auto e = node<SliceExpr>(at);
  e->offset = obj->offset;
  e->obj = std::move(obj);
  e->start = std::move(parts[0]);
  e->stop = std::move(parts[1]);
  e->step = std::move(parts[2]);
  set_depth(*e, {e->obj.get(), e->start.get(), e->stop.get(), e->step.get()});
  return e;
}

ExprPtr Parser::parse_test(ExprPtr obj) {
  auto e = node<TestExpr>(next());  // 'is'
  if (is_name("not")) {
    next();
    e->negated = true;
  }
  const Token& name_tok = cur();
  e->name = expect_name();
  if (!has_test(e->name)) fail(name_tok, "no test named '" + e->name + "'");
  if (is_op("(")) {
    e->args = parse_call_args();
  } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
              cur().type == Tok::Float || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) fail(cur(), "cannot chain multiple tests with 'is'");
    e->args.positional.push_back(parse_postfix(parse_primary()));
  }
  e->obj = std::move(obj);
  e->depth = args_depth(e->args) + 1;
  set_depth(*e, {e->obj.get()});
  return e;
}

CallArgs Parser::parse_call_args() {
  Nest nest(*this);
  expect_op("(");
  CallArgs args;
  while (!is_op(")")) {
    if (!args.positional.empty() || !args.keyword.empty()) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*") || is_op("**")) fail(cur(), "*args and **kwargs in calls are not supported");
    if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
      std::string key = next().text;
      next();
      args.keyword.emplace_back(std::move(key), parse_expression());
    } else {
      if (!args.keyword.empty()) fail(cur(), "positional argument after keyword argument");
      args.positional.push_back(parse_expression());
    }
  }
  next();
  return args;
}

}  // namespace hearth::jinja
