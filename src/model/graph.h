// Shared building blocks of decoder layers. An architecture file composes a layer from
// these, so each architecture reads like its paper: norm, attention, residual, norm,
// feed-forward, residual. Every intermediate lives in a named scratch tensor.
#pragma once

#include "backend/backend.h"
#include "model/config.h"
#include "model/model.h"

namespace hearth {

// Activations of one step, each a view of n rows (the step's tokens).
struct LayerState {
  Backend& be;
  const ModelConfig& config;
  const RopeTable& rope;
  Tensor x;        // [n, H] residual stream
  Tensor xn;       // [n, H] normalised input of a block
  Tensor q, k, v;  // [n, nh*hd], [n, nkv*hd], [n, nkv*hd]
  Tensor attn;     // [n, nh*hd] attention output before o_proj
  Tensor gate, up; // [n, F]
  Tensor tmp;      // [n, H] block output before the residual add
};

struct AttentionOptions {
  bool qkv_bias = false;  // add bq/bk/bv after the projections (Qwen2)
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (Qwen3)
};

// x += o_proj(attention(rope(q), rope(k), v)) with q, k, v projected from RMSNorm(x).
void attention_block(LayerState& s, const LayerWeights& w, int layer, const AttentionOptions& options);
// x += down(silu(gate(RMSNorm(x))) * up(RMSNorm(x))).
void swiglu_ffn_block(LayerState& s, const LayerWeights& w);

}  // namespace hearth
