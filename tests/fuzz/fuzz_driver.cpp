// A self-contained mutation fuzzer for machines without libFuzzer: it builds valid GGUF
// and safetensors seed files with hearth's writers, then for a bounded time applies
// random mutations (bit flips, byte inserts and deletes, interesting integers such as
// 0xFFFFFFFF or the file size, truncation, chunk copies, format tokens) and feeds each
// result to the fuzz target. Inputs that still parse join the corpus, so mutations reach
// deeper than the header. The seed is fixed, so a run is reproducible for a given time.
//
//   fuzz_parsers [--seconds N] [--seed S] [--write-seeds DIR] [FILE...]
// FILEs are replayed once each (a crash reproducer or a libFuzzer corpus) instead.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/safetensors.h"

int hearth_fuzz_parsers(const uint8_t* data, size_t size);

namespace {

using Input = std::vector<uint8_t>;

std::vector<Input> make_seeds() {
  std::mt19937_64 rng(1);
  auto bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  std::vector<Input> seeds;
  {  // every metadata type, several tensor types, alignment 64
    hearth::GgufWriter w;
    w.set_alignment(64);
    w.add_string("general.architecture", "qwen3");
    w.add_uint32("qwen3.block_count", 2);
    w.add_float32("qwen3.rope.freq_base", 1e6f);
    w.add_bool("b", true);
    w.add_value("u8", {.type = hearth::GgufType::UINT8, .i = 7});
    w.add_value("i16", {.type = hearth::GgufType::INT16, .i = -7});
    w.add_value("u64", {.type = hearth::GgufType::UINT64, .i = 1 << 20});
    w.add_value("f64", {.type = hearth::GgufType::FLOAT64, .f = 0.25});
    w.add_array_strings("tokenizer.ggml.tokens", {"a", "b", "<|im_end|>"});
    w.add_array_int32("tokenizer.ggml.token_type", {1, 1, 3});
    w.add_array_float32("tokenizer.ggml.scores", {0, -1, -2});
    w.add_tensor("token_embd.weight", hearth::DType::F16, {3, 8}, bytes(48));
    w.add_tensor("blk.0.attn_q.weight", hearth::DType::Q8_0, {2, 32}, bytes(68));
    w.add_tensor("blk.0.ffn_down.weight", hearth::DType::Q4_K, {1, 256}, bytes(144));
    w.add_tensor("output_norm.weight", hearth::DType::F32, {8}, bytes(32));
    seeds.push_back(w.serialize());
  }
  {  // a shard of a split model, default alignment
    hearth::GgufWriter w;
    w.add_value("split.no", {.type = hearth::GgufType::UINT16, .i = 0});
    w.add_value("split.count", {.type = hearth::GgufType::UINT16, .i = 1});
    w.add_int32("split.tensors.count", 2);
    w.add_tensor("a", hearth::DType::BF16, {5}, bytes(10));
    w.add_tensor("b", hearth::DType::I32, {1, 1, 1, 3}, bytes(12));
    seeds.push_back(w.serialize());
  }
  seeds.push_back(hearth::GgufWriter().serialize());
  seeds.push_back(hearth::serialize_safetensors(
      {{"model.embed_tokens.weight", hearth::DType::BF16, {4, 3}, bytes(24)},
       {"model.layers.0.mlp.down_proj.weight", hearth::DType::U32, {2, 2}, bytes(16)},
       {"model.layers.0.mlp.down_proj.scales", hearth::DType::F16, {2, 1}, bytes(4)},
       {"model.norm.weight", hearth::DType::F32, {3}, bytes(12)}},
      {{"format", "mlx"}}));
  seeds.push_back(hearth::serialize_safetensors({{"x", hearth::DType::I64, {}, bytes(8)}}));
  return seeds;
}

// Values that tend to sit on boundaries of length and offset checks.
const uint64_t kInteresting[] = {0, 1, 2, 3, 4, 5, 8, 12, 13, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4096,
                                 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
                                 0x100000000, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
                                 0xfffffffffffffff8, 0xffffffffffffffe0};
const char* const kTokens[] = {"GGUF", "general.alignment", "split.count", "\"dtype\"", "\"shape\"",
                               "\"data_offsets\"", "\"F32\"", "\"BF16\"", "\"__metadata__\"", "[0,4]",
                               "18446744073709551615", "-1", "1e999", "{", "}", "[", "]", ",", ":", "\"", "\\u0000"};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  void mutate(Input& in) {
    const int n = 1 + static_cast<int>(below(4));
    for (int k = 0; k < n; ++k) mutate_once(in);
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  void mutate_once(Input& in) {
    const size_t size = in.size();
    switch (below(9)) {
      case 0:  // flip one bit
        if (size) in[below(size)] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:  // random byte
        if (size) in[below(size)] = static_cast<uint8_t>(rng_());
        break;
      case 2: {  // insert random bytes
        const size_t at = below(size + 1), n = 1 + below(16);
        for (size_t k = 0; k < n; ++k) in.insert(in.begin() + static_cast<long>(at), static_cast<uint8_t>(rng_()));
        break;
      }
      case 3: {  // delete a range
        if (!size) break;
        const size_t at = below(size), n = std::min<size_t>(1 + below(16), size - at);
        in.erase(in.begin() + static_cast<long>(at), in.begin() + static_cast<long>(at + n));
        break;
      }
      case 4:
      case 5: {  // an interesting little-endian integer of width 1, 2, 4 or 8
        uint64_t v = kInteresting[below(std::size(kInteresting))];
        if (below(4) == 0) v = size + below(64) - 32;  // near the file size
        const size_t width = size_t{1} << below(4);
        if (size < width) break;
        std::memcpy(in.data() + below(size - width + 1), &v, width);
        break;
      }
      case 6:  // truncate
        in.resize(below(size + 1));
        break;
      case 7: {  // copy a chunk over another place
        if (size < 2) break;
        const size_t from = below(size), to = below(size), n = std::min({1 + below(32), size - from, size - to});
        std::memmove(in.data() + to, in.data() + from, n);
        break;
      }
      default: {  // insert or overwrite with a format token
        const std::string tok = kTokens[below(std::size(kTokens))];
        const size_t at = below(size + 1);
        if (below(2) == 0 || at + tok.size() > size) in.insert(in.begin() + static_cast<long>(at), tok.begin(), tok.end());
        else std::memcpy(in.data() + at, tok.data(), tok.size());
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

// The input being run, written to fuzz_parsers-crash.bin if a sanitizer or an invariant
// aborts, so the failure can be replayed with `fuzz_parsers fuzz_parsers-crash.bin`.
const Input* g_current = nullptr;

void dump_current(int sig) {
  if (g_current != nullptr) {
    const int fd = ::open("fuzz_parsers-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      if (::write(fd, g_current->data(), g_current->size()) < 0) {
      }
      ::close(fd);
    }
    const char msg[] = "fuzz_parsers: failing input written to fuzz_parsers-crash.bin\n";
    if (::write(2, msg, sizeof(msg) - 1) < 0) {
    }
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

Input read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Input(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20;
  uint64_t seed = 1;
  std::string seeds_dir;
  std::vector<std::string> replay;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    if (arg == "--seconds" && k + 1 < argc) seconds = std::stod(argv[++k]);
    else if (arg == "--seed" && k + 1 < argc) seed = std::stoull(argv[++k]);
    else if (arg == "--write-seeds" && k + 1 < argc) seeds_dir = argv[++k];
    else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "usage: %s [--seconds N] [--seed S] [--write-seeds DIR] [FILE...]\n", argv[0]);
      return 2;
    } else replay.push_back(arg);
  }

  const std::vector<Input> seeds = make_seeds();
  if (!seeds_dir.empty()) {  // a starting corpus for libFuzzer
    std::filesystem::create_directories(seeds_dir);
    for (size_t k = 0; k < seeds.size(); ++k) {
      std::ofstream out(seeds_dir + "/seed" + std::to_string(k), std::ios::binary);
      out.write(reinterpret_cast<const char*>(seeds[k].data()), static_cast<std::streamsize>(seeds[k].size()));
    }
    return 0;
  }
  if (!replay.empty()) {
    for (const std::string& path : replay) {
      const Input in = read_file(path);
      std::printf("%s: %zu bytes, result %d\n", path.c_str(), in.size(), hearth_fuzz_parsers(in.data(), in.size()));
    }
    return 0;
  }

  // Every seed must parse, or the fuzzer would be exploring the wrong files.
  for (const Input& s : seeds)
    if (hearth_fuzz_parsers(s.data(), s.size()) == 0) {
      std::fprintf(stderr, "fuzz_parsers: a seed file does not parse\n");
      return 1;
    }

  std::signal(SIGABRT, dump_current);
  std::signal(SIGSEGV, dump_current);
  // Two corpora, one per format, taken in turn: GGUF survives mutation far more often
  // than JSON does, and would otherwise crowd safetensors out.
  std::vector<Input> corpus[2];
  for (const Input& s : seeds) corpus[hearth_fuzz_parsers(s.data(), s.size()) & 1 ? 0 : 1].push_back(s);
  const size_t n_seeds[2] = {corpus[0].size(), corpus[1].size()};
  Mutator mutator(seed);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  uint64_t runs = 0, parsed[2] = {0, 0};
  while (std::chrono::steady_clock::now() < deadline) {
    for (int batch = 0; batch < 64; ++batch, ++runs) {
      const int kind = static_cast<int>(runs & 1);
      std::vector<Input>& pool = corpus[kind];
      Input in = pool[mutator.below(pool.size())];
      mutator.mutate(in);
      g_current = &in;
      const int ok = hearth_fuzz_parsers(in.data(), in.size());
      g_current = nullptr;
      if (ok & 1) ++parsed[0];
      if (ok & 2) ++parsed[1];
      // Keep some survivors: they are valid files that differ from the seeds.
      if ((ok & (1 << kind)) && in.size() <= 1 << 16 && mutator.below(4) == 0) {
        if (pool.size() < 256) pool.push_back(std::move(in));
        else pool[n_seeds[kind] + mutator.below(pool.size() - n_seeds[kind])] = std::move(in);
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_parsers: %llu inputs in %.1f s, %llu parsed as GGUF, %llu as safetensors, corpus %zu + %zu\n",
              static_cast<unsigned long long>(runs), elapsed, static_cast<unsigned long long>(parsed[0]),
              static_cast<unsigned long long>(parsed[1]), corpus[0].size(), corpus[1].size());
  return 0;
}
