// Whole-model logits on the CUDA backend against the CPU backend. A small synthetic Qwen3
// model (src/model/writer.h) is written in each format, loaded on both backends, and run
// on the same tokens: a 21-token prompt (tensor cores: mma.cu's int8 products for
// quantized weights; cuBLAS for float ones) and then 12 single-token decode steps (the
// streaming or register-dequantizing kernels, replayed from CUDA graphs) fed with the
// CPU's greedy tokens so both see identical contexts; then 3, 12 and 20 sequences decoded
// together for 4 steps (tensor-core products, recorded as a graph and replayed; from 17
// tokens their f16 activations come from the launch before them, ops.h XHalf). At every step the log-softmax
// of the CPU's top-5 tokens must agree within a bound, and so must the greedy token unless
// the CPU's top two are closer than that bound. The batched steps also check what the
// engine reads of logits left on the GPU (each row's best 128, a single row), and direct
// mode's generate() on the GPU gives the tokens of sampling whole rows.
// An 8-bit (q8_0) cache runs on both backends (the CPU's is the reference quantizer): the
// keys and values quantized differ only where the backends' f32 inputs straddle a rounding
// boundary of rint(x / d), one step d = amax / 127 of the rare element, which the f16
// cache's 2e-2 bound covers (f32 weights); quantized weights keep 0.15.
// Bounds: f32 weights with an f32 cache 2e-3; f16 cache 2e-2; quantized weights 0.15 (the
// GPU rounds activations to 8-bit blocks up to 64 tokens and to f16 in longer prompts, as
// llama.cpp does; the CPU reference here does neither; the CPU's own quantized-vs-float
// test uses the same 0.15).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>

#ifdef HEARTH_HAVE_CUDA
#include "backend/cuda/ops.h"
#endif
#include "cuda_test_util.h"
#include "engine/generate.h"
#include "engine/runtime.h"
#include "engine/sequence.h"
#include "model/model.h"
#include "model/writer.h"

using namespace hearth;
using namespace hearth::test;

namespace {

ModelConfig small_config() {
  ModelConfig c = qwen3_shape("tiny");
  c.hidden_size = 512;  // above 256: the one-block-a-row norm kernels, fused as in decode
  c.intermediate_size = 512;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.num_hidden_layers = 2;
  c.vocab_size = 512;
  c.tie_word_embeddings = false;
  c.max_position_embeddings = 256;
  return c;
}

std::string temp_dir(const std::string& name) {
  const auto p = std::filesystem::path(HEARTH_BINARY_DIR) / "test_tmp" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

std::vector<double> log_softmax(const float* l, int64_t n) {
  double mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(l[i]));
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(l[i]) - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<double>(l[i]) - mx - std::log(sum);
  return out;
}

// The CPU's 5 most likely ids, best first.
std::vector<int32_t> top5(const std::vector<double>& pc) {
  std::vector<int32_t> idx(pc.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int32_t a, int32_t b) { return pc[a] > pc[b]; });
  idx.resize(5);
  return idx;
}

// max |gpu - cpu| log-probability over those ids (a NaN on the GPU fails `what`).
double top5_gap(const std::vector<double>& pc, const std::vector<double>& pg, const std::vector<int32_t>& idx,
                const std::string& what) {
  double worst = 0;
  for (int32_t i : idx) {
    const auto id = static_cast<size_t>(i);
    EXPECT_FALSE(std::isnan(pg[id])) << what;
    worst = std::max(worst, std::fabs(pg[id] - pc[id]));
  }
  return worst;
}

// The model at `path` on the CPU and on the GPU, each with a cache of n_blocks blocks of
// `block` tokens: the GPU's of gpu_kv, the CPU's of its default type, or q8_0 as well when
// the GPU's is (so both attend over the same rounded values).
struct Loaded {
  std::unique_ptr<Backend> cpu, gpu;  // declared first: the models hold references to them
  std::unique_ptr<Model> cpu_model, gpu_model;
};
Loaded load_both(const std::string& path, DType gpu_kv, int32_t n_blocks, int32_t block) {
  Loaded m;
  m.cpu = make_cpu_backend(2);
  m.gpu = make_cuda_backend(0);
  m.cpu_model = Model::load(path, *m.cpu);
  m.gpu_model = Model::load(path, *m.gpu);
  KvCacheConfig kc = m.cpu_model->kv_cache_config(n_blocks, block);
  if (gpu_kv == DType::Q8_0) kc.dtype = DType::Q8_0;
  m.cpu->init_kv_cache(kc);
  KvCacheConfig kv = m.gpu_model->kv_cache_config(n_blocks, block);
  kv.dtype = gpu_kv;
  m.gpu->init_kv_cache(kv);
  return m;
}

// Runs `path` on both backends and returns max |logprob gpu - logprob cpu| over the CPU's
// top-5 tokens of every step.
double compare(const std::string& path, DType gpu_kv, double bound) {
  const int32_t block = 16;
  const Loaded m = load_both(path, gpu_kv, 4, block);
  auto& mc = m.cpu_model;
  auto& mg = m.gpu_model;
  const int64_t vocab = mc->config().vocab_size;

  std::vector<int32_t> tokens = {5, 99, 311, 42, 7, 260, 33, 400, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  std::vector<float> lc(static_cast<size_t>(vocab)), lg(static_cast<size_t>(vocab));
  double worst = 0;
  int32_t pos = 0;
  for (int step = 0; step <= 12; ++step) {
    const std::vector<int32_t> feed = step == 0 ? tokens : std::vector<int32_t>{tokens.back()};
    const StepBatch batch = StepBatch::single(feed, pos, block, false);
    mc->forward(batch, lc.data());
    mg->forward(batch, lg.data());
    pos += static_cast<int32_t>(feed.size());
    const auto pc = log_softmax(lc.data(), vocab), pg = log_softmax(lg.data(), vocab);
    const auto idx = top5(pc);
    worst = std::max(worst, top5_gap(pc, pg, idx, path + " step " + std::to_string(step)));
    const auto gpu_top = static_cast<int32_t>(std::max_element(pg.begin(), pg.end()) - pg.begin());
    if (gpu_top != idx[0]) {
      EXPECT_LE(pc[static_cast<size_t>(idx[0])] - pc[static_cast<size_t>(idx[1])], bound) << path;
    }
    tokens.push_back(idx[0]);  // both continue with the CPU's greedy token
  }
  EXPECT_LE(worst, bound) << path;
  return worst;
}

// What the engine reads of a step's logits left on the GPU: each row's best 128 (the
// order of Backend::read_top_rows, from the whole rows read back) and single rows.
void check_kept_logits(Model& mg, const std::vector<float>& whole, int32_t rows, int64_t vocab, const std::string& what) {
  const int32_t k = Backend::kMaxTopRows;
  std::vector<int32_t> ids(static_cast<size_t>(rows * k));
  std::vector<float> values(ids.size());
  mg.read_top_logits(static_cast<int32_t>(vocab), k, ids.data(), values.data());
  for (int32_t r = 0; r < rows; ++r) {
    const float* row = whole.data() + r * vocab;
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int32_t j = 0; j < k; ++j) {
      ASSERT_EQ(ids[static_cast<size_t>(r * k + j)], order[static_cast<size_t>(j)]) << what << " row " << r << " rank " << j;
      ASSERT_EQ(values[static_cast<size_t>(r * k + j)], row[order[static_cast<size_t>(j)]]) << what;
    }
  }
  std::vector<float> one(static_cast<size_t>(vocab));
  mg.read_logits(rows - 1, 1, one.data());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), whole.end() - vocab)) << what << ": the last row read alone";
}

// Batched decode: n_seqs sequences in their own cache blocks, one token each per step, so
// the GPU's step of n_seqs tokens takes the tensor-core products and is recorded as a
// graph (its first step) and replayed (the next three). Every sequence's logits are compared.
double compare_batch(const std::string& path, DType gpu_kv, double bound, int32_t n_seqs) {
  const int32_t block = 16, steps = 4;
  const Loaded m = load_both(path, gpu_kv, n_seqs, block);
  auto& mc = m.cpu_model;
  auto& mg = m.gpu_model;
  const int64_t vocab = mc->config().vocab_size;
  std::vector<int32_t> next(n_seqs);
  for (int32_t s = 0; s < n_seqs; ++s) next[static_cast<size_t>(s)] = (37 * s + 11) % static_cast<int32_t>(vocab);
  std::vector<float> lc(static_cast<size_t>(n_seqs * vocab)), lg(lc.size());
  double worst = 0;
  for (int32_t step = 0; step < steps; ++step) {
    StepBatch b;
    for (int32_t s = 0; s < n_seqs; ++s) {
      const int32_t table = n_seqs - 1 - s;  // blocks in reverse order
      b.seqs.push_back(StepSequence{{table}, step + 1});
      b.tokens.push_back(next[static_cast<size_t>(s)]);
      b.positions.push_back(step);
      b.seq_of.push_back(s);
      b.slots.push_back(static_cast<int64_t>(table) * block + step);
      b.logit_rows.push_back(s);
    }
    mc->forward(b, lc.data());
    mg->forward(b, lg.data());
    check_kept_logits(*mg, lg, n_seqs, vocab, path);
    for (int32_t s = 0; s < n_seqs; ++s) {
      const auto pc = log_softmax(lc.data() + s * vocab, vocab), pg = log_softmax(lg.data() + s * vocab, vocab);
      const auto idx = top5(pc);
      worst = std::max(worst, top5_gap(pc, pg, idx, path + " sequence " + std::to_string(s)));
      next[static_cast<size_t>(s)] = idx[0];
    }
  }
  EXPECT_LE(worst, bound) << path;
  return worst;
}

struct ModelCase {
  const char* type;  // GGUF type, or "mlx4" / "mlx8"
  DType kv;
  double bound;
};

class CudaModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CudaModel, LogitsMatchCpu) {
  HEARTH_SKIP_WITHOUT_CUDA();
  const auto& c = GetParam();
  const ModelConfig config = small_config();
  const std::string name = std::string(c.type) + (c.kv == DType::F16 ? "_kv16" : c.kv == DType::Q8_0 ? "_kv8" : "");
  const std::string dir = temp_dir("cuda_model_" + name);
  WriteOptions o;
  std::string path = dir + "/m.gguf";
  const std::string type = c.type;
  if (type.rfind("mlx", 0) == 0) {
    o.format = OutputFormat::MLX;
    o.type = "f16";
    o.mlx_bits = type == "mlx4" ? 4 : 8;
    o.mlx_group_size = 64;
    path = dir + "/mlx";
  } else {
    o.type = type;
  }
  write_model(config, random_tensors(config, 17), o, path);
  const double worst = compare(path, c.kv, c.bound);
  std::printf("[ %s ] max |logprob(cuda) - logprob(cpu)| over the CPU's top 5 = %.3g (bound %.3g)\n", name.c_str(),
              worst, c.bound);
#ifdef HEARTH_HAVE_CUDA
  const int64_t swiglu_before = cuda::swiglu_split_launches(), rope_before = cuda::rope_split_launches();
#endif
  for (int32_t n_seqs : {3, 12, 20}) {
    const double batched = compare_batch(path, c.kv, c.bound, n_seqs);
    std::printf("[ %s ] %d sequences decoded together: max |logprob(cuda) - logprob(cpu)| over top 5 = %.3g\n",
                name.c_str(), n_seqs, batched);
  }
#ifdef HEARTH_HAVE_CUDA
  // GGUF quantized weights take the f16 tensor-core products in batched steps, and this
  // model's merged gate/up and q/k/v are split in K: SwiGLU and the rope add the splits
  // (no reduce launches).
  const bool f16_products = type == "q8_0" || type == "q4_0" || type == "q4_k_m" || type == "q5_k" || type == "q6_k";
  if (f16_products && !switched_off("HEARTH_CUDA_FUSE") && !switched_off("HEARTH_CUDA_FUSE_SPLITS") &&
      !switched_off("HEARTH_CUDA_MMA") && !switched_off("HEARTH_CUDA_MMA_F16")) {
    EXPECT_GT(cuda::swiglu_split_launches(), swiglu_before) << name << ": no SwiGLU added a product's K splits";
    EXPECT_GT(cuda::rope_split_launches(), rope_before) << name << ": no rope added a product's K splits";
  }
#endif
}

// The loader asks the backend before its first upload (loader.cpp): weights that cannot fit
// in the free GPU memory are refused with the sizes needed and free; what fits passes.
TEST(CudaModelMemory, WeightsThatDoNotFitAreRefusedWithTheSizes) {
  HEARTH_SKIP_WITHOUT_CUDA();
  auto gpu = make_cuda_backend(0);
  try {
    gpu->check_weights_fit(int64_t{1} << 50);  // 1 PiB
    ADD_FAILURE() << "1 PiB of weights was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("does not fit"), std::string::npos) << m;
    EXPECT_NE(m.find("1048576.00 GiB"), std::string::npos) << m;
    EXPECT_NE(m.find(" is free"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(gpu->check_weights_fit(int64_t{64} << 20));
  EXPECT_EQ(gpu->memory().weights, 0);  // nothing was allocated by the check
}

// A context too large for the GPU's free memory: the default is capped to what fits (a
// multiple of the 16-token block), and asking for it is refused with the sizes. The model
// claims a 2^28-token context: 256 GiB of f16 cache at 1 KiB a token.
TEST(CudaModelMemory, ContextIsCappedByFreeGpuMemory) {
  HEARTH_SKIP_WITHOUT_CUDA();
  ModelConfig config = small_config();
  config.max_position_embeddings = 1 << 28;
  const std::string dir = temp_dir("cuda_model_long_context");
  WriteOptions o;
  o.type = "q8_0";
  write_model(config, random_tensors(config, 5), o, dir + "/m.gguf");
  RuntimeOptions ro;
  ro.device = "cuda";
  const Runtime rt = Runtime::open(dir + "/m.gguf", ro);
  const int64_t budget = rt.kv_budget_bytes(), per_token = rt.kv_bytes_per_token();
  ASSERT_GT(budget, 0);
  ASSERT_LT(budget, (int64_t{1} << 28) * per_token) << "this test needs less than 256 GiB of free GPU memory";
  const int32_t ctx = rt.default_context();
  EXPECT_EQ(ctx % 16, 0);
  EXPECT_LE(ctx * per_token, budget);
  EXPECT_GT((ctx + 16) * per_token, budget - 16 * per_token);  // as many blocks as fit, not fewer
  EXPECT_EQ(rt.resolve_context(ctx), ctx);
  try {
    rt.resolve_context(int64_t{1} << 28);
    ADD_FAILURE() << "a 2^28-token context was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("of KV cache but only"), std::string::npos) << e.what();
  }
}

// Direct mode on a GPU (generate.cpp) reads back each step's best logits where the sampler
// can do with them: the tokens are those of sampling every whole row of the same model,
// for greedy, Qwen3's top_k/top_p defaults (seeded), ignore_eos, and settings that read
// whole rows (a repetition penalty, logprobs).
TEST(CudaModelGenerate, TopLogitsGiveTheTokensOfWholeRows) {
  HEARTH_SKIP_WITHOUT_CUDA();
  const ModelConfig config = small_config();
  const std::string dir = temp_dir("cuda_model_generate");
  WriteOptions o;
  o.type = "q4_k_m";
  write_model(config, random_tensors(config, 23), o, dir + "/m.gguf");
  auto gpu = make_cuda_backend(0);
  auto model = Model::load(dir + "/m.gguf", *gpu);
  const SamplerVocab vocab{.n_vocab = static_cast<int32_t>(config.vocab_size), .n_tokens = 500, .eog = {3}};
  const std::vector<int32_t> prompt = {5, 99, 311, 42, 7, 260, 33, 400, 1, 2};
  std::vector<SamplingParams> settings(5);
  settings[0].temperature = 0.0f;
  settings[1].temperature = 0.6f, settings[1].top_k = 20, settings[1].top_p = 0.95f;
  settings[2].temperature = 1.0f, settings[2].top_k = 8, settings[2].ignore_eos = true;
  settings[3].temperature = 0.0f, settings[3].repetition_penalty = 1.5f;
  settings[4].temperature = 0.0f, settings[4].logprobs = true, settings[4].top_logprobs = 3;
  for (size_t i = 0; i < settings.size(); ++i) {
    SamplingParams p = settings[i];
    p.seed = 77, p.max_tokens = 16;
    Sequence seq(*model, 64);
    const GenerationResult got = generate(seq, nullptr, prompt, p, vocab, {});
    // The whole rows, sampled here.
    Sequence ref(*model, 64);
    Sampler sampler(p, vocab);
    for (int32_t id : prompt) sampler.accept(id);
    std::vector<float> row = ref.feed(prompt);
    std::vector<int32_t> want;
    for (int32_t t = 0; t < p.max_tokens; ++t) {
      SampleLogprobs lp;
      want.push_back(sampler.sample(row.data(), p.logprobs ? &lp : nullptr));
      if (sampler.is_stop_token(want.back())) break;
      sampler.accept(want.back());
      row = ref.feed(std::span<const int32_t>(&want.back(), 1));
    }
    EXPECT_EQ(got.tokens, want) << "setting " << i;
  }
}

// A recorded step is flushed as two graphs (CudaBackend::split_ops_): the first part runs
// while the host records the rest. The kernels are the same whatever the split point, so the
// logits must be bit for bit those of the step recorded as one graph: one sequence and three
// decoded together, six replayed steps each, split before the first norm, at the default
// point, and not at all (HEARTH_CUDA_SPLIT_OPS, read when the backend is made).
TEST(CudaModelSplitSteps, LogitsAreThoseOfOneGraph) {
  HEARTH_SKIP_WITHOUT_CUDA();
  const ModelConfig config = small_config();
  const int64_t vocab = config.vocab_size;
  for (const char* type : {"q4_k_m", "mlx4"}) {
    const std::string dir = temp_dir(std::string("cuda_model_split_") + type);
    WriteOptions o;
    std::string path = dir + "/m.gguf";
    if (std::string(type) == "mlx4") {
      o.format = OutputFormat::MLX, o.type = "f16", o.mlx_bits = 4, o.mlx_group_size = 64, path = dir + "/mlx";
    } else {
      o.type = type;
    }
    write_model(config, random_tensors(config, 29), o, path);
    std::vector<std::vector<float>> runs;
    for (const char* split : {"0", "1", "20"}) {
      setenv("HEARTH_CUDA_SPLIT_OPS", split, 1);
      auto gpu = make_cuda_backend(0);
      unsetenv("HEARTH_CUDA_SPLIT_OPS");
      auto model = Model::load(path, *gpu);
      gpu->init_kv_cache(model->kv_cache_config(8, 16));
      std::vector<float> all;
      for (int32_t n_seqs : {1, 3}) {
        std::vector<float> logits(static_cast<size_t>(n_seqs * vocab));
        for (int32_t step = 0; step < 6; ++step) {
          StepBatch b;
          for (int32_t s = 0; s < n_seqs; ++s) {
            const int32_t table = n_seqs == 1 ? 7 : s;  // a cache block each
            b.seqs.push_back(StepSequence{{table}, step + 1});
            b.tokens.push_back((53 * s + 17 * step + 5) % static_cast<int32_t>(vocab));
            b.positions.push_back(step);
            b.seq_of.push_back(s);
            b.slots.push_back(static_cast<int64_t>(table) * 16 + step);
            b.logit_rows.push_back(s);
          }
          model->forward(b, logits.data());
          all.insert(all.end(), logits.begin(), logits.end());
        }
      }
      runs.push_back(std::move(all));
    }
    for (size_t r = 1; r < runs.size(); ++r) {
      ASSERT_EQ(runs[r].size(), runs[0].size());
      size_t differ = 0;
      for (size_t i = 0; i < runs[0].size(); ++i) differ += std::memcmp(&runs[r][i], &runs[0][i], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0u) << type << ": split setting " << r << " changed " << differ << " logits";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaModel,
                         ::testing::Values(ModelCase{"f32", DType::F32, 2e-3}, ModelCase{"f32", DType::F16, 2e-2},
                                           ModelCase{"f16", DType::F32, 2e-2}, ModelCase{"bf16", DType::F16, 2e-2},
                                           ModelCase{"q8_0", DType::F16, 0.15}, ModelCase{"q4_0", DType::F16, 0.15},
                                           ModelCase{"q4_k_m", DType::F16, 0.15}, ModelCase{"q5_k", DType::F32, 0.15},
                                           ModelCase{"q6_k", DType::F16, 0.15}, ModelCase{"mlx4", DType::F16, 0.15},
                                           ModelCase{"mlx8", DType::F32, 0.15}, ModelCase{"f32", DType::Q8_0, 2e-2},
                                           ModelCase{"q4_k_m", DType::Q8_0, 0.15}));

}  // namespace
