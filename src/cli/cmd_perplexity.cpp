// hearth perplexity: how well a model predicts a text file, with the sliding-window
// definition of scripts/train_demo/reference.py, so the figure compares with PyTorch's:
//   ids = the tokenizer's ids of the whole file (no BOS added, special-token text parsed);
//   windows ids[begin, begin + ctx) start at begin = 0, stride, 2*stride, ... and stop
//   after the one that reaches the last token; each token t >= 1 is scored once, in the
//   first window that holds it with t > begin, given the tokens of that window before it;
//   ppl = exp(sum of -log p / tokens scored), log-softmax per row, sums in double.
//   hearth perplexity -m MODEL -f FILE [--ctx 512] [--stride ctx/2] [--json]
// Each window runs from an empty KV cache (the windows overlap; nothing is reused).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/direct_options.h"
#include "core/error.h"
#include "engine/runtime.h"
#include "engine/sequence.h"
#include "tokenizer/unicode.h"

namespace hearth::cli {
namespace {

struct PerplexityOptions {
  ModelFlags model;  // model.ctx is the window (--ctx)
  std::string file;
  int32_t stride = 0;  // 0: ctx / 2
  bool json = false;
};

struct PerplexityResult {
  double nll_sum = 0;  // sum of -log p over the scored tokens (nats)
  int64_t scored = 0;
  int64_t windows = 0;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  HEARTH_CHECK(in.good(), path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  HEARTH_CHECK(unicode::is_valid_utf8(text), path + ": not valid UTF-8 text");
  return text;
}

// -log softmax(row)[target], with the normaliser summed in double.
double neg_log_prob(const float* row, int64_t n_vocab, int32_t target) {
  const float mx = *std::max_element(row, row + n_vocab);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
  return std::log(sum) + mx - static_cast<double>(row[target]);
}

PerplexityResult score(Model& model, const std::vector<int32_t>& ids, int32_t ctx, int32_t stride, int32_t n_batch) {
  const auto n = static_cast<int64_t>(ids.size());
  const int64_t n_vocab = model.config().vocab_size;
  Sequence seq(model, ctx);
  PerplexityResult r;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min<int64_t>(begin + ctx, n);
    const int64_t first = std::max(prev_end, begin + 1);  // first target scored here
    seq.truncate(0);
    // Feed the window in batches, keeping only one batch of logits at a time; row k of the
    // window predicts token begin + k + 1.
    for (int64_t b = begin; b < end; b += n_batch) {
      const int64_t e = std::min<int64_t>(b + n_batch, end);
      const std::vector<float> logits =
          seq.feed_all_logits(std::span<const int32_t>(ids.data() + b, static_cast<size_t>(e - b)), n_batch);
      for (int64_t t = std::max(first, b + 1); t <= std::min(e, end - 1); ++t) {
        const int64_t row = t - 1 - b;  // the row of token t - 1 in this batch
        r.nll_sum += neg_log_prob(logits.data() + row * n_vocab, n_vocab, ids[static_cast<size_t>(t)]);
        ++r.scored;
      }
    }
    ++r.windows;
    prev_end = end;
    if (end == n) break;
  }
  return r;
}

int run_perplexity(const PerplexityOptions& o) {
  const int64_t ctx = o.model.ctx == 0 ? 512 : o.model.ctx;
  HEARTH_CHECK(ctx >= 2 && ctx <= (1 << 20), "-c/--ctx " + std::to_string(ctx) + ": expected 2 to 1048576");
  const int64_t stride = o.stride == 0 ? ctx / 2 : o.stride;
  HEARTH_CHECK(stride >= 1 && stride <= ctx,
               "--stride " + std::to_string(stride) + ": expected 1 to the window size " + std::to_string(ctx));
  HEARTH_CHECK(o.model.threads >= 0 && o.model.threads <= 1024,
               "-t/--threads " + std::to_string(o.model.threads) + ": expected 0 (all) to 1024");
  HEARTH_CHECK(o.model.batch >= 0 && o.model.batch <= 65536,
               "-b/--batch " + std::to_string(o.model.batch) + ": expected 1 to 65536");
  const std::string text = read_text_file(o.file);

  const auto t0 = std::chrono::steady_clock::now();
  RuntimeOptions ro;
  ro.threads = o.model.threads;
  ro.device = o.model.device;
  ro.kv_cache_type = o.model.kv_cache_type;
  Runtime rt = Runtime::open(resolve_model(o.model.model), ro);
  const int32_t n_ctx = rt.resolve_context(ctx);
  const std::vector<int32_t> ids = rt.tok().encode(text, /*parse_special=*/true);
  HEARTH_CHECK(ids.size() >= 2, o.file + ": the text has " + std::to_string(ids.size()) +
                                    " token(s); perplexity needs at least 2");
  const int32_t batch = o.model.batch > 0 ? o.model.batch : 512;  // windows are short: 512 as documented
  const PerplexityResult r = score(*rt.model, ids, n_ctx, static_cast<int32_t>(stride), batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ppl = std::exp(r.nll_sum / static_cast<double>(r.scored));
  if (o.json) {
    nlohmann::ordered_json j;
    j["ppl"] = ppl;
    j["nll_sum"] = r.nll_sum;
    j["scored"] = r.scored;
    j["tokens"] = ids.size();
    j["ctx"] = n_ctx;
    j["stride"] = stride;
    j["windows"] = r.windows;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f over %lld tokens (ctx %d, stride %lld, %lld windows, %.1f s)\n", ppl,
                static_cast<long long>(r.scored), n_ctx, static_cast<long long>(stride),
                static_cast<long long>(r.windows), seconds);
  }
  return 0;
}

}  // namespace

Command add_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  // The direct-mode flags, except that -c/--ctx is the window here.
  app.add_option("-m,--model", o->model.model, std::string("a .gguf file or a model folder (default: ") + kDemoModel + ")");
  app.add_option("-c,--ctx", o->model.ctx, "window size in tokens (default 512)");
  app.add_option("-t,--threads", o->model.threads, "CPU threads (default: all)");
  app.add_option("-b,--batch", o->model.batch, "tokens per forward pass (default 512)");
  app.add_option("--device", o->model.device, "cuda, cpu or auto (default auto: cuda when a GPU is present)");
  app.add_option("-f,--file", o->file, "UTF-8 text file to score")->required();
  app.add_option("--stride", o->stride, "tokens between window starts (default, or 0: half the window)");
  app.add_flag("--json", o->json, "print ppl, nll_sum, scored, tokens, ctx, stride, windows, seconds as JSON");
  return [o] { return run_perplexity(*o); };
}

}  // namespace hearth::cli
