// The server process under test, when it runs on this machine: attached by pid (--pid) or
// started by us (--spawn "command", run by /bin/sh in its own process group). A sampler
// thread reads VmRSS from /proc every 200 ms and GPU memory from nvidia-smi every second
// (when nvidia-smi exists), summed over the process group for spawned servers since the
// shell may fork the real server; it keeps the peaks. Death is noticed by waitpid (spawned)
// or by the pid vanishing from /proc (attached).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench/client.h"
#include "bench/results.h"

namespace hearth::bench {

class ServerProcess {
 public:
  // Starts `command` with stdout and stderr appended to log_path. Throws Error when fork fails.
  static std::unique_ptr<ServerProcess> spawn(const std::string& command, const std::string& log_path);
  // Throws Error when no process has this pid.
  static std::unique_ptr<ServerProcess> attach(int64_t pid);
  // Stops sampling; a spawned server gets SIGTERM, then SIGKILL after 5 s.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Polls GET {base}/models until it answers 200; returns the seconds since spawn (or since
  // this call, attached). Throws Error when the process dies or timeout_s passes, with the
  // last line of the log.
  double wait_ready(const Endpoint& ep, double timeout_s);
  void start_sampling();
  bool alive();
  ProcessMetrics metrics();

 private:
  ServerProcess() = default;
  void sample_once(bool with_gpu);
  std::string last_log_line() const;

  int64_t pid_ = 0;
  bool spawned_ = false;
  std::string command_, log_path_;
  std::chrono::steady_clock::time_point started_;
  double load_s_ = -1;
  std::mutex mu_;
  bool died_ = false;
  std::string exit_detail_;
  int64_t peak_rss_ = -1, peak_gpu_ = -1;
  int samples_ = 0;
  bool has_nvidia_smi_ = false;
  std::atomic<bool> stop_{false};
  std::thread sampler_;
};

// VmRSS of one pid in bytes, -1 when unreadable.
int64_t pid_rss_bytes(int64_t pid);

}  // namespace hearth::bench
