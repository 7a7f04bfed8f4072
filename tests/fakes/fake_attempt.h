// FakeAttempt: an Attempt whose transport is the test. It records what the
// call sent it and reports the outcomes the test scripts, through the real
// Attempt lifecycle (upstream/attempt.h). Its lifecycle timer sits on an
// event_base the test never runs: outcomes come only from the script.
#pragma once

#include <string>
#include <string_view>

#include "sidecar/core/clock.h"
#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

class FakeAttempt final : public Attempt {
 public:
  FakeAttempt(event_base* base, Owner* owner, const AttemptSpec& spec)
      : Attempt(base, owner, spec.dest, spec.timeouts), protocol(spec.protocol) {}

  // The clock start() reads as the time the request went out (none: 0).
  const core::Clock* clock = nullptr;

  // --- what the call did ---
  Protocol protocol;
  std::string method;
  retry::AttemptHeaders extra;  // the engine's per-attempt headers
  std::string body;
  bool ended = false;      // endRequest()
  bool started = false;    // start()
  bool cancelled = false;  // cancel()
  bool cancelled_as_loser = false;  // cancelAsLoser(): another attempt won
  bool paused = false;     // pauseReading()
  std::string header(std::string_view name) const {
    auto v = extra.find(name);
    return v ? std::string(*v) : std::string();
  }

  // --- Attempt ---
  void sendHead(const RequestHead& head, const retry::AttemptHeaders& e) override {
    method = head.method;
    extra = e;
  }
  void sendBody(const char* data, size_t len) override { body.append(data, len); }
  void endRequest(const HeaderList*) override { ended = true; }
  void start() override {
    started = true;
    if (clock) markSent(clock->nowUs());
    transitionTo(State::kAwaitingHeaders);
  }
  void flush() override {}
  void setIdleTimeoutUs(int64_t) override {}
  void forbidReuse() override {}
  void pauseReading(bool p) override { paused = p; }
  void cancel() override {
    cancelled = true;
    if (state() != State::kDone) transitionTo(State::kDone);
  }
  void cancelAsLoser() override {
    cancelled_as_loser = true;
    cancel();
  }
  bufferevent* releaseConnection() override { return nullptr; }
  size_t requestBacklog() const override { return 0; }
  bool reused() const override { return false; }

  // --- the script ---
  void failWith(retry::OutcomeKind kind) { fail(kind, "scripted"); }
  void respond(int status, HeaderList headers = {}, bool end_stream = false) {
    MessageHead h;
    h.status = status;
    h.headers = std::move(headers);
    headArrived(h, end_stream);
  }
  void respondBody(std::string_view b) { bodyArrived(b.data(), b.size()); }
  void respondTrailers(HeaderList t) { trailersArrived(t); }
  void respondEnd() { complete(); }
  void breakOff() { abortResponse("scripted"); }
};

}  // namespace mulligan::proxy
