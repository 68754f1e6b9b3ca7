#include "model/graph.h"

#include <cmath>

namespace hearth {

void attention_block(LayerState& s, const LayerWeights& w, int layer, const AttentionOptions& options) {
  const auto& c = s.config;
  const float eps = static_cast<float>(c.rms_norm_eps);
  s.be.rms_norm(s.xn, s.x, w.attn_norm, eps);
  s.be.matmul(s.q, s.xn, w.wq);
  s.be.matmul(s.k, s.xn, w.wk);
  s.be.matmul(s.v, s.xn, w.wv);
  if (options.qkv_bias) {
    s.be.add_bias(s.q, w.bq);
    s.be.add_bias(s.k, w.bk);
    s.be.add_bias(s.v, w.bv);
  }
  if (options.qk_norm) {  // one [hd] weight shared by all heads: normalise each head's row
    s.be.rms_norm(s.q, s.q, w.q_norm, eps);
    s.be.rms_norm(s.k, s.k, w.k_norm, eps);
  }
  s.be.rope(s.q, c.num_attention_heads, c.head_dim, s.rope);
  s.be.rope(s.k, c.num_key_value_heads, c.head_dim, s.rope);
  s.be.kv_store(layer, s.k, s.v);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  s.be.attention(s.attn, s.q, layer, c.num_attention_heads, scale);
  s.be.matmul(s.tmp, s.attn, w.wo);
  s.be.add(s.x, s.x, s.tmp);
}

void swiglu_ffn_block(LayerState& s, const LayerWeights& w) {
  s.be.rms_norm(s.xn, s.x, w.ffn_norm, static_cast<float>(s.config.rms_norm_eps));
  s.be.matmul(s.gate, s.xn, w.w_gate);
  s.be.matmul(s.up, s.xn, w.w_up);
  s.be.swiglu(s.gate, s.gate, s.up);
  s.be.matmul(s.tmp, s.gate, w.w_down);
  s.be.add(s.x, s.x, s.tmp);
}

}  // namespace hearth
