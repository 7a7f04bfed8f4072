#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

void armAttemptTimer(event::Timer& timer, Attempt::State s, int64_t header_timeout_us, int64_t read_timeout_us) {
  timer.cancel();
  switch (s) {
    case Attempt::State::kAwaitingHeaders:
      if (header_timeout_us >= 0) timer.armUs(header_timeout_us);
      break;
    case Attempt::State::kStreaming:
      if (read_timeout_us > 0) timer.armUs(read_timeout_us);
      break;
    case Attempt::State::kConnecting:
    case Attempt::State::kDone:
      break;
  }
}

bool replacedByAttemptHeaders(const retry::AttemptHeaders& extra, std::string_view name) {
  for (retry::HeaderField f : extra) {
    if (iequals(f.name, name)) return true;
  }
  return false;
}

}  // namespace mulligan::proxy
