// Causal paged attention for prompt steps on tensor cores (flash attention, forward only).
//
// One block of 4 warps per (query tile, kv head). A query tile is a run of consecutive
// tokens of one sequence (built by the backend, FlashAttentionParams::tiles); its rows are
// the (token, query head) pairs of the kv head's GQA group, token-major, 64 or 128 of them
// (16 or 32 a warp), so each key and value row is loaded once for every head that shares
// it. Keys [0, max position of the tile] stream through shared memory in tiles of kKeys
// rows, gathered from the paged f16 cache with cp.async, in two stages: the loads of tile
// j + 1 are issued once tile j's S products are under way and land during its softmax and
// P V, so one barrier per tile suffices. Per key tile, a warp computes S = Q K^T with
// mma.sync m16n8k16 (f16 in, f32 accumulate; fragments by ldmatrix from rows padded by
// 16 bytes, which keeps the eight row addresses of each 8x8 matrix in distinct banks),
// masks keys past each row's own position, updates its rows' running max and sum (base 2,
// log2(e) folded into the query scale) and accumulates O += P V with P rounded to f16
// from the accumulator registers. Queries are f32 in memory and rounded to f16 once, when
// the tile is staged; the output is f32.
//
// Masking is per row, from each token's own position, so tokens need not have consecutive
// positions, and a prompt continuing a cached prefix (positions starting past 0) is the
// same case. Only key tiles that reach past the tile's smallest position are masked.
//
// An 8-bit cache (q8_0 rows, backend.h kv_row_bytes) is staged raw: cp.async brings a
// tile's int8 values and f16 scales, in two stages as above, and at the top of its
// iteration the block dequantizes them to the f16 K and V tiles (one stage: the barrier
// before the conversion already orders it after the previous tile's reads), then meets
// a second barrier; the products are the f16 kernel's. The cache read is 1.06 bytes an
// element instead of 2; the conversion adds a pass over shared memory per tile.
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"
#include "backend/cuda/ptx.cuh"

namespace hearth::cuda {
namespace {

constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

// The shapes of one kernel: head_dim HD, MT row tiles of 16 per warp (4 warps, so 64 * MT
// query rows a block; each K or V fragment loaded from shared memory then serves MT tiles,
// which halves that traffic per product at MT = 2). Key rows per shared-memory tile: the S
// accumulators (MT * kKeys / 2 registers a thread) and the O accumulators (MT * HD / 2)
// must fit side by side. Rows are padded by 16 bytes, which spreads 8 consecutive rows
// over all banks. Shared memory: the Q tile, then K and V in two stages each; Q8: K and V
// in one stage, then the raw tiles in two stages: int8 values [2][K, V][kKeys][HD], then
// f16 scales [2][K, V][kKeys][HD / 32].
template <int HD, int MT, int KEYS, bool Q8>
struct Shape {
  static constexpr int kRows = 64 * MT;
  static constexpr int kKeys = KEYS;
  static constexpr int kStride = HD + 8;  // halves
  static constexpr int kStages = Q8 ? 1 : 2;  // of the f16 K and V tiles
  static constexpr int kRawValues = 4 * kKeys * HD;       // bytes
  static constexpr int kRawScales = 4 * kKeys * HD / 16;  // bytes
  static constexpr int kSmem = (kRows + 2 * kStages * kKeys) * kStride * 2 + (Q8 ? kRawValues + kRawScales : 0);
};


template <int HD, int MT, int KEYS, bool Q8>
__global__ void __launch_bounds__(kThreads) flash_attention_kernel(const FlashAttentionParams p) {
  using Sh = Shape<HD, MT, KEYS, Q8>;
  constexpr int kRows = Sh::kRows, kKeys = Sh::kKeys, S = Sh::kStride, kChunks = HD / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* q_s = reinterpret_cast<__half*>(smem_raw);  // [kRows][S]
  __half* k_s = q_s + kRows * S;                      // [kStages][kKeys][S]
  __half* v_s = k_s + Sh::kStages * kKeys * S;        // [kStages][kKeys][S]
  int8_t* raw_q = reinterpret_cast<int8_t*>(v_s + Sh::kStages * kKeys * S);  // Q8: [2][2][kKeys][HD]
  __half* raw_d = reinterpret_cast<__half*>(raw_q + Sh::kRawValues);         // Q8: [2][2][kKeys][HD / 32]
  __shared__ int pos_s[kRows];

  pdl_begin();
  const int4 tile = reinterpret_cast<const int4*>(p.tiles)[blockIdx.x];  // first token, tokens, min pos, max pos
  const int g = blockIdx.y;
  const int group = p.n_heads / p.n_kv_heads;
  const int rows = tile.y * group;
  const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
  const int n_keys = tile.w + 1;

  const int32_t* table = p.block_tables + p.table_offset[tile.x];
  const int64_t kv_row = static_cast<int64_t>(p.n_kv_heads) * HD;
  const __half* kc = static_cast<const __half*>(p.k_cache) + g * HD;
  const __half* vc = static_cast<const __half*>(p.v_cache) + g * HD;
  const int64_t q8_row = (kv_row + kv_row / 32 * 2 + 15) / 16 * 16;  // kv_q8_row_bytes
  auto slot_of = [&](int key) {
    return static_cast<int64_t>(table[key / p.block_size]) * p.block_size + key % p.block_size;
  };
  // Unrolled at 2 row tiles, every chunk's addresses would be live beside the accumulators
  // (spills); at one, unrolling lets the table look-ups of all chunks be in flight at once.
  constexpr int kLoadUnroll = MT == 1 ? kKeys * kChunks / kThreads : 1;
  auto load_kv = [&](int kb, int stage) {
    if constexpr (Q8) {  // raw int8 values (16-byte chunks) and each key's HD / 32 scales
      const auto* kq = static_cast<const uint8_t*>(p.k_cache) + g * HD;
      const auto* vq = static_cast<const uint8_t*>(p.v_cache) + g * HD;
      constexpr int kQChunks = HD / 16;
      for (int i = tid; i < kKeys * (kQChunks + 1); i += kThreads) {
        const int r = i / (kQChunks + 1), c = i % (kQChunks + 1), key = kb + r;
        const bool valid = key < n_keys;
        const int64_t slot = valid ? slot_of(key) * q8_row : 0;
        if (c < kQChunks) {
          const int dst = (stage * 2 * kKeys + r) * HD + c * 16;
          cp_async16(smem_addr(raw_q + dst), kq + slot + c * 16, valid);
          cp_async16(smem_addr(raw_q + dst + kKeys * HD), vq + slot + c * 16, valid);
        } else {
          const int dst = (stage * 2 * kKeys + r) * (HD / 32);
          const int64_t at = slot + kv_row + g * (HD / 16) - g * HD;  // the scales, past the row's values
          cp_async_small<HD / 16>(smem_addr(raw_d + dst), kq + at, valid);
          cp_async_small<HD / 16>(smem_addr(raw_d + dst + kKeys * (HD / 32)), vq + at, valid);
        }
      }
    } else {
#pragma unroll(kLoadUnroll)
      for (int i = tid; i < kKeys * kChunks; i += kThreads) {
        const int r = i / kChunks, c = i % kChunks, key = kb + r;
        const bool valid = key < n_keys;
        int64_t off = 0;
        if (valid) off = slot_of(key) * kv_row + c * 8;
        const int dst = (stage * kKeys + r) * S + c * 8;
        cp_async16(smem_addr(k_s + dst), kc + off, valid);
        cp_async16(smem_addr(v_s + dst), vc + off, valid);
      }
    }
    cp_async_commit();
  };
  load_kv(0, 0);

  // Stage the queries as f16, scaled; rows past the tile are zero (and never written).
  const float qscale = p.scale * kLog2e;
  for (int i = tid; i < kRows * (HD / 4); i += kThreads) {
    const int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < rows) {
      const int64_t t = tile.x + r / group, h = static_cast<int64_t>(g) * group + r % group;
      v = *reinterpret_cast<const float4*>(p.q + (t * p.n_heads + h) * HD + c);
    }
    auto* dst = reinterpret_cast<uint32_t*>(q_s + r * S + c);
    dst[0] = pack_half2(v.x * qscale, v.y * qscale);
    dst[1] = pack_half2(v.z * qscale, v.w * qscale);
  }
  for (int r = tid; r < kRows; r += kThreads) pos_s[r] = r < rows ? p.positions[tile.x + r / group] : -1;
  __syncthreads();

  // This thread's rows: warp * 16 * MT + 16 * m + lane / 4 + 8 * half, for m < MT, half < 2;
  // [m][2 * half + c] indexes the accumulator elements of row (m, half).
  const int row0 = warp * 16 * MT + lane / 4;
  float o[MT][HD / 8][4], mx[MT][2], l[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int h = 0; h < 2; ++h) mx[m][h] = -INFINITY, l[m][h] = 0.0f;
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) o[m][i][0] = o[m][i][1] = o[m][i][2] = o[m][i][3] = 0.0f;
  }

  const uint32_t q_addr = smem_addr(q_s + (warp * 16 * MT + lane % 16) * S + (lane / 16) * 8);
  const int n_tiles = (n_keys + kKeys - 1) / kKeys;
  for (int j = 0; j < n_tiles; ++j) {
    // Tile j has landed for every thread; every warp is also done with tile j - 1, whose
    // stage the loads of tile j + 1 (issued once this tile's S products are under way,
    // so that their table look-ups overlap the tensor cores) overwrite.
    const int stage = Q8 ? 0 : j & 1;  // of the f16 tiles
    cp_async_wait<0>();
    __syncthreads();
    if constexpr (Q8) {  // raw stage j & 1 -> the f16 tiles, 8 elements (one scale) a step
      const int8_t* rq = raw_q + (j & 1) * 2 * kKeys * HD;
      const __half* rd = raw_d + (j & 1) * 2 * kKeys * (HD / 32);
      for (int i = tid; i < 2 * kKeys * kChunks; i += kThreads) {
        const int r = i / kChunks, c = i % kChunks;  // r < kKeys: keys, else values
        const uint2 raw = *reinterpret_cast<const uint2*>(rq + r * HD + c * 8);
        const uint4 out = kv_q8_to_f16x8(raw, __half2half2(rd[r * (HD / 32) + c / 4]));
        __half* dst = (r < kKeys ? k_s + r * S : v_s + (r - kKeys) * S) + c * 8;
        *reinterpret_cast<uint4*>(dst) = out;
      }
      __syncthreads();
    }

    // S = Q K^T: K rows are keys, so ldmatrix without transposition gives the col-major B;
    // each B fragment serves the warp's MT row tiles.
    float s[MT][kKeys / 8][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int i = 0; i < kKeys / 8; ++i) s[m][i][0] = s[m][i][1] = s[m][i][2] = s[m][i][3] = 0.0f;
    const uint32_t k_addr = smem_addr(k_s + (stage * kKeys + lane % 8 + (lane / 16) * 8) * S + ((lane / 8) % 2) * 8);
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) ldmatrix_x4(a[m], q_addr + (16 * m * S + kk * 16) * 2);
#pragma unroll
      for (int nn = 0; nn < kKeys / 16; ++nn) {
        uint32_t b[4];
        ldmatrix_x4(b, k_addr + (nn * 16 * S + kk * 16) * 2);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          mma_16816(s[m][2 * nn], a[m], b[0], b[1]);
          mma_16816(s[m][2 * nn + 1], a[m], b[2], b[3]);
        }
      }
    }

    if (j + 1 < n_tiles) load_kv((j + 1) * kKeys, (j + 1) & 1);  // Q8: the raw stage

    // Causal mask, per row: key index > the row's position (also every key past n_keys,
    // whose zero-filled rows must not count, and every key of a padding row).
    const int kb = j * kKeys;
    if (kb + kKeys - 1 > tile.z) {
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const int pos[2] = {pos_s[row0 + 16 * m], pos_s[row0 + 16 * m + 8]};  // from shared memory: registers are short
#pragma unroll
        for (int i = 0; i < kKeys / 8; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (kb + i * 8 + 2 * (lane % 4) + (e & 1) > pos[e / 2]) s[m][i][e] = -INFINITY;
      }
    }

    // Online softmax. A row with every key masked so far keeps max -inf; 0 stands in for
    // it as the reference so that exp2 gives 0 rather than NaN.
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float t = mx[m][h];
#pragma unroll
        for (int i = 0; i < kKeys / 8; ++i) t = fmaxf(t, fmaxf(s[m][i][2 * h], s[m][i][2 * h + 1]));
        t = quad_max(t);
        const float ref = t == -INFINITY ? 0.0f : t;
        const float c = fast_exp2(mx[m][h] - ref);
        mx[m][h] = t;
        float sum = 0.0f;  // this lane's columns; summed over the quad at the end
#pragma unroll
        for (int i = 0; i < kKeys / 8; ++i) {
          s[m][i][2 * h] = fast_exp2(s[m][i][2 * h] - ref);
          s[m][i][2 * h + 1] = fast_exp2(s[m][i][2 * h + 1] - ref);
          sum += s[m][i][2 * h] + s[m][i][2 * h + 1];
        }
        l[m][h] = l[m][h] * c + sum;
#pragma unroll
        for (int i = 0; i < HD / 8; ++i) o[m][i][2 * h] *= c, o[m][i][2 * h + 1] *= c;
      }
    }

    // O += P V: two adjacent 16x8 accumulator tiles of S are one 16x16 A fragment, packed
    // to f16 at once (half the registers of S while O is accumulated); V rows are keys, so
    // ldmatrix with transposition gives the col-major B.
    uint32_t pa[MT][kKeys / 16][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        pa[m][kk][0] = pack_half2(s[m][2 * kk][0], s[m][2 * kk][1]);
        pa[m][kk][1] = pack_half2(s[m][2 * kk][2], s[m][2 * kk][3]);
        pa[m][kk][2] = pack_half2(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
        pa[m][kk][3] = pack_half2(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
      }
    const uint32_t v_addr = smem_addr(v_s + (stage * kKeys + lane % 8 + ((lane / 8) % 2) * 8) * S + (lane / 16) * 8);
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
#pragma unroll
      for (int dn = 0; dn < HD / 16; ++dn) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_addr + (kk * 16 * S + dn * 16) * 2);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          mma_16816(o[m][2 * dn], pa[m][kk], b[0], b[1]);
          mma_16816(o[m][2 * dn + 1], pa[m][kk], b[2], b[3]);
        }
      }
    }
  }

#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row0 + 16 * m + 8 * h;
      const float sum = quad_sum(l[m][h]);  // every lane takes part: the shuffle needs the full warp
      if (r >= rows) continue;
      const float inv = 1.0f / sum;  // > 0: key 0 is never masked for a real row
      const int64_t t = tile.x + r / group, head = static_cast<int64_t>(g) * group + r % group;
      float* dst = p.out + (t * p.n_heads + head) * HD + 2 * (lane % 4);
#pragma unroll
      for (int i = 0; i < HD / 8; ++i)
        *reinterpret_cast<float2*>(dst + i * 8) = make_float2(o[m][i][2 * h] * inv, o[m][i][2 * h + 1] * inv);
    }
  }
}

template <int HD, int MT, int KEYS, bool Q8>
void launch_for(const FlashAttentionParams& p, cudaStream_t stream) {
  constexpr int smem = Shape<HD, MT, KEYS, Q8>::kSmem;
  const auto kernel = flash_attention_kernel<HD, MT, KEYS, Q8>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "cudaFuncSetAttribute (flash attention)", __FILE__, __LINE__);
  const dim3 grid(static_cast<unsigned>(p.n_tiles), static_cast<unsigned>(p.n_kv_heads));
  HEARTH_LAUNCH(kernel, grid, dim3(kThreads), smem, stream, p);
  HEARTH_CUDA_LAUNCHED();
}

// The kernels built, {head_dim, row tiles, keys per tile}: the first of a (head_dim, row
// tiles) pair is the default. Key tiles: the S accumulators (row tiles * keys / 2 registers
// a thread) must fit beside the O accumulators (row tiles * head_dim / 2). At head_dim 128
// and 2 row tiles, 64 keys spill 80 bytes a thread and 32 keys none, yet 64 was the faster
// (H200, 8B shape, 4096-token prompt: 724 against 755 us a layer), so 32 stays only as the
// experiment switch HEARTH_CUDA_FLASH_KEYS=32.
// The 8-bit cache has the same shapes, without the 32-key experiment.
struct Variant {
  int hd, mt, keys;
  bool q8;
  void (*launch)(const FlashAttentionParams&, cudaStream_t);
  int64_t smem;
};
template <int HD, int MT, int KEYS, bool Q8 = false>
constexpr Variant variant() {
  return {HD, MT, KEYS, Q8, launch_for<HD, MT, KEYS, Q8>, Shape<HD, MT, KEYS, Q8>::kSmem + 64 * MT * 4};  // + pos_s
}
constexpr Variant kVariants[] = {
    variant<64, 1, 64>(),           variant<64, 2, 64>(),           variant<128, 1, 64>(),
    variant<128, 2, 64>(),          variant<128, 2, 32>(),          variant<256, 1, 32>(),
    variant<64, 1, 64, true>(),     variant<64, 2, 64, true>(),     variant<128, 1, 64, true>(),
    variant<128, 2, 64, true>(),    variant<256, 1, 32, true>()};

const Variant* find_variant(int64_t head_dim, int row_tiles, int key_tile, bool q8) {
  for (const Variant& v : kVariants)
    if (v.hd == head_dim && v.mt == row_tiles && v.q8 == q8 && (key_tile == 0 || v.keys == key_tile)) return &v;
  return nullptr;
}

}  // namespace

int64_t flash_attention_smem(int64_t head_dim, int row_tiles, int key_tile, bool q8) {
  const Variant* v = find_variant(head_dim, row_tiles, key_tile, q8);
  return v ? v->smem : 0;
}

void launch_flash_attention(const FlashAttentionParams& p, cudaStream_t stream) {
  if (p.n_tiles == 0) return;
  const Variant* v = find_variant(p.head_dim, p.row_tiles, p.key_tile, p.q8 != 0);
  if (!v)
    fail("flash attention: no kernel for head_dim " + std::to_string(p.head_dim) + ", " +
         std::to_string(p.row_tiles) + " row tiles per warp, " + std::to_string(p.key_tile) + " keys per tile" +
         (p.q8 ? ", 8-bit cache" : ""));
  v->launch(p, stream);
}

}  // namespace hearth::cuda
