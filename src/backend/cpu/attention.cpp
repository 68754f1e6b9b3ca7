// Causal paged attention on the CPU: one task per (token, query head). Keys and values
// are read through the sequence's block table, so prefill, decode and a cached prefix
// are the same loop. Softmax is computed in double-free F32 with a running max
// (two passes: scores, then normalise), matching PyTorch's float softmax closely. An 8-bit
// cache is read a head's row at a time through dequantize_kv_q8 (the reference that the
// CUDA kernels reading the same bytes are compared against).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/kv_quant.h"

namespace hearth::cpu {

void attention(ThreadPool& pool, float* out, const float* q, const KvLayerView& kv, const StepBatch& batch,
               int32_t block_size, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale) {
  const int64_t n = batch.n_tokens();
  const int64_t group = n_heads / n_kv_heads;
  pool.parallel_for(n * n_heads, [&](int64_t begin, int64_t end, int) {
    std::vector<float> scores;
    std::vector<double> acc(static_cast<size_t>(head_dim));
    std::vector<float> deq(static_cast<size_t>(head_dim));
    // Elements of kv head kvh at `slot` as floats (the cache's own, or dequantized to deq).
    auto head_row = [&](const uint8_t* cache, int64_t slot, int64_t kvh) -> const float* {
      const uint8_t* r = cache + slot * kv.row_bytes;
      if (!kv.q8) return reinterpret_cast<const float*>(r) + kvh * head_dim;
      dequantize_kv_q8(r, kv.row, kvh * head_dim, head_dim, deq.data());
      return deq.data();
    };
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t = task / n_heads;
      const int64_t h = task % n_heads;
      const int64_t kvh = h / group;
      const StepSequence& seq = batch.seqs[static_cast<size_t>(batch.seq_of[static_cast<size_t>(t)])];
      const int64_t n_keys = static_cast<int64_t>(batch.positions[static_cast<size_t>(t)]) + 1;
      const float* qh = q + (t * n_heads + h) * head_dim;
      scores.resize(static_cast<size_t>(n_keys));
      float max_score = -INFINITY;
      for (int64_t p = 0; p < n_keys; ++p) {
        const int64_t slot =
            static_cast<int64_t>(seq.block_table[static_cast<size_t>(p / block_size)]) * block_size + p % block_size;
        const float* kp = head_row(kv.k, slot, kvh);
        float s = 0;
        for (int64_t i = 0; i < head_dim; ++i) s += qh[i] * kp[i];
        s *= scale;
        scores[static_cast<size_t>(p)] = s;
        max_score = std::max(max_score, s);
      }
      double denom = 0;
      for (auto& s : scores) {
        s = std::exp(s - max_score);
        denom += s;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < n_keys; ++p) {
        const int64_t slot =
            static_cast<int64_t>(seq.block_table[static_cast<size_t>(p / block_size)]) * block_size + p % block_size;
        const float* vp = head_row(kv.v, slot, kvh);
        const double w = scores[static_cast<size_t>(p)];
        for (int64_t i = 0; i < head_dim; ++i) acc[static_cast<size_t>(i)] += w * vp[i];
      }
      float* oh = out + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) oh[i] = static_cast<float>(acc[static_cast<size_t>(i)] / denom);
    }
  });
}

}  // namespace hearth::cpu
