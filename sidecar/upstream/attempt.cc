#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

Attempt::Attempt(event_base* base, Owner* owner, const net::Address& dest, Timeouts timeouts)
    : owner_(owner), dest_(dest), timeouts_(timeouts), timer_(nullptr, base, &Attempt::timerFired, this) {}

void Attempt::transitionTo(State s) {
  state_ = s;
  timer_.cancel();
  // Each phase's duration is the policy's (the per-try timeout only when it
  // is the policy's own, retry::AttemptTimeout::perTry): repeating.
  switch (s) {
    case State::kConnecting:
      if (timeouts_.connect_us > 0) timer_.armUs(timeouts_.connect_us);
      break;
    case State::kAwaitingHeaders:
      if (header_timeout_us_ >= 0) timer_.armUs(header_timeout_us_);
      break;
    case State::kStreaming:
      if (timeouts_.read_us > 0) timer_.armUs(timeouts_.read_us);
      break;
    case State::kDone:
      break;
  }
}

void Attempt::timerFired(void* self) { static_cast<Attempt*>(self)->onTimer(); }

void Attempt::onTimer() {
  if (pending_failure_) {
    fail(*pending_failure_, pending_why_);
    return;
  }
  switch (state_) {
    case State::kConnecting:
      timed_out_ = retry::TimeoutKind::kConnect;
      fail(retry::OutcomeKind::kConnectFailure, "connect to " + dest_.toString() + " timed out");
      break;
    case State::kAwaitingHeaders:
      timed_out_ = retry::TimeoutKind::kPerTry;
      fail(retry::OutcomeKind::kPerTryTimeout, "no response headers from " + dest_.toString() + " in time");
      break;
    case State::kStreaming:
      timed_out_ = retry::TimeoutKind::kRead;
      abortResponse("read timeout: " + dest_.toString() + " went silent mid-response");
      break;
    case State::kDone:
      break;
  }
}

void Attempt::fail(retry::OutcomeKind kind, const std::string& why) {
  if (state_ == State::kDone) return;
  transitionTo(State::kDone);
  onFailed(kind);
  owner_->onAttemptFailed(*this, kind, why);  // may cancel or defer-delete us: touch nothing after
}

void Attempt::failSoon(retry::OutcomeKind kind, std::string why) {
  pending_failure_ = kind;
  pending_why_ = std::move(why);
  timer_.armUs(0);  // at once, from the loop (a plain timer)
}

void Attempt::abortResponse(const std::string& why) {
  if (state_ == State::kDone) return;
  transitionTo(State::kDone);
  onAborted();
  owner_->onAttemptAborted(*this, why);
}

bool replacedByAttemptHeaders(const retry::AttemptHeaders& extra, std::string_view name) {
  for (retry::HeaderField f : extra) {
    if (iequals(f.name, name)) return true;
  }
  return false;
}

}  // namespace mulligan::proxy
