// Qwen2 / Qwen2.5 (Qwen2ForCausalLM): like Llama but with biases on the q, k and v
// projections and split-half RoPE in every file format.
#include "model/architecture.h"

namespace hearth {
namespace {

void qwen2_layer(LayerState& s, const LayerWeights& w, int layer) {
  attention_block(s, w, layer, {.qkv_bias = true, .qk_norm = false});
  swiglu_ffn_block(s, w);
}

}  // namespace

const Architecture kQwen2{
    .name = "qwen2", .has_qk_norm = false, .has_qkv_bias = true, .gguf_rope_interleaved = false, .layer = qwen2_layer};

}  // namespace hearth
