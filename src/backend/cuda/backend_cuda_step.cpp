// The CUDA backend's step upload and ops: shape checks on the host, then one launch (or
// recorded launch) per op. See backend_cuda.h for the conventions.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/backend_cuda.h"

namespace hearth::cuda {
namespace {

// f16 dequantization tile of the prompt products: 128 MiB, so every product of an 8B model
// (at most 12288 x 4096) is one GEMM; on an H100, 8B Q4_K_M pp512 ran at 12,269 / 18,071 /
// 22,600 tok/s with 32 / 64 / 128 MiB tiles (2026-11-26). HEARTH_CUDA_TILE_MB: experiments.
const int64_t kTileElems = [] {
  const char* e = std::getenv("HEARTH_CUDA_TILE_MB");
  const int64_t mb = e && std::atoi(e) > 0 ? std::atoi(e) : 128;
  return mb << 19;  // 2 bytes an element
}();

int32_t float_kind(DType t) { return t == DType::F16 ? 1 : t == DType::BF16 ? 2 : 0; }

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int64_t unit_elems(const Weight& w) {
  switch (w.type) {
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return 64;
    case DType::F32: case DType::F16: case DType::BF16: return w.cols % 8 == 0 ? 8 : 1;
    default: return 32;
  }
}

DevWeight dev_weight(const Weight& w) {
  DevWeight d = zeroed<DevWeight>();
  d.data = static_cast<const uint8_t*>(w.data);
  d.scales = w.scales;
  d.biases = w.biases;
  d.rows = w.rows;
  d.cols = w.cols;
  d.row_bytes = w.row_bytes();
  d.type = w.type;
  if (w.type == DType::MLX_AFFINE) {
    d.groups_per_row = w.cols / w.group_size;
    d.scale_kind = float_kind(w.scale_type);
    d.bits = w.bits;
    d.group_size = w.group_size;
  }
  return d;
}

int64_t align256(int64_t n) { return (n + 255) / 256 * 256; }

void check_device(const Tensor& t) { HEARTH_ASSERT(t.device == Device::CUDA && t.dtype == DType::F32); }

}  // namespace

void CudaBackend::begin_step(const StepBatch& batch) {
  tape_.flush(stream_);
  const int64_t n = batch.n_tokens();
  HEARTH_ASSERT(static_cast<int64_t>(batch.positions.size()) == n && static_cast<int64_t>(batch.slots.size()) == n &&
                static_cast<int64_t>(batch.seq_of.size()) == n);
  const int64_t capacity = static_cast<int64_t>(kv_config_.n_blocks) * kv_config_.block_size;
  std::vector<int32_t> seq_start(batch.seqs.size());
  int64_t n_tables = 0;
  max_ctx_ = 0;
  for (size_t s = 0; s < batch.seqs.size(); ++s) {
    const auto& seq = batch.seqs[s];
    HEARTH_ASSERT(static_cast<int64_t>(seq.block_table.size()) * kv_config_.block_size >= seq.n_ctx);
    for (int32_t b : seq.block_table) HEARTH_ASSERT(b >= 0 && b < kv_config_.n_blocks);
    seq_start[s] = static_cast<int32_t>(n_tables);
    n_tables += static_cast<int64_t>(seq.block_table.size());
    max_ctx_ = std::max(max_ctx_, seq.n_ctx);
  }
  for (int64_t t = 0; t < n; ++t) {
    HEARTH_ASSERT(batch.slots[t] >= 0 && batch.slots[t] < capacity);
    HEARTH_ASSERT(batch.seq_of[t] >= 0 && batch.seq_of[t] < static_cast<int32_t>(batch.seqs.size()));
    HEARTH_ASSERT(batch.positions[t] >= 0 && batch.positions[t] < batch.seqs[batch.seq_of[t]].n_ctx);
  }
  for (int32_t r : batch.logit_rows) HEARTH_ASSERT(r >= 0 && r < n);
  step_ = batch;

  const int64_t need_tokens = std::max<int64_t>({n, static_cast<int64_t>(batch.logit_rows.size()), 1});
  if (need_tokens > cap_tokens_ || n_tables > cap_tables_) {
    sync();  // nothing queued uses the old buffers any more
    cap_tokens_ = std::max<int64_t>(std::bit_ceil(static_cast<uint64_t>(need_tokens)), 16);
    cap_tables_ = std::max<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(n_tables, 1))), 256);
    const size_t bytes = static_cast<size_t>(40 * cap_tokens_ + 4 * cap_tables_);
    if (staging_) cudaFreeHost(staging_);
    staging_ = nullptr;
    check(cudaMallocHost(reinterpret_cast<void**>(&staging_), bytes), "cudaMallocHost (step staging)");
    step_buf_ = std::make_unique<DeviceBuffer>(bytes, "the step's token data");
    auto* base = static_cast<char*>(step_buf_->ptr);
    d_tokens_ = reinterpret_cast<const int32_t*>(base);
    d_positions_ = reinterpret_cast<const int32_t*>(base + 4 * cap_tokens_);
    d_table_offset_ = reinterpret_cast<const int32_t*>(base + 8 * cap_tokens_);
    d_logit_rows_ = reinterpret_cast<const int32_t*>(base + 12 * cap_tokens_);
    d_slots_ = reinterpret_cast<const int64_t*>(base + 16 * cap_tokens_);
    d_tables_ = reinterpret_cast<const int32_t*>(base + 24 * cap_tokens_);
    d_flash_tiles_ = reinterpret_cast<const int32_t*>(base + 24 * cap_tokens_ + 4 * cap_tables_);
  }
  // The previous upload must have left the pinned staging buffer before it is rewritten.
  check(cudaEventSynchronize(upload_done_), "cudaEventSynchronize");
  char* h = staging_;
  std::memcpy(h, batch.tokens.data(), 4 * n);
  std::memcpy(h + 4 * cap_tokens_, batch.positions.data(), 4 * n);
  auto* offsets = reinterpret_cast<int32_t*>(h + 8 * cap_tokens_);
  for (int64_t t = 0; t < n; ++t) offsets[t] = seq_start[batch.seq_of[t]];
  std::memcpy(h + 12 * cap_tokens_, batch.logit_rows.data(), 4 * batch.logit_rows.size());
  std::memcpy(h + 16 * cap_tokens_, batch.slots.data(), 8 * n);
  auto* tables = reinterpret_cast<int32_t*>(h + 24 * cap_tokens_);
  for (const auto& seq : batch.seqs) tables = std::copy(seq.block_table.begin(), seq.block_table.end(), tables);
  const size_t used = static_cast<size_t>(24 * cap_tokens_ + 4 * n_tables);
  check(cudaMemcpyAsync(step_buf_->ptr, staging_, used, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (step)");
  check(cudaEventRecord(upload_done_, stream_), "cudaEventRecord");
  // Steps whose products all avoid cuBLAS are recorded (a product that needs it flushes).
  // Past 8 tokens only pure decode steps (one token a sequence): prompts of 9-64 tokens
  // come in every length, and each new length would build (and evict) a graph of its own.
  const bool one_token_each = static_cast<int64_t>(batch.seqs.size()) == n;
  tape_.set_recording(graphs_enabled_ &&
                      (n <= kGemvMaxTokens || (mma_ && n <= kMmaMaxTokens && one_token_each)));
  qx_in_.valid = xh_in_.valid = false;
  flash_tiles_key_ = 0;
  step_split_ = false;
}

void CudaBackend::wrote(const Tensor& t) {
  const int64_t bytes = t.numel() * static_cast<int64_t>(sizeof(float));
  qx_in_.drop_if_overlaps(t.data, bytes);
  xh_in_.drop_if_overlaps(t.data, bytes);
}

void CudaBackend::embed(Tensor out, const Weight& table) {
  check_device(out);
  HEARTH_ASSERT(out.rows() == step_.n_tokens() && out.cols() == table.cols);
  for (int32_t id : step_.tokens)
    HEARTH_CHECK(id >= 0 && id < table.rows, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                 std::to_string(table.rows) + " rows)");
  auto p = zeroed<EmbedParams>();
  p.out = out.f32();
  p.table = dev_weight(table);
  p.tokens = d_tokens_;
  p.n = step_.n_tokens();
  launch<EmbedParams, launch_embed>(p);
  wrote(out);
}

void CudaBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  check_device(out), check_device(x), check_device(weight);
  const int64_t dim = weight.numel();
  HEARTH_ASSERT(x.numel() == out.numel() && dim > 0 && x.numel() % dim == 0);
  // A layer's first norm is where the step's first part ends (split_ops_): no fusion looks
  // back past it, unless an add waits to be folded into it. Per-head norms (q, k) are not.
  const int64_t rows = x.numel() / dim;
  if (tape_.recording() && !step_split_ && split_ops_ > 0 && static_cast<int64_t>(tape_.size()) >= split_ops_ &&
      rows == step_.n_tokens() && !tape_.is<AddParams, launch_add>(0)) {
    tape_.flush(stream_);
    step_split_ = true;
  }
  auto p = zeroed<RmsNormParams>();
  p.out = out.f32();
  p.x = x.f32();
  p.w = weight.f32();
  p.rows = rows;
  p.dim = dim;
  p.eps = eps;
  fuse_residual_add(p);
  launch<RmsNormParams, launch_rms_norm>(p);
  wrote(out);
}

int CudaBackend::gemv_rows_per_block(const Weight& w) const {
  // Long rows: enough threads per row that each loads its units in one round trip to
  // memory (as many as the kernel loads before using any) instead of looping; measured on
  // an H100, a 4096 x 12288 q6_K product took 28 us with 32 threads a row. Few rows: more
  // threads per row to fill the GPU, while there are units for them.
  if (gemv_rpb_) return gemv_rpb_;
  const int64_t units = w.cols / unit_elems(w), in_flight = unit_elems(w) == 32 ? 4 : 2;  // as matmul.cu
  int rpb = 4;
  while (rpb > 1 && units > in_flight * (128 / rpb)) rpb /= 2;
  while (rpb > 1 && w.rows / rpb < 4 * sm_count_ && 256 / rpb <= units) rpb /= 2;
  return rpb;
}

int CudaBackend::gemv_rows_per_block(const DevWeight& d, int64_t rows) const {
  Weight w;
  w.type = d.type;
  w.cols = d.cols;
  w.rows = rows;
  return gemv_rows_per_block(w);
}

void CudaBackend::plan_mma_splits(MmaParams& p, int64_t rows) {
  DevWeight all = p.w;
  all.rows = rows;
  p.splits = mma_splits_ > 0 ? std::min<int32_t>(mma_splits_, static_cast<int32_t>((p.w.cols + 255) / 256))
                             : mma_plan_splits(all, p.n, sm_count_);
  p.partial = nullptr;
  if (p.splits > 1)
    p.partial = static_cast<float*>(scratch(mma_part_, static_cast<size_t>(p.splits * p.n * rows) * sizeof(float),
                                            "tensor-core partial sums"));
}

bool CudaBackend::use_mma(const Weight& w, int64_t n) const {
  return mma_ && n >= mma_min_tokens_ && n <= kMmaMaxTokens && mma_type_supported(w.type, w.bits);
}

void CudaBackend::quantized_x(Tensor x, const int8_t** q_out, const float** d_out, const float** s_out,
                              const uint16_t** h_out, bool norm_slices) {
  const int64_t n = x.rows(), cols = x.cols();
  const int64_t blocks = n * cols / 32, q_bytes = align256(n * cols), f_bytes = align256(4 * blocks);
  // The f16 copy for mma_f16.cu's tensor-copy form: made whenever n is a batched product's,
  // so that every product of this x finds it (n alone decides).
  const bool with_h = mma_ && n >= std::max(mma_min_tokens_, kXHalfMinTokens) && n <= kMmaMaxTokens;
  const int64_t h_bytes = with_h ? align256(2 * x_half_elems(n, cols)) : 0;
  if (!qx_in_.holds(x.data, n, cols)) {
    auto* base =
        static_cast<char*>(scratch(qx_, static_cast<size_t>(q_bytes + 2 * f_bytes + h_bytes), "quantized activations"));
    auto q = zeroed<QuantizeXParams>();
    q.x = x.f32();
    q.q = reinterpret_cast<int8_t*>(base);
    q.d = reinterpret_cast<float*>(base + q_bytes);
    q.s = reinterpret_cast<float*>(base + q_bytes + f_bytes);
    q.n = n;
    q.cols = cols;
    if (with_h) q.h = XHalf{reinterpret_cast<uint16_t*>(base + q_bytes + 2 * f_bytes), n, cols};
    if (!fuse_quantize(x, n, cols, q.q, q.d, q.s, q.h, norm_slices)) launch<QuantizeXParams, launch_quantize_x>(q);
    qx_in_.set(x.data, n, cols);
  }
  auto* base = static_cast<char*>(qx_->ptr);
  *q_out = reinterpret_cast<const int8_t*>(base);
  *d_out = reinterpret_cast<const float*>(base + q_bytes);
  *s_out = reinterpret_cast<const float*>(base + q_bytes + f_bytes);
  if (h_out) *h_out = with_h ? reinterpret_cast<const uint16_t*>(base + q_bytes + 2 * f_bytes) : nullptr;
}

void CudaBackend::matmul(Tensor out, Tensor x, const Weight& w) {
  check_device(out), check_device(x);
  HEARTH_ASSERT(x.cols() == w.cols && out.cols() == w.rows && out.rows() == x.rows());
  const int64_t n = x.rows();
  if (n == 0) return;
  if (use_mma(w, n)) {  // batched decode: tensor cores, the weight read once
    auto p = zeroed<MmaParams>();
    p.w = dev_weight(w);
    p.out = out.f32();
    p.n = n;
    quantized_x(x, &p.xq, &p.xd, &p.xs, &p.xh);
    if (!fuse_mma(p)) {
      plan_mma_splits(p, w.rows);
      launch<MmaParams, launch_mma>(p);
    }
  } else if (n <= kGemvMaxTokens) {
    auto p = zeroed<GemvParams>();
    p.w = dev_weight(w);
    p.out = out.f32();
    p.n = n;
    p.rows_per_block = gemv_rows_per_block(w);
    p.prefetch = gemv_prefetch_;
    if (is_float_type(w.type)) p.x = x.f32();
    else quantized_x(x, &p.xq, &p.xd, &p.xs, nullptr, w.type != DType::MLX_AFFINE);
    if (!fuse_gemv(p)) launch<GemvParams, launch_gemv>(p);
  } else {
    if (tape_.recording()) {  // cuBLAS stays out of graphs: run what was recorded, then go direct
      tape_.flush(stream_);
      tape_.set_recording(false);
    }
    const int64_t cols = w.cols;
    auto p = zeroed<TiledMatmulParams>();
    p.w = dev_weight(w);
    p.x = x.f32();
    p.out = out.f32();
    p.n = n;
    p.cublas = cublas_;
    if (w.type != DType::F32) {
      const size_t xh_bytes = static_cast<size_t>(2 * n * cols);
      p.xh_ready = xh_in_.holds(x.data, n, cols) && xh_->bytes >= xh_bytes ? 1 : 0;
      p.xh = static_cast<uint16_t*>(scratch(xh_, xh_bytes, "f16 activations"));
      xh_in_.set(x.data, n, cols);
    }
    if (w.type != DType::F32 && w.type != DType::F16) {
      p.tile_elems = std::min(kTileElems, w.rows * cols);
      p.tile = static_cast<uint16_t*>(scratch(tile_, static_cast<size_t>(2 * p.tile_elems), "f16 weight tiles"));
    }
    launch<TiledMatmulParams, launch_matmul_tiled>(p);
  }
  wrote(out);
}

void CudaBackend::add_bias(Tensor x, Tensor bias) {
  check_device(x), check_device(bias);
  HEARTH_ASSERT(x.cols() == bias.numel());
  auto p = zeroed<AddBiasParams>();
  p.x = x.f32();
  p.bias = bias.f32();
  p.rows = x.rows();
  p.cols = x.cols();
  launch<AddBiasParams, launch_add_bias>(p);
  wrote(x);
}

const float* CudaBackend::rope_freqs(const RopeTable& table) {
  for (const auto& f : rope_freqs_)
    if (f.host == table.inv_freq) return static_cast<const float*>(f.device->ptr);
  auto& f = rope_freqs_.emplace_back();
  f.host = table.inv_freq;
  f.device = std::make_unique<DeviceBuffer>(std::max<size_t>(table.inv_freq.size(), 1) * sizeof(float), "RoPE frequencies");
  check(cudaMemcpy(f.device->ptr, table.inv_freq.data(), table.inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice),
        "cudaMemcpy (RoPE)");
  return static_cast<const float*>(f.device->ptr);
}

void CudaBackend::rope(Tensor x, int64_t heads, int64_t head_dim, const RopeTable& table) {
  check_device(x);
  HEARTH_ASSERT(x.numel() == step_.n_tokens() * heads * head_dim);
  HEARTH_ASSERT(static_cast<int64_t>(table.inv_freq.size()) * 2 <= head_dim);
  auto p = zeroed<RopeParams>();
  p.x = x.f32();
  p.positions = d_positions_;
  p.inv_freq = rope_freqs(table);
  p.n = step_.n_tokens();
  p.heads = heads;
  p.head_dim = head_dim;
  p.half = static_cast<int64_t>(table.inv_freq.size());
  p.attn_factor = table.attn_factor;
  p.neox = table.neox ? 1 : 0;
  fuse_head_norm(p);
  launch<RopeParams, launch_rope>(p);
  wrote(x);
}

void CudaBackend::kv_store(int32_t layer, Tensor k, Tensor v) {
  check_device(k), check_device(v);
  const int64_t row = static_cast<int64_t>(kv_config_.n_kv_heads) * kv_config_.head_dim;
  HEARTH_ASSERT(layer >= 0 && layer < kv_config_.n_layers && kv_);
  HEARTH_ASSERT(k.cols() == row && v.cols() == row && k.rows() == step_.n_tokens() && v.rows() == k.rows());
  auto p = zeroed<KvStoreParams>();
  p.k = k.f32();
  p.v = v.f32();
  p.k_cache = kv_part(2 * layer);
  p.v_cache = kv_part(2 * layer + 1);
  if (fuse_kv_store(k, v, p.k_cache, p.v_cache)) return;
  p.slots = d_slots_;
  p.n = step_.n_tokens();
  p.row = row;
  p.kind = kv_kind();
  launch<KvStoreParams, launch_kv_store>(p);
}

int CudaBackend::attention_splits(int64_t n_tokens, int64_t n_heads) const {
  const int64_t group = n_heads / kv_config_.n_kv_heads;
  const int64_t blocks = n_tokens * kv_config_.n_kv_heads * ((group + 3) / 4);
  const auto bucket = static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max(max_ctx_, 1))));
  int64_t s = (2 * sm_count_ + blocks - 1) / blocks;    // enough blocks to fill the GPU twice
  // and at most ~128 keys a block (H100, 8B Q4_K_M, at most 64 / 128 / 256 keys: 8 sequences
  // at 512-576 positions 1,401 / 1,511 / 1,423 tok/s aggregate; one sequence at 4096
  // positions 167.1 / 214.4 / 222.4 tok/s: each split costs a partial state and its share
  // of the combine, so longer splits win until the GPU is no longer full)
  if (n_tokens <= kGemvMaxTokens) s = std::max(s, bucket / 128);
  // but at least ~32 keys a block: a split's partial sums and their combine cost more
  // than the keys they spread (H200, 8B Q4_K_M tg128: at least 2, 4, 8, 16, 32, 64 keys a
  // block gave 281.6, 299.4, 336.2, 357.6, 362.1, 351.8 tok/s).
  s = std::min({s, std::max<int64_t>(1, bucket / 32), int64_t{128}});
  return static_cast<int>(std::max<int64_t>(s, 1));
}

// Prompt steps with an f16 or q8_0 cache go to the tensor-core kernel; decode steps (whose
// launches may be fused with o_proj's quantization and replayed as graphs) and what it
// does not support keep the per-token kernel. Returns the kernel's row tiles per warp, 0
// for the per-token kernel: two (128 query rows a block, half the shared-memory traffic
// per product) where that still gives two blocks per SM, else one.
int CudaBackend::flash_attention_row_tiles(int64_t n_heads) const {
  const bool q8 = kv_config_.dtype == DType::Q8_0;
  if (!flash_ || step_.n_tokens() <= kGemvMaxTokens || (kv_config_.dtype != DType::F16 && !q8)) return 0;
  const int64_t hd = kv_config_.head_dim, group = n_heads / kv_config_.n_kv_heads;
  auto fits = [&](int mt) {
    const int64_t smem = flash_attention_smem(hd, mt, mt == 2 ? flash_key_tile_ : 0, q8);
    return smem > 0 && smem <= smem_optin_ && group <= 64 * mt;
  };
  const int64_t blocks2 = (step_.n_tokens() * group + 127) / 128 * kv_config_.n_kv_heads;
  if (fits(2) && (flash_row_tiles_ == 2 || (flash_row_tiles_ == 0 && blocks2 >= 2 * sm_count_))) return 2;
  return fits(1) ? 1 : 0;
}

// Steps of 1-8 tokens, and of 9-64 with at most two a sequence (decode, not prompts), with
// an f16 or q8_0 cache go to the tensor-core decode kernel where it has the shape
// (decode_attn_). Single tokens too: H100, 8B Q4_K_M, tg128 330.1 -> 345.5 tok/s and one
// sequence decoding at 4096 positions 215.8 -> 265.0 against the per-token kernel.
bool CudaBackend::decode_attention_on(int64_t n_heads) const {
  const int64_t n = step_.n_tokens(), seqs = static_cast<int64_t>(step_.seqs.size());
  if (decode_attn_ == 0 || n > kMmaMaxTokens) return false;
  if (n > kGemvMaxTokens && n > 2 * seqs) return false;  // prompts: flash attention
  return decode_attention_applies(n_heads, kv_config_.n_kv_heads, kv_config_.head_dim, kv_kind()) &&
         decode_attention_smem(kv_config_.head_dim, kv_kind(), decode_stages_) <= smem_optin_;
}

// Query tiles for flash attention: runs of consecutive tokens of one sequence, at most
// 64 * row_tiles / group long, as {first token, tokens, min position, max position}; the
// tiles with the most keys first, so that the longest blocks start early and the short
// ones fill the tail. Built once per step (every layer has the same group).
int32_t CudaBackend::flash_attention_tiles(int64_t group, int row_tiles) {
  const int64_t key = group * 4 + row_tiles;
  if (flash_tiles_key_ == key) return flash_n_tiles_;
  const int64_t n = step_.n_tokens(), per = 64 * row_tiles / group;
  std::vector<std::array<int32_t, 4>> tiles;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t pos = step_.positions[static_cast<size_t>(t)];
    auto* last = tiles.empty() ? nullptr : &tiles.back();
    if (last && step_.seq_of[static_cast<size_t>(last->at(0))] == step_.seq_of[static_cast<size_t>(t)] &&
        last->at(0) + last->at(1) == t && last->at(1) < per) {
      last->at(1) += 1;
      last->at(2) = std::min(last->at(2), pos);
      last->at(3) = std::max(last->at(3), pos);
    } else {
      tiles.push_back({static_cast<int32_t>(t), 1, pos, pos});
    }
  }
  std::stable_sort(tiles.begin(), tiles.end(), [](const auto& a, const auto& b) { return a[3] > b[3]; });
  // Uploaded like the rest of the step (at most one tile per token, so they fit): through
  // the pinned staging buffer, whose next rewrite waits for upload_done_ (as here, should a
  // step's layers ever differ in their tiling).
  if (flash_tiles_key_ != 0) check(cudaEventSynchronize(upload_done_), "cudaEventSynchronize");
  const size_t offset = static_cast<size_t>(24 * cap_tokens_ + 4 * cap_tables_), bytes = 16 * tiles.size();
  std::memcpy(staging_ + offset, tiles.data(), bytes);
  check(cudaMemcpyAsync(static_cast<char*>(step_buf_->ptr) + offset, staging_ + offset, bytes, cudaMemcpyHostToDevice,
                        stream_),
        "cudaMemcpyAsync (flash attention tiles)");
  check(cudaEventRecord(upload_done_, stream_), "cudaEventRecord");
  flash_tiles_key_ = key;
  flash_n_tiles_ = static_cast<int32_t>(tiles.size());
  return flash_n_tiles_;
}

void CudaBackend::attention(Tensor out, Tensor q, int32_t layer, int64_t n_heads, float scale) {
  check_device(out), check_device(q);
  const int64_t hd = kv_config_.head_dim, n = step_.n_tokens();
  HEARTH_ASSERT(layer >= 0 && layer < kv_config_.n_layers && kv_);
  HEARTH_ASSERT(q.numel() == n * n_heads * hd && out.numel() == q.numel() && out.data != q.data);
  HEARTH_ASSERT(n_heads % kv_config_.n_kv_heads == 0);
  auto common = [&](auto& p) {  // the fields both attention kernels take
    p.out = out.f32();
    p.q = q.f32();
    p.k_cache = kv_part(2 * layer);
    p.v_cache = kv_part(2 * layer + 1);
    p.positions = d_positions_;
    p.table_offset = d_table_offset_;
    p.block_tables = d_tables_;
    p.n = n;
    p.n_heads = static_cast<int32_t>(n_heads);
    p.n_kv_heads = kv_config_.n_kv_heads;
    p.head_dim = static_cast<int32_t>(hd);
    p.block_size = kv_config_.block_size;
    p.scale = scale;
  };
  const bool tc = decode_attention_on(n_heads);
  if (const int row_tiles = tc ? 0 : flash_attention_row_tiles(n_heads)) {
    auto f = zeroed<FlashAttentionParams>();
    common(f);
    f.n_tiles = flash_attention_tiles(n_heads / kv_config_.n_kv_heads, row_tiles);
    f.row_tiles = row_tiles;
    f.key_tile = row_tiles == 2 ? flash_key_tile_ : 0;
    f.tiles = d_flash_tiles_;
    f.q8 = kv_config_.dtype == DType::Q8_0 ? 1 : 0;
    launch<FlashAttentionParams, launch_flash_attention>(f);
    wrote(out);
    return;
  }
  auto p = zeroed<AttentionParams>();
  common(p);
  p.kind = kv_kind();
  p.keys_in_flight = attn_keys_;
  if (tc) {
    const auto bucket = static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max(max_ctx_, 1))));
    p.tensor_cores = 1;
    p.stages = decode_stages_;
    // As many blocks as are resident at once (a second wave would start with empty
    // pipelines): by shared memory, 2 an SM at head_dim 128 and 3 stages.
    const auto splits_at = [&](int warps) {
      const int64_t smem = decode_attention_smem(hd, p.kind, p.stages, warps);
      const int64_t per_sm =
          decode_blocks_ > 0 ? decode_blocks_ : std::max<int64_t>(1, (smem_optin_ + 1024) / (smem + 1024));
      return decode_attention_splits(n, kv_config_.n_kv_heads, bucket, per_sm * sm_count_, decode_min_keys_);
    };
    p.n_splits = splits_at(4);
    // 8 warps a block where blocks of 4 would fill at most half the multiprocessors (one
    // sequence, or a few with few kv heads): each warp's chain of key tiles is half as long.
    const bool fits8 = decode_attention_smem(hd, p.kind, p.stages, 8) <= smem_optin_;
    const bool few = n * kv_config_.n_kv_heads * p.n_splits * 2 <= sm_count_;
    if (fits8 && (decode_warps_ == 8 || (decode_warps_ == 0 && few))) p.warps = 8, p.n_splits = splits_at(8);
  } else {
    p.n_splits = attention_splits(n, n_heads);
  }
  if (p.n_splits > 1) {
    const int64_t parts = n * n_heads * p.n_splits;
    auto* part = static_cast<float*>(scratch(attn_part_, static_cast<size_t>(parts * (hd + 2)) * sizeof(float),
                                             "attention partials"));
    p.part_acc = part;
    p.part_ml = part + parts * hd;
    const int64_t counters = n * kv_config_.n_kv_heads * ((n_heads / kv_config_.n_kv_heads + 3) / 4);
    const size_t count_bytes = static_cast<size_t>(counters) * sizeof(int32_t);
    const bool fresh = !attn_count_ || attn_count_->bytes < count_bytes;
    p.split_count = static_cast<int32_t*>(scratch(attn_count_, count_bytes, "attention split counters"));
    if (fresh)  // the kernels leave them at zero; a new buffer starts there
      check(cudaMemsetAsync(p.split_count, 0, attn_count_->bytes, stream_), "cudaMemsetAsync (attention counters)");
  }
  launch<AttentionParams, launch_attention>(p);
  wrote(out);
}

void CudaBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  check_device(out), check_device(gate), check_device(up);
  HEARTH_ASSERT(gate.numel() == up.numel() && out.numel() == gate.numel());
  auto p = zeroed<SwigluParams>();
  p.out = out.f32();
  p.gate = gate.f32();
  p.up = up.f32();
  p.n = gate.numel();
  fuse_swiglu_splits(p);
  launch<SwigluParams, launch_swiglu>(p);
  wrote(out);
}

void CudaBackend::add(Tensor out, Tensor a, Tensor b) {
  check_device(out), check_device(a), check_device(b);
  HEARTH_ASSERT(a.numel() == b.numel() && out.numel() == a.numel());
  auto p = zeroed<AddParams>();
  p.out = out.f32();
  p.a = a.f32();
  p.b = b.f32();
  p.n = a.numel();
  if (!fuse_residual_gemv(p)) launch<AddParams, launch_add>(p);
  wrote(out);
}

void CudaBackend::gather_logit_rows(Tensor out, Tensor x) {
  check_device(out), check_device(x);
  HEARTH_ASSERT(out.cols() == x.cols() && out.rows() == static_cast<int64_t>(step_.logit_rows.size()));
  HEARTH_ASSERT(out.data != x.data);
  for (int32_t r : step_.logit_rows) HEARTH_ASSERT(r < x.rows());
  auto p = zeroed<GatherParams>();
  p.out = out.f32();
  p.x = x.f32();
  p.rows = d_logit_rows_;
  p.n_out = out.rows();
  p.cols = x.cols();
  launch<GatherParams, launch_gather_rows>(p);
  wrote(out);
}

}  // namespace hearth::cuda
