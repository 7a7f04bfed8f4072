#include "sidecar/policy/agent_refusal.h"

namespace mulligan::policy {
namespace {

constexpr int64_t kReopenIntervalUs = 1'000'000;

}  // namespace

AgentRefusalReader::Result AgentRefusalReader::read(int64_t now_us) {
  if (!subscriber_) {
    if (now_us < next_open_attempt_us_) return last_;
    next_open_attempt_us_ = now_us + kReopenIntervalUs;
    std::string error;
    subscriber_ = pfc::Subscriber::open(shm_name_, &error);
    if (!subscriber_) return last_;  // PolicyView already says "no policy yet"
  }
  pfc::Refusal r;
  std::string why;
  switch (subscriber_->readRefusal(&r, &why)) {
    case pfc::Subscriber::Status::kOk:
      last_.refusal = std::move(r);
      break;
    case pfc::Subscriber::Status::kTorn:
      return last_;  // the agent is rewriting it; the previous copy is still true enough
    case pfc::Subscriber::Status::kNothingYet:
    case pfc::Subscriber::Status::kBadSegment:  // PolicyView reports the segment itself
    case pfc::Subscriber::Status::kBadTable:
      last_.refusal.reset();
      break;
  }
  last_.published_generation = subscriber_->generation();
  return last_;
}

}  // namespace mulligan::policy
