// Llama 3.x (LlamaForCausalLM): pre-norm decoder, GQA, SwiGLU, optional attention bias,
// rope_scaling "llama3" for 3.1+. llama.cpp's converter permutes q/k rows for
// adjacent-pair RoPE, so GGUF llama files rotate pairs (2i, 2i+1) while HF/MLX folders
// rotate (i, i + hd/2); the loader picks the table (see Architecture::gguf_rope_interleaved).
#include "model/architecture.h"

namespace hearth {
namespace {

void llama_layer(LayerState& s, const LayerWeights& w, int layer) {
  attention_block(s, w, layer, {.qkv_bias = s.config.attention_bias, .qk_norm = false});
  swiglu_ffn_block(s, w);
}

}  // namespace

const Architecture kLlama{
    .name = "llama", .has_qk_norm = false, .has_qkv_bias = false, .gguf_rope_interleaved = true, .layer = llama_layer};

}  // namespace hearth
