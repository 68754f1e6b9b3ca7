// A compiled Jinja template: the public face of the interpreter in this folder.
//
// The dialect is jinja2's as Hugging Face transformers configures it for chat templates:
// trim_blocks and lstrip_blocks on, keep_trailing_newline off, the loopcontrols
// extension (break/continue), an immutable sandbox (lists and dicts cannot be
// mutated), default Undefined semantics (prints empty, is falsy, fails when its
// attributes are read or it is used in arithmetic), and the globals transformers adds:
// raise_exception(msg) and strftime_now(fmt); `tojson` is json.dumps(ensure_ascii=False).
//
// Templates are untrusted input. The interpreter touches no files, network or
// environment, and a render is bounded in steps, loop iterations, nesting, output and
// memory (see Limits in context.h). Every failure is a hearth::Error: a syntax error
// reads "NAME:LINE:COL: message", a runtime error names the line and column of the
// expression that raised it, raise_exception's message included.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/context.h"
#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

class Template {
 public:
  // Parses `source`. `name` prefixes error messages ("template:3:14: ...").
  explicit Template(std::string source, std::string name = "template");

  // Renders with `vars` (a JSON object: each key becomes a variable).
  std::string render(const nlohmann::ordered_json& vars, const RenderOptions& options = {}) const;
  // Renders with variables given as Values (for values JSON cannot express, such as
  // an explicit Undefined or callables).
  std::string render(const std::vector<std::pair<std::string, Value>>& vars,
                     const RenderOptions& options = {}) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;  // immutable after parsing; shared by copies
};

}  // namespace hearth::jinja
