// The report generator on two fixed results files (tests/bench/data: a server run with
// failures of every kind and a sweep, an in-process run): the Markdown and the JSON
// summary must equal the golden files byte for byte, the figures in them must equal the
// means worked out by hand from the fixtures, and every chart must parse as XML (libxml2)
// with one bar per measured value and one point per sweep level.
// HEARTH_UPDATE_GOLDEN=1 rewrites the golden files (then review the diff).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "bench/report.h"
#include "core/error.h"

namespace hearth::bench {
namespace {

const std::string kDir = std::string(HEARTH_SOURCE_DIR) + "/tests/bench/";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<RunResults> fixture_runs() {
  return {read_results(kDir + "data/server.json"), read_results(kDir + "data/direct.json")};
}

void compare_golden(const std::string& name, const std::string& actual) {
  const std::string path = kDir + "golden/" + name;
  if (std::getenv("HEARTH_UPDATE_GOLDEN")) std::ofstream(path) << actual;
  EXPECT_EQ(actual, slurp(path)) << name << " differs from the golden file (HEARTH_UPDATE_GOLDEN=1 rewrites it)";
}

// Counts elements named `tag` with class="cls" in a parsed SVG; -1 when it is not XML.
struct Svg {
  xmlDocPtr doc = nullptr;
  explicit Svg(const std::string& text) {
    doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), "chart.svg", nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR);
  }
  ~Svg() { xmlFreeDoc(doc); }
  int count(const char* tag, const char* cls) const {
    int n = 0;
    count_in(xmlDocGetRootElement(doc), tag, cls, n);
    return n;
  }
  static void count_in(xmlNodePtr node, const char* tag, const char* cls, int& n) {
    for (xmlNodePtr c = node; c; c = c->next) {
      if (c->type != XML_ELEMENT_NODE) continue;
      if (xmlStrcmp(c->name, reinterpret_cast<const xmlChar*>(tag)) == 0) {
        xmlChar* v = xmlGetProp(c, reinterpret_cast<const xmlChar*>("class"));
        if (v && xmlStrcmp(v, reinterpret_cast<const xmlChar*>(cls)) == 0) ++n;
        xmlFree(v);
      }
      count_in(c->children, tag, cls, n);
    }
  }
};

TEST(BenchReport, MarkdownAndSummaryMatchTheGoldenFiles) {
  const ReportFiles f = build_report(fixture_runs(), "report");
  compare_golden("report.md", f.markdown);
  compare_golden("report.summary.json", f.summary_json);
  // Same input, same bytes.
  EXPECT_EQ(build_report(fixture_runs(), "report").markdown, f.markdown);
}

TEST(BenchReport, FiguresAreTheHandWorkedMeans) {
  const std::string md = build_report(fixture_runs(), "report").markdown;
  // Server A, SQL non-stream: 200 tokens in 10 s and in 6.667 s -> (20 + 30) / 2 = 25.0;
  // stream: 200/5 and 200/8 -> 32.5; Direct B: 200/20 and 200/12.5 -> 13.0.
  EXPECT_NE(md.find("| SQL Injection | 25.0 | 32.5 | 13.0 | Server A (stream) (+30%) |"), std::string::npos);
  // XSS: both non-stream requests failed; one of two streamed ones did (100 tokens / 4 s).
  EXPECT_NE(md.find("| XSS Attacks | FAILED (connection_refused ×1, crash ×1) | 25.0 (1/2 ok) | 20.0 |"), std::string::npos);
  // Averages of the case means: (32.5 + 25) / 2 = 28.75; Direct (13 + 20 + 10) / 3 = 14.33.
  EXPECT_NE(md.find("| **Average** | **25.0** | **28.8** | **14.3** |"), std::string::npos);
  // Reliability: 5 of 8 Server A requests succeeded; crash + (no reset) = 1 broken connection.
  EXPECT_NE(md.find("| Server A | 62% (5/8) | connection_refused ×1, crash ×1, timeout ×1 | 1 |"), std::string::npos);
  // Breakdown: mean total time (10 + 6.667) / 2 = 8.33 s; Direct B spread 10 -> 20 tok/s.
  EXPECT_NE(md.find("1. SQL Injection (non-stream): 25.0 tok/s (200 tokens in 8.33 s)"), std::string::npos);
  EXPECT_NE(md.find("**Range:** 10.0 - 20.0 tok/s (100% between the slowest and the fastest)"), std::string::npos);
  // TTFT p50 (nearest rank) of Server A's 0.25, 0.5, 0.2 -> 0.25.
  EXPECT_NE(md.find("| Server A | 250 ms | 500 ms |"), std::string::npos);
}

TEST(BenchReport, ChartsAreWellFormedSvgWithOneMarkPerValue) {
  const std::vector<RunResults> runs = fixture_runs();
  const ReportFiles f = build_report(runs, "report");
  const Svg speed(f.speed_svg), ttft(f.ttft_svg), sweep(f.concurrency_svg);
  ASSERT_NE(speed.doc, nullptr) << "speed chart is not well-formed XML";
  ASSERT_NE(ttft.doc, nullptr) << "TTFT chart is not well-formed XML";
  ASSERT_NE(sweep.doc, nullptr) << "concurrency chart is not well-formed XML";
  EXPECT_STREQ(reinterpret_cast<const char*>(xmlDocGetRootElement(speed.doc)->name), "svg");
  // Values: Server A SQL x2, XSS stream (non-stream all failed), Direct B x3 = 6 bars.
  EXPECT_EQ(speed.count("rect", "bar"), 6);
  EXPECT_EQ(speed.count("rect", "legend"), 3);  // three (system, mode) series
  EXPECT_EQ(ttft.count("rect", "bar"), 2);
  EXPECT_EQ(sweep.count("circle", "point"), 3);
  EXPECT_EQ(sweep.count("polyline", "series"), 1);  // the in-process run has no sweep
}

TEST(BenchReport, TiesNameEverySystem) {
  SystemSummary a, b;
  a.label = "A", b.label = "B";
  a.success_rate = b.success_rate = 1.0;
  a.speed = 10, b.speed = 12;
  a.ttft_p50_s = 0.5, b.ttft_p50_s = 0.25;
  std::map<std::string, Recommendation> by_case;
  for (const auto& r : recommend({a, b})) by_case[r.use_case] = r;
  EXPECT_EQ(by_case["Critical reliability"].recommended, "A / B");
  EXPECT_EQ(by_case["Critical reliability"].why, "success rate 100%, 0 crash(es) (tie)");
  EXPECT_EQ(by_case["Interactive chat"].recommended, "B");
  EXPECT_EQ(by_case["Batch processing"].recommended, "B");  // same success rate, faster
  EXPECT_EQ(by_case["Quick start"].recommended, "none measured");
  EXPECT_EQ(by_case["Quick start"].why, "load time was not measured");
}

TEST(BenchReport, WritesFilesNextToTheMarkdown) {
  const std::string dir = std::string(HEARTH_BINARY_DIR) + "/test_tmp/bench_report";
  std::system(("mkdir -p " + dir).c_str());
  write_report(fixture_runs(), dir + "/cmp.md");
  for (const char* name : {"cmp.md", "cmp-speed.svg", "cmp-ttft.svg", "cmp-concurrency.svg", "cmp.summary.json"})
    EXPECT_FALSE(slurp(dir + "/" + name).empty()) << name;
  EXPECT_NE(slurp(dir + "/cmp.md").find("](cmp-speed.svg)"), std::string::npos);
}

TEST(BenchReport, BadResultsFilesAreOneLineErrors) {
  const std::string dir = std::string(HEARTH_BINARY_DIR) + "/test_tmp";
  const std::string path = dir + "/bad_results.json";
  auto expect_error = [&](const std::string& text, const std::string& want) {
    std::ofstream(path) << text;
    try {
      read_results(path);
      ADD_FAILURE() << "expected an error for " << text;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), path + want);
    }
  };
  expect_error("{", ": not valid JSON");
  expect_error("{\"format_version\": 2, \"label\": \"x\"}", ": format_version 2, expected 1 (a hearth bench results file)");
  expect_error("{\"format_version\": 1}", ".label: missing or empty");
  expect_error("{\"format_version\": 1, \"label\": \"x\", \"cases\": [{\"name\": \"a\", \"requests\": [{\"outcome\": \"weird\"}]}]}",
               ".cases[0].requests[0].outcome: unknown outcome 'weird'");
  expect_error("{\"format_version\": 1, \"label\": \"x\", \"cases\": [{\"name\": \"a\", \"requests\": [{\"total_s\": \"1\"}]}]}",
               ".cases[0].requests[0].total_s: expected a number or null");
}

}  // namespace
}  // namespace hearth::bench
