#include "sidecar/retry/outcome.h"

#include <array>

namespace mulligan::retry {
namespace {

constexpr std::string_view kGrpcNames[] = {
    "ok",        "cancelled",       "unknown",           "invalid-argument",   "deadline-exceeded",
    "not-found", "already-exists",  "permission-denied", "resource-exhausted", "failed-precondition",
    "aborted",   "out-of-range",    "unimplemented",     "internal",           "unavailable",
    "data-loss", "unauthenticated",
};
static_assert(std::size(kGrpcNames) == 17);

// "000".."999", built at compile time so a status label never allocates.
constexpr auto kStatusText = [] {
  std::array<std::array<char, 3>, 1000> t{};
  for (int i = 0; i < 1000; ++i) {
    t[i][0] = static_cast<char>('0' + i / 100);
    t[i][1] = static_cast<char>('0' + i / 10 % 10);
    t[i][2] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

}  // namespace

std::string_view outcomeKindName(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::kConnectFailure:
      return "connect-failure";
    case OutcomeKind::kReset:
      return "reset";
    case OutcomeKind::kRefusedStream:
      return "refused-stream";
    case OutcomeKind::kPerTryTimeout:
      return "per-try-timeout";
    case OutcomeKind::kResponse:
      return "response";
    case OutcomeKind::kOverflow:
      return "overflow";
  }
  return "response";
}

std::string_view grpcStatusName(int code) {
  return code >= 0 && code < static_cast<int>(std::size(kGrpcNames)) ? kGrpcNames[code] : std::string_view{};
}

std::string_view httpStatusText(int code) {
  if (code < 0 || code > 999) return {};
  return {kStatusText[code].data(), 3};
}

std::string_view Outcome::reason() const {
  if (kind != OutcomeKind::kResponse) return outcomeKindName(kind);
  if (std::string_view g = grpcStatusName(grpc_status); !g.empty()) return g;
  if (std::string_view s = httpStatusText(status); !s.empty()) return s;
  return "response";
}

int grpcStatusFromHttp(int http_status) {
  switch (http_status) {
    case 200:
      return kNoGrpcStatus;
    case 400:
      return 13;  // INTERNAL
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;  // UNAVAILABLE
    default:
      return 2;  // UNKNOWN
  }
}

}  // namespace mulligan::retry
