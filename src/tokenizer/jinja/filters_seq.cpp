// Filters on sequences and mappings: length, list, items, first/last, join, sort,
// dictsort, unique, min/max, sum, reverse, map, select/reject, selectattr/rejectattr.
// Case-insensitive by default where jinja2 is (sort, unique, min, max, dictsort).
// map, select, reject, selectattr, rejectattr, items and unique return generators as in
// jinja2 (always truthy, no length); they are computed eagerly, so an error jinja2 would
// raise only when the generator is consumed is raised at once.
#include <algorithm>

#include "tokenizer/jinja/filters.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

Value attribute_path(Context& ctx, const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 18;
    v = get_item(ctx, v, numeric ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(utf8::lower(v.as_string())) : v; }

namespace {

std::string attr_name(const Value& v) {
  if (!v.is_string()) throw EvalError("attribute must be a string");
  return v.as_string();
}

Value f_length(Context&, const Value& v, Args& args) {
  ArgReader(args, "length").done(0);
  switch (v.kind()) {
    case Kind::String: return Value(static_cast<int64_t>(utf8::length(v.as_string())));
    case Kind::List:
      if (v.is_lazy()) throw EvalError("object of type '" + v.type_name() + "' has no len()");
      return Value(static_cast<int64_t>(v.as_list().size()));
    case Kind::Dict: return Value(static_cast<int64_t>(v.as_dict().size()));
    case Kind::Undefined: return Value(0);
    default: throw EvalError("object of type '" + v.type_name() + "' has no len()");
  }
}

Value f_list(Context& ctx, const Value& v, Args& args) {
  ArgReader(args, "list").done(0);
  return Value::list(iterate(ctx, v));
}

Value f_items(Context& ctx, const Value& v, Args& args) {
  ArgReader(args, "items").done(0);
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw EvalError("Can only get item pairs from a mapping.");
  ValueList out;
  for (auto& [k, x] : v.as_dict().items()) out.push_back(Value::list({k, x}, true));
  ctx.step(out.size());
  return Value::generator(std::move(out), "generator");
}

Value f_first(Context& ctx, const Value& v, Args& args) {
  ArgReader(args, "first").done(0);
  ValueList items = iterate(ctx, v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Context& ctx, const Value& v, Args& args) {
  ArgReader(args, "last").done(0);
  if (v.is_lazy()) throw EvalError("'" + v.type_name() + "' object is not reversible");
  ValueList items = iterate(ctx, v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_reverse(Context& ctx, const Value& v, Args& args) {
  ArgReader(args, "reverse").done(0);
  if (v.is_string()) {
    std::u32string cs = utf8::decode(v.as_string());
    std::reverse(cs.begin(), cs.end());
    return Value(utf8::encode(cs));
  }
  ValueList items = iterate(ctx, v);
  std::reverse(items.begin(), items.end());
  if (v.is_list() && !v.is_lazy()) return Value::generator(std::move(items), "list_reverseiterator");
  return Value::list(std::move(items));
}

Value f_join(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "join");
  Value sep = r.has(0, "d") ? r.get(0, "d") : Value("");
  Value attribute = r.get(1, "attribute");
  r.done(2);
  std::string d = to_str(sep), out;
  ValueList items = iterate(ctx, v);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += d;
    out += to_str(attribute.is_undefined() || attribute.is_none() ? items[i]
                                                                  : attribute_path(ctx, items[i], attr_name(attribute)));
    if (out.size() > ctx.options.limits.max_value_bytes) ctx.charge(out.size());
  }
  ctx.charge(out.size());
  return Value(std::move(out));
}

// Sort keys for sort/unique/min/max: the attribute path(s), lower-cased unless asked.
Value sort_key(Context& ctx, const Value& item, const Value& attribute, bool case_sensitive) {
  auto one = [&](const Value& x) { return case_sensitive ? x : ignore_case(x); };
  if (attribute.is_undefined() || attribute.is_none()) return one(item);
  if (attribute.is_integral()) return one(get_item(ctx, item, attribute));
  std::string names = attr_name(attribute);
  if (names.find(',') == std::string::npos) return one(attribute_path(ctx, item, names));
  ValueList keys;
  size_t start = 0;
  while (true) {
    size_t comma = names.find(',', start);
    keys.push_back(one(attribute_path(ctx, item, names.substr(start, comma - start))));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return Value::list(std::move(keys));
}

ValueList sorted(Context& ctx, ValueList items, const Value& attribute, bool case_sensitive, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) keyed.emplace_back(sort_key(ctx, x, attribute, case_sensitive), x);
  ctx.step(keyed.size() * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [&](auto& a, auto& b) {
    return reverse ? compare(b.first, a.first, "<") < 0 : compare(a.first, b.first, "<") < 0;
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

Value f_sort(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "sort");
  Value reverse = r.get(0, "reverse"), cs = r.get(1, "case_sensitive"), attribute = r.get(2, "attribute");
  r.done(3);
  return Value::list(sorted(ctx, iterate(ctx, v), attribute, cs.truthy(), reverse.truthy()));
}

Value f_dictsort(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "dictsort");
  Value cs = r.get(0, "case_sensitive"), by = r.has(1, "by") ? r.get(1, "by") : Value("key");
  Value reverse = r.get(2, "reverse");
  r.done(3);
  if (!v.is_dict()) throw EvalError("dictsort: value is not a mapping");
  if (!by.is_string() || (by.as_string() != "key" && by.as_string() != "value"))
    throw EvalError("You can only sort by either 'key' or 'value'");
  ValueList pairs;
  for (auto& [k, x] : v.as_dict().items()) pairs.push_back(Value::list({k, x}, true));
  return Value::list(sorted(ctx, std::move(pairs), Value(by.as_string() == "key" ? 0 : 1), cs.truthy(),
                            reverse.truthy()));
}

Value f_unique(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "unique");
  Value cs = r.get(0, "case_sensitive"), attribute = r.get(1, "attribute");
  r.done(2);
  ValueList out, seen;
  for (auto& x : iterate(ctx, v)) {
    Value key = sort_key(ctx, x, attribute, cs.truthy());
    ctx.step(seen.size());
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(key);
    out.push_back(x);
  }
  return Value::generator(std::move(out), "generator");
}

Value min_max(Context& ctx, const Value& v, Args& args, bool is_max) {
  ArgReader r(args, is_max ? "max" : "min");
  Value cs = r.get(0, "case_sensitive"), attribute = r.get(1, "attribute");
  r.done(2);
  ValueList items = iterate(ctx, v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = sort_key(ctx, items[0], attribute, cs.truthy());
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(ctx, items[i], attribute, cs.truthy());
    int c = compare(key, best_key, is_max ? ">" : "<");
    if (is_max ? c > 0 : c < 0) best = i, best_key = key;
  }
  return items[best];
}

Value f_max(Context& ctx, const Value& v, Args& args) { return min_max(ctx, v, args, true); }
Value f_min(Context& ctx, const Value& v, Args& args) { return min_max(ctx, v, args, false); }

Value f_sum(Context& ctx, const Value& v, Args& args) {
  ArgReader r(args, "sum");
  Value attribute = r.get(0, "attribute"), total = r.has(1, "start") ? r.get(1, "start") : Value(0);
  r.done(2);
  if (total.is_string()) throw EvalError("sum() can't sum strings [use ''.join(seq) instead]");
  for (auto& x : iterate(ctx, v))
    total = binary_op(ctx, BinOp::Add, total,
                      attribute.is_undefined() || attribute.is_none() ? x : attribute_path(ctx, x, attr_name(attribute)));
  return total;
}

Value f_map(Context& ctx, const Value& v, Args& args) {
  ValueList items = iterate(ctx, v), out;
  if (args.positional.empty()) {  // map(attribute='x', default=...)
    ArgReader r(args, "map");
    Value attribute = r.get(0, "attribute"), fallback = r.get(1, "default");
    r.done(0);
    if (attribute.is_undefined()) throw EvalError("map requires a filter name or attribute=");
    for (auto& x : items) {
      Value a = attribute_path(ctx, x, attr_name(attribute));
      out.push_back(a.is_undefined() && !fallback.is_undefined() ? fallback : a);
    }
    return Value::generator(std::move(out), "generator");
  }
  Value name = args.positional.front();
  if (!name.is_string()) throw EvalError("map: filter name must be a string");
  for (auto& x : items) {
    Args rest{ValueList(args.positional.begin() + 1, args.positional.end()), args.keyword};
    out.push_back(apply_filter(ctx, name.as_string(), x, rest));
  }
  return Value::generator(std::move(out), "generator");
}

// select/reject/selectattr/rejectattr: keep items whose (attribute's) test passes.
Value select_items(Context& ctx, const Value& v, Args& args, bool by_attr, bool keep) {
  size_t off = by_attr ? 1 : 0;
  if (by_attr && args.positional.empty()) throw EvalError("selectattr/rejectattr need an attribute name");
  std::string attr = by_attr ? attr_name(args.positional[0]) : "";
  std::string test = args.positional.size() > off ? attr_name(args.positional[off]) : "";
  if (!test.empty() && !has_test(test)) throw EvalError("no test named '" + test + "'");
  ValueList out;
  for (auto& x : iterate(ctx, v)) {
    Value subject = by_attr ? attribute_path(ctx, x, attr) : x;
    bool pass;
    if (test.empty()) {
      pass = subject.truthy();
    } else {
      Args rest{ValueList(args.positional.begin() + static_cast<long>(off) + 1, args.positional.end()), args.keyword};
      pass = apply_test(ctx, test, subject, rest);
    }
    if (pass == keep) out.push_back(x);
  }
  return Value::generator(std::move(out), "generator");
}

Value f_select(Context& ctx, const Value& v, Args& a) { return select_items(ctx, v, a, false, true); }
Value f_reject(Context& ctx, const Value& v, Args& a) { return select_items(ctx, v, a, false, false); }
Value f_selectattr(Context& ctx, const Value& v, Args& a) { return select_items(ctx, v, a, true, true); }
Value f_rejectattr(Context& ctx, const Value& v, Args& a) { return select_items(ctx, v, a, true, false); }

}  // namespace

const FilterTable& sequence_filters() {
  static const FilterTable table = {
      {"length", f_length}, {"count", f_length},   {"list", f_list},       {"items", f_items},
      {"first", f_first},   {"last", f_last},      {"reverse", f_reverse}, {"join", f_join},
      {"sort", f_sort},     {"dictsort", f_dictsort}, {"unique", f_unique}, {"max", f_max},
      {"min", f_min},       {"sum", f_sum},        {"map", f_map},         {"select", f_select},
      {"reject", f_reject}, {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr},
  };
  return table;
}

}  // namespace hearth::jinja
