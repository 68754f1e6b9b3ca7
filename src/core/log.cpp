#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace hearth {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Warn)};
std::mutex g_mutex;
constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_message(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) > g_level.load()) return;
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "hearth: %s: %s\n", kNames[static_cast<int>(level)], message.c_str());
}

}  // namespace hearth
