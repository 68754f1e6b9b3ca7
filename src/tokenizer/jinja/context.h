// Render state: variable scopes, limits and their counters. Scoping follows jinja2:
// each for-loop iteration, macro call and with-block gets a fresh frame whose parent is
// the enclosing one, so `set` inside a loop never leaks out (templates use namespace()
// for that); `if` blocks share their enclosing frame. Templates are untrusted, so every
// resource a render can consume is bounded and exceeding a bound is an EvalError:
// evaluation steps and loop iterations (time), call and evaluation depth (stack),
// output, single-value and cumulative allocation sizes (memory).
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/value.h"

namespace hearth::jinja {

struct Limits {
  uint64_t max_loop_iterations = 1'000'000;  // all for-loop iterations of one render
  uint64_t max_steps = 5'000'000;            // nodes evaluated plus elements visited (~0.5 s)
  int max_call_depth = 100;                  // nested macro calls
  int max_eval_depth = 3000;                 // nested node evaluations (stack guard)
  size_t max_output_bytes = 16u << 20;       // the rendered text
  size_t max_value_bytes = 16u << 20;        // any one string or list built by the template
  uint64_t max_alloc_bytes = 256ull << 20;   // all strings and lists built, summed
};

struct RenderOptions {
  Limits limits;
  std::optional<std::tm> now;  // fixed time for strftime_now (tests); default: local time
};

class Frame {
 public:
  explicit Frame(std::shared_ptr<Frame> parent) : parent_(std::move(parent)) {}
  const Value* find(const std::string& name) const;  // this frame, then its parents
  void set(const std::string& name, Value v) { vars_[name] = std::move(v); }
  const std::shared_ptr<Frame>& parent() const { return parent_; }

 private:
  std::unordered_map<std::string, Value> vars_;
  std::shared_ptr<Frame> parent_;
};

class Context {
 public:
  Context(const SourceMap& map, const RenderOptions& options);
  ~Context();  // clears namespaces, which may hold each other in cycles

  const SourceMap& map;
  const RenderOptions& options;
  std::shared_ptr<Frame> frame;  // innermost scope
  std::shared_ptr<Frame> root;   // the template's top-level scope (under the globals)

  Value lookup(const std::string& name) const;  // Undefined "'name' is undefined" if absent
  void set(const std::string& name, Value v) { frame->set(name, std::move(v)); }

  // Enters a child scope of `parent` for the lifetime of the guard.
  class Scope {
   public:
    Scope(Context& ctx, std::shared_ptr<Frame> parent);
    ~Scope() { ctx_.frame = std::move(saved_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Context& ctx_;
    std::shared_ptr<Frame> saved_;
  };

  // Limits. Each throws EvalError naming the limit when it is exceeded.
  void step(uint64_t n = 1);
  void loop_iteration();
  void enter_eval();
  void leave_eval() { --eval_depth_; }
  void enter_call();
  void leave_call() { --call_depth_; }
  void charge(size_t bytes);  // a string or list of this size is about to be built
  void emit(std::string& out, std::string_view text) const;  // append within max_output_bytes

  // Objects that can hold arbitrary values (namespaces, loops that used changed()) are
  // cleared when the render ends.
  void track_object(std::shared_ptr<Object> o) { tracked_.push_back(std::move(o)); }
  std::tm now() const;

 private:
  uint64_t steps_ = 0, iterations_ = 0, allocated_ = 0;
  int eval_depth_ = 0, call_depth_ = 0;
  std::vector<std::shared_ptr<Object>> tracked_;
};

}  // namespace hearth::jinja
