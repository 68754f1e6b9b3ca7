// Hostile templates (fixtures/templates/hostile/ and generated ones): endless recursion,
// exponential macro calls, huge loops, output/string/list bombs, deep nesting, cycles,
// syntax errors and attempts to reach files. Each must end in a hearth::Error with a
// clear message, quickly and without exhausting memory or the stack.
#include "core/error.h"
#include "fixture_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/template.h"

namespace hearth {
namespace {

using nlohmann::ordered_json;

// Renders `source` with a one-message conversation and returns the error message.
std::string error_of(const std::string& source) {
  ordered_json vars = {{"messages", ordered_json::array({{{"role", "user"}, {"content", "hi"}}})},
                       {"bos_token", "<s>"}};
  try {
    std::string out = jinja::Template(source).render(vars);
    return "no error; rendered " + std::to_string(out.size()) + " bytes";
  } catch (const Error& e) {
    return e.what();
  }
}

std::string hostile(const std::string& name) { return test::read_fixture("hostile/" + name); }

struct Case {
  const char* file;
  const char* message;  // expected in the error
};

TEST(ChatTemplateHostile, FixturesFailCleanly) {
  const Case cases[] = {
      {"recursion.jinja", "macro recursion deeper than 100"},
      {"fork_bomb.jinja", "evaluation budget"},
      {"nested_loops.jinja", "loop iteration limit (1000000)"},
      {"output_bomb.jinja", "output exceeds the limit"},
      {"string_doubling.jinja", "exceeds the limit"},
      {"list_doubling.jinja", "exceeds the limit"},
      {"deep_value.jinja", "nested too deeply"},
      {"namespace_cycle.jinja", "nested too deeply"},
      {"unclosed_block.jinja", "template:4:1: unexpected end of template, expected 'endfor' or 'else'"},
      {"bad_expression.jinja", "template:2:8: unexpected '*'"},
      {"unterminated_string.jinja", "template:2:4: unterminated string literal"},
      {"include_file.jinja", "template:1:4: unknown tag 'include'"},
      {"huge_range.jinja", "Range too big"},
      {"huge_repeat.jinja", "exceeds the size limit"},
      {"tojson_indent.jinja", "tojson: output exceeds the size limit"},
      {"huge_center.jinja", "exceeds the limit"},
      {"huge_format_width.jinja", "format width or precision too large"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    std::string err = error_of(hostile(c.file));
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
    EXPECT_EQ(err.rfind("template:", 0), 0u) << err;  // every error names the template
  }
}

TEST(ChatTemplateHostile, RuntimeErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of(hostile("recursion.jinja")).substr(0, 13), "template:2:20");
  EXPECT_EQ(error_of("ok\n  {{ 1 // 0 }}"), "template:2:8: integer division or modulo by zero");
  EXPECT_EQ(error_of("{% for m in messages %}\n{{ raise_exception('no ' ~ m.role) }}{% endfor %}"),
            "template:2:4: no user");
  EXPECT_EQ(error_of("{{ messages[0].content.nope() }}"), "template:1:4: 'str object' has no attribute 'nope'");
}

TEST(ChatTemplateHostile, DeepSyntaxIsRejectedNotRecursed) {
  std::string parens = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  EXPECT_NE(error_of(parens).find("nested too deeply"), std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("expression nested too deeply"), std::string::npos);
  std::string blocks;
  for (int i = 0; i < 100000; ++i) blocks += "{% if true %}";
  EXPECT_NE(error_of(blocks).find("template nested too deeply"), std::string::npos);
  std::string nots = "{{ ";
  for (int i = 0; i < 100000; ++i) nots += "not ";
  EXPECT_NE(error_of(nots + "1 }}").find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplateHostile, InvalidUtf8AndHugeSources) {
  EXPECT_NE(error_of("{{ 'a' }}\xff").find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of(std::string(17u << 20, 'x')).find("larger than 16 MiB"), std::string::npos);
}

TEST(ChatTemplateHostile, LimitsAreConfigurable) {
  ChatTemplate ct("{% for i in range(100) %}{{ i }}{% endfor %}", "", "");
  ordered_json req = {{"messages", ordered_json::array({{{"role", "user"}, {"content", "x"}}})}};
  EXPECT_EQ(ct.apply(req).size(), 190u);
  jinja::Limits small;
  small.max_loop_iterations = 50;
  ct.set_limits(small);
  EXPECT_THROW(ct.apply(req), Error);
  small = jinja::Limits();
  small.max_output_bytes = 100;
  ct.set_limits(small);
  EXPECT_THROW(ct.apply(req), Error);
}

TEST(ChatTemplateHostile, TemplateStaysUsableAfterErrors) {
  jinja::Template t("{% if x %}{{ 1 / 0 }}{% else %}ok{% endif %}");
  for (int i = 0; i < 3; ++i) {
    EXPECT_THROW(t.render(ordered_json{{"x", true}}), Error);
    EXPECT_EQ(t.render(ordered_json{{"x", false}}), "ok");
  }
}

}  // namespace
}  // namespace hearth
