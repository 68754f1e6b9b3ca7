// Python's text forms of values, byte for byte: float repr (shortest round-trip,
// '1.0', '1e-05', '1e+16', 'inf'), str repr with its quote choice and escapes, and
// json.dumps as transformers' `tojson` filter calls it (ensure_ascii=False, optional
// indent, separators ', ' / ': ' by default and ',' / ': ' once indent is given,
// sort_keys), including Python's handling of non-string dict keys and of inf/nan.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

std::string float_repr(double d);
std::string str_repr(std::string_view s);  // repr() of a str, with quotes

struct DumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line; "" (indent=0): newlines only
  std::optional<std::string> item_separator;
  std::optional<std::string> key_separator;
  bool sort_keys = false;
};

// json.dumps(v, ...). Values JSON cannot hold (undefined, namespaces, callables) raise
// EvalError "Object of type X is not JSON serializable" as Python does. `max_bytes`
// bounds the output, which indent can inflate.
std::string json_dumps(const Value& v, const DumpOptions& options, size_t max_bytes);

}  // namespace hearth::jinja
