// hearth bench model: the in-process benchmark (what llama-bench is to llama.cpp).
//   hearth bench model -m MODEL [-p 512] [-n 128] [-r 3] [--batch-sizes 1,2,4] [--json]
// ppN: a prompt of N random tokens from an empty cache, tokens/s. tgN: N tokens decoded one
// at a time (greedy: on a GPU only each row's best logit is read back, as the engine reads
// it) after one prompt token, tokens/s after the first. tgN @ batch B: B
// sequences decoded together, one token each per forward pass: aggregate tokens/s.
// Each test runs -r times after one untimed warm-up; mean and sample standard deviation.
// Decoding reads every weight once per step (plus the keys and values of the context), so
// bytes read per step over time is compared with the machine's memory read bandwidth,
// measured in the same run: threads sum disjoint slices of a buffer much larger than the
// caches (written once first so its pages are resident), four accumulators each so loads,
// not adds, bound the loop; the best of several passes counts, a pass lasting as long as
// its slowest thread.
// --out FILE also runs the endpoint suite in-process (bench/direct.h) and writes both in
// the results format of `hearth bench endpoint`, for `hearth bench report`.
// On a shared machine wall-clock figures fall with the load, so each figure also comes as
// "cpu": tokens x threads / process CPU seconds (and bytes / the slowest thread's CPU
// seconds for the bandwidth), the speed had every thread kept a core to itself.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include "bench/direct.h"
#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"
#include "engine/runtime.h"
#include "engine/sequence.h"
#include "engine/sequence_group.h"

namespace hearth::cli {
namespace {

struct Bandwidth {
  double bytes_per_s = 0;
  double cpu_bytes_per_s = 0;  // over the slowest thread's CPU time
  size_t buffer_bytes = 0;
};


uint64_t sum_slice(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

// Reads a buffer of about `bytes` (at most a quarter of available memory) with n_threads.
Bandwidth measure_read_bandwidth(int n_threads, size_t bytes, int passes = 5) {
  const int64_t avail = mem_available_bytes();
  if (avail > 0) bytes = std::min(bytes, static_cast<size_t>(avail / 4));
  const size_t n = std::max<size_t>(bytes / sizeof(uint64_t), 1 << 20);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  n_threads = std::max(1, n_threads);
  std::atomic<uint64_t> sink{0};
  double best = 1e30, best_cpu = 1e30;
  for (int pass = 0; pass < passes; ++pass) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> elapsed(static_cast<size_t>(n_threads)), cpu(static_cast<size_t>(n_threads));
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        const size_t begin = n * static_cast<size_t>(t) / static_cast<size_t>(n_threads);
        const size_t end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(n_threads);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        timespec c0{}, c1{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        const auto t0 = std::chrono::steady_clock::now();
        sink.fetch_add(sum_slice(buf.get() + begin, end - begin), std::memory_order_relaxed);
        elapsed[static_cast<size_t>(t)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        cpu[static_cast<size_t>(t)] = static_cast<double>(c1.tv_sec - c0.tv_sec) + 1e-9 * static_cast<double>(c1.tv_nsec - c0.tv_nsec);
      });
    }
    while (ready.load() < n_threads) std::this_thread::yield();
    go.store(true, std::memory_order_release);
    for (auto& th : threads) th.join();
    best = std::min(best, *std::max_element(elapsed.begin(), elapsed.end()));
    best_cpu = std::min(best_cpu, *std::max_element(cpu.begin(), cpu.end()));
  }
  Bandwidth bw;
  bw.buffer_bytes = n * sizeof(uint64_t);
  bw.bytes_per_s = static_cast<double>(bw.buffer_bytes) / best;
  bw.cpu_bytes_per_s = best_cpu > 0 ? static_cast<double>(bw.buffer_bytes) / best_cpu : 0;
  return bw;
}

// "model name" of /proc/cpuinfo.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}


struct BenchOptions {
  std::string model;
  std::string prompt_lengths = "512";
  std::string gen_lengths = "128";
  std::string batch_sizes;
  int reps = 3;
  int threads = 0;
  std::string device = "auto";
  std::string kv_cache_type;
  int batch = 0;  // 0: Runtime::resolve_batch
  bool json = false;
  double buffer_mib = 1024;
  std::string out, label, suite, note;  // --out: results file for `hearth bench report`
  int max_tokens = 200;
};

struct Result {
  std::string test;         // "pp512", "tg128", "tg128 @ batch 4"
  int64_t tokens = 0;       // per repetition
  int32_t batch = 1;        // sequences decoded together
  std::vector<double> tps;  // tokens/s of each repetition
  std::vector<double> cpu_tps;  // tokens x threads / process CPU seconds, per repetition
  int64_t bytes_per_step = 0;  // decode only: bytes read per forward pass
  double mean() const { return average(tps); }
  double cpu_mean() const { return average(cpu_tps); }
  static double average(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / static_cast<double>(v.size());
  }
  double stddev() const {
    if (tps.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : tps) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(tps.size() - 1));
  }
  // Bytes read per second at the mean speed (decode tests).
  double bytes_per_s() const { return static_cast<double>(bytes_per_step) * mean() / batch; }
  double cpu_bytes_per_s() const { return static_cast<double>(bytes_per_step) * cpu_mean() / batch; }
};

std::vector<int64_t> parse_list(const std::string& text, const char* flag, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HEARTH_CHECK(used == item.size() && !item.empty(), std::string(flag) + ": '" + item + "' is not a number");
    HEARTH_CHECK(v >= lo && v <= hi, std::string(flag) + ": " + std::to_string(v) + " is out of range, expected " +
                                         std::to_string(lo) + " to " + std::to_string(hi));
    out.push_back(v);
  }
  return out;
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// Wall and process CPU time from construction; record() adds tokens/s of both to a Result.
struct Stopwatch {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  double cpu = process_cpu_seconds();
  void record(struct Result& r, double tokens, int threads) const;
};

void Stopwatch::record(Result& r, double tokens, int threads) const {
  const double w = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
  const double c = process_cpu_seconds() - cpu;
  r.tps.push_back(tokens / w);
  r.cpu_tps.push_back(c > 0 ? tokens * threads / c : 0);
}

int32_t argmax(const float* logits, int64_t n) { return static_cast<int32_t>(std::max_element(logits, logits + n) - logits); }

class Bench {
 public:
  Bench(Runtime& rt, const BenchOptions& o, int threads)
      : rt_(rt), o_(o), threads_(threads), vocab_(rt.model->config().vocab_size),
        batch_(rt.resolve_batch(o.batch)) {
    n_tokens_ = rt.vocab.n_tokens > 0 ? rt.vocab.n_tokens : static_cast<int32_t>(vocab_);
  }

  std::vector<int32_t> random_tokens(int64_t n) {
    std::vector<int32_t> out(static_cast<size_t>(n));
    for (auto& t : out) {
      state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
      t = static_cast<int32_t>((state_ >> 33) % static_cast<uint64_t>(n_tokens_));
    }
    return out;
  }

  Result prompt(int64_t n) {
    Result r{"pp" + std::to_string(n), n, 1, {}, {}, 0};
    Sequence seq(*rt_.model, static_cast<int32_t>(n));
    for (int rep = -1; rep < o_.reps; ++rep) {  // rep -1 warms up
      seq.truncate(0);
      const auto tokens = random_tokens(n);
      const Stopwatch watch;
      seq.feed(tokens, batch_);
      if (rep >= 0) watch.record(r, static_cast<double>(n), threads_);
    }
    return r;
  }

  // Greedy decoding reads back what the engine reads for a greedy request: on a GPU each
  // row's best logit (Model::read_top_logits), on the CPU the whole row, scanned here.
  bool kept() const { return rt_.model->keeps_logits(); }
  void best_kept(int32_t rows, int32_t* tokens) {
    best_values_.resize(static_cast<size_t>(rows));
    rt_.model->read_top_logits(static_cast<int32_t>(vocab_), 1, tokens, best_values_.data());
  }

  Result generate(int64_t n) {
    Result r{"tg" + std::to_string(n), n, 1, {}, {}, rt_.bytes_per_token(1 + n / 2)};
    Sequence seq(*rt_.model, static_cast<int32_t>(n + 1));
    for (int rep = -1; rep < o_.reps; ++rep) {
      seq.truncate(0);
      int32_t token = random_tokens(1)[0];
      const float* logits = seq.feed(std::span<const int32_t>(&token, 1)).data();
      token = argmax(logits, vocab_);
      const Stopwatch watch;
      for (int64_t i = 0; i < n; ++i) {
        if (kept()) {
          seq.feed_kept(std::span<const int32_t>(&token, 1));
          best_kept(1, &token);
        } else {
          token = argmax(seq.feed(std::span<const int32_t>(&token, 1)).data(), vocab_);
        }
      }
      if (rep >= 0) watch.record(r, static_cast<double>(n), threads_);
    }
    return r;
  }

  Result batched(int64_t n, int32_t b) {
    Result r{"tg" + std::to_string(n) + " @ batch " + std::to_string(b), n * b, b, {}, {}, 0};
    r.bytes_per_step = rt_.bytes_per_token(0) + b * (1 + n / 2) * rt_.kv_bytes_per_token();
    SequenceGroup group(*rt_.model, b, static_cast<int32_t>(n + 1));
    std::vector<int32_t> tokens(static_cast<size_t>(b));
    for (int rep = -1; rep < o_.reps; ++rep) {
      group.clear();
      for (int32_t s = 0; s < b; ++s) {
        const int32_t first = random_tokens(1)[0];
        tokens[static_cast<size_t>(s)] = argmax(group.prefill(s, std::span<const int32_t>(&first, 1)).data(), vocab_);
      }
      const Stopwatch watch;
      for (int64_t i = 0; i < n; ++i) {
        if (kept()) {
          group.step_kept(tokens);
          best_kept(b, tokens.data());
          continue;
        }
        const float* logits = group.step(tokens).data();
        for (int32_t s = 0; s < b; ++s) tokens[static_cast<size_t>(s)] = argmax(logits + s * vocab_, vocab_);
      }
      if (rep >= 0) watch.record(r, static_cast<double>(n * b), threads_);
    }
    return r;
  }

 private:
  Runtime& rt_;
  const BenchOptions& o_;
  int threads_;
  int64_t vocab_;
  int32_t batch_;  // prompt tokens per forward pass
  int32_t n_tokens_;
  std::vector<float> best_values_;
  uint64_t state_ = 0x853c49e6748fea9bull;
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

int run_bench(const BenchOptions& o) {
  HEARTH_CHECK(o.reps >= 1 && o.reps <= 1000, "-r/--repetitions " + std::to_string(o.reps) + ": expected 1 to 1000");
  HEARTH_CHECK(o.threads >= 0 && o.threads <= 1024, "-t/--threads " + std::to_string(o.threads) + ": expected 0 (all) to 1024");
  HEARTH_CHECK(o.batch >= 0 && o.batch <= 65536, "-b/--batch " + std::to_string(o.batch) + ": expected 1 to 65536");
  HEARTH_CHECK(o.buffer_mib >= 16 && o.buffer_mib <= 65536, "--bandwidth-mib: expected 16 to 65536");
  const auto pp = parse_list(o.prompt_lengths, "-p/--prompt-lengths", 0, 1 << 20);
  const auto tg = parse_list(o.gen_lengths, "-n/--gen-lengths", 0, 1 << 20);
  const auto bs = o.batch_sizes.empty() ? std::vector<int64_t>{} : parse_list(o.batch_sizes, "--batch-sizes", 1, 256);
  const std::string path = resolve_model(o.model);
  RuntimeOptions ro;
  ro.threads = o.threads;
  ro.device = o.device;
  ro.kv_cache_type = o.kv_cache_type;
  Runtime rt = Runtime::open(path, ro);
  const int64_t trained = rt.model->config().max_position_embeddings;
  for (int64_t n : pp) HEARTH_CHECK(trained <= 0 || n <= trained, "-p " + std::to_string(n) + " exceeds the context of " + std::to_string(trained));
  for (int64_t n : tg) HEARTH_CHECK(trained <= 0 || n < trained, "-n " + std::to_string(n) + " exceeds the context of " + std::to_string(trained));
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  Bench bench(rt, o, threads);
  std::vector<Result> results;
  for (int64_t n : pp)
    if (n > 0) results.push_back(bench.prompt(n));
  for (int64_t n : tg)
    if (n > 0) results.push_back(bench.generate(n));
  for (int64_t n : tg)
    for (int64_t b : bs)
      if (n > 0) results.push_back(bench.batched(n, static_cast<int32_t>(b)));
  // Memory first: the bandwidth buffer would raise the peak RSS.
  const MemoryStats mem = rt.memory();
  // On a GPU the ceiling is the card's memory (a device-to-device copy), and CPU time says
  // nothing about the speed, so the "(cpu)" columns stay empty.
  const bool gpu = rt.backend->device() == Device::CUDA;
  Bandwidth bw;
  if (gpu) {
    bw.buffer_bytes = static_cast<size_t>(o.buffer_mib * 2 * 1048576.0);
    bw.bytes_per_s = rt.backend->measure_bandwidth(bw.buffer_bytes);
  } else {
    bw = measure_read_bandwidth(threads, static_cast<size_t>(o.buffer_mib * 1048576.0));
  }
  const auto& info = rt.model->info();
  std::string types;
  for (const auto& [t, count] : info.tensor_types) types += (types.empty() ? "" : ",") + t;

  if (!o.out.empty()) {
    bench::ModelRunOptions mo;
    mo.suite = {o.suite.empty() ? bench::default_suite() : bench::load_suite(o.suite), o.max_tokens, o.reps, 1,
                [](const std::string& line) { std::fprintf(stderr, "bench: %s\n", line.c_str()); }};
    mo.label = o.label;
    mo.note = o.note;
    mo.threads = threads;
    mo.kv_cache_bytes = mem.kv_cache_bytes;
    for (const auto& r : results) mo.tests.push_back({r.test, r.mean(), r.stddev()});
    bench::write_results(bench::run_model(rt, mo), o.out);
    std::fprintf(stderr, "bench: results in %s\n", o.out.c_str());
  }
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = path;
    j["parameters"] = info.n_params;
    j["weight_bytes"] = info.weight_bytes;
    j["tensor_types"] = info.tensor_types;
    j["backend"] = rt.backend->name();
    j["cpu"] = cpu_model_name();
    j["threads"] = threads;
    j["bandwidth_kind"] = gpu ? "gpu_device_copy" : "host_read";
    j["bandwidth_bytes_per_s"] = bw.bytes_per_s;
    j["bandwidth_cpu_bytes_per_s"] = bw.cpu_bytes_per_s;
    j["bandwidth_buffer_bytes"] = bw.buffer_bytes;
    auto arr = nlohmann::ordered_json::array();
    for (const auto& r : results) {
      nlohmann::ordered_json e;
      e["test"] = r.test;
      e["tokens"] = r.tokens;
      e["batch"] = r.batch;
      e["repetitions"] = r.tps.size();
      e["tokens_per_s"] = r.mean();
      e["stddev"] = r.stddev();
      e["samples"] = r.tps;
      e["cpu_tokens_per_s"] = r.cpu_mean();
      e["cpu_samples"] = r.cpu_tps;
      if (r.bytes_per_step > 0) {
        e["bytes_per_step"] = r.bytes_per_step;
        e["bytes_per_s"] = r.bytes_per_s();
        e["bandwidth_fraction"] = bw.bytes_per_s > 0 ? r.bytes_per_s() / bw.bytes_per_s : 0.0;
        e["cpu_bandwidth_fraction"] = bw.cpu_bytes_per_s > 0 ? r.cpu_bytes_per_s() / bw.cpu_bytes_per_s : 0.0;
      }
      arr.push_back(e);
    }
    j["results"] = arr;
    j["memory"] = {{"weights_bytes", mem.weights_bytes}, {"kv_cache_bytes", mem.kv_cache_bytes},
                   {"scratch_bytes", mem.scratch_bytes}, {"peak_rss_bytes", mem.peak_rss_bytes}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model: %s (%s, %.3f B params, %s, %s)\n", path.c_str(), rt.model->config().architecture.c_str(),
              static_cast<double>(info.n_params) / 1e9, types.c_str(), human_bytes(static_cast<double>(info.weight_bytes)).c_str());
  if (gpu)
    std::printf("machine: %s, %s; GPU memory bandwidth %.2f GB/s (measured: device-to-device copy of %s, bytes read + written)\n\n",
                cpu_model_name().c_str(), rt.backend->name().c_str(), bw.bytes_per_s / 1e9,
                human_bytes(static_cast<double>(bw.buffer_bytes)).c_str());
  else
    std::printf("machine: %s, %s; memory read bandwidth %.2f GB/s (cpu %.2f; measured, %d threads, %s buffer)\n\n",
                cpu_model_name().c_str(), rt.backend->name().c_str(), bw.bytes_per_s / 1e9, bw.cpu_bytes_per_s / 1e9,
                threads, human_bytes(static_cast<double>(bw.buffer_bytes)).c_str());
  std::printf("| test | t/s | ± | t/s (cpu) | bytes read per step | GB/s | %% of bandwidth | %% (cpu) |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|\n");
  auto pct = [](double a, double b) { return b > 0 ? fmt("%.0f%%", 100 * a / b) : std::string(); };
  for (const auto& r : results) {
    std::printf("| %s | %s | %s | %s |", r.test.c_str(), fmt("%.2f", r.mean()).c_str(), fmt("%.2f", r.stddev()).c_str(),
                gpu ? "" : fmt("%.2f", r.cpu_mean()).c_str());
    if (r.bytes_per_step > 0)
      std::printf(" %s | %s | %s | %s |\n", human_bytes(static_cast<double>(r.bytes_per_step)).c_str(),
                  fmt("%.2f", r.bytes_per_s() / 1e9).c_str(), pct(r.bytes_per_s(), bw.bytes_per_s).c_str(),
                  pct(r.cpu_bytes_per_s(), bw.cpu_bytes_per_s).c_str());
    else
      std::printf("  |  |  |  |\n");
  }
  std::printf("\n%d repetitions each (mean ± sample stddev); t/s (cpu) = tokens x threads / process CPU seconds; peak RSS %s (weights %s, KV cache %s, scratch %s at the end)\n",
              o.reps, human_bytes(static_cast<double>(mem.peak_rss_bytes)).c_str(),
              human_bytes(static_cast<double>(mem.weights_bytes)).c_str(),
              human_bytes(static_cast<double>(mem.kv_cache_bytes)).c_str(),
              human_bytes(static_cast<double>(mem.scratch_bytes)).c_str());
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  app.require_subcommand(1);
  CLI::App* sub = app.add_subcommand("model", "prompt processing and generation speed of a model, in-process");
  sub->add_option("-m,--model", o->model, std::string("a .gguf file or a model folder (default: ") + kDemoModel + ")");
  sub->add_option("-p,--prompt-lengths", o->prompt_lengths, "prompt lengths, comma-separated (default 512; 0 = none)");
  sub->add_option("-n,--gen-lengths", o->gen_lengths, "generation lengths, comma-separated (default 128; 0 = none)");
  sub->add_option("-r,--repetitions", o->reps, "repetitions of each test (default 3)");
  sub->add_option("--batch-sizes", o->batch_sizes, "also decode B sequences together, e.g. 1,2,4");
  sub->add_option("-t,--threads", o->threads, "CPU threads (default: all)");
  sub->add_option("--device", o->device, "cuda, cpu or auto (default auto: cuda when a GPU is present)");
  sub->add_option("--kv-cache-type", o->kv_cache_type, kKvCacheTypeHelp);
  sub->add_option("-b,--batch", o->batch, "prompt tokens per forward pass (default 2048 on a GPU, 512 on the CPU)");
  sub->add_option("--bandwidth-mib", o->buffer_mib, "buffer size of the bandwidth measurement in MiB (default 1024)");
  sub->add_flag("--json", o->json, "print JSON instead of a Markdown table");
  sub->add_option("--out", o->out, "also run the endpoint suite in-process; write results for `hearth bench report`");
  sub->add_option("--label", o->label, "--out: the system's name in reports (default \"hearth (Direct)\")");
  sub->add_option("--suite", o->suite, "--out: JSONL test cases (default: the four security prompts)");
  sub->add_option("--max-tokens", o->max_tokens, "--out: max_tokens of each suite case (default 200)");
  sub->add_option("--note", o->note, "--out: a note on the machine for the report");
  CLI::App* endpoint = app.add_subcommand("endpoint", "benchmark any OpenAI-compatible server: suite, concurrency, features");
  CLI::App* report = app.add_subcommand("report", "Markdown report, SVG charts and JSON summary from results files");
  const Command run_endpoint = add_bench_endpoint(*endpoint), run_report = add_bench_report(*report);
  return [o, endpoint, report, run_endpoint, run_report] {
    if (endpoint->parsed()) return run_endpoint();
    if (report->parsed()) return run_report();
    return run_bench(*o);
  };
}

}  // namespace hearth::cli
