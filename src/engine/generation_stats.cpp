// GenerationStats as JSON and as text, and the process memory figures read from /proc.
// VmHWM is the kernel's own high-water mark of the resident set, so the peak includes
// every page the weights mapping, the KV cache and the scratch ever touched.
#include "engine/generation_stats.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hearth {
namespace {

// The value in kB of a "Key:   1234 kB" line of a /proc file, in bytes; -1 if absent.
int64_t proc_kb_field(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ':') {
      std::istringstream ss(line.substr(key.size() + 1));
      int64_t kb = -1;
      ss >> kb;
      return kb < 0 ? -1 : kb * 1024;
    }
  }
  return -1;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

int64_t process_rss_bytes() {
  const int64_t v = proc_kb_field("/proc/self/status", "VmRSS");
  return v < 0 ? 0 : v;
}

int64_t process_peak_rss_bytes() {
  const int64_t v = proc_kb_field("/proc/self/status", "VmHWM");
  return v < 0 ? 0 : v;
}

int64_t mem_available_bytes() { return proc_kb_field("/proc/meminfo", "MemAvailable"); }

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fixed(b, u == 0 ? 0 : 2) + " " + units[u];
}

nlohmann::ordered_json stats_to_json(const GenerationStats& s) {
  nlohmann::ordered_json j;
  j["load_s"] = s.load_s;
  j["prompt_tokens"] = s.prompt_tokens;
  j["cached_tokens"] = s.cached_tokens;
  j["prompt_s"] = s.prompt_s;
  j["prompt_tokens_per_s"] = s.prompt_tokens_per_s();
  j["ttft_s"] = s.ttft_s;
  j["completion_tokens"] = s.completion_tokens;
  j["decode_s"] = s.decode_s;
  j["decode_tokens_per_s"] = s.decode_tokens_per_s();
  j["total_s"] = s.total_s;
  j["end_to_end_tokens_per_s"] = s.end_to_end_tokens_per_s();
  j["memory"] = {{"weights_bytes", s.memory.weights_bytes},
                 {"kv_cache_bytes", s.memory.kv_cache_bytes},
                 {"scratch_bytes", s.memory.scratch_bytes},
                 {"rss_bytes", s.memory.rss_bytes},
                 {"peak_rss_bytes", s.memory.peak_rss_bytes}};
  return j;
}

std::string format_stats(const GenerationStats& s) {
  std::string out;
  if (s.load_s > 0) out += "load        " + fixed(s.load_s * 1000, 1) + " ms\n";
  out += "prompt      " + std::to_string(s.prompt_tokens) + " tokens";
  if (s.cached_tokens > 0) out += " (" + std::to_string(s.cached_tokens) + " cached)";
  out += " in " + fixed(s.prompt_s * 1000, 1) + " ms, " + fixed(s.prompt_tokens_per_s(), 1) + " tok/s\n";
  out += "first token " + fixed(s.ttft_s * 1000, 1) + " ms\n";
  out += "generated   " + std::to_string(s.completion_tokens) + " tokens, decode " + fixed(s.decode_tokens_per_s(), 2) +
         " tok/s, end to end " + fixed(s.end_to_end_tokens_per_s(), 2) + " tok/s (" + fixed(s.total_s, 3) + " s)\n";
  out += "memory      " + human_bytes(static_cast<double>(s.memory.weights_bytes)) + " weights + " +
         human_bytes(static_cast<double>(s.memory.kv_cache_bytes)) + " KV cache + " +
         human_bytes(static_cast<double>(s.memory.scratch_bytes)) + " scratch; peak RSS " +
         human_bytes(static_cast<double>(s.memory.peak_rss_bytes)) + "\n";
  return out;
}

}  // namespace hearth
