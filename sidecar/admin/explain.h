// GET /explain: which service and route a request would match, the
// effective policy, and — given an outcome (&status=503, &grpc_status=14 or
// &outcome=connect-failure) — what the retry engine decides: a dry run of
// the real retry::RetryState (wouldRetry, then decide), never a
// re-implementation of its rules.
//
// Query parameters:
//   host (required)  the Host / :authority (a port in it is ignored)
//   port             destination port (default 0: unknown)
//   method           default GET
//   path             origin-form, default "/"
//   grpc             1/true: a gRPC call (content-type application/grpc)
//   status           HTTP status of the attempt's response, 100..599
//   grpc_status      grpc-status of a trailers-only response, 0..16
//   outcome          connect-failure | reset | refused-stream | per-try-timeout
//   attempt          which attempt just ended (default 1: the first)
//   idempotency_key  1/true: the policy's idempotency header is present
//   body_size        declared request body size in bytes
//   retry_after      a Retry-After value sent with the response
//
// The dry run uses a fake clock (the deadline starts now, from the policy's
// request_timeout alone, no inbound deadline headers), the largest random
// draw (so "wait" is the upper bound of the jittered backoff, or the exact
// pushback) and a fresh retry budget (so it never spends the live one);
// the service's live budget is shown beside it, and "budget_would_admit"
// says whether it would admit a retry now.
//
// Answer (JSON): {"generation", "request": {...}, "service": {"name",
// "index"} | null, "route": {"ordinal", "match", "methods"} | null,
// "policy": {...effective...}, and with an outcome "retry": {"outcome",
// "would_retry", "matched_by": [retry_on entries that name the outcome],
// "decision": {"retry", "refusal", "wait", "pushback"}, "budget": {...}}}.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "proto-free-config/table_reader.h"
#include "sidecar/retry/budget.h"
#include "sidecar/retry/outcome.h"

namespace mulligan::admin {

struct ExplainQuery {
  std::string host;
  uint16_t port = 0;
  std::string method = "GET";
  std::string path = "/";
  bool grpc = false;
  std::optional<retry::Outcome> outcome;  // its retry_after is set by explainJson
  std::optional<std::string> retry_after;
  uint32_t attempt = 1;
  bool has_idempotency_key = false;
  std::optional<uint64_t> body_size;
};

// Parses a URI query ("host=orders&status=503"). nullopt and *error (one
// line, for a 400) when a parameter is missing, malformed or unknown.
std::optional<ExplainQuery> parseExplainQuery(const char* query, std::string* error);

// Reads the live budget of a service ("" = no service) under a policy.
using BudgetReader = std::function<retry::RetryBudget::Snapshot(std::string_view service, const pfc::BudgetPolicy&)>;

// The answer. `table` null: no policy loaded (the built-in defaults apply).
std::string explainJson(const pfc::Table* table, const ExplainQuery& q, const BudgetReader& live_budget);

}  // namespace mulligan::admin
