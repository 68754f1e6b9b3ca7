// Writing models: the synthetic Qwen3-shaped models hearth tests and benchmarks on
// (no weights can be downloaded where hearth is built), and conversion of an HF folder
// to GGUF. One tensor list, three outputs:
//  - GGUF (any quantization hearth can write, or the Q4_K_M / Q5_K_M per-tensor mix),
//    with the tokenizer and chat template in its metadata when given;
//  - an HF folder (config.json + model.safetensors, F32/F16/BF16);
//  - an MLX folder (affine 4/8-bit weights with scales and biases, config "quantization").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/tensor_names.h"

namespace hearth {

// One tensor to write, produced on demand as floats (numpy-order shape).
struct SourceTensor {
  TensorRole role;
  int layer = 0;
  std::string suffix = ".weight";  // or ".bias"
  std::vector<int64_t> shape;
  std::function<void(float* dst)> fill;  // writes numel floats
};

enum class OutputFormat { GGUF, HF, MLX };

struct WriteOptions {
  OutputFormat format = OutputFormat::GGUF;
  // GGUF: "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k",
  // "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs", or the mixes "q4_k_m" / "q5_k_m".
  // HF: "f32", "f16" or "bf16". MLX: the float type of scales, biases and norms.
  std::string type = "f16";
  int mlx_bits = 4;
  int mlx_group_size = 64;
  std::string name = "hearth-synthetic";
  // Optional tokenizer folder (tokenizer.json + tokenizer_config.json) embedded in GGUF
  // metadata or copied into the folder.
  std::string tokenizer_dir;
};

// Writes `tensors` for a model with config `config` to `path` (file for GGUF, folder otherwise).
void write_model(const ModelConfig& config, const std::vector<SourceTensor>& tensors, const WriteOptions& options,
                 const std::string& path);

// Standard Qwen3 shapes: "tiny" (a few MB), "0.6b", "1.7b", "4b", "8b", "14b".
ModelConfig qwen3_shape(const std::string& shape);

// Every tensor of `config` filled with seeded pseudo-random values of sensible scale
// (weights ~ N(0, 1/fan_in), norms ~ 1 + small noise).
std::vector<SourceTensor> random_tensors(const ModelConfig& config, uint64_t seed);

// The tensors of an HF folder (F32/F16/BF16 safetensors), for conversion.
std::vector<SourceTensor> folder_tensors(const std::string& folder, ModelConfig& config_out);

}  // namespace hearth
