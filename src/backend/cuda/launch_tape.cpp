// LaunchTape::flush: replay a cached graph whose recorded bytes equal this step's, or
// capture the recorded launches into a new one (see launch_tape.h).
#include "backend/cuda/launch_tape.h"

#include <functional>

#include "core/error.h"

namespace hearth::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace

LaunchTape::~LaunchTape() { clear_graphs(); }

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

void LaunchTape::flush(cudaStream_t stream) {
  if (ops_.empty()) {
    bytes_.clear();
    return;
  }
  const size_t hash = std::hash<std::string>{}(bytes_);
  cudaGraphExec_t exec = nullptr;
  for (const auto& g : graphs_)
    if (g.hash == hash && g.bytes == bytes_) exec = g.exec;
  if (exec) {
    ++graphs_replayed_;
  } else {
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      for (const Op& op : ops_) op.run(bytes_.data() + op.offset, stream);
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
    if (graphs_.size() >= kMaxGraphs) clear_graphs();
    graphs_.push_back(Graph{bytes_, hash, exec});
    ++graphs_built_;
  }
  ops_.clear();
  bytes_.clear();
  check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
}

}  // namespace hearth::cuda
