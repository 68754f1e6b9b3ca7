// Qwen3 dense (Qwen3ForCausalLM): pre-norm decoder with GQA, a per-head RMSNorm on q and
// k before split-half RoPE, no projection biases, SwiGLU feed-forward. head_dim may
// differ from hidden_size / num_attention_heads (0.6B: 128 vs 64).
#include "model/architecture.h"

namespace hearth {
namespace {

void qwen3_layer(LayerState& s, const LayerWeights& w, int layer) {
  attention_block(s, w, layer, {.qkv_bias = false, .qk_norm = true});
  swiglu_ffn_block(s, w);
}

}  // namespace

const Architecture kQwen3{
    .name = "qwen3", .has_qk_norm = true, .has_qkv_bias = false, .gguf_rope_interleaved = false, .layer = qwen3_layer};

}  // namespace hearth
