// The committed demo model (assets/demo/hearth-demo-coder-q8_0.gguf) against the figures
// PyTorch, transformers and tokenizers gave for the same checkpoint when it was trained
// (fixtures/demo/reference.json, written by scripts/train_demo/reference.py on the GPU):
//  - hearth's tokenizer gives tokenizers' ids on held-out text and odd samples;
//  - `hearth perplexity` is PyTorch's perplexity within kPplBound (the file is Q8_0; the
//    F16 comparison, 1e-8 apart, is recorded in fixtures/demo/hearth_check.json);
//  - the sliding-window definition, checked token by token against prefix-only runs;
//  - greedy continuations equal transformers' generate up to a near tie;
//  - the chat template and stop tokens the file carries;
//  - `hearth run -p "Write a function ..."` without -m answers with a Python function.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/runtime.h"
#include "engine/sequence.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace hearth;

namespace {

const std::string kSource = HEARTH_SOURCE_DIR;
const std::string kBin = std::string(HEARTH_BINARY_DIR) + "/bin/hearth";
const std::string kModel = kSource + "/assets/demo/hearth-demo-coder-q8_0.gguf";
const std::string kHeldout = kSource + "/fixtures/demo/heldout.txt";

// Q8_0 weights and 8-bit activations against PyTorch on the F16-rounded weights in float32:
// measured +0.02% (ctx 256, stride 256) and -0.01% (ctx 512, stride 256).
constexpr double kPplBound = 0.003;
// A greedy step may pick another token only where transformers' top two logits were this close.
constexpr double kNearTie = 0.05;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

const json& reference() {
  static const json j = json::parse(slurp(kSource + "/fixtures/demo/reference.json"));
  return j;
}

struct Cli {
  int status = -1;
  std::string out, err;
};

// Runs `hearth ARGS` from the source folder (so the demo model resolves without -m).
Cli run_hearth(const std::string& args, const std::string& stdin_text = "") {
  const fs::path dir = fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "demo";
  fs::create_directories(dir);
  const std::string in = (dir / "stdin").string(), out = (dir / "stdout").string(), err = (dir / "stderr").string();
  std::ofstream(in, std::ios::binary) << stdin_text;
  const std::string cmd = "cd '" + kSource + "' && '" + kBin + "' " + args + " < " + in + " > " + out + " 2> " + err;
  const int rc = std::system(cmd.c_str());
  Cli r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::string join_ids(const json& ids) {
  std::string s;
  for (const auto& v : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(v.get<int32_t>());
  }
  return s;
}

Runtime& runtime() {
  static Runtime rt = Runtime::open(kModel, {.threads = 0, .device = "cpu"});
  return rt;
}

TEST(DemoModel, TokenizerIdsEqualTokenizers) {
  const Tokenizer& tok = runtime().tok();
  const json& ref = reference();
  EXPECT_EQ(tok.encode(slurp(kHeldout)), ref["heldout_ids"].get<std::vector<int32_t>>());
  ASSERT_GE(ref["tokenizer_samples"].size(), 4u);
  for (const json& s : ref["tokenizer_samples"])
    EXPECT_EQ(tok.encode(s["text"].get<std::string>()), s["ids"].get<std::vector<int32_t>>()) << s["text"];
}

TEST(DemoModel, PerplexityEqualsPyTorch) {
  // (256, 256) costs one forward per token; the overlapping (512, 256) windows are checked
  // once in hearth_check.json and, for the window logic, by WindowsScoreEachTokenOnce.
  const json* want = nullptr;
  for (const json& p : reference()["perplexity"])
    if (p["ctx"] == 256 && p["stride"] == 256) want = &p;
  ASSERT_NE(want, nullptr);
  const Cli r = run_hearth("perplexity -m '" + kModel + "' -f '" + kHeldout + "' --ctx 256 --stride 256 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json got = json::parse(r.out);
  EXPECT_EQ(got["scored"], (*want)["scored"]);
  EXPECT_EQ(got["tokens"], reference()["heldout_tokens"]);
  const double rel = got["ppl"].get<double>() / (*want)["ppl"].get<double>() - 1;
  EXPECT_LT(std::fabs(rel), kPplBound) << "hearth " << got["ppl"] << " PyTorch " << (*want)["ppl"];
}

TEST(DemoModel, WindowsScoreEachTokenOnce) {
  // The definition, computed the slow way: each scored token t from its own run over the
  // window start begin(t) .. t-1, where begin(t) is the first window start (a multiple of
  // the stride) whose window reaches t; a token that would start its window is not scored.
  const int32_t ctx = 16, stride = 5;
  const std::string text = slurp(kHeldout).substr(0, 300);
  const std::string file = (fs::path(HEARTH_BINARY_DIR) / "test_tmp" / "demo" / "short.txt").string();
  fs::create_directories(fs::path(file).parent_path());
  std::ofstream(file, std::ios::binary) << text;

  Runtime& rt = runtime();
  const std::vector<int32_t> ids = rt.tok().encode(text);
  ASSERT_GT(ids.size(), 60u);
  const int64_t n_vocab = rt.model->config().vocab_size;
  Sequence seq(*rt.model, ctx);
  double nll = 0;
  int64_t scored = 0;
  for (int32_t t = 1; t < static_cast<int32_t>(ids.size()); ++t) {
    const int32_t begin = std::max(0, (t - ctx + stride) / stride * stride);
    if (begin >= t) continue;
    seq.truncate(0);
    const std::vector<float>& lg = seq.feed(std::span<const int32_t>(ids.data() + begin, static_cast<size_t>(t - begin)));
    double z = 0;
    for (int64_t i = 0; i < n_vocab; ++i) z += std::exp(static_cast<double>(lg[static_cast<size_t>(i)]));
    nll += std::log(z) - lg[static_cast<size_t>(ids[static_cast<size_t>(t)])];
    ++scored;
  }
  const Cli r = run_hearth("perplexity -m '" + kModel + "' -f '" + file + "' --ctx 16 --stride 5 -b 7 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json got = json::parse(r.out);
  EXPECT_EQ(got["scored"].get<int64_t>(), scored);
  EXPECT_NEAR(got["nll_sum"].get<double>(), nll, 1e-4 * nll);
}

TEST(DemoModel, GreedyEqualsTransformersUpToNearTies) {
  int n_equal = 0;
  for (const json& g : reference()["generate"]) {
    const auto want = g["tokens"].get<std::vector<int32_t>>();
    const Cli r = run_hearth("run -m '" + kModel + "' --raw --prompt-tokens " + join_ids(g["prompt_ids"]) + " -n " +
                             std::to_string(want.size()) + " --temp 0 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto got = json::parse(r.out)["tokens"].get<std::vector<int32_t>>();
    size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    if (got == want) {
      ++n_equal;
      continue;
    }
    // They part at step k: only where transformers itself was nearly undecided.
    ASSERT_LT(k, want.size()) << g["prompt"] << ": hearth stopped early at step " << k;
    EXPECT_LT(g["top2_gaps"][k].get<double>(), kNearTie) << g["prompt"] << ": differs at step " << k;
  }
  // Measured: 5 of 6 equal over 48 tokens (the sixth parts at a 0.006 gap on its 2nd token).
  EXPECT_GE(n_equal, 4);
}

TEST(DemoModel, CarriesChatTemplateAndStopTokens) {
  const Runtime& rt = runtime();
  const Tokenizer& tok = rt.tok();
  const int32_t im_end = 2, eot = 0;
  EXPECT_EQ(tok.token_text(im_end), "<|im_end|>");
  EXPECT_EQ(tok.eos_id(), im_end);
  EXPECT_TRUE(tok.is_eog(im_end));
  EXPECT_TRUE(tok.is_eog(eot));
  for (const json& g : reference()["generate"]) {
    if (g["kind"] != "chat") continue;
    const nlohmann::ordered_json messages = {{{"role", "user"}, {"content", g["prompt"]}}};
    EXPECT_EQ(rt.chat_prompt(messages), g["prompt_ids"].get<std::vector<int32_t>>()) << g["prompt"];
  }
  const Cli r = run_hearth("chat-template -m '" + kModel + "'",
                           R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(DemoModel, DefaultModelAnswersWithCode) {
  const Cli r = run_hearth("run -p 'Write a function that returns the factorial of n' --temp 0 -n 64 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("assets/demo/hearth-demo-coder-q8_0.gguf"), std::string::npos) << r.err;
  const std::string text = json::parse(r.out)["text"].get<std::string>();
  EXPECT_EQ(text.rfind("def ", 0), 0u) << text;
  EXPECT_NE(text.find("):\n    "), std::string::npos) << text;  // a signature, then an indented body
}

}  // namespace
