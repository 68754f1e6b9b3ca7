// Errors: every failure the user can cause (a bad file, flag, request or template) is
// reported by throwing hearth::Error with a one-line message that names the thing at
// fault and the problem. Bugs in hearth itself use HEARTH_ASSERT, which also throws,
// so a server thread can report a 500 instead of taking the process down.
#pragma once

#include <stdexcept>
#include <string>

namespace hearth {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

}  // namespace hearth

#define HEARTH_CHECK(cond, message)            \
  do {                                         \
    if (!(cond)) ::hearth::fail(message);      \
  } while (0)

#define HEARTH_ASSERT(cond)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::hearth::fail(std::string("internal error: ") + #cond + " at " + __FILE__ + ":" + \
                     std::to_string(__LINE__));                                          \
  } while (0)
