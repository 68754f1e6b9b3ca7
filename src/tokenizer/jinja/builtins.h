// The interpreter's library: filters (filters.cpp, filters_seq.cpp), tests
// (predicates.cpp), attribute lookup and methods of str/list/dict (methods.cpp), and
// global functions (globals.cpp). Names and argument conventions are jinja2's; where
// jinja2 calls into Python (str.split, json.dumps, ...) the Python behaviour is kept.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

class Context;

bool has_filter(std::string_view name);
Value apply_filter(Context& ctx, const std::string& name, const Value& input, Args& args);

bool has_test(std::string_view name);
bool apply_test(Context& ctx, const std::string& name, const Value& input, Args& args);

// `obj.name` with jinja2's sandboxed getattr: Python attributes first (methods of
// str/list/dict come back as bound callables), then items; missing -> Undefined.
// Attribute access on Undefined raises its hint, as jinja2's default Undefined does.
Value get_attr(Context& ctx, const Value& obj, const std::string& name);
// Methods of str (str_methods.cpp), also used by the filters that wrap them.
bool is_str_method(std::string_view name);
Value call_str_method(Context& ctx, const std::string& self, const std::string& name, Args& args);

// `obj[key]`: items first, then attributes for string keys.
Value get_item(Context& ctx, const Value& obj, const Value& key);
// `obj[start:stop:step]` on str, list and tuple; null parts are given as Undefined.
Value get_slice(Context& ctx, const Value& obj, const Value& start, const Value& stop, const Value& step);

// Python operators (operators.cpp). `~` is str(a) + str(b); the others raise the
// Undefined hint when given an Undefined, and Python's TypeError messages otherwise.
Value binary_op(Context& ctx, BinOp op, const Value& a, const Value& b);
Value unary_op(UnaryOp op, const Value& v);
// Python's `fmt % args` for the conversions templates use (%s %r %d %i %f %x %%, flags,
// width and precision).
std::string percent_format(Context& ctx, const std::string& fmt, const Value& args);

// The global names of a render: range, dict, namespace, cycler, joiner, plus
// transformers' raise_exception and strftime_now.
void add_globals(Context& ctx);

// Items of an iterable in iteration order (list, tuple, str -> characters, dict ->
// keys, Undefined -> empty); anything else is an EvalError "'X' object is not iterable".
ValueList iterate(Context& ctx, const Value& v);

// Argument binding helper for builtins: takes parameters by position or keyword.
class ArgReader {
 public:
  ArgReader(Args& args, std::string fn) : args_(args), fn_(std::move(fn)) {}
  // The next parameter `name` (positional slot i or keyword); Undefined when absent.
  Value get(size_t i, std::string_view name);
  bool has(size_t i, std::string_view name) const;
  // Fails on leftover arguments: "fn() got an unexpected keyword argument 'x'".
  void done(size_t n_params) const;

 private:
  Args& args_;
  std::string fn_;
  std::vector<bool> used_;  // keyword arguments consumed so far
};

}  // namespace hearth::jinja
