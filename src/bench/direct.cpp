// run_direct_suite (direct.h): each case's messages through the chat template, then
// generate() greedily. A case that does not fit the model's context throws the engine's
// one-line error before anything runs.
#include "bench/direct.h"

#include <cstdio>

#include "backend/backend.h"
#include "engine/generate.h"
#include "model/model.h"

namespace hearth::bench {

std::vector<CaseResult> run_direct_suite(Runtime& rt, const DirectSuiteOptions& o) {
  std::vector<CaseResult> out;
  for (const SuiteCase& sc : o.suite) {
    const int max_tokens = sc.max_tokens > 0 ? sc.max_tokens : o.max_tokens;
    const std::vector<int32_t> prompt = rt.chat_prompt(sc.messages);
    check_context(static_cast<int64_t>(prompt.size()), max_tokens, rt.model->config().max_position_embeddings);
    SamplingParams params = rt.defaults;
    params.temperature = 0;
    params.max_tokens = max_tokens;
    std::string text;
    for (const auto& m : sc.messages)
      if (m.is_object() && m.value("role", "") == "user" && m["content"].is_string()) text = m["content"];
    CaseResult c{sc.name, text, false, max_tokens, {}};
    for (int rep = -o.warmup; rep < o.repetitions; ++rep) {
      Sequence seq(*rt.model, static_cast<int32_t>(prompt.size()) + max_tokens + 1);
      const GenerationResult g = generate(seq, rt.tokenizer.get(), prompt, params, rt.vocab, GenerateOptions{});
      const GenerationStats& s = g.stats;
      RequestRecord r;
      r.repetition = rep;
      r.outcome = Outcome::ok;
      r.ttft_s = s.ttft_s;
      r.total_s = s.total_s;
      r.prompt_tokens = s.prompt_tokens;
      r.completion_tokens = s.completion_tokens;
      r.finish_reason = g.finish_reason;
      r.decode_tokens_per_s = s.decode_tokens_per_s() > 0 ? s.decode_tokens_per_s() : -1;
      r.e2e_tokens_per_s = s.end_to_end_tokens_per_s() > 0 ? s.end_to_end_tokens_per_s() : -1;
      r.content_chars = static_cast<int64_t>(g.text.size());
      if (o.progress) {
        char buf[160];
        std::snprintf(buf, sizeof buf, ": %.1f tok/s, TTFT %.0f ms, %lld tokens in %.2f s", r.e2e_tokens_per_s,
                      r.ttft_s * 1000, static_cast<long long>(r.completion_tokens), r.total_s);
        o.progress(sc.name + (rep < 0 ? " warm-up" : " rep " + std::to_string(rep + 1) + "/" + std::to_string(o.repetitions)) + buf);
      }
      if (rep >= 0) c.requests.push_back(r);
    }
    out.push_back(std::move(c));
  }
  return out;
}

RunResults run_model(Runtime& rt, const ModelRunOptions& o) {
  RunResults r;
  r.kind = "model";
  r.label = o.label.empty() ? "hearth (Direct)" : o.label;
  r.created = utc_now_iso();
  r.tool = "hearth 0.1.0";
  r.machine = describe_machine();
  r.machine.note = o.note;
  r.model = rt.path;
  r.settings = {o.suite.max_tokens, o.suite.repetitions, o.suite.warmup, 0, {}};
  r.cases = run_direct_suite(rt, o.suite);
  const MemoryStats mem = rt.memory();
  DirectInfo d;
  d.model_path = rt.path;
  d.backend = rt.backend->name();
  d.threads = o.threads;
  d.load_s = rt.load_s;
  d.weights_bytes = mem.weights_bytes;
  d.kv_cache_bytes = o.kv_cache_bytes >= 0 ? o.kv_cache_bytes : mem.kv_cache_bytes;
  d.peak_rss_bytes = mem.peak_rss_bytes;
  d.tests = o.tests;
  r.direct = std::move(d);
  return r;
}

}  // namespace hearth::bench
