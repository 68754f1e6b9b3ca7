// The one table that maps a tensor's role in a decoder to its name in each file format.
// Architectures ask for roles; the loader looks names up here, so neither the model code
// nor the file readers know the other's naming.
#pragma once

#include <string>

namespace hearth {

enum class TensorRole {
  TOKEN_EMBD,
  OUTPUT_NORM,
  OUTPUT,
  ROPE_FREQS,  // GGUF llama3 rope factors
  ATTN_NORM,
  ATTN_Q,
  ATTN_K,
  ATTN_V,
  ATTN_OUT,
  ATTN_Q_NORM,
  ATTN_K_NORM,
  FFN_NORM,
  FFN_GATE,
  FFN_UP,
  FFN_DOWN,
};

enum class NameScheme { GGUF, HF };

// The module path of a role (no ".weight"/".bias" suffix), e.g. "blk.3.attn_q" or
// "model.layers.3.self_attn.q_proj". `layer` is ignored for model-level roles.
std::string tensor_base_name(NameScheme scheme, TensorRole role, int layer);

}  // namespace hearth
