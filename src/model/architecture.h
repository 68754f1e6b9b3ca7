// The registry of architectures. Each architecture lives in one short file under arch/
// and registers what it needs from the loader (which optional tensors it has) and how a
// layer is computed from the shared blocks of graph.h.
#pragma once

#include <string>

#include "model/graph.h"

namespace hearth {

struct Architecture {
  std::string name;      // as in config.json model_type / GGUF general.architecture
  bool has_qk_norm;      // loads attn_q_norm / attn_k_norm
  bool has_qkv_bias;     // loads q/k/v biases (also honoured when config.attention_bias)
  // GGUF files of this architecture store q/k rows permuted for adjacent-pair RoPE.
  bool gguf_rope_interleaved;
  void (*layer)(LayerState& s, const LayerWeights& w, int layer);
};

const Architecture* find_architecture(const std::string& name);

extern const Architecture kQwen3;
extern const Architecture kQwen2;
extern const Architecture kLlama;

}  // namespace hearth
