// Template: source normalisation as jinja2 does it (newlines to \n, one trailing
// newline dropped), parsing once, and rendering with a fresh Context per call, so one
// Template can serve concurrent renders.
#include "tokenizer/jinja/template.h"

#include <variant>

#include "core/error.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/utf8.h"

namespace hearth::jinja {

namespace {

constexpr size_t kMaxSourceBytes = 16u << 20;

std::string normalize(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

}  // namespace

struct Template::Impl {
  Impl(std::string src, std::string n) : name(std::move(n)), source(std::move(src)), map(name, source) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::string name;
  std::string source;  // normalised; `map` points into it
  SourceMap map;
  Body body;
};

Template::Template(std::string source, std::string name) {
  if (source.size() > kMaxSourceBytes) throw Error(name + ": template larger than 16 MiB");
  if (!utf8::valid(source)) throw Error(name + ": template is not valid UTF-8");
  auto impl = std::make_shared<Impl>(normalize(source), std::move(name));
  impl->body = parse(lex(impl->source, impl->map), impl->map);
  impl_ = std::move(impl);
}

std::string Template::render(const nlohmann::ordered_json& vars, const RenderOptions& options) const {
  if (!vars.is_object()) throw Error(impl_->name + ": render variables must be a JSON object");
  std::vector<std::pair<std::string, Value>> values;
  try {
    for (auto it = vars.begin(); it != vars.end(); ++it) values.emplace_back(it.key(), from_json(it.value()));
  } catch (const EvalError& e) {
    throw Error(impl_->name + ": " + e.what());
  }
  return render(values, options);
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& vars,
                             const RenderOptions& options) const {
  try {
    Context ctx(impl_->map, options);
    for (auto& [k, v] : vars) ctx.set(k, v);
    std::string out;
    run_body(impl_->body, ctx, out);
    return out;
  } catch (const Error&) {
    throw;
  } catch (const EvalError& e) {
    throw Error(impl_->name + ": " + e.what());
  } catch (const std::bad_alloc&) {
    throw Error(impl_->name + ": out of memory while rendering");
  } catch (const std::exception& e) {
    throw Error(impl_->name + ": internal error while rendering: " + e.what());
  }
}

}  // namespace hearth::jinja
