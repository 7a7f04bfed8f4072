// Outcome: how one attempt ended, as the (protocol-specific) Attempt (Http1Attempt, Http2Attempt)
// reports it to the (protocol-agnostic) retry engine. Exactly one Outcome per
// attempt that did not deliver a committed response. It carries facts, not
// judgements: whether to retry is RetryState's business.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/retry/header_value.h"

namespace mulligan::retry {

enum class OutcomeKind : uint8_t {
  kConnectFailure,  // TCP connect refused, unreachable or timed out: never sent
  kReset,           // connection closed/reset (or HTTP/2 stream reset other than
                    // REFUSED_STREAM) before response headers
  kRefusedStream,   // HTTP/2 REFUSED_STREAM, or a stream beyond GOAWAY's last
                    // stream id: the upstream did not process it
  kPerTryTimeout,   // no response headers within the per-try timeout
  kResponse,        // response headers arrived: status, maybe grpc-status
  kOverflow,        // the sidecar's own limit (max upstream connections) refused
                    // the attempt: never sent, and never retried (Envoy answers
                    // overflow at once too: retrying into a full pool only adds load)
};
// "connect-failure", "reset", "refused-stream", "per-try-timeout",
// "response", "overflow" — the retry_on spellings where one exists.
std::string_view outcomeKindName(OutcomeKind k);

// The response header an overloaded upstream (or proxy: Envoy sets it on
// its own overload answers) uses to say "do not retry me".
inline constexpr std::string_view kEnvoyOverloadedHeader = "x-envoy-overloaded";

// No grpc-status was seen (an HTTP response, or a gRPC response whose status
// will come in trailers).
constexpr int kNoGrpcStatus = -1;

struct Outcome {
  OutcomeKind kind = OutcomeKind::kResponse;
  // kResponse: the HTTP status (HTTP/2: :status).
  int status = 0;
  // kResponse: grpc-status from a trailers-only response (or from response
  // headers), 0..16; kNoGrpcStatus when there was none.
  int grpc_status = kNoGrpcStatus;
  // kResponse: the pushback headers as they arrived (absent if not sent).
  HeaderValue retry_after;    // Retry-After
  HeaderValue grpc_pushback;  // grpc-retry-pushback-ms
  // kResponse: the response carried x-envoy-overloaded (DESIGN.md "Overload
  // signals"): the upstream asks that nobody repeat the call, neither a retry
  // nor a hedge. RetryState refuses with Refusal::kOverloaded.
  bool overloaded = false;
  // Extra proof, from the codec, that the upstream never saw the request (for
  // example a pooled connection found closed before a byte was written).
  // kConnectFailure and kRefusedStream imply it already.
  bool never_reached = false;

  // The request provably never reached the upstream: retrying it is safe for
  // any method, and costs no budget.
  bool neverReachedUpstream() const {
    return never_reached || kind == OutcomeKind::kConnectFailure || kind == OutcomeKind::kRefusedStream;
  }

  // A short label for access logs and metric labels, static storage, no
  // allocation: the kind's name, or for a response its grpc-status name
  // ("unavailable") when it has one, else its status code ("503").
  std::string_view reason() const;

  // Convenience constructors.
  static Outcome connectFailure() { return make(OutcomeKind::kConnectFailure); }
  static Outcome reset() { return make(OutcomeKind::kReset); }
  static Outcome refusedStream() { return make(OutcomeKind::kRefusedStream); }
  static Outcome perTryTimeout() { return make(OutcomeKind::kPerTryTimeout); }
  static Outcome response(int status) {
    Outcome o = make(OutcomeKind::kResponse);
    o.status = status;
    return o;
  }
  static Outcome grpcResponse(int grpc_status, int http_status = 200) {
    Outcome o = response(http_status);
    o.grpc_status = grpc_status;
    return o;
  }

 private:
  static Outcome make(OutcomeKind k) {
    Outcome o;
    o.kind = k;
    return o;
  }
};

// The kebab-case name of a gRPC status code 0..16 ("ok", "cancelled", ...,
// "unauthenticated"), as retry_on spells the ones it accepts; "" otherwise.
std::string_view grpcStatusName(int code);
// A status code 0..999 as three digits ("503"), static storage; "" otherwise.
std::string_view httpStatusText(int code);

// The gRPC status a client derives from an HTTP status when a response has
// no grpc-status (gRPC "http-grpc-status-mapping.md"): 400 INTERNAL,
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429/502/503/504 UNAVAILABLE, anything else UNKNOWN. 200 has no mapping (the
// status comes later, in trailers): kNoGrpcStatus.
int grpcStatusFromHttp(int http_status);

}  // namespace mulligan::retry
