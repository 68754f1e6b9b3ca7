// SVG charts of the report (report.h): grouped bars of tokens/s per test case and
// system, bars of TTFT per system, and lines of aggregate tokens/s over the number of
// clients. Plain SVG 1.1 without scripts or fonts beyond sans-serif; one <rect
// class="bar"> per bar and one <circle class="point"> per point, so tests can count them.
// Coordinates are printed with one decimal: the same data gives the same bytes.
#include <algorithm>
#include <cmath>

#include "bench/report.h"

namespace hearth::bench {
namespace {

constexpr double kWidth = 760, kHeight = 380, kLeft = 64, kRight = 16, kTop = 40, kBottom = 96;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string c1(double v) { return fixed(v, 1); }

// A round axis maximum at or above v (1, 2, 2.5, 5 x 10^k).
double nice_max(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

std::string open_svg(const std::string& title, const std::string& y_label, double y_max) {
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + c1(kWidth) + "\" height=\"" + c1(kHeight) +
       "\" viewBox=\"0 0 " + c1(kWidth) + " " + c1(kHeight) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + c1(kWidth) + "\" height=\"" + c1(kHeight) + "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + c1(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" + xml_escape(title) + "</text>\n";
  const double plot_h = kHeight - kTop - kBottom;
  for (int i = 0; i <= 5; ++i) {
    const double v = y_max * i / 5, y = kTop + plot_h - plot_h * i / 5;
    s += "<line x1=\"" + c1(kLeft) + "\" y1=\"" + c1(y) + "\" x2=\"" + c1(kWidth - kRight) + "\" y2=\"" + c1(y) +
         "\" stroke=\"#dddddd\"/>\n";
    s += "<text x=\"" + c1(kLeft - 6) + "\" y=\"" + c1(y + 4) + "\" text-anchor=\"end\">" + fixed(v, y_max < 5 ? 2 : 0) + "</text>\n";
  }
  s += "<text x=\"14\" y=\"" + c1(kTop + plot_h / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
       c1(kTop + plot_h / 2) + ")\">" + xml_escape(y_label) + "</text>\n";
  return s;
}

std::string legend(const std::vector<std::string>& names) {
  std::string s;
  double x = kLeft;
  const double y = kHeight - 18;
  for (size_t i = 0; i < names.size(); ++i) {
    s += "<rect class=\"legend\" x=\"" + c1(x) + "\" y=\"" + c1(y - 9) + "\" width=\"10\" height=\"10\" fill=\"" +
         kColors[i % 8] + "\"/>\n";
    s += "<text x=\"" + c1(x + 14) + "\" y=\"" + c1(y) + "\">" + xml_escape(names[i]) + "</text>\n";
    x += 24 + 6.5 * static_cast<double>(names[i].size());
  }
  return s;
}

// Grouped bars: groups[g] has one value per series (-1 = no bar).
std::string bar_chart(const std::string& title, const std::string& y_label, const std::vector<std::string>& groups,
                      const std::vector<std::string>& series, const std::vector<std::vector<double>>& values, int digits) {
  double top = 0;
  for (const auto& g : values)
    for (double v : g) top = std::max(top, v);
  const double y_max = nice_max(top);
  std::string s = open_svg(title, y_label, y_max);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const double group_w = groups.empty() ? plot_w : plot_w / static_cast<double>(groups.size());
  const double bar_w = std::min(48.0, group_w * 0.8 / std::max<double>(1, static_cast<double>(series.size())));
  for (size_t g = 0; g < groups.size(); ++g) {
    const double gx = kLeft + group_w * static_cast<double>(g);
    const double first = gx + (group_w - bar_w * static_cast<double>(series.size())) / 2;
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = values[g][k];
      if (v < 0) continue;
      const double h = plot_h * v / y_max, x = first + bar_w * static_cast<double>(k), y = kTop + plot_h - h;
      s += "<rect class=\"bar\" x=\"" + c1(x) + "\" y=\"" + c1(y) + "\" width=\"" + c1(bar_w - 2) + "\" height=\"" + c1(h) +
           "\" fill=\"" + kColors[k % 8] + "\"><title>" + xml_escape(series[k] + ", " + groups[g] + ": " + fixed(v, digits)) +
           "</title></rect>\n";
      s += "<text x=\"" + c1(x + (bar_w - 2) / 2) + "\" y=\"" + c1(y - 3) + "\" text-anchor=\"middle\" font-size=\"9\">" +
           fixed(v, digits) + "</text>\n";
    }
    s += "<text x=\"" + c1(gx + group_w / 2) + "\" y=\"" + c1(kTop + plot_h + 16) + "\" text-anchor=\"middle\">" +
         xml_escape(groups[g]) + "</text>\n";
  }
  s += "<line x1=\"" + c1(kLeft) + "\" y1=\"" + c1(kTop + plot_h) + "\" x2=\"" + c1(kWidth - kRight) + "\" y2=\"" +
       c1(kTop + plot_h) + "\" stroke=\"#000000\"/>\n";
  s += legend(series);
  return s + "</svg>\n";
}

}  // namespace

std::string speed_chart_svg(const std::vector<SystemSummary>& systems) {
  // Series: every (system, mode) column of the speed table; groups: test case names in
  // first-seen order.
  std::vector<std::string> groups, series;
  std::vector<std::pair<size_t, std::string>> keys;  // (system index, mode)
  for (size_t i = 0; i < systems.size(); ++i)
    for (const auto& c : systems[i].cases) {
      if (std::find(groups.begin(), groups.end(), c.name) == groups.end()) groups.push_back(c.name);
      if (std::find(keys.begin(), keys.end(), std::make_pair(i, c.mode)) == keys.end()) {
        keys.emplace_back(i, c.mode);
        series.push_back(systems[i].label + " (" + c.mode + ")");
      }
    }
  std::vector<std::vector<double>> values(groups.size(), std::vector<double>(keys.size(), -1));
  for (size_t k = 0; k < keys.size(); ++k)
    for (const auto& c : systems[keys[k].first].cases)
      if (c.mode == keys[k].second) {
        const size_t g = static_cast<size_t>(std::find(groups.begin(), groups.end(), c.name) - groups.begin());
        values[g][k] = c.e2e_tokens_per_s;
      }
  return bar_chart("Tokens per second per test case (end to end)", "tokens/s", groups, series, values, 1);
}

std::string ttft_chart_svg(const std::vector<SystemSummary>& systems) {
  std::vector<std::string> groups;
  std::vector<std::vector<double>> values;
  std::vector<std::string> series = {"TTFT p50"};
  for (const auto& s : systems) {
    groups.push_back(s.label);
    values.push_back({s.ttft_p50_s < 0 ? -1 : s.ttft_p50_s * 1000});
  }
  return bar_chart("Time to first token (median)", "milliseconds", groups, series, values, 0);
}

std::string concurrency_chart_svg(const std::vector<RunResults>& runs) {
  double top = 0;
  int max_clients = 1;
  for (const auto& r : runs)
    for (const auto& p : r.concurrency) top = std::max(top, p.aggregate_tokens_per_s), max_clients = std::max(max_clients, p.clients);
  const double y_max = nice_max(top);
  std::string s = open_svg("Concurrency scaling: aggregate tokens per second", "tokens/s", y_max);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  // x: log2 of the client count, so 1, 2, 4, 8 are evenly spaced.
  const double x_span = std::max(1.0, std::log2(static_cast<double>(max_clients)));
  auto x_of = [&](int clients) { return kLeft + 20 + (plot_w - 40) * std::log2(static_cast<double>(clients)) / x_span; };
  for (int c = 1; c <= max_clients; c *= 2)
    s += "<text x=\"" + c1(x_of(c)) + "\" y=\"" + c1(kTop + plot_h + 16) + "\" text-anchor=\"middle\">" + std::to_string(c) + "</text>\n";
  s += "<text x=\"" + c1(kLeft + plot_w / 2) + "\" y=\"" + c1(kTop + plot_h + 34) + "\" text-anchor=\"middle\">clients</text>\n";
  std::vector<std::string> names;
  for (const auto& r : runs) {
    if (r.concurrency.empty()) continue;
    const char* color = kColors[names.size() % 8];
    names.push_back(r.label);
    std::string points;
    for (const auto& p : r.concurrency) {
      const double x = x_of(p.clients), y = kTop + plot_h - plot_h * p.aggregate_tokens_per_s / y_max;
      points += (points.empty() ? "" : " ") + c1(x) + "," + c1(y);
    }
    s += "<polyline class=\"series\" fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"2\" points=\"" + points + "\"/>\n";
    for (const auto& p : r.concurrency) {
      const double x = x_of(p.clients), y = kTop + plot_h - plot_h * p.aggregate_tokens_per_s / y_max;
      s += "<circle class=\"point\" cx=\"" + c1(x) + "\" cy=\"" + c1(y) + "\" r=\"3.5\" fill=\"" + color + "\"><title>" +
           xml_escape(r.label + ", " + std::to_string(p.clients) + " clients: " + fixed(p.aggregate_tokens_per_s, 1) + " tok/s") +
           "</title></circle>\n";
    }
  }
  s += "<line x1=\"" + c1(kLeft) + "\" y1=\"" + c1(kTop + plot_h) + "\" x2=\"" + c1(kWidth - kRight) + "\" y2=\"" +
       c1(kTop + plot_h) + "\" stroke=\"#000000\"/>\n";
  s += legend(names);
  return s + "</svg>\n";
}

}  // namespace hearth::bench
