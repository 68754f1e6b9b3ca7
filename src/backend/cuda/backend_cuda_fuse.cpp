// Peephole fusion of recorded decode launches. While a step is recorded (LaunchTape, at
// most 8 tokens) nothing has run yet, so an op may replace the launch just recorded
// before it with one launch doing both. Each rule checks that the earlier launch produced
// exactly the tensor this op consumes and that nothing recorded in between touches it;
// anything else records the plain launch. The fused kernels are the plain ones with
// optional outputs (ops.h), tested by the same op and model tests with fusion on
// (default) and off (HEARTH_CUDA_FUSE=0). For a Qwen3 layer:
//   add + rms_norm + quantize_x      -> one rms_norm launch (both norms of a layer)
//   gemv q, gemv k, gemv v           -> one gemv launch (and gate/up: one more)
//   gemv q/k, gemv v of another type -> one pair launch, one token (Q4_K_M's Q6_K v)
//   mma q, mma k, mma v              -> one mma launch, batched decode (and gate/up);
//                                       weights of one type, mma_f16.cu's kernel only
//   rms_norm(q) .. rope(q)           -> one rope launch with the per-head norm
//   rms_norm(k) .. rope(k) kv_store  -> one rope launch that also writes the cache,
//                                       and also does q's norm + rope when that came just before
//   swiglu + quantize_x              -> one swiglu launch
//   mma gate/up's split reduce, swiglu -> the swiglu launch adds the splits (batched decode)
//   mma q/k/v's split reduce, rope    -> the q/k rope + KV store launch adds them
//   attention + quantize_x           -> one attention launch (o_proj's input)
//   gemv o/down, add into x          -> one gemv launch adding its rows into x (one
//                                       token; matmul.cu adds after the product where
//                                       the stream kernel does not apply)
#include <algorithm>

#include "backend/cuda/backend_cuda.h"

namespace hearth::cuda {
namespace {

bool overlaps(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  const auto* pa = static_cast<const char*>(a);
  const auto* pb = static_cast<const char*>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

}  // namespace

bool CudaBackend::fuse_quantize(const Tensor& x, int64_t n, int64_t cols, int8_t* q, float* qd, float* qs,
                                const XHalf& h, bool norm_slices) {
  if (!fuse_ || cols % 32 != 0) return false;
  if (tape_.is<RmsNormParams, launch_rms_norm>(0)) {
    auto r = tape_.get<RmsNormParams>(0);
    if (r.out != x.data || r.dim != cols || r.rows != n || r.q) return false;
    r.q = q, r.qd = qd, r.qs = qs, r.qh = h;
    r.slices = norm_slices ? 1 : 0;
    tape_.erase(0);
    launch<RmsNormParams, launch_rms_norm>(r);
    return true;
  }
  if (tape_.is<AttentionParams, launch_attention>(0)) {
    auto a = tape_.get<AttentionParams>(0);
    if (a.out != x.data || a.n != n || static_cast<int64_t>(a.n_heads) * a.head_dim != cols || a.head_dim % 32 || a.out_q)
      return false;
    a.out_q = q, a.out_qd = qd, a.out_qs = qs, a.out_qh = h;
    tape_.erase(0);
    launch<AttentionParams, launch_attention>(a);
    return true;
  }
  if (tape_.is<SwigluParams, launch_swiglu>(0)) {
    auto s = tape_.get<SwigluParams>(0);
    if (s.out != x.data || s.n != n * cols || s.q) return false;
    s.q = q, s.qd = qd, s.qs = qs, s.qh = h;
    tape_.erase(0);
    launch<SwigluParams, launch_swiglu>(s);
    return true;
  }
  return false;
}

void CudaBackend::fuse_residual_add(RmsNormParams& p) {
  if (!fuse_ || !tape_.is<AddParams, launch_add>(0)) return;
  const auto a = tape_.get<AddParams>(0);
  // x = x + b recorded just before norm(x): the norm adds b itself and writes x back.
  if (a.out != p.x || a.a != p.x || a.n != p.rows * p.dim || a.b == p.x) return;
  p.add = a.b;
  tape_.erase(0);
}

bool CudaBackend::split_product_before(MmaParams* m) const {
  if (!fuse_splits_ || !tape_.is<MmaParams, launch_mma>(0)) return false;
  *m = tape_.get<MmaParams>(0);
  return m->splits > 1 && m->partial && m->data2 && !m->reduce_later;
}

void CudaBackend::defer_reduce(MmaParams m) {
  m.reduce_later = 1;
  tape_.erase(0);
  launch<MmaParams, launch_mma>(m);
}

void CudaBackend::fuse_swiglu_splits(SwigluParams& p) {
  MmaParams m;
  if (!split_product_before(&m)) return;
  // swiglu(gate, up) of exactly the merged two-weight product just recorded: the swiglu
  // launch adds the splits (in the reduce's order) and stores gate and up too.
  const int64_t cols = m.w.rows;
  if (m.data3 || m.rows2 != cols || m.out != p.gate || m.out2 != p.up || m.n * cols != p.n ||
      p.n * 2 * m.splits >= (int64_t{1} << 31))
    return;
  defer_reduce(m);
  p.partial = m.partial, p.gate_out = m.out, p.up_out = m.out2, p.cols = cols, p.splits = m.splits;
}

bool CudaBackend::fuse_gemv(const GemvParams& p) {
  if (!fuse_ || !tape_.is<GemvParams, launch_gemv>(0)) return false;
  auto m = tape_.get<GemvParams>(0);
  const bool same_input = m.x == p.x && m.xq == p.xq && m.xd == p.xd && m.xs == p.xs && m.n == p.n;
  const bool same_kind = m.w.type == p.w.type && m.w.cols == p.w.cols && m.w.row_bytes == p.w.row_bytes &&
                         m.w.bits == p.w.bits && m.w.group_size == p.w.group_size && m.w.scale_kind == p.w.scale_kind &&
                         m.w.groups_per_row == p.w.groups_per_row;
  // The earlier product must not write what this one reads (it never does in a layer).
  const int64_t x_bytes = p.n * p.w.cols * static_cast<int64_t>(sizeof(float));
  if (p.x && overlaps(m.out, m.n * m.w.rows * 4, p.x, x_bytes)) return false;
  if (fuse_pair_ && same_input && !same_kind && p.n == 1 && m.w.cols == p.w.cols && !m.residual && !p.residual &&
      gemv_pair_supported(m.w.type, p.w.type) && gemv_stream_on()) {
    auto pair = zeroed<GemvPairParams>();
    pair.a = m, pair.b = p;
    tape_.erase(0);
    launch<GemvPairParams, launch_gemv_pair>(pair);
    return true;
  }
  if (!same_input || !same_kind || m.data3 || m.residual) return false;
  if (m.blocks1 == 0) {
    m.data2 = p.w.data, m.scales2 = p.w.scales, m.biases2 = p.w.biases, m.out2 = p.out, m.rows2 = p.w.rows;
  } else {
    m.data3 = p.w.data, m.scales3 = p.w.scales, m.biases3 = p.w.biases, m.out3 = p.out, m.rows3 = p.w.rows;
  }
  const int64_t rows = m.w.rows + m.rows2 + m.rows3;
  m.rows_per_block = gemv_rows_per_block(m.w, rows);
  const int64_t rpb = m.rows_per_block;
  m.blocks1 = static_cast<int32_t>((m.w.rows + rpb - 1) / rpb);
  m.blocks2 = m.blocks1 + static_cast<int32_t>((m.rows2 + rpb - 1) / rpb);
  tape_.erase(0);
  launch<GemvParams, launch_gemv>(m);
  return true;
}

bool CudaBackend::fuse_residual_gemv(const AddParams& a) {
  if (!fuse_residual_ || !tape_.is<GemvParams, launch_gemv>(0)) return false;
  auto g = tape_.get<GemvParams>(0);
  // out = out + (the one-token, one-weight product just recorded), out none of its inputs.
  const float* product = a.a == a.out ? a.b : a.b == a.out ? a.a : nullptr;
  if (!product || product != g.out || product == a.out || g.n != 1 || g.blocks1 > 0 || g.residual || a.n != g.w.rows)
    return false;
  const int64_t bytes = a.n * static_cast<int64_t>(sizeof(float)), cols = g.w.cols;
  const bool reads = (g.x && overlaps(a.out, bytes, g.x, cols * 4)) || (g.xq && overlaps(a.out, bytes, g.xq, cols)) ||
                     (g.xd && overlaps(a.out, bytes, g.xd, cols / 8)) ||
                     (g.xs && overlaps(a.out, bytes, g.xs, cols / 8));
  if (reads) return false;
  g.residual = a.out;
  tape_.erase(0);
  launch<GemvParams, launch_gemv>(g);
  return true;
}

bool CudaBackend::fuse_mma(const MmaParams& p) {
  if (!fuse_ || !tape_.is<MmaParams, launch_mma>(0)) return false;
  auto m = tape_.get<MmaParams>(0);
  // The products read only the quantized x, which no product writes.
  const bool same_input = m.xq == p.xq && m.xd == p.xd && m.xs == p.xs && m.xh == p.xh && m.n == p.n;
  const bool same_kind = m.w.type == p.w.type && m.w.cols == p.w.cols && m.w.row_bytes == p.w.row_bytes &&
                         m.w.bits == p.w.bits && m.w.group_size == p.w.group_size &&
                         m.w.scale_kind == p.w.scale_kind && m.w.groups_per_row == p.w.groups_per_row;
  if (!same_input || !same_kind || m.data3 || !mma_f16_applies(m.w) || !mma_f16_applies(p.w)) return false;
  if (!m.data2) m.data2 = p.w.data, m.out2 = p.out, m.rows2 = p.w.rows, m.scales2 = p.w.scales, m.biases2 = p.w.biases;
  else m.data3 = p.w.data, m.out3 = p.out, m.rows3 = p.w.rows, m.scales3 = p.w.scales, m.biases3 = p.w.biases;
  plan_mma_splits(m, m.w.rows + m.rows2 + m.rows3);
  tape_.erase(0);
  launch<MmaParams, launch_mma>(m);
  return true;
}

void CudaBackend::fuse_head_norm(RopeParams& p) {
  if (!fuse_) return;
  const int64_t bytes = p.n * p.heads * p.head_dim * static_cast<int64_t>(sizeof(float));
  // The norm of x, with at most one other per-head norm or rope of another tensor after it.
  for (size_t back = 0; back < 2; ++back) {
    if (!tape_.is<RmsNormParams, launch_rms_norm>(back)) continue;
    const auto r = tape_.get<RmsNormParams>(back);
    if (r.out != p.x || r.x != p.x || r.dim != p.head_dim || r.rows != p.n * p.heads || r.add || r.q) continue;
    if (back == 1) {
      const void* other = nullptr;
      int64_t other_bytes = 0;
      if (tape_.is<RmsNormParams, launch_rms_norm>(0)) {
        const auto o = tape_.get<RmsNormParams>(0);
        if (o.add || o.q || o.x != o.out) return;
        other = o.out, other_bytes = o.rows * o.dim * 4;
      } else if (tape_.is<RopeParams, launch_rope>(0)) {
        const auto o = tape_.get<RopeParams>(0);
        if (o.k_cache) return;
        other = o.x, other_bytes = o.n * o.heads * o.head_dim * 4;
      } else {
        return;
      }
      if (overlaps(other, other_bytes, p.x, bytes)) return;
    }
    p.norm_w = r.w;
    p.eps = r.eps;
    tape_.erase(back);
    return;
  }
}

bool CudaBackend::fuse_kv_store(const Tensor& k, const Tensor& v, void* k_cache, void* v_cache) {
  if (!fuse_ || !tape_.is<RopeParams, launch_rope>(0)) return false;
  auto r = tape_.get<RopeParams>(0);
  if (!r.norm_w || r.k_cache || r.x != k.data || r.n != k.rows() || r.heads * r.head_dim != k.cols()) return false;
  r.k_cache = k_cache;
  r.v_cache = v_cache;
  r.v = v.f32();
  r.slots = d_slots_;
  r.kv_kind = kv_kind();
  tape_.erase(0);
  // The q heads' norm + rope recorded just before: one launch for both.
  if (tape_.is<RopeParams, launch_rope>(0)) {
    const auto q = tape_.get<RopeParams>(0);
    const int64_t q_bytes = q.n * q.heads * q.head_dim * 4, k_bytes = r.n * r.heads * r.head_dim * 4;
    const bool same = q.norm_w && !q.k_cache && !q.x2 && q.n == r.n && q.head_dim == r.head_dim && q.half == r.half &&
                      q.positions == r.positions && q.inv_freq == r.inv_freq && q.attn_factor == r.attn_factor &&
                      q.neox == r.neox && q.eps == r.eps;
    if (same && !overlaps(q.x, q_bytes, r.x, k_bytes) && !overlaps(q.x, q_bytes, r.v, k_bytes)) {
      r.x2 = q.x, r.norm_w2 = q.norm_w, r.heads2 = q.heads;
      tape_.erase(0);
    }
  }
  fuse_rope_splits(r, v);
  launch<RopeParams, launch_rope>(r);
  return true;
}

void CudaBackend::fuse_rope_splits(RopeParams& r, const Tensor& v) {
  MmaParams m;
  if (!r.x2 || !split_product_before(&m)) return;
  // The rope of exactly the merged q/k/v product just recorded: the rope launch adds the
  // splits (in the reduce's order) and stores v's too.
  const int64_t hd = r.head_dim, q_rows = r.heads2 * hd, kv_rows = r.heads * hd;
  if (!m.data3 || m.out != r.x2 || m.out2 != r.x || m.out3 != v.data || m.w.rows != q_rows || m.rows2 != kv_rows ||
      m.rows3 != kv_rows || m.n != r.n || r.n * (q_rows + 2 * kv_rows) * m.splits >= (int64_t{1} << 31))
    return;
  defer_reduce(m);
  r.partial = m.partial, r.v_out = m.out3, r.splits = m.splits;
}

}  // namespace hearth::cuda
