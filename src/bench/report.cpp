// The Markdown report (report.h), section by section in the seed's order: executive
// summary, speed per test case and its breakdown, TTFT, memory, reliability, load time, concurrency, API
// features with their evidence, use-case recommendations, charts, test metadata.
// A cell that was not measured says "—" or "not measured" and why; nothing is estimated.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "bench/client.h"
#include "bench/report.h"
#include "core/error.h"

namespace hearth::bench {
namespace {

const std::vector<std::pair<std::string, std::string>> kFeatures = {
    {"models", "`/v1/models` lists the model"},
    {"streaming", "Streaming (SSE)"},
    {"usage_in_stream", "Usage in streams"},
    {"tool_calling", "Tool calling"},
    {"tool_calling_stream", "Tool calling, streamed"},
    {"reasoning_separated", "Reasoning separated from content"},
    {"parallel_clients", "Several clients at once"},
    {"error_shape", "OpenAI error shape for a bad request"},
    {"context_overflow", "Context overflow refused (4xx)"},
};

std::string failures_text(const std::map<std::string, int>& f) {
  std::string s;
  for (const auto& [k, v] : f) s += (s.empty() ? "" : ", ") + k + " ×" + std::to_string(v);
  return s;
}

std::string md_cell(std::string s) {
  for (char& c : s)
    if (c == '|' || c == '\n') c = c == '|' ? '/' : ' ';
  return s;
}

std::string speed_cell(const CaseStat& c) {
  if (c.ok == 0) return "FAILED (" + failures_text(c.failures) + ")";
  std::string s = or_dash(c.e2e_tokens_per_s, 1);
  if (c.e2e_tokens_per_s < 0) s = "n/a (no usage)";
  if (c.ok < c.requests) s += " (" + std::to_string(c.ok) + "/" + std::to_string(c.requests) + " ok)";
  return s;
}

std::string percent_faster(double a, double b) { return fixed((a / b - 1) * 100, 0) + "%"; }

struct Column {
  size_t system;
  std::string mode;
  std::string title;
};

void executive_summary(std::string& md, const std::vector<SystemSummary>& sys, const std::vector<Recommendation>& recs) {
  md += "## Executive summary\n\n| System | Speed | TTFT (p50) | Reliability | Best for |\n|---|---:|---:|---:|---|\n";
  for (const auto& s : sys) {
    std::string best;
    for (const auto& r : recs)
      if (r.recommended == s.label) best += (best.empty() ? "" : ", ") + r.use_case;
    md += "| **" + md_cell(s.label) + "** | " + (s.speed < 0 ? "—" : fixed(s.speed, 1) + " tok/s") + " | " +
          (s.ttft_p50_s < 0 ? "—" : fixed(s.ttft_p50_s * 1000, 0) + " ms") + " | " +
          (s.success_rate < 0 ? "—" : fixed(s.success_rate * 100, 0) + "% (" + std::to_string(s.ok) + "/" + std::to_string(s.requests) + ")") +
          " | " + (best.empty() ? "—" : md_cell(best)) + " |\n";
  }
  std::vector<const SystemSummary*> ranked;
  for (const auto& s : sys)
    if (s.speed > 0) ranked.push_back(&s);
  std::stable_sort(ranked.begin(), ranked.end(), [](auto a, auto b) { return a->speed > b->speed; });
  if (ranked.size() >= 2)
    md += "\n**Fastest:** " + ranked[0]->label + " (" + fixed(ranked[0]->speed, 1) + " tok/s, " +
          percent_faster(ranked[0]->speed, ranked[1]->speed) + " faster than " + ranked[1]->label + " at " +
          fixed(ranked[1]->speed, 1) + " tok/s).\n";
  else if (ranked.size() == 1)
    md += "\n**Speed:** " + ranked[0]->label + " averages " + fixed(ranked[0]->speed, 1) + " tok/s over the test cases.\n";
  md += "\n---\n\n";
}

void speed_section(std::string& md, const std::vector<SystemSummary>& sys) {
  std::vector<Column> cols;
  std::vector<std::string> names;
  for (size_t i = 0; i < sys.size(); ++i)
    for (const auto& c : sys[i].cases) {
      if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
      bool seen = false;
      for (const auto& col : cols) seen |= col.system == i && col.mode == c.mode;
      if (!seen) cols.push_back({i, c.mode, sys[i].label + " (" + c.mode + ")"});
    }
  md += "## Speed per test case (tokens per second)\n\nEnd to end: completion tokens over the whole request time, "
        "mean of the repetitions.\n\n| Test case |";
  for (const auto& c : cols) md += " " + md_cell(c.title) + " |";
  md += " Winner |\n|---|";
  for (size_t i = 0; i < cols.size(); ++i) md += "---:|";
  md += "---|\n";
  auto find_case = [&](const Column& col, const std::string& name) -> const CaseStat* {
    for (const auto& c : sys[col.system].cases)
      if (c.name == name && c.mode == col.mode) return &c;
    return nullptr;
  };
  std::vector<std::vector<double>> per_col(cols.size());
  for (const auto& name : names) {
    md += "| " + md_cell(name) + " |";
    int best = -1;
    double best_v = -1, second_v = -1;
    for (size_t k = 0; k < cols.size(); ++k) {
      const CaseStat* c = find_case(cols[k], name);
      md += " " + (c ? md_cell(speed_cell(*c)) : std::string("—")) + " |";
      const double v = c && c->ok > 0 ? c->e2e_tokens_per_s : -1;
      if (v >= 0) per_col[k].push_back(v);
      if (v > best_v) second_v = best_v, best_v = v, best = static_cast<int>(k);
      else if (v > second_v) second_v = v;
    }
    md += " " + (best < 0 ? std::string("—")
                          : md_cell(cols[static_cast<size_t>(best)].title) +
                                (second_v > 0 ? " (+" + percent_faster(best_v, second_v) + ")" : "")) +
          " |\n";
  }
  md += "| **Average** |";
  int best = -1;
  double best_v = -1;
  for (size_t k = 0; k < cols.size(); ++k) {
    double s = 0;
    for (double v : per_col[k]) s += v;
    const double avg = per_col[k].empty() ? -1 : s / static_cast<double>(per_col[k].size());
    md += " **" + or_dash(avg, 1) + "** |";
    if (avg > best_v) best_v = avg, best = static_cast<int>(k);
  }
  md += " " + (best < 0 ? std::string("—") : "**" + md_cell(cols[static_cast<size_t>(best)].title) + "**") + " |\n\n---\n\n";
}

// The seed's "speed breakdown by test": each system's cases in order, and the spread.
void breakdown_section(std::string& md, const std::vector<SystemSummary>& sys) {
  md += "## Speed breakdown by test\n\n";
  for (const auto& s : sys) {
    md += "### " + s.label + "\n\n";
    double lo = -1, hi = -1;
    int n = 0;
    for (const auto& c : s.cases) {
      md += std::to_string(++n) + ". " + c.name + " (" + c.mode + "): ";
      if (c.ok == 0) {
        md += "FAILED (" + failures_text(c.failures) + ")\n";
        continue;
      }
      md += (c.e2e_tokens_per_s < 0 ? std::string("n/a (no usage)") : fixed(c.e2e_tokens_per_s, 1) + " tok/s") + " (" +
            (c.completion_tokens < 0 ? std::string("?") : fixed(c.completion_tokens, 0)) + " tokens in " + fixed(c.total_s, 2) + " s)\n";
      if (c.e2e_tokens_per_s >= 0) {
        lo = lo < 0 ? c.e2e_tokens_per_s : std::min(lo, c.e2e_tokens_per_s);
        hi = std::max(hi, c.e2e_tokens_per_s);
      }
    }
    if (lo > 0) md += "\n**Range:** " + fixed(lo, 1) + " - " + fixed(hi, 1) + " tok/s (" + percent_faster(hi, lo) + " between the slowest and the fastest)\n";
    md += "\n";
  }
  md += "---\n\n";
}

void ttft_section(std::string& md, const std::vector<SystemSummary>& sys) {
  md += "## Time to first token (TTFT)\n\n| System | TTFT p50 | TTFT p90 | Decode after the first token | Notes |\n"
        "|---|---:|---:|---:|---|\n";
  for (const auto& s : sys) {
    const std::string note = s.kind == "model" ? "in-process: from the call to the first sampled token"
                             : s.ttft_p50_s < 0 ? "no streamed request succeeded"
                                                : "streamed requests: request sent to first content, reasoning or tool delta";
    md += "| " + md_cell(s.label) + " | " + (s.ttft_p50_s < 0 ? "—" : fixed(s.ttft_p50_s * 1000, 0) + " ms") + " | " +
          (s.ttft_p90_s < 0 ? "—" : fixed(s.ttft_p90_s * 1000, 0) + " ms") + " | " +
          (s.decode_speed < 0 ? "—" : fixed(s.decode_speed, 1) + " tok/s") + " | " + note + " |\n";
  }
  md += "\n---\n\n";
}

void memory_and_load(std::string& md, const std::vector<SystemSummary>& sys, const std::vector<RunResults>& runs) {
  md += "## Memory usage\n\n| System | Peak resident memory | Peak GPU memory | Weights | KV cache | Measurement |\n"
        "|---|---:|---:|---:|---:|---|\n";
  for (size_t i = 0; i < sys.size(); ++i) {
    const auto& s = sys[i];
    const RunResults& r = runs[i];
    std::string how;
    if (r.direct) how = "in-process: VmHWM of the process; weights and KV cache as allocated";
    else if (r.process.present)
      how = "VmRSS of the server process" + std::string(r.process.command.empty() ? "" : " group") + ", " +
            std::to_string(r.process.samples) + " samples every 200 ms" +
            (r.process.peak_gpu_bytes < 0 ? "; no nvidia-smi" : "; GPU from nvidia-smi");
    else how = "not measured: the server was not started or attached (--spawn/--pid)";
    md += "| " + md_cell(s.label) + " | " + human_size(s.peak_rss_bytes) + " | " + human_size(s.peak_gpu_bytes) + " | " +
          human_size(s.weights_bytes) + " | " + human_size(s.kv_cache_bytes) + " | " + how + " |\n";
  }
  md += "\n---\n\n## Reliability\n\n| System | Success rate | Failures | Crashes | Notes |\n|---|---:|---|---:|---|\n";
  for (const auto& s : sys) {
    std::string notes;
    for (const auto& [k, v] : s.first_error) notes += (notes.empty() ? "" : "; ") + k + ": " + excerpt_of(v, 120);
    if (!s.process_death.empty()) notes += std::string(notes.empty() ? "" : "; ") + "the server process died (" + s.process_death + ")";
    if (s.usage_missing) notes += std::string(notes.empty() ? "" : "; ") + "some answers had no usage (tokens counted from the stream)";
    md += "| " + md_cell(s.label) + " | " +
          (s.success_rate < 0 ? "—" : fixed(s.success_rate * 100, 0) + "% (" + std::to_string(s.ok) + "/" + std::to_string(s.requests) + ")") +
          " | " + (s.failures.empty() ? "none" : failures_text(s.failures)) + " | " + std::to_string(s.crashes) + " | " +
          (notes.empty() ? "—" : md_cell(notes)) + " |\n";
  }
  md += "\nSuite requests only (warm-ups excluded). Crashes: requests whose connection broke (connection_reset, or crash when the server process was seen dead).\n\n---\n\n";
  md += "## Load time & setup\n\n| System | Model load | Measurement |\n|---|---:|---|\n";
  for (size_t i = 0; i < sys.size(); ++i) {
    const RunResults& r = runs[i];
    const std::string how = r.direct ? "Runtime::open: mapping, parsing and preparing the weights"
                            : r.process.present && !r.process.command.empty() ? "--spawn: process start to the first 200 from /models"
                                                                               : "not measured: the server was already running";
    md += "| " + md_cell(sys[i].label) + " | " + (sys[i].load_s < 0 ? "—" : fixed(sys[i].load_s, 2) + " s") + " | " + how + " |\n";
  }
  md += "\n---\n\n";
}

void concurrency_section(std::string& md, const std::vector<RunResults>& runs) {
  std::vector<int> levels;
  for (const auto& r : runs)
    for (const auto& p : r.concurrency)
      if (std::find(levels.begin(), levels.end(), p.clients) == levels.end()) levels.push_back(p.clients);
  std::sort(levels.begin(), levels.end());
  md += "## Concurrency scaling\n\n";
  if (levels.empty()) {
    md += "No concurrency sweep in these results.\n\n---\n\n";
    return;
  }
  md += "Each client sends streamed requests of the first test case one after another; aggregate = completion tokens of "
        "all clients / wall time; latency = whole request.\n\n| Clients |";
  std::vector<const RunResults*> with;
  for (const auto& r : runs)
    if (!r.concurrency.empty()) with.push_back(&r);
  for (auto* r : with) md += " " + md_cell(r->label) + " tok/s | latency p50 / p90 / p99 | ok |";
  md += "\n|---:|";
  for (size_t i = 0; i < with.size(); ++i) md += "---:|---:|---:|";
  md += "\n";
  for (int c : levels) {
    md += "| " + std::to_string(c) + " |";
    for (auto* r : with) {
      const SweepPoint* p = nullptr;
      for (const auto& x : r->concurrency)
        if (x.clients == c) p = &x;
      if (!p) {
        md += " — | — | — |";
        continue;
      }
      md += " " + fixed(p->aggregate_tokens_per_s, 1) + " | " + or_dash(p->latency_p50_s, 2) + " / " + or_dash(p->latency_p90_s, 2) +
            " / " + or_dash(p->latency_p99_s, 2) + " s | " + std::to_string(p->ok) + "/" + std::to_string(p->requests) + " |";
    }
    md += "\n";
  }
  md += "\n---\n\n";
}

void features_section(std::string& md, const std::vector<RunResults>& runs) {
  md += "## API & integration features\n\nEach capability was tried against the server; ✅ passed, ❌ failed (evidence below), "
        "— not applicable (in-process run, no HTTP API).\n\n| Feature |";
  for (const auto& r : runs) md += " " + md_cell(r.label) + " |";
  md += "\n|---|";
  for (size_t i = 0; i < runs.size(); ++i) md += ":---:|";
  md += "\n";
  for (const auto& [id, name] : kFeatures) {
    md += "| " + name + " |";
    for (const auto& r : runs) {
      std::string cell = r.kind == "model" ? "—" : "not tested";
      for (const auto& f : r.features)
        if (f.id == id) cell = f.status == "pass" ? "✅" : f.status == "fail" ? "❌" : "skipped";
      md += " " + cell + " |";
    }
    md += "\n";
  }
  md += "\n### Evidence\n\n";
  for (const auto& r : runs) {
    if (r.features.empty()) continue;
    md += "**" + r.label + "**\n\n";
    for (const auto& f : r.features)
      md += "- `" + f.id + "` " + (f.status == "pass" ? "✅" : f.status == "fail" ? "❌" : "skipped") + " " + f.detail +
            " (HTTP " + std::to_string(f.http_status) + ")" + (f.excerpt.empty() ? "" : "; answer: `" + excerpt_of(f.excerpt, 160) + "`") + "\n";
    md += "\n";
  }
  md += "---\n\n";
}

}  // namespace

ReportFiles build_report(const std::vector<RunResults>& runs, const std::string& chart_prefix) {
  HEARTH_CHECK(!runs.empty(), "bench report: no results files");
  std::vector<SystemSummary> sys;
  for (const auto& r : runs) sys.push_back(summarize(r));
  const std::vector<Recommendation> recs = recommend(sys);
  ReportFiles out;
  std::string& md = out.markdown;
  std::string title;
  for (const auto& s : sys) title += (title.empty() ? "" : " vs ") + s.label;
  md += "# Performance comparison: " + title + "\n\n";
  md += "Generated by `hearth bench report` from " + std::to_string(runs.size()) +
        " results file(s); every figure is measured, none estimated.\n\n";
  for (const auto& r : runs)
    if (!r.machine.note.empty()) md += "> **" + r.label + ":** " + r.machine.note + "\n";
  md += "\n---\n\n";
  executive_summary(md, sys, recs);
  speed_section(md, sys);
  breakdown_section(md, sys);
  ttft_section(md, sys);
  memory_and_load(md, sys, runs);
  concurrency_section(md, runs);
  features_section(md, runs);
  md += "## Use-case recommendations\n\nDerived from the measurements above by fixed rules (see docs/bench/README.md).\n\n"
        "| Use case | Recommended | Why |\n|---|---|---|\n";
  for (const auto& r : recs) md += "| " + r.use_case + " | **" + md_cell(r.recommended) + "** | " + md_cell(r.why) + " |\n";
  md += "\n---\n\n## Charts\n\n![Tokens per second per test case](" + chart_prefix + "-speed.svg)\n\n![Time to first token](" +
        chart_prefix + "-ttft.svg)\n\n![Concurrency scaling](" + chart_prefix + "-concurrency.svg)\n\n---\n\n## Test metadata\n\n";
  for (const auto& r : runs) {
    md += "- **" + r.label + "** (" + (r.kind == "model" ? "in-process, `hearth bench model`" : "server, `hearth bench endpoint`") +
          "): " + r.created + ", " + r.tool + "; model `" + r.model + "`" + (r.url.empty() ? "" : " at " + r.url) + "\n";
    md += "  - settings: max_tokens " + std::to_string(r.settings.max_tokens) + ", " + std::to_string(r.settings.repetitions) +
          " repetition(s) after " + std::to_string(r.settings.warmup) + " warm-up, temperature 0" +
          (r.settings.timeout_s > 0 ? ", timeout " + fixed(r.settings.timeout_s, 0) + " s" : "") + "\n";
    md += "  - machine: " + r.machine.cpu + ", " + std::to_string(r.machine.cores) + " cores, " + human_size(r.machine.memory_bytes) +
          " memory" + (r.machine.gpu.empty() ? ", no GPU" : ", " + r.machine.gpu) + "\n";
    if (r.direct && !r.direct->tests.empty()) {
      md += "  - micro-benchmarks (" + r.direct->backend + ", " + std::to_string(r.direct->threads) + " threads):";
      for (const auto& t : r.direct->tests) md += " " + t.test + " " + fixed(t.tokens_per_s, 1) + " ± " + fixed(t.stddev, 1) + " tok/s;";
      md.pop_back();
      md += "\n";
    }
  }
  int total = 0, ok = 0;
  for (const auto& s : sys) total += s.requests, ok += s.ok;
  md += "- Total suite requests: " + std::to_string(total) + ", successful: " + std::to_string(ok) + "\n";
  out.speed_svg = speed_chart_svg(sys);
  out.ttft_svg = ttft_chart_svg(sys);
  out.concurrency_svg = concurrency_chart_svg(runs);
  out.summary_json = summary_json(sys, recs).dump(2) + "\n";
  return out;
}

void write_report(const std::vector<RunResults>& runs, const std::string& out_md) {
  namespace fs = std::filesystem;
  const fs::path md(out_md);
  const std::string stem = md.stem().string();
  const ReportFiles f = build_report(runs, stem);
  auto write = [](const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    HEARTH_CHECK(out.good(), p.string() + ": cannot write the file");
    out << text;
    HEARTH_CHECK(out.good(), p.string() + ": write failed");
  };
  const fs::path dir = md.parent_path();
  write(md, f.markdown);
  write(dir / (stem + "-speed.svg"), f.speed_svg);
  write(dir / (stem + "-ttft.svg"), f.ttft_svg);
  write(dir / (stem + "-concurrency.svg"), f.concurrency_svg);
  write(dir / (stem + ".summary.json"), f.summary_json);
}

}  // namespace hearth::bench
