// Results files: RunResults <-> JSON (results.h). Reading checks every field's type and
// names the file and the field on error, so a hand-edited or foreign file fails with one
// line instead of a wrong report. -1 ("not measured") is written as null.
#include "bench/results.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <thread>

#include "core/error.h"

namespace hearth::bench {
namespace {

constexpr std::array<const char*, 7> kOutcomeNames = {"ok", "http_error", "timeout", "connection_refused",
                                                     "connection_reset", "crash", "malformed_stream"};

Json num_or_null(double v) { return v < 0 ? Json(nullptr) : Json(v); }
Json int_or_null(int64_t v) { return v < 0 ? Json(nullptr) : Json(v); }

// Typed access to a field of an object, with the path in every error.
class Reader {
 public:
  Reader(const Json& j, std::string where) : j_(j), where_(std::move(where)) {
    HEARTH_CHECK(j_.is_object(), where_ + ": expected an object");
  }
  const Json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string path(const char* key) const { return where_ + "." + key; }
  std::string str(const char* key, const std::string& def = "") const {
    const Json* v = find(key);
    if (!v || v->is_null()) return def;
    HEARTH_CHECK(v->is_string(), path(key) + ": expected a string");
    return v->get<std::string>();
  }
  double num(const char* key, double def = -1) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return def;
    HEARTH_CHECK(v->is_number(), path(key) + ": expected a number or null");
    return v->get<double>();
  }
  int64_t integer(const char* key, int64_t def = -1) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return def;
    HEARTH_CHECK(v->is_number_integer(), path(key) + ": expected an integer or null");
    return v->get<int64_t>();
  }
  bool boolean(const char* key, bool def = false) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return def;
    HEARTH_CHECK(v->is_boolean(), path(key) + ": expected true or false");
    return v->get<bool>();
  }
  const Json& array(const char* key) const {
    static const Json empty = Json::array();
    const Json* v = find(key);
    if (!v || v->is_null()) return empty;
    HEARTH_CHECK(v->is_array(), path(key) + ": expected an array");
    return *v;
  }

 private:
  const Json& j_;
  std::string where_;
};

Json request_json(const RequestRecord& q) {
  return Json{{"repetition", q.repetition},
              {"outcome", outcome_name(q.outcome)},
              {"http_status", q.http_status},
              {"error", q.error},
              {"ttft_s", num_or_null(q.ttft_s)},
              {"total_s", q.total_s},
              {"prompt_tokens", int_or_null(q.prompt_tokens)},
              {"completion_tokens", int_or_null(q.completion_tokens)},
              {"usage_missing", q.usage_missing},
              {"finish_reason", q.finish_reason},
              {"decode_tokens_per_s", num_or_null(q.decode_tokens_per_s)},
              {"e2e_tokens_per_s", num_or_null(q.e2e_tokens_per_s)},
              {"content_chars", q.content_chars},
              {"reasoning_chars", q.reasoning_chars},
              {"tool_calls", q.tool_calls}};
}

RequestRecord request_from(const Json& j, const std::string& where) {
  const Reader r(j, where);
  RequestRecord q;
  q.repetition = static_cast<int>(r.integer("repetition", 0));
  try {
    q.outcome = parse_outcome(r.str("outcome", "ok"));
  } catch (const Error& e) {
    fail(r.path("outcome") + ": " + e.what());
  }
  q.http_status = static_cast<int>(r.integer("http_status", 0));
  q.error = r.str("error");
  q.ttft_s = r.num("ttft_s");
  q.total_s = r.num("total_s", 0);
  q.prompt_tokens = r.integer("prompt_tokens");
  q.completion_tokens = r.integer("completion_tokens");
  q.usage_missing = r.boolean("usage_missing");
  q.finish_reason = r.str("finish_reason");
  q.decode_tokens_per_s = r.num("decode_tokens_per_s");
  q.e2e_tokens_per_s = r.num("e2e_tokens_per_s");
  q.content_chars = r.integer("content_chars", 0);
  q.reasoning_chars = r.integer("reasoning_chars", 0);
  q.tool_calls = static_cast<int>(r.integer("tool_calls", 0));
  return q;
}

}  // namespace

const char* outcome_name(Outcome o) { return kOutcomeNames[static_cast<size_t>(o)]; }

Outcome parse_outcome(const std::string& name) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i)
    if (name == kOutcomeNames[i]) return static_cast<Outcome>(i);
  fail("unknown outcome '" + name + "'");
}

Json to_json(const RunResults& r) {
  Json j;
  j["format_version"] = kFormatVersion;
  j["kind"] = r.kind;
  j["label"] = r.label;
  j["created"] = r.created;
  j["tool"] = r.tool;
  j["machine"] = {{"cpu", r.machine.cpu}, {"cores", r.machine.cores}, {"memory_bytes", int_or_null(r.machine.memory_bytes)},
                  {"gpu", r.machine.gpu}, {"note", r.machine.note}};
  j["url"] = r.url;
  j["model"] = r.model;
  j["settings"] = {{"max_tokens", r.settings.max_tokens}, {"repetitions", r.settings.repetitions},
                   {"warmup", r.settings.warmup}, {"timeout_s", r.settings.timeout_s},
                   {"concurrency", r.settings.concurrency}};
  Json cases = Json::array();
  for (const auto& c : r.cases) {
    Json reqs = Json::array();
    for (const auto& q : c.requests) reqs.push_back(request_json(q));
    cases.push_back(Json{{"name", c.name}, {"prompt", c.prompt}, {"stream", c.stream}, {"max_tokens", c.max_tokens},
                         {"requests", reqs}});
  }
  j["cases"] = cases;
  Json sweep = Json::array();
  for (const auto& p : r.concurrency)
    sweep.push_back(Json{{"clients", p.clients}, {"requests", p.requests}, {"ok", p.ok}, {"wall_s", p.wall_s},
                         {"completion_tokens", p.completion_tokens}, {"aggregate_tokens_per_s", p.aggregate_tokens_per_s},
                         {"latency_p50_s", num_or_null(p.latency_p50_s)}, {"latency_p90_s", num_or_null(p.latency_p90_s)},
                         {"latency_p99_s", num_or_null(p.latency_p99_s)}, {"ttft_p50_s", num_or_null(p.ttft_p50_s)},
                         {"failures", p.failures}});
  j["concurrency"] = sweep;
  Json features = Json::array();
  for (const auto& f : r.features)
    features.push_back(Json{{"id", f.id}, {"status", f.status}, {"http_status", f.http_status}, {"detail", f.detail},
                            {"excerpt", f.excerpt}});
  j["features"] = features;
  const ProcessMetrics& p = r.process;
  j["process"] = p.present ? Json{{"pid", p.pid}, {"command", p.command}, {"load_s", num_or_null(p.load_s)},
                                  {"peak_rss_bytes", int_or_null(p.peak_rss_bytes)},
                                  {"peak_gpu_bytes", int_or_null(p.peak_gpu_bytes)}, {"samples", p.samples},
                                  {"died", p.died}, {"exit_detail", p.exit_detail}}
                           : Json(nullptr);
  if (r.direct) {
    const DirectInfo& d = *r.direct;
    Json tests = Json::array();
    for (const auto& t : d.tests) tests.push_back(Json{{"test", t.test}, {"tokens_per_s", t.tokens_per_s}, {"stddev", t.stddev}});
    j["direct"] = {{"model_path", d.model_path}, {"backend", d.backend}, {"threads", d.threads},
                   {"load_s", num_or_null(d.load_s)}, {"weights_bytes", int_or_null(d.weights_bytes)},
                   {"kv_cache_bytes", int_or_null(d.kv_cache_bytes)}, {"peak_rss_bytes", int_or_null(d.peak_rss_bytes)},
                   {"tests", tests}};
  } else {
    j["direct"] = nullptr;
  }
  return j;
}

RunResults results_from_json(const Json& j, const std::string& where) {
  const Reader top(j, where);
  const int64_t version = top.integer("format_version", -1);
  HEARTH_CHECK(version == kFormatVersion, where + ": format_version " + (version < 0 ? std::string("missing") : std::to_string(version)) +
                                              ", expected " + std::to_string(kFormatVersion) + " (a hearth bench results file)");
  RunResults r;
  r.kind = top.str("kind", "endpoint");
  HEARTH_CHECK(r.kind == "endpoint" || r.kind == "model", top.path("kind") + ": expected \"endpoint\" or \"model\"");
  r.label = top.str("label");
  HEARTH_CHECK(!r.label.empty(), top.path("label") + ": missing or empty");
  r.created = top.str("created");
  r.tool = top.str("tool");
  if (const Json* m = top.find("machine"); m && !m->is_null()) {
    const Reader mr(*m, top.path("machine"));
    r.machine = {mr.str("cpu"), static_cast<int>(mr.integer("cores", 0)), mr.integer("memory_bytes"), mr.str("gpu"), mr.str("note")};
  }
  r.url = top.str("url");
  r.model = top.str("model");
  if (const Json* s = top.find("settings"); s && !s->is_null()) {
    const Reader sr(*s, top.path("settings"));
    r.settings.max_tokens = static_cast<int>(sr.integer("max_tokens", 0));
    r.settings.repetitions = static_cast<int>(sr.integer("repetitions", 0));
    r.settings.warmup = static_cast<int>(sr.integer("warmup", 0));
    r.settings.timeout_s = sr.num("timeout_s", 0);
    for (const auto& c : sr.array("concurrency")) {
      HEARTH_CHECK(c.is_number_integer(), sr.path("concurrency") + ": expected integers");
      r.settings.concurrency.push_back(c.get<int>());
    }
  }
  const Json& cases = top.array("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string w = top.path("cases") + "[" + std::to_string(i) + "]";
    const Reader cr(cases[i], w);
    CaseResult c{cr.str("name"), cr.str("prompt"), cr.boolean("stream"), static_cast<int>(cr.integer("max_tokens", 0)), {}};
    HEARTH_CHECK(!c.name.empty(), cr.path("name") + ": missing or empty");
    const Json& reqs = cr.array("requests");
    for (size_t k = 0; k < reqs.size(); ++k)
      c.requests.push_back(request_from(reqs[k], cr.path("requests") + "[" + std::to_string(k) + "]"));
    r.cases.push_back(std::move(c));
  }
  const Json& sweep = top.array("concurrency");
  for (size_t i = 0; i < sweep.size(); ++i) {
    const Reader pr(sweep[i], top.path("concurrency") + "[" + std::to_string(i) + "]");
    SweepPoint p;
    p.clients = static_cast<int>(pr.integer("clients", 0));
    HEARTH_CHECK(p.clients > 0, pr.path("clients") + ": expected a positive integer");
    p.requests = static_cast<int>(pr.integer("requests", 0));
    p.ok = static_cast<int>(pr.integer("ok", 0));
    p.wall_s = pr.num("wall_s", 0);
    p.completion_tokens = pr.integer("completion_tokens", 0);
    p.aggregate_tokens_per_s = pr.num("aggregate_tokens_per_s", 0);
    p.latency_p50_s = pr.num("latency_p50_s");
    p.latency_p90_s = pr.num("latency_p90_s");
    p.latency_p99_s = pr.num("latency_p99_s");
    p.ttft_p50_s = pr.num("ttft_p50_s");
    if (const Json* f = pr.find("failures"); f && !f->is_null()) {
      HEARTH_CHECK(f->is_object(), pr.path("failures") + ": expected an object");
      for (const auto& [k, v] : f->items()) {
        HEARTH_CHECK(v.is_number_integer(), pr.path("failures") + "." + k + ": expected an integer");
        p.failures[k] = v.get<int>();
      }
    }
    r.concurrency.push_back(std::move(p));
  }
  const Json& features = top.array("features");
  for (size_t i = 0; i < features.size(); ++i) {
    const Reader fr(features[i], top.path("features") + "[" + std::to_string(i) + "]");
    FeatureCheck f{fr.str("id"), fr.str("status"), static_cast<int>(fr.integer("http_status", 0)), fr.str("detail"), fr.str("excerpt")};
    HEARTH_CHECK(f.status == "pass" || f.status == "fail" || f.status == "skip",
                 fr.path("status") + ": expected \"pass\", \"fail\" or \"skip\"");
    r.features.push_back(std::move(f));
  }
  if (const Json* p = top.find("process"); p && !p->is_null()) {
    const Reader pr(*p, top.path("process"));
    r.process.present = true;
    r.process.pid = pr.integer("pid", 0);
    r.process.command = pr.str("command");
    r.process.load_s = pr.num("load_s");
    r.process.peak_rss_bytes = pr.integer("peak_rss_bytes");
    r.process.peak_gpu_bytes = pr.integer("peak_gpu_bytes");
    r.process.samples = static_cast<int>(pr.integer("samples", 0));
    r.process.died = pr.boolean("died");
    r.process.exit_detail = pr.str("exit_detail");
  }
  if (const Json* d = top.find("direct"); d && !d->is_null()) {
    const Reader dr(*d, top.path("direct"));
    DirectInfo di;
    di.model_path = dr.str("model_path");
    di.backend = dr.str("backend");
    di.threads = static_cast<int>(dr.integer("threads", 0));
    di.load_s = dr.num("load_s");
    di.weights_bytes = dr.integer("weights_bytes");
    di.kv_cache_bytes = dr.integer("kv_cache_bytes");
    di.peak_rss_bytes = dr.integer("peak_rss_bytes");
    const Json& tests = dr.array("tests");
    for (size_t i = 0; i < tests.size(); ++i) {
      const Reader tr(tests[i], dr.path("tests") + "[" + std::to_string(i) + "]");
      di.tests.push_back({tr.str("test"), tr.num("tokens_per_s", 0), tr.num("stddev", 0)});
    }
    r.direct = std::move(di);
  }
  return r;
}

RunResults read_results(const std::string& path) {
  std::ifstream in(path);
  HEARTH_CHECK(in.good(), path + ": cannot read the file");
  const Json j = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  HEARTH_CHECK(!j.is_discarded(), path + ": not valid JSON");
  return results_from_json(j, path);
}

void write_results(const RunResults& r, const std::string& path) {
  std::ofstream out(path);
  HEARTH_CHECK(out.good(), path + ": cannot write the file");
  out << to_json(r).dump(2) << "\n";
  HEARTH_CHECK(out.good(), path + ": write failed");
}

std::string utc_now_iso() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Machine describe_machine() {
  Machine m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0 && m.cpu.empty()) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) m.cpu = line.substr(colon + 2);
    }
  }
  if (m.cpu.empty()) m.cpu = "unknown CPU";
  m.cores = static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  if (meminfo >> key >> kib && key == "MemTotal:") m.memory_bytes = kib * 1024;
  // nvidia-smi is optional; its absence leaves gpu empty.
  if (FILE* p = popen("nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null", "r")) {
    char buf[256];
    std::string out;
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    for (char& c : out)
      if (c == '\n') c = ';';
    m.gpu = out;
  }
  return m;
}

}  // namespace hearth::bench
