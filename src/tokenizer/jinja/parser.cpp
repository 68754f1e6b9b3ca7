// Statement parsing: the template body, block tags and their end tags (see parser.h).
#include "tokenizer/jinja/parser.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/jinja/builtins.h"

namespace hearth::jinja {

Body parse(std::vector<Token> tokens, const SourceMap& map) { return Parser(std::move(tokens), map).parse_template(); }

Parser::Nest::Nest(Parser& parser) : p(parser) {
  if (++p.nesting_ > kMaxNesting) p.fail(p.cur(), "template nested too deeply");
}

void Parser::fail(const Token& at, const std::string& message) const { map_.fail(at.offset, message); }

std::string Parser::describe(const Token& t) const {
  switch (t.type) {
    case Tok::Data: return "text";
    case Tok::VarBegin: return "'{{'";
    case Tok::VarEnd: return "end of print statement";
    case Tok::BlockBegin: return "'{%'";
    case Tok::BlockEnd: return "end of statement block";
    case Tok::Eof: return "end of template";
    case Tok::String: return "string";
    case Tok::Int:
    case Tok::Float: return "number";
    default: return "'" + t.text + "'";
  }
}

void Parser::expect_op(std::string_view op) {
  if (!is_op(op)) fail(cur(), "expected '" + std::string(op) + "', got " + describe(cur()));
  next();
}

std::string Parser::expect_name() {
  if (cur().type != Tok::Name) fail(cur(), "expected a name, got " + describe(cur()));
  return next().text;
}

void Parser::expect_block_end() {
  if (cur().type != Tok::BlockEnd) fail(cur(), "expected end of statement block, got " + describe(cur()));
  next();
}

void Parser::set_depth(Expr& e, std::initializer_list<const Expr*> children) {
  uint32_t d = e.depth - 1;  // callers may have folded in children not listed here
  for (const Expr* c : children)
    if (c) d = std::max(d, c->depth);
  e.depth = d + 1;
  if (e.depth > kMaxExprDepth) map_.fail(e.offset, "expression nested too deeply");
}

Body Parser::parse_template() {
  Body body = parse_body({}, nullptr);
  if (cur().type != Tok::Eof) fail(cur(), "unexpected " + describe(cur()));
  return body;
}

// Parses until a block tag named in end_tags; leaves the position on that tag's name
// and reports it through `found`. With no end tags, parses to the end of the template.
Body Parser::parse_body(std::initializer_list<std::string_view> end_tags, std::string* found) {
  Nest nest(*this);
  Body body;
  while (true) {
    const Token& t = cur();
    if (t.type == Tok::Eof) {
      if (end_tags.size() == 0) return body;
      std::string names;
      for (auto n : end_tags) names += (names.empty() ? "'" : " or '") + std::string(n) + "'";
      fail(t, "unexpected end of template, expected " + names);
    }
    if (t.type == Tok::Data) {
      auto s = node<TextStmt>(t);
      s->text = t.text;
      body.push_back(std::move(s));
      next();
    } else if (t.type == Tok::VarBegin) {
      auto s = node<PrintStmt>(next());
      s->expr = parse_tuple(true);
      if (cur().type != Tok::VarEnd) fail(cur(), "expected end of print statement, got " + describe(cur()));
      next();
      body.push_back(std::move(s));
    } else if (t.type == Tok::BlockBegin) {
      const Token& name = peek();
      if (name.type == Tok::Name &&
          std::find(end_tags.begin(), end_tags.end(), std::string_view(name.text)) != end_tags.end()) {
        next();
        *found = name.text;
        return body;
      }
      next();
      body.push_back(parse_statement());
    } else {
      fail(t, "unexpected " + describe(t));
    }
  }
}

StmtPtr Parser::parse_statement() {
  Nest nest(*this);
  const Token& at = cur();
  if (at.type != Tok::Name) fail(at, "expected a statement name, got " + describe(at));
  const std::string& kw = at.text;
  if (kw == "if") return parse_if(next());
  if (kw == "for") return parse_for(next());
  if (kw == "set") return parse_set(next());
  if (kw == "macro") return parse_macro(next());
  if (kw == "filter") return parse_filter_block(next());
  if (kw == "with") return parse_with(next(), false);
  if (kw == "generation") return parse_with(next(), true);
  if (kw == "break" || kw == "continue") {
    if (loop_depth_ == 0) fail(at, "'" + kw + "' outside of a loop");
    auto s = node<LoopControlStmt>(at);
    s->is_break = kw == "break";
    next();
    expect_block_end();
    return s;
  }
  fail(at, "unknown tag '" + kw + "'");
}

StmtPtr Parser::parse_if(const Token& at) {
  auto s = node<IfStmt>(at);
  while (true) {
    ExprPtr cond = parse_tuple(false);
    expect_block_end();
    std::string tag;
    Body body = parse_body({"elif", "else", "endif"}, &tag);
    s->branches.emplace_back(std::move(cond), std::move(body));
    next();  // the tag name
    if (tag == "elif") continue;
    if (tag == "else") {
      expect_block_end();
      s->otherwise = parse_body({"endif"}, &tag);
      next();
    }
    expect_block_end();
    return s;
  }
}

StmtPtr Parser::parse_for(const Token& at) {
  auto s = node<ForStmt>(at);
  s->target = parse_target(false);
  if (!is_name("in")) fail(cur(), "expected 'in', got " + describe(cur()));
  next();
  s->iter = parse_tuple(false, {"recursive"});
  if (is_name("recursive")) fail(cur(), "recursive loops are not supported");
  if (is_name("if")) {
    next();
    s->filter = parse_expression();
  }
  expect_block_end();
  std::string tag;
  ++loop_depth_;
  s->body = parse_body({"endfor", "else"}, &tag);
  --loop_depth_;
  next();
  if (tag == "else") {
    expect_block_end();
    s->otherwise = parse_body({"endfor"}, &tag);
    next();
  }
  expect_block_end();
  return s;
}

Target Parser::parse_target(bool allow_attribute) {
  Target t;
  bool parens = is_op("(");
  if (parens) next();
  t.names.push_back(expect_name());
  if (allow_attribute && !parens && is_op(".")) {
    next();
    t.attribute = expect_name();
    return t;
  }
  while (is_op(",")) {
    next();
    t.tuple = true;
    if (cur().type != Tok::Name) break;  // trailing comma
    t.names.push_back(expect_name());
  }
  if (parens) {
    expect_op(")");
    t.tuple = t.tuple || t.names.size() > 1;
  }
  for (auto& n : t.names)
    if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
      fail(cur(), "cannot assign to '" + n + "'");
  return t;
}

std::vector<FilterCall> Parser::parse_filter_chain() {
  std::vector<FilterCall> chain;
  do {
    if (is_op("|")) next();
    FilterCall f;
    f.offset = cur().offset;
    f.name = expect_name();
    if (!has_filter(f.name)) map_.fail(f.offset, "no filter named '" + f.name + "'");
    if (is_op("(")) f.args = parse_call_args();
    chain.push_back(std::move(f));
  } while (is_op("|"));
  return chain;
}

StmtPtr Parser::parse_set(const Token& at) {
  Target target = parse_target(true);
  if (is_op("=")) {
    next();
    auto s = node<SetStmt>(at);
    s->target = std::move(target);
    s->value = parse_tuple(true);
    expect_block_end();
    return s;
  }
  auto s = node<SetBlockStmt>(at);
  s->target = std::move(target);
  if (is_op("|")) s->filters = parse_filter_chain();
  expect_block_end();
  std::string tag;
  s->body = parse_body({"endset"}, &tag);
  next();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_macro(const Token& at) {
  auto s = node<MacroStmt>(at);
  s->name = expect_name();
  expect_op("(");
  while (!is_op(")")) {
    if (!s->params.empty()) expect_op(",");
    if (is_op(")")) break;
    std::string param = expect_name();
    ExprPtr def;
    if (is_op("=")) {
      next();
      def = parse_expression();
    }
    s->params.emplace_back(std::move(param), std::move(def));
  }
  next();
  expect_block_end();
  int saved_loops = loop_depth_;
  loop_depth_ = 0;
  macros_.push_back(s.get());
  std::string tag;
  s->body = parse_body({"endmacro"}, &tag);
  macros_.pop_back();
  loop_depth_ = saved_loops;
  next();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_filter_block(const Token& at) {
  auto s = node<FilterBlockStmt>(at);
  s->filters = parse_filter_chain();
  expect_block_end();
  std::string tag;
  s->body = parse_body({"endfilter"}, &tag);
  next();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_with(const Token& at, bool generation) {
  auto s = node<WithStmt>(at);
  while (!generation && cur().type != Tok::BlockEnd) {
    if (!s->assigns.empty()) expect_op(",");
    Target t = parse_target(false);
    expect_op("=");
    s->assigns.emplace_back(std::move(t), parse_expression());
  }
  expect_block_end();
  std::string tag;
  s->body = parse_body({generation ? "endgeneration" : "endwith"}, &tag);
  next();
  expect_block_end();
  return s;
}

}  // namespace hearth::jinja
