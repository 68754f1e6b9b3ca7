// Exact equality with the reference: every template of fixtures/templates/templates.json
// (Qwen3, Qwen2.5, Llama 3.1, Llama 3.2, ChatML) on every conversation of
// conversations.json as jinja2-configured-like-transformers renders it (expected.jsonl),
// the interpreter snippets (snippets.jsonl), and json.dumps on random values
// (json_dumps.jsonl). Regenerate with scripts/make_template_fixtures.py.
#include <cmath>
#include <map>

#include "core/error.h"
#include "fixture_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/template.h"

namespace hearth {
namespace {

using nlohmann::ordered_json;
using test::fixed_time;
using test::read_fixture;
using test::read_jsonl;

TEST(ChatTemplateFixtures, ConversationsMatchReference) {
  ordered_json manifest = ordered_json::parse(read_fixture("templates.json"));
  ordered_json conversations = ordered_json::parse(read_fixture("conversations.json"))["conversations"];
  ASSERT_GE(conversations.size(), 20u);
  std::map<std::string, ordered_json> by_name;
  for (auto& c : conversations) by_name[c["name"].get<std::string>()] = c;

  std::map<std::string, std::unique_ptr<ChatTemplate>> templates;
  for (auto& t : manifest["templates"]) {
    auto ct = std::make_unique<ChatTemplate>(read_fixture(t["file"]), t["bos_token"], t["eos_token"]);
    ct->set_fixed_time(fixed_time());
    templates[t["name"].get<std::string>()] = std::move(ct);
  }

  auto rows = read_jsonl("expected.jsonl");
  ASSERT_EQ(rows.size(), manifest["templates"].size() * conversations.size());
  size_t n_errors = 0;
  for (auto& row : rows) {
    std::string tname = row["template"], cname = row["conversation"];
    SCOPED_TRACE(tname + " x " + cname);
    const ChatTemplate& ct = *templates.at(tname);
    const ordered_json& conv = by_name.at(cname);
    bool gen = conv.value("add_generation_prompt", true);
    if (row.contains("output")) {
      std::string got;
      try {
        got = ct.apply(conv["request"], gen);
      } catch (const Error& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
        continue;
      }
      EXPECT_EQ(got, row["output"].get<std::string>());
    } else {
      ++n_errors;
      try {
        ct.apply(conv["request"], gen);
        ADD_FAILURE() << "expected an error like the reference's: " << row["error"];
      } catch (const Error& e) {
        if (row["error_type"] == "TemplateError") {  // raise_exception: the template's own message
          EXPECT_NE(std::string(e.what()).find(row["error"].get<std::string>()), std::string::npos) << e.what();
        }
      }
    }
  }
  EXPECT_GE(n_errors, 2u);  // Llama's single-tool-call rule
}

TEST(ChatTemplateFixtures, SnippetsMatchJinja2) {
  auto rows = read_jsonl("snippets.jsonl");
  ASSERT_GE(rows.size(), 100u);
  jinja::RenderOptions options;
  options.now = fixed_time();
  for (auto& row : rows) {
    std::string source = row["template"];
    SCOPED_TRACE(source);
    try {
      std::string got = jinja::Template(source).render(row["vars"], options);
      if (row.contains("output")) {
        EXPECT_EQ(got, row["output"].get<std::string>());
      } else {
        ADD_FAILURE() << "rendered " << got << " where jinja2 failed: " << row["error"];
      }
    } catch (const Error& e) {
      if (row.contains("output")) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      } else if (row.contains("error_line")) {  // syntax errors: same line as jinja2
        std::string prefix = "template:" + std::to_string(row["error_line"].get<int>()) + ":";
        EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << e.what() << " vs jinja2: " << row["error"];
      }
    }
  }
}

TEST(ChatTemplateFixtures, JsonDumpsMatchesPython) {
  auto rows = read_jsonl("json_dumps.jsonl");
  ASSERT_GE(rows.size(), 500u);
  for (auto& row : rows) {
    SCOPED_TRACE(row["dumps"].get<std::string>());
    jinja::DumpOptions o;
    const auto& opt = row["options"];
    o.ensure_ascii = opt.value("ensure_ascii", false);
    o.sort_keys = opt.value("sort_keys", false);
    if (opt.contains("indent"))
      o.indent = opt["indent"].is_string() ? opt["indent"].get<std::string>()
                                           : std::string(opt["indent"].get<size_t>(), ' ');
    if (opt.contains("separators")) {
      o.item_separator = opt["separators"][0].get<std::string>();
      o.key_separator = opt["separators"][1].get<std::string>();
    }
    jinja::Value v = jinja::from_json(row["value"]);
    EXPECT_EQ(jinja::json_dumps(v, o, 1u << 24), row["dumps"].get<std::string>());
    if (v.is_float() && std::isfinite(v.as_float())) {  // str(float) is the same repr
      EXPECT_EQ(jinja::to_str(v), row["dumps"].get<std::string>());
    }
  }
}

TEST(ChatTemplateFixtures, BuiltinChatmlIsTheFixture) {
  EXPECT_EQ(std::string(ChatTemplate::kChatml), read_fixture("chatml.jinja"));
}

}  // namespace
}  // namespace hearth
