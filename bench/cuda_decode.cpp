// cuda_decode: prompt and decode speed of a Qwen3-shaped model on the CUDA backend, and
// the fraction of the GPU's measured memory bandwidth that decoding reaches.
//   cuda_decode [--shape 8b] [--type q4_k_m|q4_0|q8_0|q6_k|mlx4|mlx8] [--layers N]
//               [--prompt 512] [--gen 128] [--reps 3] [--kv f16|q8_0|f32] [--batch B]
//               [--deep 1] [--chunk 512] [--read top|all|none] [--top-k 128]
// The weights are made in memory: random bytes in the stored layout of
// each type with valid scales (the Q4_K_M mix gives attn_v/ffn_down of the same layers
// Q6_K as the writer does, and the output head Q6_K), uploaded one matrix at a time. Speed
// does not depend on the values, and an 8B model is ready in seconds instead of the
// minutes make-model needs to search K-quant scales. The step runs the same ops as
// Model::forward (embedding, attention_block + swiglu_ffn_block per layer, final norm,
// output head, then what the engine reads back: by default each row's best 128 logits,
// the most it reads (--top-k; the engine reads what its samplers need, 1 for greedy, 20
// for Qwen3's top_k); --read all copies every logit, as the engine does for a sampler
// that needs the whole row); tests/cuda/test_cuda_model checks that path against the CPU
// on real files.
//
// ppN: one N-token prompt from an empty cache (with --chunk C, in steps of at most C
// tokens as the engine and server run prompts, each step's last-token logits read back).
// tgN: N single-token steps after a 1-token prompt; with --deep 1, N steps after the
// N-token prompt of ppN instead (decode at a long context, where attention reads the whole
// cache each step). --batch B (the issue's aggregate figure): B sequences, each given its
// own N-token prompt (one step each), then N decode steps of B tokens, one per sequence
// (one StepBatch, as the scheduler packs them); aggregate tokens/s = B * N / time.
// Bytes per decode step = every weight matrix (the embedding table only when it
// is also the output head) + the KV cache read at the mean context. Bandwidth: a device-
// to-device copy of 2 GiB, counting bytes read and written. Mean of --reps runs after one
// warm-up.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "core/half.h"
#include "model/graph.h"
#include "model/rope.h"
#include "model/writer.h"

using namespace hearth;

namespace {

struct Options {
  std::string shape = "8b", type = "q4_k_m", kv = "f16";
  int layers = 0, prompt = 512, gen = 128, reps = 3, batch = 0, deep = 0, chunk = 0;
  // What a step reads back: "top" the best 128 logits of each row (what the engine reads
  // for greedy and top_k sampling), "all" every logit, "none" nothing (a ceiling).
  std::string read = "top";
  int top_k = Backend::kMaxTopRows;  // --top-k: how many best logits "top" reads (the engine: what its samplers need)
};
Options g_opt;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double measure_bandwidth() {
  const size_t bytes = size_t{2} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e0);
  const int n = 10;
  for (int i = 0; i < n; ++i) cudaMemcpy(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a), cudaFree(b);
  return 2.0 * static_cast<double>(bytes) * n / (ms / 1e3);
}

// A matrix of random bytes in `type`'s layout, scales set to small finite values.
struct Synth {
  Backend& be;
  std::mt19937_64 rng{1};
  int64_t bytes = 0;  // uploaded matrix bytes (with MLX scales)

  Weight make(DType type, int64_t rows, int64_t cols, int bits = 0) {
    Weight w;
    w.type = type, w.rows = rows, w.cols = cols;
    std::vector<uint16_t> scales, biases;
    if (type == DType::MLX_AFFINE) {
      w.bits = bits, w.group_size = 64, w.scale_type = DType::F16;
      scales.assign(static_cast<size_t>(rows * cols / 64), f32_to_f16(0.01f));
      biases.assign(scales.size(), f32_to_f16(-0.05f));
      w.scales = scales.data(), w.biases = biases.data();
    }
    std::vector<uint64_t> data(static_cast<size_t>((w.nbytes() + 7) / 8));
    uint64_t s = rng();
    for (auto& v : data) v = (s ^= s << 13, s ^= s >> 7, s ^= s << 17);
    auto* p = reinterpret_cast<uint8_t*>(data.data());
    const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.002f);
    const int64_t bb = type == DType::MLX_AFFINE ? 0 : dtype_info(type).block_bytes;
    for (int64_t off = 0; bb > 0 && off + bb <= w.nbytes(); off += bb) {
      switch (type) {
        case DType::Q4_0: case DType::Q8_0: std::memcpy(p + off, &d, 2); break;
        case DType::Q4_K: case DType::Q5_K: std::memcpy(p + off, &d, 2), std::memcpy(p + off + 2, &dmin, 2); break;
        case DType::Q6_K: std::memcpy(p + off + 208, &d, 2); break;
        default: break;
      }
    }
    w.data = p;
    bytes += w.nbytes() + w.aux_bytes();
    return be.upload_weight(w);
  }
};

struct Net {
  ModelConfig config;
  RopeTable rope;
  ModelWeights w;
  int64_t read_bytes = 0;  // weight bytes read per decode step
};

Net synthetic(Backend& be, const Options& o) {
  Net net;
  auto& c = net.config = qwen3_shape(o.shape);
  if (o.layers > 0) c.num_hidden_layers = o.layers;
  net.rope = build_rope_table(c, true);
  const int64_t H = c.hidden_size, F = c.intermediate_size, L = c.num_hidden_layers;
  const bool mix = o.type == "q4_k_m", mlx = o.type.rfind("mlx", 0) == 0;
  const int bits = o.type == "mlx8" ? 8 : 4;
  DType base = DType::Q4_K;
  if (!mix && !mlx) {
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::F16})
      if (dtype_name(t) == o.type || (o.type == "q4_k" && t == DType::Q4_K) || (o.type == "q5_k" && t == DType::Q5_K) ||
          (o.type == "q6_k" && t == DType::Q6_K))
        base = t;
  }
  Synth syn{be};
  auto mat = [&](int64_t rows, int64_t cols, bool more_bits) {
    if (mlx) return syn.make(DType::MLX_AFFINE, rows, cols, bits);
    return syn.make(mix && more_bits ? DType::Q6_K : base, rows, cols);
  };
  auto ones = [&](int64_t n) { return be.upload_f32(std::vector<float>(static_cast<size_t>(n), 1.0f), {n}); };
  net.w.token_embd = mat(c.vocab_size, H, false);
  const int64_t embd_bytes = syn.bytes;
  for (int il = 0; il < L; ++il) {
    const bool more = il < L / 8 || il >= 7 * L / 8 || (il - L / 8) % 3 == 2;  // writer.cpp's use_more_bits
    LayerWeights lw;
    lw.attn_norm = ones(H), lw.ffn_norm = ones(H), lw.q_norm = ones(c.head_dim), lw.k_norm = ones(c.head_dim);
    lw.wq = mat(c.q_dim(), H, false), lw.wk = mat(c.kv_dim(), H, false), lw.wv = mat(c.kv_dim(), H, more);
    lw.wo = mat(H, c.q_dim(), false);
    lw.w_gate = mat(F, H, false), lw.w_up = mat(F, H, false), lw.w_down = mat(H, F, more);
    net.w.layers.push_back(lw);
  }
  net.w.output_norm = ones(H);
  if (c.tie_word_embeddings) {
    net.w.output = net.w.token_embd;
    net.read_bytes = syn.bytes;
  } else {
    net.w.output = mix ? syn.make(DType::Q6_K, c.vocab_size, H) : mat(c.vocab_size, H, false);
    net.read_bytes = syn.bytes - embd_bytes;
  }
  return net;
}

// Host time spent issuing a step's ops, and waiting in read_rows (the GPU's share).
double g_issue_s = 0, g_wait_s = 0;

// One forward pass of a step, with the logits of its logit rows.
void forward(Backend& be, const Net& net, const StepBatch& batch, std::vector<float>& logits) {
  const auto& c = net.config;
  const int64_t n = batch.n_tokens(), n_logits = static_cast<int64_t>(batch.logit_rows.size());
  static int64_t scratch_n = 0, scratch_logits = 0;
  static Tensor x, xn, q, k, v, attn, gate, up, tmp, last, out;
  if (n > scratch_n || n_logits > scratch_logits) {
    be.reset_scratch();
    scratch_n = std::max(n, scratch_n), scratch_logits = std::max(n_logits, scratch_logits);
    const int64_t m = scratch_n, l = scratch_logits;
    x = be.alloc_activation({m, c.hidden_size}), xn = be.alloc_activation({m, c.hidden_size});
    q = be.alloc_activation({m, c.q_dim()}), k = be.alloc_activation({m, c.kv_dim()});
    v = be.alloc_activation({m, c.kv_dim()}), attn = be.alloc_activation({m, c.q_dim()});
    gate = be.alloc_activation({m, c.intermediate_size}), up = be.alloc_activation({m, c.intermediate_size});
    tmp = be.alloc_activation({m, c.hidden_size});
    last = be.alloc_activation({l, c.hidden_size}), out = be.alloc_activation({l, c.vocab_size});
  }
  auto rows = [](Tensor t, int64_t r) { return t.shape[0] = r, t; };
  const double t0 = now_s();
  be.begin_step(batch);
  LayerState s{.be = be, .config = c, .rope = net.rope, .x = rows(x, n), .xn = rows(xn, n), .q = rows(q, n),
               .k = rows(k, n), .v = rows(v, n), .attn = rows(attn, n), .gate = rows(gate, n), .up = rows(up, n),
               .tmp = rows(tmp, n)};
  be.embed(s.x, net.w.token_embd);
  for (int il = 0; il < c.num_hidden_layers; ++il) {
    attention_block(s, net.w.layers[static_cast<size_t>(il)], il, {.qkv_bias = false, .qk_norm = true});
    swiglu_ffn_block(s, net.w.layers[static_cast<size_t>(il)]);
  }
  Tensor lg = rows(last, n_logits), o = rows(out, n_logits);
  be.gather_logit_rows(lg, s.x);
  be.rms_norm(lg, lg, net.w.output_norm, static_cast<float>(c.rms_norm_eps));
  be.matmul(o, lg, net.w.output);
  const double t1 = now_s();
  logits.resize(static_cast<size_t>(n_logits * c.vocab_size));
  if (g_opt.read == "none") {
    be.sync();
  } else if (g_opt.read == "all") {
    be.read_rows(o, logits.data());
  } else {
    static std::vector<int32_t> ids;
    ids.resize(static_cast<size_t>(n_logits * g_opt.top_k));
    be.read_top_rows(o, static_cast<int32_t>(c.vocab_size), g_opt.top_k, ids.data(),
                     logits.data());  // values: the first rows * top_k floats of `logits`
  }
  g_issue_s += t1 - t0;
  g_wait_s += now_s() - t1;
}

// One sequence at positions start.. with the logits of its last token.
void forward(Backend& be, const Net& net, const std::vector<int32_t>& tokens, int32_t start,
             std::vector<float>& logits) {
  forward(be, net, StepBatch::single(tokens, start, be.kv_cache_config().block_size, false), logits);
}

// Sequence s of a batch owns blocks [s * per_seq, (s + 1) * per_seq) of the cache; tokens[i]
// goes to sequence seqs[i] at position pos[i] (one token each, or one sequence's prompt).
StepBatch batch_step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& seqs,
                     const std::vector<int32_t>& pos, int32_t per_seq, int32_t block, bool last_only) {
  StepBatch b;
  b.tokens = tokens;
  b.positions = pos;
  std::vector<int32_t> index(static_cast<size_t>(*std::max_element(seqs.begin(), seqs.end()) + 1), -1);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t s = seqs[i];
    if (index[static_cast<size_t>(s)] < 0) {
      index[static_cast<size_t>(s)] = static_cast<int32_t>(b.seqs.size());
      b.seqs.emplace_back();
    }
    auto& seq = b.seqs[static_cast<size_t>(index[static_cast<size_t>(s)])];
    seq.n_ctx = std::max(seq.n_ctx, pos[i] + 1);
    b.seq_of.push_back(index[static_cast<size_t>(s)]);
    b.slots.push_back(static_cast<int64_t>(s) * per_seq * block + pos[i]);
  }
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    auto& seq = b.seqs[i];
    const int32_t s =
        static_cast<int32_t>(std::find(index.begin(), index.end(), static_cast<int32_t>(i)) - index.begin());
    for (int32_t j = 0; j < (seq.n_ctx + block - 1) / block; ++j) seq.block_table.push_back(s * per_seq + j);
  }
  if (last_only) b.logit_rows = {static_cast<int32_t>(tokens.size()) - 1};
  else for (int32_t i = 0; i < static_cast<int32_t>(tokens.size()); ++i) b.logit_rows.push_back(i);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i], v = argv[i + 1];
    if (f == "--shape") o.shape = v;
    else if (f == "--type") o.type = v;
    else if (f == "--kv") o.kv = v;
    else if (f == "--layers") o.layers = std::stoi(v);
    else if (f == "--prompt") o.prompt = std::stoi(v);
    else if (f == "--gen") o.gen = std::stoi(v);
    else if (f == "--reps") o.reps = std::stoi(v);
    else if (f == "--batch") o.batch = std::stoi(v);
    else if (f == "--deep") o.deep = std::stoi(v);
    else if (f == "--chunk") o.chunk = std::stoi(v);
    else if (f == "--read") o.read = v;
    else if (f == "--top-k") o.top_k = std::stoi(v);
    else return std::fprintf(stderr, "cuda_decode: unknown flag %s\n", f.c_str()), 2;
    if (o.read != "top" && o.read != "all" && o.read != "none")
      return std::fprintf(stderr, "cuda_decode: --read takes top, all or none\n"), 2;
    if (o.top_k < 1 || o.top_k > Backend::kMaxTopRows)
      return std::fprintf(stderr, "cuda_decode: --top-k takes 1 to %d\n", Backend::kMaxTopRows), 2;
  }
  g_opt = o;
  try {
    if (!cuda_available()) return std::fprintf(stderr, "cuda_decode: no CUDA device\n"), 1;
    auto be = make_cuda_backend(0);
    const double bw = measure_bandwidth();
    const double t_load = now_s();
    Net net = synthetic(*be, o);
    const auto& c = net.config;
    const double load_s = now_s() - t_load;
    const int32_t block = 16, n_ctx = o.prompt + o.gen + 16;
    const int32_t per_seq = (n_ctx + block - 1) / block;
    KvCacheConfig kv{static_cast<int32_t>(c.num_hidden_layers), per_seq * std::max(o.batch, 1), block,
                     static_cast<int32_t>(c.num_key_value_heads), static_cast<int32_t>(c.head_dim),
                     parse_kv_cache_type(o.kv)};
    be->init_kv_cache(kv);
    std::vector<float> logits(static_cast<size_t>(c.vocab_size));
    std::mt19937 rng(3);
    std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.vocab_size));
    double pp = 0, tg = 0;
    for (int rep = -1; o.batch == 0 && rep < o.reps; ++rep) {  // rep -1: warm-up
      double t0 = now_s();
      const int32_t chunk = o.chunk > 0 ? o.chunk : std::max(o.prompt, 1);
      for (int32_t at = 0; at < o.prompt; at += chunk) {
        const auto end = prompt.begin() + std::min(o.prompt, at + chunk);
        forward(*be, net, std::vector<int32_t>(prompt.begin() + at, end), at, logits);
      }
      const double pp_s = now_s() - t0;
      const int32_t start = o.deep ? o.prompt : 1;  // the first decode position
      if (!o.deep) forward(*be, net, {prompt.empty() ? 1 : prompt[0]}, 0, logits);
      t0 = now_s();
      g_issue_s = g_wait_s = 0;
      for (int i = 0; i < o.gen; ++i)
        forward(*be, net, {static_cast<int32_t>(((i + 1) * 7919) % c.vocab_size)}, start + i, logits);
      const double tg_s = now_s() - t0;
      if (rep >= 0) pp += o.prompt / pp_s / o.reps, tg += o.gen / tg_s / o.reps;
    }
    const int64_t kv_per_token = 2 * c.num_hidden_layers * kv_row_bytes(kv);
    const double depth = o.deep && o.batch == 0 ? o.prompt : 1;
    const double step_bytes = static_cast<double>(net.read_bytes) + kv_per_token * (depth + o.gen / 2.0);
    const BackendMemory mem = be->memory();
    std::printf("%s\n", be->name().c_str());
    std::printf("logits read back each step: %s\n",
                o.read == "top" ? ("the best " + std::to_string(o.top_k) + " of each row").c_str() : o.read.c_str());
    std::printf("model: qwen3 %s shape, %lld layers, %s (synthetic), KV %s; weights %.2f GiB, read per step %.3f GB\n",
                o.shape.c_str(), static_cast<long long>(c.num_hidden_layers), o.type.c_str(), o.kv.c_str(),
                static_cast<double>(mem.weights) / (1 << 30), step_bytes / 1e9);
    std::printf("GPU memory: weights %.2f GiB, KV %.1f MiB, scratch %.1f MiB; made in %.1f s\n",
                static_cast<double>(mem.weights) / (1 << 30), static_cast<double>(mem.kv_cache) / (1 << 20),
                static_cast<double>(mem.scratch) / (1 << 20), load_s);
    std::printf("device copy bandwidth %.0f GB/s\n", bw / 1e9);
    std::printf("KV cache %s: %lld bytes per token (all layers, K and V); tokens in a KV budget of 8 GiB: %lld\n",
                o.kv.c_str(), static_cast<long long>(kv_per_token),
                static_cast<long long>((int64_t{8} << 30) / kv_per_token));
    std::printf("| test | tok/s | ms/token | GB/s | %% of copy bandwidth |\n|---|---:|---:|---:|---:|\n");
    if (o.batch == 0) {
      const std::string steps = o.chunk > 0 && o.chunk < o.prompt ? " in steps of " + std::to_string(o.chunk) : "";
      if (o.prompt > 0) std::printf("| pp%d%s | %.0f | | | |\n", o.prompt, steps.c_str(), pp);
      const std::string at = o.deep ? " @ " + std::to_string(o.prompt) : "";
      std::printf("| tg%d%s | %.1f | %.3f | %.0f | %.0f%% |\n", o.gen, at.c_str(), tg, 1e3 / tg, step_bytes * tg / 1e9,
                  100 * step_bytes * tg / bw);
      std::printf("decode step (last run): %.3f ms issuing ops on the host, %.3f ms waiting for the GPU\n",
                  1e3 * g_issue_s / o.gen, 1e3 * g_wait_s / o.gen);
      return 0;
    }
    // Batched: every sequence's prompt, then o.gen steps of one token per sequence (the
    // same positions again in every repetition: the cache holds valid keys there).
    const int32_t B = o.batch;
    for (int32_t sq = 0; sq < B; ++sq) {
      std::vector<int32_t> seqs(prompt.size(), sq), pos(prompt.size());
      for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
      if (!prompt.empty()) forward(*be, net, batch_step(prompt, seqs, pos, per_seq, block, true), logits);
    }
    double agg = 0, step_ms = 0;
    for (int rep = -1; rep < o.reps; ++rep) {
      g_issue_s = g_wait_s = 0;
      const double t0 = now_s();
      for (int i = 0; i < o.gen; ++i) {
        const auto b = static_cast<size_t>(B);
        std::vector<int32_t> toks(b), seqs(b), pos(b, o.prompt + i);
        for (size_t sq = 0; sq < b; ++sq) {
          toks[sq] = static_cast<int32_t>((static_cast<int64_t>(sq) * 131 + i * 7919) % c.vocab_size);
          seqs[sq] = static_cast<int32_t>(sq);
        }
        forward(*be, net, batch_step(toks, seqs, pos, per_seq, block, false), logits);
      }
      const double s_all = now_s() - t0;
      if (rep >= 0) agg += static_cast<double>(B) * o.gen / s_all / o.reps, step_ms += 1e3 * s_all / o.gen / o.reps;
    }
    std::printf("| %d sequences x tg%d (prompts %d) | %.1f aggregate | %.3f ms/step | | |\n", B, o.gen, o.prompt, agg,
                step_ms);
    std::printf("batched step (last run): %.3f ms issuing ops on the host, %.3f ms waiting for the GPU\n",
                1e3 * g_issue_s / o.gen, 1e3 * g_wait_s / o.gen);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_decode: %s\n", e.what());
    return 1;
  }
  return 0;
}
