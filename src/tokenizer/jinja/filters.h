// Internal: the filter tables of filters.cpp (strings and scalars) and filters_seq.cpp
// (sequences), and helpers both use. A filter gets the piped value and the call's
// arguments, which it binds with ArgReader using jinja2's parameter names.
#pragma once

#include <string_view>
#include <unordered_map>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/context.h"

namespace hearth::jinja {

using FilterFn = Value (*)(Context& ctx, const Value& input, Args& args);
using FilterTable = std::unordered_map<std::string_view, FilterFn>;

const FilterTable& scalar_filters();
const FilterTable& sequence_filters();

// jinja2's make_attrgetter: "a.b.0" looks up each part with get_item (numeric parts
// as integers).
Value attribute_path(Context& ctx, const Value& item, const std::string& path);
// Sort/compare key for case-insensitive filters: lower-cased strings, other values as is.
Value ignore_case(const Value& v);

}  // namespace hearth::jinja
