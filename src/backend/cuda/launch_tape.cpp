// LaunchTape::flush: replay a cached graph whose recorded bytes equal this step's, or
// capture the recorded launches into a new one (see launch_tape.h); and the process-wide
// programmatic-launch switch of ops.h.
#include "backend/cuda/launch_tape.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace hearth::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

std::atomic<bool> g_programmatic_launch{false};

}  // namespace

void set_programmatic_launch(bool on) { g_programmatic_launch = on; }
bool programmatic_launch() { return g_programmatic_launch; }

LaunchTape::~LaunchTape() { clear_graphs(); }

LaunchProfile::~LaunchProfile() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void LaunchProfile::around(const std::string& label, cudaStream_t stream, bool end) {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "cudaEventCreate");
    events_.push_back(e);
  }
  if (!end) labels_.push_back(label);
  check(cudaEventRecord(events_[used_++], stream), "cudaEventRecord");
}

void LaunchProfile::collect() {
  for (size_t i = 0; i + 1 < used_; i += 2) {
    float ms = 0;
    cudaEventElapsedTime(&ms, events_[i], events_[i + 1]);
    auto& t = totals_[labels_[i / 2]];
    t.first += ms;
    t.second += 1;
  }
  used_ = 0;
  labels_.clear();
}

std::string LaunchProfile::report() const {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [label, t] : totals_) {
    char line[256];
    std::snprintf(line, sizeof line, "%10.3f ms %8lld x %8.2f us  %s", t.first, static_cast<long long>(t.second),
                  1e3 * t.first / static_cast<double>(std::max<int64_t>(t.second, 1)), label.c_str());
    rows.emplace_back(t.first, line);
    total += t.first;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::string out = "GPU time by launch (" + std::to_string(total) + " ms in all):\n";
  for (const auto& r : rows) out += r.second + "\n";
  return out;
}

void LaunchTape::clear_graphs() {
  for (auto& g : graphs_) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

void LaunchTape::erase(size_t from_end) {
  const size_t i = ops_.size() - 1 - from_end;
  const size_t begin = ops_[i].offset - sizeof(Runner);
  const size_t end = i + 1 < ops_.size() ? ops_[i + 1].offset - sizeof(Runner) : bytes_.size();
  bytes_.erase(begin, end - begin);
  ops_.erase(ops_.begin() + static_cast<std::ptrdiff_t>(i));
  for (size_t j = i; j < ops_.size(); ++j) ops_[j].offset -= end - begin;
}

// HEARTH_CUDA_LEAVE_OUT=a,b (a measurement, never for use: the results are wrong) leaves
// out of captured graphs the launches whose profile label starts with a or b (RmsNorm,
// Rope, Attention, Swiglu, gemv, mma...): inside a replayed step, where launches overlap,
// what a kind of launch costs is the time its absence saves (docs/benchmarks_cuda_decode.md).
static std::vector<std::string> left_out_labels() {
  std::vector<std::string> v;
  if (const char* e = std::getenv("HEARTH_CUDA_LEAVE_OUT")) {
    const std::string s = e;
    for (size_t at = 0; at <= s.size();) {
      const size_t end = std::min(s.find(',', at), s.size());
      if (end > at) v.push_back(s.substr(at, end - at));
      at = end + 1;
    }
  }
  return v;
}

void LaunchTape::flush(cudaStream_t stream) {
  if (ops_.empty()) {
    bytes_.clear();
    return;
  }
  if (profile_) {  // one launch at a time, each timed
    for (const Op& op : ops_) {
      profile_->around(op.describe(bytes_.data() + op.offset), stream, false);
      op.run(bytes_.data() + op.offset, stream);
      profile_->around("", stream, true);
    }
    ops_.clear();
    bytes_.clear();
    return;
  }
  // Most recently used first: a decode step replays the graph(s) of the step before it, so
  // the search usually ends at the first entries with one comparison of sizes and bytes.
  cudaGraphExec_t exec = nullptr;
  for (size_t i = 0; i < graphs_.size(); ++i) {
    const std::string& b = graphs_[i].bytes;
    if (b.size() != bytes_.size() || std::memcmp(b.data(), bytes_.data(), b.size()) != 0) continue;
    std::rotate(graphs_.begin(), graphs_.begin() + static_cast<std::ptrdiff_t>(i),
                graphs_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    exec = graphs_.front().exec;
    break;
  }
  if (exec) {
    ++graphs_replayed_;
  } else {
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      static const std::vector<std::string> skip = left_out_labels();
      for (const Op& op : ops_) {
        bool left_out = false;
        if (!skip.empty()) {
          const std::string label = op.describe(bytes_.data() + op.offset);
          for (const auto& k : skip) left_out = left_out || label.rfind(k, 0) == 0;
        }
        if (!left_out) op.run(bytes_.data() + op.offset, stream);
      }
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);
      if (broken) cudaGraphDestroy(broken);
      ops_.clear();
      bytes_.clear();
      throw;
    }
    cudaGraph_t graph = nullptr;
    check(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(e, "cudaGraphInstantiate");
    if (graphs_.size() >= kMaxGraphs) {  // the least recently used goes
      cudaGraphExecDestroy(graphs_.back().exec);
      graphs_.pop_back();
    }
    graphs_.insert(graphs_.begin(), Graph{bytes_, exec});
    ++graphs_built_;
  }
  ops_.clear();
  bytes_.clear();
  check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
}

}  // namespace hearth::cuda
