// Statistics of one generation and of the memory behind it, measured (steady clock,
// /proc/self/status, the backend's allocation counters), never estimated from shapes.
// Plain data with no engine dependencies, so the public C++ API (include/hearth/hearth.h)
// hands out these same structs. Times are seconds, sizes bytes.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace hearth {

struct MemoryStats {
  // Weight tensors where the compute reads them: the mapped file (plus small f32 copies) on
  // the CPU, the backend's copies on a GPU (whose file pages are read once, for the upload).
  int64_t weights_bytes = 0;
  int64_t kv_cache_bytes = 0;  // the KV cache allocated for the whole context
  int64_t scratch_bytes = 0;   // activation scratch currently allocated by the backend
  int64_t rss_bytes = 0;       // resident set of the process now (VmRSS)
  int64_t peak_rss_bytes = 0;  // peak resident set of the process (VmHWM)
};

struct GenerationStats {
  double load_s = 0;              // model load, when the caller knows it (0 otherwise)
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;      // prompt tokens reused from the cache
  int64_t completion_tokens = 0;  // sampled tokens, stop token included
  double prompt_s = 0;            // prompt processing: from the call to the prompt's logits
  double ttft_s = 0;              // from the call to the first sampled token
  double decode_s = 0;            // from the first sampled token to the last
  double total_s = 0;             // the whole call
  MemoryStats memory;             // filled after the generation

  // Prompt tokens actually computed per second (cached ones cost nothing).
  double prompt_tokens_per_s() const {
    return prompt_s > 0 ? static_cast<double>(prompt_tokens - cached_tokens) / prompt_s : 0;
  }
  // Decode speed after the first token, as llama.cpp and the seed report measure it.
  double decode_tokens_per_s() const {
    return decode_s > 0 && completion_tokens > 1 ? static_cast<double>(completion_tokens - 1) / decode_s : 0;
  }
  // Generated tokens over the whole call, prompt processing included.
  double end_to_end_tokens_per_s() const {
    return total_s > 0 ? static_cast<double>(completion_tokens) / total_s : 0;
  }
};

// {"load_s", "prompt_tokens", ..., "decode_tokens_per_s", "memory": {...}}: the stats of
// `hearth run --json`, `hearth batch` output lines and the chat's /save.
nlohmann::ordered_json stats_to_json(const GenerationStats& stats);
// A few aligned lines for a terminal (`--verbose`, the chat's /stats), each ending in '\n'.
std::string format_stats(const GenerationStats& stats);
// "1.50 GiB", "312.0 KiB".
std::string human_bytes(double bytes);

// Process memory from /proc: resident set now and its peak (0 where /proc is missing).
int64_t process_rss_bytes();
int64_t process_peak_rss_bytes();
// MemAvailable of /proc/meminfo, or -1 when unknown.
int64_t mem_available_bytes();

}  // namespace hearth
