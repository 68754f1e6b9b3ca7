// Model::forward and its scratch memory. The loader is in loader.cpp.
#include "model/model.h"

#include "io/gguf.h"
#include "model/architecture.h"
#include "model/graph.h"

namespace hearth {

Model::~Model() = default;

KvCacheConfig Model::kv_cache_config(int32_t n_blocks, int32_t block_size) const {
  KvCacheConfig kv;
  kv.n_layers = static_cast<int32_t>(config_.num_hidden_layers);
  kv.n_blocks = n_blocks;
  kv.block_size = block_size;
  kv.n_kv_heads = static_cast<int32_t>(config_.num_key_value_heads);
  kv.head_dim = static_cast<int32_t>(config_.head_dim);
  kv.dtype = backend_.kv_dtype();
  return kv;
}

int64_t Model::kv_bytes_per_token(DType kv_dtype) const {
  KvCacheConfig kv = kv_cache_config(0, 1);
  kv.dtype = kv_dtype;
  return 2 * config_.num_hidden_layers * kv_row_bytes(kv);
}

void Model::ensure_scratch(int64_t n_tokens, int64_t n_logits) {
  if (n_tokens <= scratch_tokens_ && n_logits <= scratch_logits_) return;
  n_tokens = std::max(n_tokens, scratch_tokens_);
  n_logits = std::max(n_logits, scratch_logits_);
  const auto& c = config_;
  backend_.reset_scratch();
  auto& s = scratch_;
  s.x = backend_.alloc_activation({n_tokens, c.hidden_size});
  s.xn = backend_.alloc_activation({n_tokens, c.hidden_size});
  s.q = backend_.alloc_activation({n_tokens, c.q_dim()});
  s.k = backend_.alloc_activation({n_tokens, c.kv_dim()});
  s.v = backend_.alloc_activation({n_tokens, c.kv_dim()});
  s.attn = backend_.alloc_activation({n_tokens, c.q_dim()});
  s.gate = backend_.alloc_activation({n_tokens, c.intermediate_size});
  s.up = backend_.alloc_activation({n_tokens, c.intermediate_size});
  s.tmp = backend_.alloc_activation({n_tokens, c.hidden_size});
  s.last = backend_.alloc_activation({std::max<int64_t>(1, n_logits), c.hidden_size});
  s.logits = backend_.alloc_activation({std::max<int64_t>(1, n_logits), c.vocab_size});
  scratch_tokens_ = n_tokens;
  scratch_logits_ = n_logits;
}

namespace {
// The first n rows of a scratch tensor.
Tensor rows(Tensor t, int64_t n) {
  t.shape[0] = n;
  return t;
}
}  // namespace

void Model::forward(const StepBatch& batch, float* logits) {
  const int64_t n = batch.n_tokens();
  const int64_t n_logits = static_cast<int64_t>(batch.logit_rows.size());
  HEARTH_CHECK(n > 0, "forward: empty batch");
  ensure_scratch(n, n_logits);
  backend_.begin_step(batch);
  auto& s = scratch_;
  LayerState state{.be = backend_,
                   .config = config_,
                   .rope = rope_,
                   .x = rows(s.x, n),
                   .xn = rows(s.xn, n),
                   .q = rows(s.q, n),
                   .k = rows(s.k, n),
                   .v = rows(s.v, n),
                   .attn = rows(s.attn, n),
                   .gate = rows(s.gate, n),
                   .up = rows(s.up, n),
                   .tmp = rows(s.tmp, n)};
  backend_.embed(state.x, weights_.token_embd);
  for (int il = 0; il < config_.num_hidden_layers; ++il) arch_->layer(state, weights_.layers[static_cast<size_t>(il)], il);
  step_logits_ = n_logits;
  if (n_logits == 0) {
    backend_.sync();
    return;
  }
  // Only the rows that need logits go through the final norm and the output head.
  Tensor last = rows(s.last, n_logits);
  backend_.gather_logit_rows(last, state.x);
  backend_.rms_norm(last, last, weights_.output_norm, static_cast<float>(config_.rms_norm_eps));
  Tensor out = rows(s.logits, n_logits);
  backend_.matmul(out, last, weights_.output);
  if (logits) backend_.read_rows(out, logits);
}

void Model::read_logits(int32_t first, int32_t n, float* out) {
  HEARTH_CHECK(first >= 0 && n >= 0 && first + n <= step_logits_, "read_logits: rows outside the last step's");
  if (n == 0) return;
  Tensor t = scratch_.logits;
  t.shape[0] = n;
  t.data = scratch_.logits.f32() + static_cast<int64_t>(first) * config_.vocab_size;
  backend_.read_rows(t, out);
}

void Model::read_top_logits(int32_t n_valid, int32_t k, int32_t* ids, float* values) {
  if (step_logits_ == 0) return;
  backend_.read_top_rows(rows(scratch_.logits, step_logits_), n_valid, k, ids, values);
}

}  // namespace hearth
