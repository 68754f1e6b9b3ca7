// chat_example: a two-turn conversation through hearth's C++ API, streamed to stdout.
//   build/bin/chat_example [MODEL] ["first question"] ["second question"]
// MODEL defaults to the committed demo model (assets/demo/). The answer of each turn is
// printed as it is generated (the per-token callback), then its measured statistics.
#include <cstdio>
#include <string>

#include "hearth/hearth.h"

namespace {

void print_stats(const hearth::GenerationStats& s) {
  std::printf("\n[%lld prompt tokens (%lld cached) in %.1f ms, first token after %.1f ms, %lld tokens at %.1f tok/s; "
              "KV cache %.1f MiB, peak RSS %.1f MiB]\n",
              static_cast<long long>(s.prompt_tokens), static_cast<long long>(s.cached_tokens), s.prompt_s * 1000,
              s.ttft_s * 1000, static_cast<long long>(s.completion_tokens), s.decode_tokens_per_s(),
              static_cast<double>(s.memory.kv_cache_bytes) / 1048576.0,
              static_cast<double>(s.memory.peak_rss_bytes) / 1048576.0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "assets/demo/hearth-demo-coder-q8_0.gguf";
  const std::string first = argc > 2 ? argv[2] : "Write a function that returns the factorial of n";
  const std::string second = argc > 3 ? argv[3] : "Write a function that reverses a string";
  try {
    hearth::LoadOptions load;
    load.context = 2048;  // the demo model's trained context
    auto model = hearth::LocalModel::load(path, load);
    std::printf("loaded %s in %.2f s (context %lld tokens)\n", model->path().c_str(), model->load_seconds(),
                static_cast<long long>(model->context_length()));

    hearth::Conversation chat(model, "You are a helpful assistant. Answer in one paragraph.");
    chat.set_thinking(false);
    hearth::SamplingParams params = model->default_params();  // the model's generation config
    params.temperature = 0.7f;
    params.top_p = 0.9f;
    params.max_tokens = 64;
    params.seed = 2024;

    hearth::GenerateControl control;
    control.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    for (const std::string& question : {first, second}) {
      std::printf("\n> %s\n", question.c_str());
      const hearth::Reply reply = chat.send(question, params, control);
      print_stats(reply.stats);
    }
    std::printf("\n%zu messages in the conversation\n", chat.messages().size());
  } catch (const hearth::Error& e) {
    std::fprintf(stderr, "chat_example: %s\n", e.what());
    return 1;
  }
  return 0;
}
