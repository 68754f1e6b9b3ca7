// SinkWriter and pump() (sse.h).
#include "server/sse.h"

#include <algorithm>

#include "server/server_state.h"

namespace hearth::server {

bool SinkWriter::write(std::string_view bytes) {
  if (!ok_) return false;
  if (bytes.empty()) return true;
  ok_ = sink_.write(bytes.data(), bytes.size());
  last_ = std::chrono::steady_clock::now();
  return ok_;
}

double SinkWriter::idle_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_).count();
}

void cancel_all(State& st, const std::vector<std::shared_ptr<RequestStream>>& streams) {
  for (const auto& s : streams)
    if (!s->done()) st.engine.cancel(*s);
}

bool pump(State& st, const std::vector<std::shared_ptr<RequestStream>>& streams,
          const std::function<bool(size_t, const EngineEvent&)>& on_event, const std::function<bool()>& keepalive,
          const SinkWriter& writer, double keepalive_s) {
  using namespace std::chrono_literals;
  // One request: block on it. Several: take turns in short slices. Never wait past the
  // next keep-alive.
  const auto max_slice = streams.size() == 1 ? 200ms : 5ms;
  for (;;) {
    const auto until_keepalive = std::chrono::milliseconds(static_cast<int64_t>((keepalive_s - writer.idle_s()) * 1000));
    const auto slice = std::clamp(until_keepalive, std::chrono::milliseconds(1), std::chrono::milliseconds(max_slice));
    bool all_done = true, got = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      if (streams[i]->done()) continue;
      all_done = false;
      // Drain what is ready before looking at the other streams or the clock.
      while (auto e = streams[i]->next(got ? 0ms : slice)) {
        got = true;
        if (!on_event(i, *e)) {
          cancel_all(st, streams);
          return false;
        }
        if (e->kind == EngineEvent::Kind::Finish) break;
      }
    }
    if (all_done) return true;
    if (st.stopping.load()) {
      cancel_all(st, streams);
      return false;
    }
    if (writer.idle_s() >= keepalive_s && !keepalive()) {
      cancel_all(st, streams);
      return false;
    }
  }
}

}  // namespace hearth::server
