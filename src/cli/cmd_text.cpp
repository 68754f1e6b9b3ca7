// The text-path commands, for checking exactly what a model will see:
//   hearth tokenize -m MODEL [--json] [--no-special]   UTF-8 on stdin -> token ids
//   hearth detokenize -m MODEL [--skip-special]        ids (JSON array or comma list) -> text
//   hearth chat-template -m MODEL                      OpenAI request JSON on stdin -> prompt
//                                                      ("add_generation_prompt": false as in vLLM)
// MODEL is a .gguf, a model folder or a tokenizer.json. chat-template renders with the same
// Runtime code the server uses, generation prompt included.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/runtime.h"
#include "tokenizer/tokenizer.h"

namespace hearth::cli {
namespace {

std::string read_stdin() {
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

struct TextOptions {
  std::string model;
  bool json = false;
  bool no_special = false;
  bool skip_special = false;
};

int run_tokenize(const TextOptions& o) {
  const Tokenizer tok = Tokenizer::from_path(o.model);
  const std::vector<int32_t> ids = tok.encode(read_stdin(), !o.no_special);
  if (o.json) {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? "," : "", ids[i]);
    std::printf("\n");
  }
  return 0;
}

int run_detokenize(const TextOptions& o) {
  const Tokenizer tok = Tokenizer::from_path(o.model);
  const std::string input = read_stdin();
  std::vector<int32_t> ids;
  const auto j = nlohmann::json::parse(input, nullptr, false);
  if (!j.is_discarded() && j.is_array()) {
    for (const auto& v : j) {
      HEARTH_CHECK(v.is_number_integer(), "detokenize: the input array must hold integers");
      ids.push_back(v.get<int32_t>());
    }
  } else {
    std::stringstream ss(input);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto first = item.find_first_not_of(" \t\r\n");
      if (first == std::string::npos) continue;
      size_t used = 0;
      try {
        ids.push_back(static_cast<int32_t>(std::stol(item.substr(first), &used)));
      } catch (const std::exception&) {
        fail("detokenize: '" + item + "' is not a token id (give a JSON array or comma-separated ids)");
      }
    }
  }
  for (int32_t id : ids)
    HEARTH_CHECK(id >= 0 && id < tok.n_vocab(), "detokenize: token id " + std::to_string(id) + " is outside the vocabulary");
  const std::string text = tok.decode(ids, o.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

int run_chat_template(const TextOptions& o) {
  const std::string body = read_stdin();
  nlohmann::ordered_json request;
  try {
    request = nlohmann::ordered_json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("chat-template: the request on stdin is not valid JSON: ") + e.what());
  }
  HEARTH_CHECK(request.is_object(), "chat-template: the request must be a JSON object with \"messages\"");
  RuntimeOptions options;
  options.device = "cpu";
  options.threads = 1;
  Runtime rt = Runtime::open(o.model, options);
  HEARTH_CHECK(rt.chat_template, o.model + ": the model has no tokenizer, so it has no chat template");
  // vLLM's extension field: false renders a conversation that ends with the assistant.
  const auto agp = request.find("add_generation_prompt");
  HEARTH_CHECK(agp == request.end() || agp->is_boolean(), "chat-template: add_generation_prompt must be a boolean");
  const std::string prompt = rt.chat_template->apply(request, agp == request.end() || agp->get<bool>());
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto o = std::make_shared<TextOptions>();
  app.add_option("-m,--model", o->model, "a .gguf file, a model folder or a tokenizer.json")->required();
  app.add_flag("--json", o->json, "print a JSON array (default: comma-separated ids)");
  app.add_flag("--no-special", o->no_special, "treat special-token text such as <|im_start|> as plain text");
  return [o] { return run_tokenize(*o); };
}

Command add_detokenize(CLI::App& app) {
  auto o = std::make_shared<TextOptions>();
  app.add_option("-m,--model", o->model, "a .gguf file, a model folder or a tokenizer.json")->required();
  app.add_flag("--skip-special", o->skip_special, "leave out special tokens");
  return [o] { return run_detokenize(*o); };
}

Command add_chat_template(CLI::App& app) {
  auto o = std::make_shared<TextOptions>();
  app.add_option("-m,--model", o->model, "a .gguf file or a model folder")->required();
  return [o] { return run_chat_template(*o); };
}

}  // namespace hearth::cli
