// Rotary-embedding frequency tables for the rope_scaling types hearth supports:
// default, linear, llama3 (Llama 3.1 wavelength bands) and yarn (NTK-by-parts ramp plus
// the attention factor on cos/sin). Formulas follow HF's modeling_rope_utils; see
// shared/reference/formats.md §1.8 and §5.1.
#pragma once

#include "backend/backend.h"
#include "model/config.h"

namespace hearth {

// neox: true for split-half rotation (HF, Qwen GGUFs, MLX), false for GGUF llama files
// whose q/k rows were permuted by the converter into adjacent pairs.
RopeTable build_rope_table(const ModelConfig& config, bool neox);

}  // namespace hearth
