// CPU op entry points, one family per file (matmul.cpp, norm_rope.cpp, attention.cpp,
// elementwise.cpp). They work on plain host pointers and run on the given thread pool;
// backend_cpu.cpp adapts them to the Backend interface. Each op's scalar loop is the
// reference: SIMD lives only in quant_dot (the dot products that dominate the time).
#pragma once

#include <cstdint>

#include "backend/step.h"
#include "backend/backend.h"
#include "core/thread_pool.h"
#include "quant/weight.h"

namespace hearth::cpu {

// out[n, w.rows] = x[n, w.cols] @ w^T for any stored weight type.
void matmul(ThreadPool& pool, float* out, const float* x, int64_t n, const Weight& w);
// The same from dequantized rows and double accumulation: the oracle for matmul's tests.
void matmul_ref(ThreadPool& pool, float* out, const float* x, int64_t n, const Weight& w);

// out[r] = x[r] / rms(x[r]) * weight for rows of length `dim`.
void rms_norm(ThreadPool& pool, float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps);

// Rotates x[n, heads, head_dim] in place at `positions`.
void rope(ThreadPool& pool, float* x, const int32_t* positions, int64_t n, int64_t heads, int64_t head_dim,
          const RopeTable& rope);

// KV cache of one layer: n_slots rows of row_bytes for keys and for values, each row
// n_kv_heads * head_dim elements: f32, or (q8) the 8-bit format of kv_quant.h.
struct KvLayerView {
  const uint8_t* k;
  const uint8_t* v;
  int64_t row;        // elements: n_kv_heads * head_dim
  int64_t row_bytes;  // kv_row_bytes
  bool q8;
};

// Causal paged attention (see Backend::attention).
void attention(ThreadPool& pool, float* out, const float* q, const KvLayerView& kv, const StepBatch& batch,
               int32_t block_size, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale);

void swiglu(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n);
void add(float* out, const float* a, const float* b, int64_t n);
// Backend::read_top_rows for rows of length ld (top_k.cpp).
void top_k_rows(const float* x, int64_t rows, int64_t ld, int32_t n_valid, int32_t k, int32_t* ids, float* values);
// out[t] = row tokens[t] of `table` as floats.
void embed(ThreadPool& pool, float* out, const Weight& table, const int32_t* tokens, int64_t n);

}  // namespace hearth::cpu
