// LaunchTape: runs a step's kernel launches directly, or records them and replays the
// step as a CUDA graph.
//
// Decode steps launch several hundred small kernels; launched one by one, the gaps between
// them cost as much as the kernels. Every launch here is a launcher function plus a plain
// parameter struct (ops.h), so the bytes (launcher, params) of all launches of a step are
// that step's complete identity: a later step that records the same bytes would launch
// exactly the same kernels with exactly the same arguments. Step data that changes from
// token to token (ids, positions, slots, block tables) lives in device buffers at fixed
// addresses that kernels read, not in the parameters, so consecutive decode steps record
// identical bytes and replay one cached graph.
//
// While recording, nothing runs until flush(): launches that fail a check still throw at
// flush. Buffers that an unflushed launch may use must not be freed before flush (the
// backend retires them until the next synchronisation).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "backend/cuda/ops.h"

namespace hearth::cuda {

// GPU time per kind of launch, measured with events around each launch (HEARTH_CUDA_PROFILE=1:
// graphs off, launches still recorded and fused). collect() after the stream has
// synchronised; report() is a table sorted by total time.
class LaunchProfile {
 public:
  ~LaunchProfile();
  void around(const std::string& label, cudaStream_t stream, bool end);
  void collect();
  std::string report() const;

 private:
  std::vector<cudaEvent_t> events_;
  size_t used_ = 0;
  std::vector<std::string> labels_;  // one per pair of events in use
  std::map<std::string, std::pair<double, int64_t>> totals_;  // label -> (ms, launches)
};

// A label for a launch in the profile: the parameter struct's name, and for matrix
// products the weight type and shape.
template <class P>
std::string describe_launch(const P&) {
  std::string n = typeid(P).name();
  const size_t at = n.find("cuda");
  return at == std::string::npos ? n : n.substr(at + 6);
}
inline std::string describe_launch(const GemvParams& p) {
  return "gemv " + std::string(dtype_name(p.w.type)) + " " + std::to_string(p.w.rows + p.rows2 + p.rows3) + "x" +
         std::to_string(p.w.cols) + (p.blocks1 ? " (merged)" : "") + (p.residual ? " +residual" : "") + " n" +
         std::to_string(p.n);
}

inline std::string describe_launch(const GemvPairParams& p) {
  return describe_launch(p.a) + " + " + std::string(dtype_name(p.b.w.type)) + " " + std::to_string(p.b.w.rows) + "x" +
         std::to_string(p.b.w.cols) + " (pair)";
}

inline std::string describe_launch(const MmaParams& p) {
  return "mma " + std::string(dtype_name(p.w.type)) + " " + std::to_string(p.w.rows + p.rows2 + p.rows3) + "x" +
         std::to_string(p.w.cols) + (p.data2 ? " (merged)" : "") + " n" + std::to_string(p.n) + " splits " +
         std::to_string(p.splits);
}

class LaunchTape {
 public:
  LaunchTape() = default;
  LaunchTape(const LaunchTape&) = delete;
  LaunchTape& operator=(const LaunchTape&) = delete;
  ~LaunchTape();

  // Recording on: launches wait for flush() and may be replayed from a graph.
  void set_recording(bool on) { recording_ = on; }
  // Profiling on: no graphs; every launch is timed (see LaunchProfile).
  void set_profile(LaunchProfile* profile) { profile_ = profile; }
  bool recording() const { return recording_; }

  // Launches (or records) F(params, stream). P must be zero-filled before its fields are set.
  template <class P, void (*F)(const P&, cudaStream_t)>
  void launch(const P& params, cudaStream_t stream) {
    static_assert(std::is_trivially_copyable_v<P>);
    if (!recording_) {
      if (profile_) profile_->around(describe_launch(params), stream, false);
      F(params, stream);
      if (profile_) profile_->around("", stream, true);
      return;
    }
    const Runner run = &run_op<P, F>;
    const size_t at = bytes_.size();
    bytes_.append(reinterpret_cast<const char*>(&run), sizeof run);
    bytes_.append(reinterpret_cast<const char*>(&params), sizeof params);
    ops_.push_back(Op{run, at + sizeof run, &describe_op<P>});
  }

  // Peephole fusion. Recorded launches are counted back from the last (from_end 0): is()
  // tells whether one was F, get() returns its parameters, erase() takes it back so the
  // caller can record a fused launch instead.
  size_t size() const { return ops_.size(); }
  template <class P, void (*F)(const P&, cudaStream_t)>
  bool is(size_t from_end) const {
    return from_end < ops_.size() && ops_[ops_.size() - 1 - from_end].run == static_cast<Runner>(&run_op<P, F>);
  }
  template <class P>
  P get(size_t from_end) const {
    P p;
    std::memcpy(static_cast<void*>(&p), bytes_.data() + ops_[ops_.size() - 1 - from_end].offset, sizeof p);
    return p;
  }
  void erase(size_t from_end);

  // Runs what was recorded: a cached graph when one matches, else the launches under
  // stream capture, kept as a new graph. Does not wait.
  void flush(cudaStream_t stream);
  // Destroys the cached graphs.
  void clear_graphs();
  int64_t graphs_built() const { return graphs_built_; }
  int64_t graphs_replayed() const { return graphs_replayed_; }

 private:
  using Runner = void (*)(const char*, cudaStream_t);
  template <class P, void (*F)(const P&, cudaStream_t)>
  static void run_op(const char* bytes, cudaStream_t stream) {
    P p;
    std::memcpy(static_cast<void*>(&p), bytes, sizeof p);
    F(p, stream);
  }
  template <class P>
  static std::string describe_op(const char* bytes) {
    P p;
    std::memcpy(static_cast<void*>(&p), bytes, sizeof p);
    return describe_launch(p);
  }
  struct Op {
    Runner run;
    size_t offset;  // of the parameters in bytes_
    std::string (*describe)(const char*);
  };
  struct Graph {
    std::string bytes;
    cudaGraphExec_t exec;
  };
  // Every step shape (tokens, sequences, context bucket) has its graphs, two when the step is
  // flushed in two parts (CudaBackend::split_ops_).
  static constexpr size_t kMaxGraphs = 32;

  bool recording_ = false;
  LaunchProfile* profile_ = nullptr;
  std::string bytes_;  // (runner, params) of every recorded launch, in order
  std::vector<Op> ops_;
  std::vector<Graph> graphs_;  // most recently used first
  int64_t graphs_built_ = 0, graphs_replayed_ = 0;
};

// A zero-filled parameter struct (padding included), so equal fields mean equal bytes.
template <class P>
P zeroed() {
  static_assert(std::is_trivially_copyable_v<P>);
  P p;
  std::memset(static_cast<void*>(&p), 0, sizeof p);
  return p;
}

}  // namespace hearth::cuda
