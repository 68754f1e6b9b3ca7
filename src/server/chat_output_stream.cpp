// ChatStreamParser: the rules of chat_output.h applied to text that arrives in pieces.
// A small mode machine over one buffer of not-yet-consumed text. Each step either moves to
// another mode (and returns true, so process() runs the next one at once) or emits the part
// of the buffer that no future text can change and keeps the rest:
//   - a tail that could still be the start of the markup this mode looks for;
//   - trailing whitespace, which is dropped if markup follows (before </think>, before a
//     <tool_call>) and emitted otherwise;
//   - in arguments, trailing '}'s, which may be the call's closing braces.
#include <utility>

#include "core/error.h"
#include "server/chat_output.h"

namespace hearth {

using namespace chat_detail;
using Kind = ChatDelta::Kind;

ChatStreamParser::ChatStreamParser(ChatParseOptions options)
    : options_(std::move(options)),
      mode_(options_.reasoning ? Mode::Start : Mode::Content),
      buf_(options_.prefill),
      id_state_(initial_id_state(options_.id_seed)) {
  if (!options_.prefill.empty()) options_.starts_in_reasoning = false;
}

std::vector<ChatDelta> ChatStreamParser::feed(std::string_view piece) {
  buf_.append(piece);
  process(/*final=*/false);
  return std::exchange(out_, {});
}

std::vector<ChatDelta> ChatStreamParser::finish() {
  process(/*final=*/true);
  return std::exchange(out_, {});
}

void ChatStreamParser::process(bool final) {
  for (;;) {
    bool moved = false;
    switch (mode_) {
      case Mode::Start: moved = step_start(final); break;
      case Mode::Reasoning: moved = step_reasoning(final); break;
      case Mode::Content: moved = step_content(final); break;
      case Mode::ToolHeader:
      case Mode::ToolRaw: moved = step_tool_header(final); break;
      case Mode::ToolArgs: moved = step_tool_args(final); break;
    }
    if (!moved) return;
  }
}

// Waits until the text either starts with <think> (after whitespace) or cannot.
bool ChatStreamParser::step_start(bool final) {
  const std::string_view rest = lstrip(buf_);
  if (rest.starts_with(kThinkOpen)) {
    buf_.erase(0, buf_.size() - rest.size() + kThinkOpen.size());
    mode_ = Mode::Reasoning;
    skip_ws_ = true;
    return true;
  }
  if (!final && kThinkOpen.starts_with(rest)) return false;
  mode_ = options_.starts_in_reasoning ? Mode::Reasoning : Mode::Content;
  skip_ws_ = options_.starts_in_reasoning;
  return true;
}

bool ChatStreamParser::step_reasoning(bool final) {
  const std::string_view buf = buf_;
  if (const size_t close = buf.find(kThinkClose); close != std::string_view::npos) {
    std::string_view text = rstrip(buf.substr(0, close));
    if (skip_ws_) text = lstrip(text);
    emit(Kind::Reasoning, text);
    buf_.erase(0, close + kThinkClose.size());
    mode_ = Mode::Content;
    skip_ws_ = true;
    return true;
  }
  size_t end = final ? buf.size() : buf.size() - partial_tag(buf, kThinkClose);
  while (end > 0 && is_ws(buf[end - 1])) --end;  // reasoning is stripped at both ends
  std::string_view text = buf.substr(0, end);
  if (skip_ws_) text = lstrip(text);
  if (!text.empty()) skip_ws_ = false;
  emit(Kind::Reasoning, text);
  if (final) buf_.clear();
  else buf_.erase(0, end);
  return false;
}

bool ChatStreamParser::step_content(bool final) {
  const std::string_view buf = buf_;
  const bool tools = options_.tool_calls;
  if (const size_t open = tools ? buf.find(kToolOpen) : std::string_view::npos; open != std::string_view::npos) {
    std::string_view before = buf.substr(0, open);
    if (skip_ws_) before = lstrip(before);
    const std::string_view text = rstrip(before);
    pre_ws_ = before.substr(text.size());  // dropped if the block is a call
    if (!text.empty()) skip_ws_ = false;
    emit(Kind::Content, text);
    buf_.erase(0, open + kToolOpen.size());
    mode_ = Mode::ToolHeader;
    return true;
  }
  size_t end = buf.size();
  if (tools && !final) {
    end -= partial_tag(buf, kToolOpen);
    while (end > 0 && is_ws(buf[end - 1])) --end;
  }
  std::string_view text = buf.substr(0, end);
  if (skip_ws_) text = lstrip(text);
  if (!text.empty()) skip_ws_ = false;
  emit(Kind::Content, text);
  buf_.erase(0, end);
  return false;
}

// Inside <tool_call>, before the header has matched (ToolHeader) or after it failed to
// (ToolRaw, waiting for </tool_call> to parse the block whole).
bool ChatStreamParser::step_tool_header(bool final) {
  const std::string_view buf = buf_;
  const size_t close = buf.find(kToolClose);
  const bool closed = close != std::string_view::npos;
  const std::string_view body = closed ? buf.substr(0, close) : buf;
  if (mode_ == Mode::ToolHeader) {
    const ToolHeader header = match_tool_header(body);
    if (header.match == HeaderMatch::Matched) {
      pre_ws_.clear();
      begin_call(header.name);
      buf_.erase(0, header.args_begin);
      mode_ = Mode::ToolArgs;
      return true;
    }
    if (header.match == HeaderMatch::Failed) mode_ = Mode::ToolRaw;
  }
  if (!closed && !final) return false;
  resolve_block(body.size(), closed);
  return true;
}

// A block whose header never matched, now complete (or cut off): a call if it parses as
// one, else content with its tags.
void ChatStreamParser::resolve_block(size_t body_len, bool closed) {
  const std::string_view body = std::string_view(buf_).substr(0, body_len);
  const auto call = closed ? parse_tool_json(body) : std::nullopt;
  if (call) {
    begin_call(call->name);
    emit(Kind::ToolCallArguments, call->arguments);
    end_call();
  } else {
    std::string text = pre_ws_;
    text.append(kToolOpen).append(body);
    if (closed) text.append(kToolClose);
    emit(Kind::Content, text);
    skip_ws_ = false;
  }
  pre_ws_.clear();
  buf_.erase(0, body_len + (closed ? kToolClose.size() : 0));
  mode_ = Mode::Content;
}

// buf_ holds the arguments from their '{'; args_emitted_ bytes of it have been sent.
bool ChatStreamParser::step_tool_args(bool final) {
  const std::string_view buf = buf_;
  const size_t close = buf.find(kToolClose, args_emitted_);
  if (close != std::string_view::npos || final) {
    const std::string_view args = strip_outer_close(buf.substr(0, close == std::string_view::npos ? buf.size() : close));
    HEARTH_ASSERT(args.size() >= args_emitted_);
    emit(Kind::ToolCallArguments, args.substr(args_emitted_));
    end_call();
    buf_.erase(0, close == std::string_view::npos ? buf.size() : close + kToolClose.size());
    mode_ = Mode::Content;
    return close != std::string_view::npos;
  }
  // Hold back a possible </tool_call> and every trailing '}' or space: the last of those
  // braces close the arguments and the call, and sending them early would make the
  // arguments parse before the call is complete.
  size_t end = buf.size() - partial_tag(buf, kToolClose);
  while (end > args_emitted_ && (is_ws(buf[end - 1]) || buf[end - 1] == '}')) --end;
  if (end > args_emitted_) {
    emit(Kind::ToolCallArguments, buf.substr(args_emitted_, end - args_emitted_));
    args_emitted_ = end;
  }
  return false;
}

void ChatStreamParser::emit(Kind kind, std::string_view text) {
  if (text.empty()) return;
  const int index = static_cast<int>(message_.tool_calls.size()) - 1;
  switch (kind) {
    case Kind::Reasoning: message_.reasoning_content.append(text); break;
    case Kind::Content: message_.content.append(text); break;
    case Kind::ToolCallArguments: message_.tool_calls.back().arguments.append(text); break;
    case Kind::ToolCallBegin:
    case Kind::ToolCallEnd: HEARTH_ASSERT(false);
  }
  if (!out_.empty() && out_.back().kind == kind && (kind != Kind::ToolCallArguments || out_.back().index == index)) {
    out_.back().text.append(text);
    return;
  }
  ChatDelta delta{.kind = kind, .text = std::string(text)};
  if (kind == Kind::ToolCallArguments) delta.index = index;
  out_.push_back(std::move(delta));
}

void ChatStreamParser::begin_call(std::string name) {
  ChatDelta delta{.kind = Kind::ToolCallBegin,
                  .index = static_cast<int>(message_.tool_calls.size()),
                  .id = next_call_id(id_state_),
                  .name = std::move(name)};
  message_.tool_calls.push_back({delta.id, delta.name, ""});
  out_.push_back(std::move(delta));
  args_emitted_ = 0;
}

void ChatStreamParser::end_call() {
  out_.push_back({.kind = Kind::ToolCallEnd, .index = static_cast<int>(message_.tool_calls.size()) - 1});
  skip_ws_ = true;  // whitespace between and after calls is dropped
  args_emitted_ = 0;
}

}  // namespace hearth
