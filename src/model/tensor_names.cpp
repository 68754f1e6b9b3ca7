#include "model/tensor_names.h"

#include "core/error.h"

namespace hearth {
namespace {

struct NameRow {
  TensorRole role;
  bool per_layer;
  const char* gguf;  // after "blk.N." for per-layer roles
  const char* hf;    // after "model.layers.N." for per-layer roles
};

constexpr NameRow kNames[] = {
    {TensorRole::TOKEN_EMBD, false, "token_embd", "model.embed_tokens"},
    {TensorRole::OUTPUT_NORM, false, "output_norm", "model.norm"},
    {TensorRole::OUTPUT, false, "output", "lm_head"},
    {TensorRole::ROPE_FREQS, false, "rope_freqs", "rope_freqs"},
    {TensorRole::ATTN_NORM, true, "attn_norm", "input_layernorm"},
    {TensorRole::ATTN_Q, true, "attn_q", "self_attn.q_proj"},
    {TensorRole::ATTN_K, true, "attn_k", "self_attn.k_proj"},
    {TensorRole::ATTN_V, true, "attn_v", "self_attn.v_proj"},
    {TensorRole::ATTN_OUT, true, "attn_output", "self_attn.o_proj"},
    {TensorRole::ATTN_Q_NORM, true, "attn_q_norm", "self_attn.q_norm"},
    {TensorRole::ATTN_K_NORM, true, "attn_k_norm", "self_attn.k_norm"},
    {TensorRole::FFN_NORM, true, "ffn_norm", "post_attention_layernorm"},
    {TensorRole::FFN_GATE, true, "ffn_gate", "mlp.gate_proj"},
    {TensorRole::FFN_UP, true, "ffn_up", "mlp.up_proj"},
    {TensorRole::FFN_DOWN, true, "ffn_down", "mlp.down_proj"},
};

}  // namespace

std::string tensor_base_name(NameScheme scheme, TensorRole role, int layer) {
  for (const auto& row : kNames) {
    if (row.role != role) continue;
    const char* name = scheme == NameScheme::GGUF ? row.gguf : row.hf;
    if (!row.per_layer) return name;
    const std::string prefix = scheme == NameScheme::GGUF ? "blk." : "model.layers.";
    return prefix + std::to_string(layer) + "." + name;
  }
  HEARTH_ASSERT(false);
  return {};
}

}  // namespace hearth
