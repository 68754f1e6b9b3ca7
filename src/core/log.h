// Logging to standard error. Levels: error < warn < info < debug. The CLI sets the level
// once (--verbose / --quiet); library code never prints to stdout, which belongs to the
// command's output (JSON, generated text).
#pragma once

#include <string>

namespace hearth {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, const std::string& message);

inline void log_error(const std::string& m) { log_message(LogLevel::Error, m); }
inline void log_warn(const std::string& m) { log_message(LogLevel::Warn, m); }
inline void log_info(const std::string& m) { log_message(LogLevel::Info, m); }
inline void log_debug(const std::string& m) { log_message(LogLevel::Debug, m); }

}  // namespace hearth
