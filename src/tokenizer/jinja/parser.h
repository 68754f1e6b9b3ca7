// Recursive-descent parser for the Jinja subset, following jinja2's grammar and
// operator precedence (lowest first): `x if c else y`, or, and, not, comparisons and
// `in` (chained), + -, ~, * / // %, ** (left-associative as in jinja2), unary - +,
// then postfix `.attr`, `[i]`, `[a:b:c]`, calls, and `|filter` / `is test`.
// Statements: if/elif/else, for (with `if` filter and else), set (also namespace
// attributes, tuples and block form), macro, filter blocks, with, break/continue and
// transformers' {% generation %}. Unknown tags, filters and tests are syntax errors,
// reported "NAME:LINE:COL: message". Nesting is capped so that neither the parser nor
// the evaluator can overflow the stack on hostile input.
#pragma once

#include <initializer_list>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace hearth::jinja {

// Parses a whole template.
Body parse(std::vector<Token> tokens, const SourceMap& map);

class Parser {
 public:
  Parser(std::vector<Token> tokens, const SourceMap& map) : toks_(std::move(tokens)), map_(map) {}
  Body parse_template();

 private:
  static constexpr int kMaxNesting = 200;        // recursive parse calls in flight
  static constexpr uint32_t kMaxExprDepth = 400;  // height of an expression tree

  // ---- tokens ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().type == Tok::Name && cur().text == name; }
  void expect_op(std::string_view op);
  std::string expect_name();
  void expect_block_end();
  [[noreturn]] void fail(const Token& at, const std::string& message) const;
  std::string describe(const Token& t) const;

  // RAII nesting counter for recursive descent.
  struct Nest {
    Nest(Parser& p);
    ~Nest() { --p.nesting_; }
    Parser& p;
  };
  template <typename T>
  std::unique_ptr<T> node(const Token& at) {
    auto n = std::make_unique<T>();
    n->offset = at.offset;
    return n;
  }
  void set_depth(Expr& e, std::initializer_list<const Expr*> children);

  // ---- statements (parser.cpp) ----
  Body parse_body(std::initializer_list<std::string_view> end_tags, std::string* found);
  StmtPtr parse_statement();
  StmtPtr parse_if(const Token& at);
  StmtPtr parse_for(const Token& at);
  StmtPtr parse_set(const Token& at);
  StmtPtr parse_macro(const Token& at);
  StmtPtr parse_filter_block(const Token& at);
  StmtPtr parse_with(const Token& at, bool generation);
  Target parse_target(bool allow_attribute);
  std::vector<FilterCall> parse_filter_chain();

  // ---- expressions (parser_expr.cpp) ----
  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> end_names = {},
                      bool explicit_parens = false);
  ExprPtr parse_expression(bool with_condexpr = true);
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_test(ExprPtr node);
  CallArgs parse_call_args();
  ExprPtr binary(const Token& at, BinOp op, ExprPtr l, ExprPtr r);

  std::vector<Token> toks_;
  const SourceMap& map_;
  size_t pos_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;                 // enclosing for-loops in the current macro
  std::vector<MacroStmt*> macros_;     // macros being parsed, innermost last
};

}  // namespace hearth::jinja
