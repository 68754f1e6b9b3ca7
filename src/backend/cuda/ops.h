// CUDA op entry points, one family per file (matmul.cu, norm_rope.cu, attention.cu,
// flash_attention.cu, elementwise.cu). backend_cuda.cpp validates shapes, owns memory and
// calls these; each takes one plain parameter struct and a stream and only launches work.
//
// Parameter structs are trivially copyable values with no hidden state: the backend
// records them (their bytes are the identity of a launch) and replays a step's launches
// from a CUDA graph when a later step records the same bytes (see backend_cuda.cpp).
// Every struct is zero-filled before its fields are set, so padding compares equal.
// Shapes: n = tokens (rows of x), H = hidden size, hd = head dim; all row-major F32
// activations unless a field says otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace hearth::cuda {

// A weight in device memory: the stored bytes plus what the kernels need to read them.
struct DevWeight {
  const uint8_t* data;   // rows * row_bytes bytes (+16 bytes of padding)
  const void* scales;    // MLX: [rows, groups_per_row] of scale_kind
  const void* biases;    // MLX: [rows, groups_per_row]
  int64_t rows, cols, row_bytes, groups_per_row;
  DType type;
  int32_t scale_kind;  // 0 f32, 1 f16, 2 bf16
  int32_t bits;        // MLX: 4 or 8
  int32_t group_size;  // MLX: 32, 64 or 128
};

// True if the kernels can read weights of this type (bits: MLX only).
bool weight_type_supported(DType type, int bits);

// Programmatic dependent launch for every kernel (common.cuh): on only where the sm_90
// code runs (compute capability 9.0); the backend sets it at start-up (HEARTH_CUDA_PDL=0:
// off). Process-wide, like the kernels it applies to.
void set_programmatic_launch(bool on);
bool programmatic_launch();

// The quantized activations x[n, cols] once more as f16 values q * d (the same values the
// batched tensor-core products would make of q and d), laid out for mma_f16.cu's
// tensor-copy form to take a chunk of every token by one bulk copy: 256-column chunks,
// each [n][kXHalfPitch] halves (16 of them padding, never written), and within every 4
// columns the order 0, 2, 1, 3 (its B fragments' order). h = nullptr: not written.
struct XHalf {
  uint16_t* h;  // [ceil(cols / 256)][n][kXHalfPitch]
  int64_t n, cols;
};
constexpr int64_t kXHalfPitch = 272;
// Products of at least this many tokens take it (below, every block converting q and d
// itself was faster: H100, 8 tokens 29.6 us against 30.6 for 24576 x 4096 Q4_K).
constexpr int64_t kXHalfMinTokens = 17;
inline int64_t x_half_elems(int64_t n, int64_t cols) { return (cols + 255) / 256 * n * kXHalfPitch; }

// ---- matmul.cu ---------------------------------------------------------------------------
// x[n, cols] -> 32-element int8 blocks: q[n, cols], d[n, cols/32], s = d * sum(q); and
// optionally their f16 copy h.
struct QuantizeXParams {
  const float* x;
  int8_t* q;
  float* d;
  float* s;
  int64_t n, cols;
  XHalf h;
};
void launch_quantize_x(const QuantizeXParams& p, cudaStream_t stream);

// out[n, rows] = x[n, cols] @ w^T for n <= 8, dequantizing in registers. Quantized types
// read xq/xd/xs (launch_quantize_x), float types read x.
struct GemvParams {
  DevWeight w;
  const float* x;
  const int8_t* xq;
  const float* xd;
  const float* xs;
  float* out;
  int64_t n;
  int32_t rows_per_block;  // 1, 2 or 4 rows per block of 128 threads
  int32_t prefetch;        // L2 prefetch of the next row group: 0 none, 1 per line, 2 bulk (sm_90)
  // Up to two more weights of w's type and row length, against the same x (q/k/v,
  // gate/up): blocks [0, blocks1) compute w into out, [blocks1, blocks2) the second
  // weight into out2, the rest the third into out3. blocks1 = 0: w alone.
  const uint8_t* data2;
  const uint8_t* data3;
  const void* scales2;
  const void* biases2;
  const void* scales3;
  const void* biases3;
  float* out2;
  float* out3;
  int64_t rows2, rows3;
  int32_t blocks1, blocks2;
  // Optional, one token and one weight (backend_cuda_fuse.cpp): the residual add after
  // the product, residual[rows] += out (out written too), done by the stream kernel's
  // warps as they store their rows, or by an add launch after the product elsewhere.
  float* residual;  // [w.rows]
};
void launch_gemv(const GemvParams& p, cudaStream_t stream);
constexpr int64_t kGemvMaxTokens = 8;

// matmul_stream.cu: the same product for one token (n == 1) with the weight streamed
// through shared memory by the bulk copy engine, a ring per warp; launch_gemv takes this
// path where it applies (compute capability 9.0, quantized types incl. MLX, rows that
// split into chunks of at most ~3.5 KB) and returns false otherwise. HEARTH_CUDA_STREAM=0
// turns it off.
bool launch_gemv_stream(const GemvParams& p, cudaStream_t stream);
bool gemv_stream_on();             // this card and build take that path
int64_t gemv_residual_launches();  // its launches with a residual so far (tests)

// Two one-token products of different weight types against the same x, as one launch of
// the stream kernel whose blocks are split between them (each part's rows dealt so that
// both end together): Q4_K_M keeps v (and half the layers' ffn_down) in Q6_K, so its v
// product could not merge with q/k and cost a dependent launch of its own in half the
// layers. Where the stream kernel does not take the pair, two launches.
struct GemvPairParams {
  GemvParams a;  // possibly merged (q/k), no residual
  GemvParams b;  // no residual
};
void launch_gemv_pair(const GemvPairParams& p, cudaStream_t stream);
bool gemv_pair_supported(DType a, DType b);  // weight types the pair kernel takes: Q4_K or Q5_K, then Q6_K
bool launch_gemv_pair_stream(const GemvParams& a, const GemvParams& b, cudaStream_t stream);
int64_t gemv_pair_launches();  // pair launches so far (tests)

// The same for any n through cuBLAS: x is converted to f16 (xh, n * cols), the weight is
// dequantized to f16 tiles of at most tile_elems elements (whole rows), each tile one
// GEMM with f32 accumulation. F16 weights skip the tiles, F32 weights use SGEMM.
struct TiledMatmulParams {
  DevWeight w;
  const float* x;
  float* out;
  int64_t n;
  uint16_t* xh;
  uint16_t* tile;
  int64_t tile_elems;
  void* cublas;      // cublasHandle_t
  int32_t xh_ready;  // xh already holds x in f16 (the previous product had the same x)
  int32_t pad;
};
void launch_matmul_tiled(const TiledMatmulParams& p, cudaStream_t stream);

// ---- mma.cu -----------------------------------------------------------------------------
// out[n, rows] = x[n, cols] @ w^T on the tensor cores for batched decode (the backend uses
// it for 5 <= n <= kMmaMaxTokens; any n in 1..64 works), the weight decoded
// to int8 in shared memory, x as launch_quantize_x writes it. Types: mma_type_supported.
// K is cut into `splits` ranges (mma_splits) whose sums go to partial and are then added.
struct MmaParams {
  DevWeight w;
  const int8_t* xq;
  const float* xd;
  const float* xs;
  const uint16_t* xh;  // optional: the XHalf copy of xq/xd (mma_f16.cu's tensor-copy form needs it)
  float* out;      // [n, rows]
  float* partial;  // [splits, n, rows + rows2 + rows3] scratch, splits > 1 only
  int64_t n;
  int32_t splits;
  // 1: no reduce launch after a split product; the launch after it adds the partials (a
  // merged gate/up product before SwiGLU, SwigluParams::partial; merged q/k/v before the
  // rope, RopeParams::partial). Needs data2, so mma_f16.cu.
  int32_t reduce_later;
  // Up to two more weights of w's type and row length against the same x (q/k/v,
  // gate/up), each into its own out [n, rows2|3]: one launch (mma_f16.cu only, where
  // mma_f16_applies to each of them).
  const uint8_t* data2;
  const uint8_t* data3;
  float* out2;
  float* out3;
  int64_t rows2, rows3;
  const void* scales2;  // MLX: the second and third weights' scales and biases
  const void* biases2;
  const void* scales3;
  const void* biases3;
};
void launch_mma(const MmaParams& p, cudaStream_t stream);
void init_mma();  // once per device, before any launch_mma (the kernels' shared memory)
bool mma_type_supported(DType type, int bits);
// K splits for a weight when `slots` blocks fit on the GPU at once (SMs * mma_blocks_per_sm).
int32_t mma_splits(int64_t rows, int64_t cols, int64_t slots);
int mma_blocks_per_sm(DType type, int bits, int64_t n);  // after init_mma
constexpr int64_t kMmaMaxTokens = 64;

// mma_f16.cu: the same products with the weight decoded into f16 mma fragments in
// registers and f16 activations (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, and MLX 4-bit in its
// tensor-copy form, where a block may have the kernel's shared memory); launch_mma takes
// it where it applies. HEARTH_CUDA_MMA_F16=0:
// never (the int8 kernel of mma.cu for every type).
void init_mma_f16();  // called by init_mma
bool mma_f16_applies(const DevWeight& w);
bool launch_mma_f16(const MmaParams& p, cudaStream_t stream);  // false where it does not apply
// The K splits for a product of n tokens on sm_count SMs, for the kernel that will run it.
int32_t mma_plan_splits(const DevWeight& w, int64_t n, int sm_count);
// Launches so far in this process whose weights came by tensor copies (one per chunk of a
// block's rows; rows of 16-byte multiples; HEARTH_CUDA_MMA_TMA=0: none).
int64_t mma_f16_tensor_launches();

// ---- norm_rope.cu ------------------------------------------------------------------------
// Optionally fused: the residual add before (x += add, written back) and the 8-bit
// quantization of out for the next matmul after (q/qd/qs as launch_quantize_x writes them;
// dim % 32 == 0).
struct RmsNormParams {
  float* out;
  float* x;
  const float* w;    // [dim], constant (read before the previous kernel has finished)
  const float* add;  // optional
  int8_t* q;         // optional
  float* qd;
  float* qs;
  XHalf qh;          // optional, with q
  int64_t rows, dim;
  float eps;
  // 1: a one-token norm without an add may take the sliced kernel (norm_rope.cu). The
  // backend sets it when it fuses the quantization of a product other than MLX's: H100,
  // 8B tg128 Q4_0 +0.7-4.4% in 6 pairs of runs, Q4_K_M and MLX 4-bit within +-1% (MLX kept off).
  int32_t slices;
};
void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);

// Rotates x[n, heads, head_dim] in place: pairs (i, i + half) (neox) or (2i, 2i + 1).
// Optionally fused: a per-head RMSNorm before the rotation (norm_w, Qwen3's q/k norms),
// and then the KV cache write of kv_store (k_cache set: x is k, v is copied as given).
struct RopeParams {
  float* x;
  const int32_t* positions;  // [n], step data (written before the step's kernels)
  const float* inv_freq;     // [half], constant
  int64_t n, heads, head_dim, half;
  float attn_factor;
  int32_t neox;
  const float* norm_w;  // optional, [head_dim]
  float eps;
  int32_t kv_kind;  // 0 f32, 1 f16, 2 q8_0 (rows of kv_row_bytes, backend.h)
  void* k_cache;    // optional (needs norm_w)
  void* v_cache;
  const float* v;         // [n, heads * head_dim]
  const int64_t* slots;   // [n]
  // Optional (needs norm_w): a second tensor x2 [n, heads2, head_dim] normed with
  // norm_w2 and rotated in the same launch, not stored (q, launched with k).
  float* x2;
  const float* norm_w2;
  int64_t heads2;
  // Optional (with x2 and k_cache): q (x2), k (x) and v are the merged product just before
  // whose K splits were not added (MmaParams::reduce_later), partial [splits][n][total]
  // with q's columns first, then k's, then v's. Each warp first adds its head's splits in
  // split order (as mma_f16_reduce_kernel) into x2 or x, and a k head's warp v's into v_out
  // (v's buffer), so every output that launch would have written is written.
  const float* partial;
  float* v_out;
  int32_t splits;  // n * total * splits < 2^31
};
void launch_rope(const RopeParams& p, cudaStream_t stream);
int64_t rope_split_launches();  // launches that added a product's splits so far (tests)

// ---- attention.cu ------------------------------------------------------------------------
// The cache of one layer: n_slots rows of n_kv_heads * head_dim keys, and of values, as
// f32, f16 or 8-bit rows (q8_0: int8 values, then an f16 scale per 32, padded to 16 bytes;
// backend.h kv_row_bytes).
struct KvStoreParams {
  const float* k;  // [n, row]
  const float* v;
  void* k_cache;
  void* v_cache;
  const int64_t* slots;  // [n]
  int64_t n, row;
  int32_t kind;  // 0 f32, 1 f16, 2 q8_0 (row % 32 == 0)
  int32_t pad;
};
void launch_kv_store(const KvStoreParams& p, cudaStream_t stream);

// Causal paged attention, split over keys: every (token, kv head, split) block handles
// the query heads of that kv head against keys [split * per, (split + 1) * per) of the
// token's n_keys = position + 1, per = ceil(n_keys / n_splits). With n_splits > 1 the
// partial results (max, sum, acc) go to part_* and the last block to finish of each
// (token, kv head, head group) combines them; split_count holds its zeroed counters.
// Optionally fused: the 8-bit quantization of out for the o_proj product (out_q/qd/qs).
struct AttentionParams {
  float* out;      // [n, n_heads * head_dim]
  const float* q;  // [n, n_heads * head_dim]
  const void* k_cache;
  const void* v_cache;
  const int32_t* positions;     // [n]
  const int32_t* table_offset;  // [n] offset of the token's block table in block_tables
  const int32_t* block_tables;  // all sequences' tables, concatenated
  float* part_acc;  // [n, n_heads, n_splits, head_dim]
  float* part_ml;   // [n, n_heads, n_splits, 2]
  int32_t* split_count;  // [n, n_kv_heads * ceil(group / 4)], zero between launches
  int8_t* out_q;    // optional: out quantized as launch_quantize_x writes it
  float* out_qd;
  float* out_qs;
  XHalf out_qh;     // optional, with out_q
  int64_t n;
  int32_t n_heads, n_kv_heads, head_dim, block_size, n_splits, kind;  // kind as KvStoreParams
  float scale;
  int32_t keys_in_flight;  // per warp: 2, or 0 for the default, 4
  // 1: the tensor-core decode kernel of decode_attention.cu runs this launch instead (f16
  // or q8_0 cache, decode_attention_applies), `stages` key tiles in flight per warp (1-4),
  // split_count [n, n_kv_heads]; the other fields as above.
  int32_t tensor_cores;
  int32_t stages;
  int32_t warps;  // the decode kernel's warps a block: 4 (or 0) or 8
};
void launch_attention(const AttentionParams& p, cudaStream_t stream);
bool attention_head_dim_supported(int64_t head_dim);

// ---- decode_attention.cu -----------------------------------------------------------------
// AttentionParams with tensor_cores = 1 (launch_attention calls it): one block per (token,
// kv head, key split) with the whole GQA group (at most 16 heads), head_dim 64 or 128.
void launch_decode_attention(const AttentionParams& p, cudaStream_t stream);
bool decode_attention_applies(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int32_t kind);
int64_t decode_attention_smem(int64_t head_dim, int32_t kind, int stages, int warps = 4);  // bytes a block
// Key splits: at most `slots` blocks (those resident on the GPU at once), at least
// min_keys keys a split of the context's power-of-two bucket, at most 64 splits; a
// function of the batch shape and the bucket only.
int32_t decode_attention_splits(int64_t n_tokens, int64_t n_kv_heads, int64_t ctx_bucket, int64_t slots,
                                int min_keys);
int64_t decode_attention_launches();  // launches so far in this process (tests check the kernel ran)

// ---- flash_attention.cu ------------------------------------------------------------------
// The attention of AttentionParams for prompt steps, on tensor cores, from an f16 or an
// 8-bit (q8_0) cache (dequantized to f16 in shared memory), no fused quantization. Work is cut into query tiles, each a run of consecutive tokens of one
// sequence; one block computes a tile against one kv head, the tile's rows being its
// tokens times the group's query heads: at most 64 * row_tiles rows, so at most
// 64 * row_tiles / group tokens.
struct FlashAttentionParams {
  float* out;      // [n, n_heads * head_dim]
  const float* q;  // [n, n_heads * head_dim]
  const void* k_cache;  // [n_slots, n_kv_heads * head_dim], f16 or q8_0 rows
  const void* v_cache;
  const int32_t* positions;     // [n]
  const int32_t* table_offset;  // [n]
  const int32_t* block_tables;
  const int32_t* tiles;  // [n_tiles, 4]: first token, tokens, smallest and largest position
  int64_t n;
  int32_t n_tiles, n_heads, n_kv_heads, head_dim, block_size;
  int32_t row_tiles;  // 16-row tiles per warp: 1 or 2 (head_dim <= 128)
  int32_t key_tile;   // keys per shared-memory tile; 0: the kernel's default
  float scale;
  int32_t q8;  // the cache is q8_0
  int32_t pad;
};
void launch_flash_attention(const FlashAttentionParams& p, cudaStream_t stream);
// Shared memory a block needs (bytes), 0 if no kernel has that shape (head_dim 64, 128 or
// 256; row_tiles 2 only up to 128); the caller checks it against the device's limit.
int64_t flash_attention_smem(int64_t head_dim, int row_tiles, int key_tile, bool q8 = false);

// ---- elementwise.cu ----------------------------------------------------------------------
// Optionally fused: the 8-bit quantization of out (n % 32 == 0), as in RmsNormParams.
struct SwigluParams {
  float* out;
  const float* gate;
  const float* up;
  int8_t* q;
  float* qd;
  float* qs;
  XHalf qh;  // optional, with q
  int64_t n;
  // Optional: gate and up are the merged product just before whose K splits were not added
  // (MmaParams::reduce_later). Each comes from partial [splits][n / cols][2 * cols], summed
  // in split order as mma_f16_reduce_kernel sums it, and is stored to gate_out / up_out
  // (the product's outputs) as that launch would have, before out is written.
  const float* partial;
  float* gate_out;
  float* up_out;
  int64_t cols;  // gate's row length (up's); n * 2 * splits < 2^31
  int32_t splits;
};
void launch_swiglu(const SwigluParams& p, cudaStream_t stream);
int64_t swiglu_split_launches();  // launches that added a product's splits so far (tests)

struct AddParams {
  float* out;
  const float* a;
  const float* b;
  int64_t n;
};
void launch_add(const AddParams& p, cudaStream_t stream);

struct AddBiasParams {
  float* x;
  const float* bias;
  int64_t rows, cols;
};
void launch_add_bias(const AddBiasParams& p, cudaStream_t stream);

// out[i, :] = x[rows[i], :]
struct GatherParams {
  float* out;
  const float* x;
  const int32_t* rows;
  int64_t n_out, cols;
};
void launch_gather_rows(const GatherParams& p, cudaStream_t stream);

// The k best columns of each logits row (top_k.cu): ids[r * k + j] and values[r * k + j],
// best first by (value desc, column asc) among columns [0, n_valid), -inf and NaN left
// out, padded with id -1. partial: [rows, segments, k] keys between the two launches.
constexpr int32_t kTopKMax = 128;          // largest k
constexpr int32_t kTopKSegment = 8192;     // columns a block of the first launch selects from
constexpr int32_t kTopKMergeKeys = 8192;   // segments * k a row, at most
struct TopKParams {
  const float* x;  // [rows, ld]
  int64_t ld;
  int64_t rows;
  int32_t n_valid, k, segments;
  uint64_t* partial;
  int32_t* ids;
  float* values;
};
void launch_top_k(const TopKParams& p, cudaStream_t stream);

// out[t, :] = row tokens[t] of the table, dequantized.
struct EmbedParams {
  float* out;
  DevWeight table;
  const int32_t* tokens;
  int64_t n;
};
void launch_embed(const EmbedParams& p, cudaStream_t stream);

}  // namespace hearth::cuda
