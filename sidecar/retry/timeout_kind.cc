#include "sidecar/retry/timeout_kind.h"

namespace mulligan::retry {

std::string_view timeoutKindName(TimeoutKind k) {
  switch (k) {
    case TimeoutKind::kConnect:
      return "connect";
    case TimeoutKind::kPerTry:
      return "per-try";
    case TimeoutKind::kRequest:
      return "request";
    case TimeoutKind::kRead:
      return "read";
  }
  return "";
}

std::string_view timeoutMessage(TimeoutKind k) {
  switch (k) {
    case TimeoutKind::kConnect:
      return "upstream connect timeout";
    case TimeoutKind::kPerTry:
      return "upstream per-try timeout";
    case TimeoutKind::kRequest:
      return "upstream request timeout";
    case TimeoutKind::kRead:
      return "upstream read timeout";
  }
  return "";
}

}  // namespace mulligan::retry
