// OpenAI chat output from generated text, for Qwen3/Hermes-style models: reasoning in
// <think>…</think>, tool calls as <tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>.
// parse_chat_output() handles a finished generation; ChatStreamParser turns the same text,
// fed piece by piece, into OpenAI stream deltas. The two are written separately but obey
// the same rules, and the deltas of any cutting of a text add up to exactly the message
// parse_chat_output() returns for it (tests/chat_output checks this on random cuttings).
//
// Rules (the same in both):
// - Reasoning: if the text starts (after whitespace) with <think>, or the prompt already
//   opened it (starts_in_reasoning), everything up to the first </think> is
//   reasoning_content, stripped of surrounding whitespace; whitespace after </think> is
//   dropped. No </think> (cut off mid-thought): all of it is reasoning. These are
//   llama.cpp's rules, and match how Qwen3's template re-renders reasoning (stripped, then
//   wrapped in "<think>\n…\n</think>\n\n"), so history replays tokenise as generated.
// - Tool calls: a block is a call once its start matches {"name": "<name>", "arguments": {
//   (any whitespace between the tokens). From then on it stays a call; its arguments are the
//   text the model wrote, from that { up to the object's closing }, so a replayed history
//   renders byte-identical and the prefix cache keeps hitting. A block that doesn't start
//   that way is parsed as a whole when </tool_call> arrives; valid JSON with a string
//   "name" and an object (or string) "arguments" is still a call (arguments re-serialised
//   compactly); anything else, and any unterminated block that never matched, stays in
//   content verbatim, tags included, so no generated text is lost.
//   NOTE: a call whose start matched but whose arguments turn out to be broken (cut off by
//   max_tokens, say) is still reported as a call with those arguments: in a stream the
//   client has already been told about it, and the non-stream answer must agree.
// - Whitespace between content and a call, between calls and after the last call is
//   dropped; other content is kept as generated.
// - tool_calls = false (tool_choice "none", or no tools): <tool_call> is plain content.
//
// Streaming guarantees: markup (<think>, </think>, <tool_call>, </tool_call>) split across
// pieces never leaks into content or reasoning (possible prefixes are held back); a call's
// first delta carries id, type and name with empty arguments; argument text follows, and
// the closing braces are held back until </tool_call>, so the accumulated arguments never
// parse as JSON before the call is complete (OpenCode runs a call as soon as they do).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth {

struct ToolCall {
  std::string id;         // "call_" + 24 random letters and digits
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

// An assistant message as OpenAI returns it.
struct ChatMessage {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCall> tool_calls;
};

struct ChatParseOptions {
  bool reasoning = true;             // split <think>…</think> off into reasoning_content
  bool starts_in_reasoning = false;  // the prompt ended inside an open <think>
  bool tool_calls = true;            // parse <tool_call> blocks (false for tool_choice "none")
  // Text the server put into the prompt after the generation prompt to force a tool call
  // (tool_choice_prefill); it is parsed as the start of the output. A prefill implies the
  // prompt is not inside <think>: starts_in_reasoning is ignored when it is set.
  std::string prefill;
  std::optional<uint64_t> id_seed;   // fixes the tool call ids (tests); random otherwise
};

ChatMessage parse_chat_output(std::string_view generated, const ChatParseOptions& options);

// One piece of a streamed message.
struct ChatDelta {
  enum class Kind {
    Reasoning,          // text: more reasoning_content
    Content,            // text: more content
    ToolCallBegin,      // index, id, name: a new call (arguments "")
    ToolCallArguments,  // index, text: more arguments of call `index`
    ToolCallEnd,        // index: the call is complete (no OpenAI field; for the server's use)
  };
  Kind kind;
  std::string text;
  int index = -1;
  std::string id;
  std::string name;
};

class ChatStreamParser {
 public:
  explicit ChatStreamParser(ChatParseOptions options);

  // Feeds a piece of generated text; returns the deltas that are certain now (consecutive
  // deltas of the same kind are merged).
  std::vector<ChatDelta> feed(std::string_view piece);
  // End of generation: returns whatever was held back.
  std::vector<ChatDelta> finish();

  // The message so far: the sum of every delta returned.
  const ChatMessage& message() const { return message_; }

 private:
  enum class Mode { Start, Reasoning, Content, ToolHeader, ToolRaw, ToolArgs };

  void process(bool final);
  bool step_start(bool final);
  bool step_reasoning(bool final);
  bool step_content(bool final);
  bool step_tool_header(bool final);
  bool step_tool_args(bool final);
  void resolve_block(size_t body_len, bool closed);

  void emit(ChatDelta::Kind kind, std::string_view text);
  void begin_call(std::string name);
  void end_call();

  ChatParseOptions options_;
  Mode mode_;
  std::string buf_;          // received, not yet consumed by the current mode
  bool skip_ws_ = false;     // drop whitespace before the next reasoning/content text
  std::string pre_ws_;       // whitespace before the current <tool_call>
  size_t args_emitted_ = 0;  // ToolArgs: bytes of buf_ already sent as arguments
  uint64_t id_state_;
  ChatMessage message_;
  std::vector<ChatDelta> out_;
};

// ---- OpenAI JSON -----------------------------------------------------------------------

// Which field carries reasoning: clients differ (OpenCode and llama.cpp use
// reasoning_content, vLLM renamed it reasoning), and a client ignores the one it doesn't know.
enum class ReasoningField { ReasoningContent, Reasoning, Both };

// {"role": "assistant", "content": …, "reasoning_content"?: …, "tool_calls"?: […]};
// content is null when there are tool calls and no text.
nlohmann::ordered_json message_json(const ChatMessage& message,
                                    ReasoningField field = ReasoningField::ReasoningContent);
// The "delta" object of one chat.completion.chunk; null for ToolCallEnd (send nothing).
nlohmann::ordered_json delta_json(const ChatDelta& delta, ReasoningField field = ReasoningField::ReasoningContent);
// "length" if max_tokens cut the generation, else "tool_calls" if there are calls, else "stop".
std::string finish_reason(const ChatMessage& message, bool hit_length);

// ---- tool_choice -----------------------------------------------------------------------

struct ToolChoice {
  enum class Mode { None, Auto, Required, Function };
  Mode mode = Mode::None;
  std::string name;  // Mode::Function
};

// Reads "tool_choice" and "tools" of a chat completion request. Without tool_choice the
// mode is "auto" when tools are given and "none" otherwise (as OpenAI). "required" with a
// single function is returned as that function (Mode::Function). Throws
// hearth::Error (-> 400) for an unknown mode, or a required/named call without matching tools.
ToolChoice parse_tool_choice(const nlohmann::ordered_json& request);

// What the server appends to the prompt, after the generation prompt (and after a closed
// think block for reasoning models), to force the model into a call; pass the same text as
// ChatParseOptions::prefill. "" for none/auto; `<tool_call>\n{"name": "` for required;
// `<tool_call>\n{"name": "NAME", "arguments": ` for a named function.
std::string tool_choice_prefill(const ToolChoice& choice);

// ---- internals shared by the two parsers (exposed for the tests) ------------------------

namespace chat_detail {

inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";
inline constexpr std::string_view kToolOpen = "<tool_call>";
inline constexpr std::string_view kToolClose = "</tool_call>";

// JSON's whitespace, which is also what the models put around markup.
inline bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
std::string_view lstrip(std::string_view s);
std::string_view rstrip(std::string_view s);

// Length of the longest tail of text that is a proper prefix of tag (0 if none).
size_t partial_tag(std::string_view text, std::string_view tag);

// The start of a tool-call body: {"name": "<name>", "arguments": {
enum class HeaderMatch { Matched, NeedMore, Failed };
struct ToolHeader {
  HeaderMatch match = HeaderMatch::Failed;
  std::string name;
  size_t args_begin = 0;  // offset of the arguments' '{' in the body, when Matched
};
// Matching looks only at as much of body as it needs, so a prefix of a body that matches
// gives the same result as the whole body.
ToolHeader match_tool_header(std::string_view body);

// Arguments text from the arguments' '{' to the end of the body: drops the body's closing
// '}' and the whitespace around it.
std::string_view strip_outer_close(std::string_view args);

// A body that didn't match the header, parsed as one JSON value: {name, arguments} or none.
struct ParsedCall {
  std::string name;
  std::string arguments;
};
std::optional<ParsedCall> parse_tool_json(std::string_view body);

// Tool call ids: "call_" + 24 characters of [A-Za-z0-9] from a splitmix64 stream.
uint64_t initial_id_state(const std::optional<uint64_t>& seed);
std::string next_call_id(uint64_t& state);

}  // namespace chat_detail

}  // namespace hearth
