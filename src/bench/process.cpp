// ServerProcess (process.h): spawn/attach, readiness polling, memory sampling, death.
#include "bench/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace hearth::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Process group of a pid from /proc/PID/stat ("pid (comm) state ppid pgrp ..."), -1 if gone.
int64_t pgrp_of(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 1));
  char state = 0;
  int64_t ppid = 0, pgrp = -1;
  rest >> state >> ppid >> pgrp;
  return state == 'Z' ? -1 : pgrp;
}

std::vector<int64_t> group_pids(int64_t pgrp) {
  std::vector<int64_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end && *end == '\0' && pid > 0 && pgrp_of(pid) == pgrp) out.push_back(pid);
  }
  closedir(d);
  return out;
}

// pid -> used GPU memory in bytes from nvidia-smi ("1234, 512 MiB" lines).
std::map<int64_t, int64_t> gpu_memory_by_pid() {
  std::map<int64_t, int64_t> out;
  FILE* p = popen("nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null", "r");
  if (!p) return out;
  char line[256];
  while (std::fgets(line, sizeof line, p)) {
    long long pid = 0, mib = 0;
    if (std::sscanf(line, "%lld, %lld", &pid, &mib) == 2) out[pid] += mib * 1048576;
  }
  pclose(p);
  return out;
}

}  // namespace

int64_t pid_rss_bytes(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      long long kib = 0;
      if (std::sscanf(line.c_str() + 6, "%lld", &kib) == 1) return kib * 1024;
    }
  }
  return -1;
}

std::unique_ptr<ServerProcess> ServerProcess::spawn(const std::string& command, const std::string& log_path) {
  HEARTH_CHECK(!command.empty(), "--spawn: empty command");
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->command_ = command;
  p->log_path_ = log_path;
  p->spawned_ = true;
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  HEARTH_CHECK(log >= 0, log_path + ": cannot write the server log");
  p->started_ = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    fail("--spawn: fork failed");
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, STDIN_FILENO);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before either side runs on
  close(log);
  p->pid_ = pid;
  p->has_nvidia_smi_ = std::system("command -v nvidia-smi >/dev/null 2>&1") == 0;
  return p;
}

std::unique_ptr<ServerProcess> ServerProcess::attach(int64_t pid) {
  HEARTH_CHECK(pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM),
               "--pid " + std::to_string(pid) + ": no such process");
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->pid_ = pid;
  p->started_ = Clock::now();
  p->has_nvidia_smi_ = std::system("command -v nvidia-smi >/dev/null 2>&1") == 0;
  return p;
}

ServerProcess::~ServerProcess() {
  stop_ = true;
  if (sampler_.joinable()) sampler_.join();
  if (spawned_ && alive()) {
    kill(-static_cast<pid_t>(pid_), SIGTERM);
    for (int i = 0; i < 50 && alive(); ++i) usleep(100000);
    if (alive()) kill(-static_cast<pid_t>(pid_), SIGKILL);
  }
  if (spawned_) {
    int status = 0;
    waitpid(static_cast<pid_t>(pid_), &status, 0);
    kill(-static_cast<pid_t>(pid_), SIGKILL);  // whatever the shell left behind
  }
}

bool ServerProcess::alive() {
  std::lock_guard lk(mu_);
  if (died_) return false;
  if (spawned_) {
    int status = 0;
    const pid_t r = waitpid(static_cast<pid_t>(pid_), &status, WNOHANG);
    if (r == 0) return true;
    died_ = true;
    if (r > 0 && WIFEXITED(status)) exit_detail_ = "exit status " + std::to_string(WEXITSTATUS(status));
    else if (r > 0 && WIFSIGNALED(status)) exit_detail_ = "killed by signal " + std::to_string(WTERMSIG(status));
    else exit_detail_ = "gone";
    return false;
  }
  if (pgrp_of(pid_) < 0) {
    died_ = true;
    exit_detail_ = "pid " + std::to_string(pid_) + " is gone";
    return false;
  }
  return true;
}

std::string ServerProcess::last_log_line() const {
  std::ifstream in(log_path_);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last.empty() ? "" : " (last output: " + excerpt_of(last, 200) + ")";
}

double ServerProcess::wait_ready(const Endpoint& ep, double timeout_s) {
  Endpoint probe = ep;
  probe.connect_timeout_s = 1;
  probe.read_timeout_s = 5;
  probe.timeout_s = 5;
  const auto begin = Clock::now();
  for (;;) {
    HEARTH_CHECK(alive(), "--spawn: the server exited before answering (" + exit_detail_ + ")" + last_log_line());
    const HttpResponse r = http_get(probe, "/models");
    if (r.outcome == Outcome::ok && r.status == 200) {
      load_s_ = std::chrono::duration<double>(Clock::now() - (spawned_ ? started_ : begin)).count();
      return load_s_;
    }
    const double waited = std::chrono::duration<double>(Clock::now() - begin).count();
    HEARTH_CHECK(waited < timeout_s, "the server at " + ep.url() + " did not answer GET /models within " +
                                         std::to_string(static_cast<int>(timeout_s)) + " s" + last_log_line());
    usleep(50000);
  }
}

void ServerProcess::sample_once(bool with_gpu) {
  std::vector<int64_t> pids;
  if (spawned_) pids = group_pids(pid_);
  else pids = {pid_};
  int64_t rss = 0;
  bool any = false;
  for (int64_t p : pids)
    if (const int64_t r = pid_rss_bytes(p); r >= 0) rss += r, any = true;
  int64_t gpu = -1;
  if (with_gpu) {
    const auto by_pid = gpu_memory_by_pid();
    gpu = 0;
    for (int64_t p : pids)
      if (auto it = by_pid.find(p); it != by_pid.end()) gpu += it->second;
  }
  std::lock_guard lk(mu_);
  if (any) {
    peak_rss_ = std::max(peak_rss_, rss);
    ++samples_;
  }
  if (gpu >= 0) peak_gpu_ = std::max(peak_gpu_, gpu);
}

void ServerProcess::start_sampling() {
  sample_once(has_nvidia_smi_);
  sampler_ = std::thread([this] {
    for (int tick = 1; !stop_; ++tick) {
      usleep(200000);
      if (!alive()) return;
      sample_once(has_nvidia_smi_ && tick % 5 == 0);
    }
  });
}

ProcessMetrics ServerProcess::metrics() {
  alive();  // notice a death that happened since the last sample
  std::lock_guard lk(mu_);
  ProcessMetrics m;
  m.present = true;
  m.pid = pid_;
  m.command = command_;
  m.load_s = spawned_ ? load_s_ : -1;
  m.peak_rss_bytes = peak_rss_;
  m.peak_gpu_bytes = peak_gpu_;
  m.samples = samples_;
  m.died = died_;
  m.exit_detail = exit_detail_;
  return m;
}

}  // namespace hearth::bench
