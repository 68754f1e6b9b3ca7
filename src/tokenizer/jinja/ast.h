// Syntax tree of a parsed template. Expressions evaluate to Values, statements append to
// an output string. Every node keeps the byte offset of its token so runtime errors can
// name line and column. evaluate()/run() are the entry points: they count a step
// against the render limits, guard the recursion depth and turn an EvalError raised
// inside the node into hearth::Error "NAME:LINE:COL: message". The eval/exec bodies
// live in expressions.cpp and statements.cpp.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

class Context;

struct Expr {
  virtual ~Expr() = default;
  Value evaluate(Context& ctx) const;
  virtual Value eval(Context& ctx) const = 0;
  size_t offset = 0;
  uint32_t depth = 1;  // height of the subtree; the parser caps it
};
using ExprPtr = std::unique_ptr<Expr>;

struct CallArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  Args evaluate(Context& ctx) const;
};

struct Literal : Expr {
  Value value;
  Value eval(Context& ctx) const override;
};

struct NameExpr : Expr {
  std::string name;
  Value eval(Context& ctx) const override;
};

struct ListExpr : Expr {  // [a, b] or (a, b)
  std::vector<ExprPtr> items;
  bool tuple = false;
  Value eval(Context& ctx) const override;
};

struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Context& ctx) const override;
};

struct GetAttr : Expr {  // obj.name
  ExprPtr obj;
  std::string name;
  Value eval(Context& ctx) const override;
};

struct GetItem : Expr {  // obj[index]
  ExprPtr obj, index;
  Value eval(Context& ctx) const override;
};

struct SliceExpr : Expr {  // obj[start:stop:step]; absent parts are null
  ExprPtr obj, start, stop, step;
  Value eval(Context& ctx) const override;
};

struct CallExpr : Expr {
  ExprPtr callee;
  CallArgs args;
  Value eval(Context& ctx) const override;
};

struct FilterCall {  // `| name(args)`
  std::string name;
  CallArgs args;
  size_t offset = 0;
  Value apply(Context& ctx, Value input) const;
};

struct FilterExpr : Expr {
  ExprPtr obj;
  FilterCall filter;
  Value eval(Context& ctx) const override;
};

struct TestExpr : Expr {  // obj is [not] name(args)
  ExprPtr obj;
  std::string name;
  CallArgs args;
  bool negated = false;
  Value eval(Context& ctx) const override;
};

enum class UnaryOp { Neg, Pos, Not };
struct UnaryExpr : Expr {
  UnaryOp op = UnaryOp::Not;
  ExprPtr operand;
  Value eval(Context& ctx) const override;
};

enum class BinOp { Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Concat };
struct BinaryExpr : Expr {
  BinOp op = BinOp::Add;
  ExprPtr left, right;
  Value eval(Context& ctx) const override;
};

struct LogicExpr : Expr {  // `and` / `or`, returning an operand as Python does
  bool is_and = true;
  ExprPtr left, right;
  Value eval(Context& ctx) const override;
};

enum class CmpOp { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };
struct CompareExpr : Expr {  // a < b <= c chains like Python
  ExprPtr first;
  std::vector<std::pair<CmpOp, ExprPtr>> rest;
  Value eval(Context& ctx) const override;
};

struct CondExpr : Expr {  // then if cond else otherwise
  ExprPtr cond, then, otherwise;  // otherwise may be null: undefined
  Value eval(Context& ctx) const override;
};

// ---- statements ----

enum class Flow { Normal, Break, Continue };

struct Stmt {
  virtual ~Stmt() = default;
  Flow run(Context& ctx, std::string& out) const;
  virtual Flow exec(Context& ctx, std::string& out) const = 0;
  size_t offset = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Runs statements in order until one breaks or continues a loop.
Flow run_body(const Body& body, Context& ctx, std::string& out);

// Left side of set/for/with: a name, a tuple of names, or namespace.attribute.
struct Target {
  std::vector<std::string> names;
  bool tuple = false;
  std::string attribute;  // non-empty: names[0] is a namespace and this its attribute
  void assign(Context& ctx, const Value& v) const;
};

struct TextStmt : Stmt {
  std::string text;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct PrintStmt : Stmt {
  ExprPtr expr;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body otherwise;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct ForStmt : Stmt {
  Target target;
  ExprPtr iter, filter;  // filter may be null
  Body body, otherwise;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct SetStmt : Stmt {
  Target target;
  ExprPtr value;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct SetBlockStmt : Stmt {  // {% set x | filters %}body{% endset %}
  Target target;
  std::vector<FilterCall> filters;
  Body body;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct MacroStmt : Stmt {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  bool uses_varargs = false, uses_kwargs = false;  // whether the body names them
  Flow exec(Context& ctx, std::string& out) const override;
};

struct FilterBlockStmt : Stmt {  // {% filter a|b %}body{% endfilter %}
  std::vector<FilterCall> filters;
  Body body;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct WithStmt : Stmt {  // {% with a = 1 %}, also {% generation %}: a scope of its own
  std::vector<std::pair<Target, ExprPtr>> assigns;
  Body body;
  Flow exec(Context& ctx, std::string& out) const override;
};

struct LoopControlStmt : Stmt {  // {% break %} / {% continue %}
  bool is_break = true;
  Flow exec(Context& ctx, std::string& out) const override;
};

}  // namespace hearth::jinja
