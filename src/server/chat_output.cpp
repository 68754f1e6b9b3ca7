// Whole-text chat output parsing, the shared helpers of chat_output_detail.h, the OpenAI
// JSON shapes and tool_choice. The rules are stated once, in chat_output.h; this parser is
// the direct reading of them, and ChatStreamParser (chat_output_stream.cpp) must agree.
#include "server/chat_output.h"

#include <random>

#include "core/error.h"

namespace hearth {

namespace chat_detail {

std::string_view lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_ws(s[i])) ++i;
  return s.substr(i);
}

std::string_view rstrip(std::string_view s) {
  size_t n = s.size();
  while (n > 0 && is_ws(s[n - 1])) --n;
  return s.substr(0, n);
}

size_t partial_tag(std::string_view text, std::string_view tag) {
  for (size_t len = std::min(text.size(), tag.size() - 1); len > 0; --len) {
    if (tag.starts_with(text.substr(text.size() - len))) return len;
  }
  return 0;
}

ToolHeader match_tool_header(std::string_view body) {
  ToolHeader header;
  size_t i = 0;
  const size_t n = body.size();
  auto done = [&](HeaderMatch m) {
    header.match = m;
    return header;
  };
  auto skip_ws = [&] {
    while (i < n && is_ws(body[i])) ++i;
  };
  // Consumes lit at i: Matched, or NeedMore if body ends inside it, or Failed.
  auto literal = [&](std::string_view lit) {
    for (char c : lit) {
      if (i >= n) return HeaderMatch::NeedMore;
      if (body[i] != c) return HeaderMatch::Failed;
      ++i;
    }
    return HeaderMatch::Matched;
  };
  for (std::string_view lit : {"{", "\"name\"", ":", "\""}) {
    skip_ws();
    if (auto m = literal(lit); m != HeaderMatch::Matched) return done(m);
  }
  // The name: plain characters only; an escape sends the block to the full JSON parse.
  for (;; ++i) {
    if (i >= n) return done(HeaderMatch::NeedMore);
    const auto c = static_cast<unsigned char>(body[i]);
    if (c == '"') break;
    if (c == '\\' || c < 0x20) return done(HeaderMatch::Failed);
    header.name.push_back(static_cast<char>(c));
  }
  ++i;
  if (header.name.empty()) return done(HeaderMatch::Failed);
  for (std::string_view lit : {",", "\"arguments\"", ":"}) {
    skip_ws();
    if (auto m = literal(lit); m != HeaderMatch::Matched) return done(m);
  }
  skip_ws();
  if (i >= n) return done(HeaderMatch::NeedMore);
  if (body[i] != '{') return done(HeaderMatch::Failed);
  header.args_begin = i;
  return done(HeaderMatch::Matched);
}

std::string_view strip_outer_close(std::string_view args) {
  args = rstrip(args);
  if (!args.empty() && args.back() == '}') args.remove_suffix(1);
  return rstrip(args);
}

std::optional<ParsedCall> parse_tool_json(std::string_view body) {
  const auto value = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  const auto name = value.find("name");
  if (name == value.end() || !name->is_string() || name->get<std::string>().empty()) return std::nullopt;
  ParsedCall call{name->get<std::string>(), "{}"};
  if (const auto args = value.find("arguments"); args != value.end()) {
    if (args->is_object()) call.arguments = args->dump();
    else if (args->is_string()) call.arguments = args->get<std::string>();
    else return std::nullopt;
  }
  return call;
}

uint64_t initial_id_state(const std::optional<uint64_t>& seed) {
  if (seed) return *seed;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

std::string next_call_id(uint64_t& state) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    id.push_back(kAlphabet[z % kAlphabet.size()]);
  }
  return id;
}

}  // namespace chat_detail

using namespace chat_detail;

ChatMessage parse_chat_output(std::string_view generated, const ChatParseOptions& options) {
  const std::string full = options.prefill + std::string(generated);
  const std::string_view text = full;
  const bool starts_in_reasoning = options.starts_in_reasoning && options.prefill.empty();
  ChatMessage message;
  size_t pos = 0;
  bool skip_ws = false;  // drop whitespace at the start of the next content

  if (options.reasoning) {
    const std::string_view rest = lstrip(text);
    size_t begin = std::string_view::npos;
    if (rest.starts_with(kThinkOpen)) begin = text.size() - rest.size() + kThinkOpen.size();
    else if (starts_in_reasoning) begin = 0;
    if (begin != std::string_view::npos) {
      const size_t end = text.find(kThinkClose, begin);
      const std::string_view inner = text.substr(begin, end == std::string_view::npos ? text.size() - begin : end - begin);
      message.reasoning_content = lstrip(rstrip(inner));
      pos = end == std::string_view::npos ? text.size() : end + kThinkClose.size();
      skip_ws = true;
    }
  }

  auto add_content = [&](std::string_view s) {
    if (skip_ws) s = lstrip(s);
    if (!s.empty()) skip_ws = false;
    message.content += s;
  };
  uint64_t id_state = initial_id_state(options.id_seed);
  while (pos < text.size()) {
    const size_t open = options.tool_calls ? text.find(kToolOpen, pos) : std::string_view::npos;
    if (open == std::string_view::npos) {
      add_content(text.substr(pos));
      break;
    }
    const size_t block_begin = pos;
    const std::string_view before = text.substr(pos, open - pos);
    const size_t body_begin = open + kToolOpen.size();
    const size_t close = text.find(kToolClose, body_begin);
    const bool closed = close != std::string_view::npos;
    const std::string_view body = text.substr(body_begin, (closed ? close : text.size()) - body_begin);
    pos = closed ? close + kToolClose.size() : text.size();

    std::optional<ParsedCall> call;
    const ToolHeader header = match_tool_header(body);
    if (header.match == HeaderMatch::Matched) {
      call = ParsedCall{header.name, std::string(strip_outer_close(body.substr(header.args_begin)))};
    } else if (closed) {
      call = parse_tool_json(body);
    }
    if (call) {
      add_content(rstrip(before));
      message.tool_calls.push_back({next_call_id(id_state), std::move(call->name), std::move(call->arguments)});
      skip_ws = true;
    } else {
      add_content(text.substr(block_begin, pos - block_begin));  // not a call: keep it all
    }
  }
  return message;
}

// ---- OpenAI JSON -----------------------------------------------------------------------

namespace {

void put_reasoning(nlohmann::ordered_json& out, const std::string& text, ReasoningField field) {
  if (field != ReasoningField::Reasoning) out["reasoning_content"] = text;
  if (field != ReasoningField::ReasoningContent) out["reasoning"] = text;
}

}  // namespace

nlohmann::ordered_json message_json(const ChatMessage& message, ReasoningField field) {
  nlohmann::ordered_json out = {{"role", "assistant"}};
  if (message.content.empty() && !message.tool_calls.empty()) out["content"] = nullptr;
  else out["content"] = message.content;
  if (!message.reasoning_content.empty()) put_reasoning(out, message.reasoning_content, field);
  if (!message.tool_calls.empty()) {
    auto& calls = out["tool_calls"] = nlohmann::ordered_json::array();
    for (const auto& call : message.tool_calls) {
      calls.push_back({{"id", call.id},
                       {"type", "function"},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
  }
  return out;
}

nlohmann::ordered_json delta_json(const ChatDelta& delta, ReasoningField field) {
  using Kind = ChatDelta::Kind;
  switch (delta.kind) {
    case Kind::Reasoning: {
      nlohmann::ordered_json out = nlohmann::ordered_json::object();
      put_reasoning(out, delta.text, field);
      return out;
    }
    case Kind::Content:
      return {{"content", delta.text}};
    case Kind::ToolCallBegin:
      return {{"tool_calls", nlohmann::ordered_json::array({{{"index", delta.index},
                                                              {"id", delta.id},
                                                              {"type", "function"},
                                                              {"function", {{"name", delta.name}, {"arguments", ""}}}}})}};
    case Kind::ToolCallArguments:
      return {{"tool_calls",
               nlohmann::ordered_json::array({{{"index", delta.index}, {"function", {{"arguments", delta.text}}}}})}};
    case Kind::ToolCallEnd:
      break;
  }
  return nullptr;
}

std::string finish_reason(const ChatMessage& message, bool hit_length) {
  if (hit_length) return "length";
  return message.tool_calls.empty() ? "stop" : "tool_calls";
}

// ---- tool_choice -----------------------------------------------------------------------

ToolChoice parse_tool_choice(const nlohmann::ordered_json& request) {
  std::vector<std::string> names;
  if (const auto tools = request.find("tools"); tools != request.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      const auto& fn = tool.contains("function") ? tool.at("function") : tool;
      if (fn.is_object() && fn.contains("name") && fn.at("name").is_string()) names.push_back(fn.at("name"));
    }
  }
  const bool has_tools = !names.empty();
  ToolChoice choice;
  const auto it = request.find("tool_choice");
  if (it == request.end() || it->is_null()) {
    choice.mode = has_tools ? ToolChoice::Mode::Auto : ToolChoice::Mode::None;
    return choice;
  }
  if (it->is_string()) {
    const std::string mode = it->get<std::string>();
    if (mode == "none") return choice;
    if (mode == "auto") {
      choice.mode = has_tools ? ToolChoice::Mode::Auto : ToolChoice::Mode::None;
      return choice;
    }
    if (mode == "required") {
      if (!has_tools) fail("tool_choice: \"required\" needs at least one function in tools");
      // With one function, "required" is that function: forced by name, so even a model
      // that wouldn't write a valid call on its own produces one.
      choice.mode = names.size() == 1 ? ToolChoice::Mode::Function : ToolChoice::Mode::Required;
      if (names.size() == 1) choice.name = names[0];
      return choice;
    }
    fail("tool_choice: unknown value \"" + mode + "\", expected none, auto, required or a function");
  }
  if (it->is_object()) {
    // {"type": "function", "function": {"name": …}}; the flat {"type", "name"} form too.
    const auto& fn = it->contains("function") ? it->at("function") : *it;
    if (!fn.is_object() || !fn.contains("name") || !fn.at("name").is_string())
      fail("tool_choice: expected {\"type\": \"function\", \"function\": {\"name\": …}}");
    choice.name = fn.at("name").get<std::string>();
    if (std::find(names.begin(), names.end(), choice.name) == names.end())
      fail("tool_choice: function \"" + choice.name + "\" is not in tools");
    choice.mode = ToolChoice::Mode::Function;
    return choice;
  }
  fail("tool_choice: expected a string or an object");
}

std::string tool_choice_prefill(const ToolChoice& choice) {
  switch (choice.mode) {
    case ToolChoice::Mode::Required:
      return std::string(kToolOpen) + "\n{\"name\": \"";
    case ToolChoice::Mode::Function:
      // dump() escapes the name exactly as the template's tojson would.
      return std::string(kToolOpen) + "\n{\"name\": " + nlohmann::ordered_json(choice.name).dump() + ", \"arguments\": ";
    case ToolChoice::Mode::None:
    case ToolChoice::Mode::Auto:
      break;
  }
  return "";
}

}  // namespace hearth
