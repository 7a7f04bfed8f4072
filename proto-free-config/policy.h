// The effective retry/timeout policy of one service or route, after
// inheritance (built-in defaults -> [defaults] -> service -> route) has been
// resolved by the agent. It is plain data: the agent's compiler fills it, the
// table stores it byte for byte, and the sidecar's engine reads it. Nothing in
// here allocates or points anywhere, so it can live in shared memory.
//
// Units: every duration is int64 microseconds ("us"), every size is bytes.
// A duration of 0 means "none" where DESIGN.md says "0s" = none
// (request_timeout, read_timeout, per_try_timeout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace mulligan::pfc {

// Named retry conditions (DESIGN.md "retry_on names"). Stored as a bit set.
// Status codes named one by one live in RetryPolicy::status_bits instead.
enum class RetryCondition : uint32_t {
  kConnectFailure = 0,  // TCP connect refused / timed out / unreachable
  kReset = 1,           // connection closed or reset before response headers
  kRefusedStream = 2,   // HTTP/2 REFUSED_STREAM or beyond GOAWAY's last stream
  kPerTryTimeout = 3,   // the attempt's per_try_timeout fired
  k5xx = 4,             // any status 500..599
  kGatewayError = 5,    // 502, 503, 504
  kRetriable4xx = 6,    // 409
  kCount = 7,
};

// gRPC status codes that `retry_on` may name (matched on grpc-status).
enum class GrpcCode : uint32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// HTTP methods a route can be limited to. Bit i = 1 << Method.
enum class Method : uint32_t {
  kGet = 0,
  kHead = 1,
  kPost = 2,
  kPut = 3,
  kDelete = 4,
  kConnect = 5,
  kOptions = 6,
  kTrace = 7,
  kPatch = 8,
  kCount = 9,
};
constexpr uint32_t kAllMethods = (1u << static_cast<uint32_t>(Method::kCount)) - 1;

constexpr uint32_t methodBit(Method m) { return 1u << static_cast<uint32_t>(m); }
constexpr uint32_t conditionBit(RetryCondition c) { return 1u << static_cast<uint32_t>(c); }
constexpr uint32_t grpcBit(GrpcCode c) { return 1u << static_cast<uint32_t>(c); }

// Canonical spellings, shared by the agent (parse, dump) and the sidecar
// (admin output). Index = enum value.
std::string_view conditionName(RetryCondition c);
std::string_view grpcCodeName(GrpcCode c);  // "unavailable", ... ; "" if not nameable
std::string_view methodName(Method m);
// Parses an upper-case method token; returns false if it is not one we know.
bool parseMethod(std::string_view s, Method* out);

// Status codes 100..599 can be named individually in retry_on.
constexpr int kMinStatus = 100;
constexpr int kMaxStatus = 599;
constexpr size_t kStatusWords = (kMaxStatus + 1 + 63) / 64;  // 10 x 64 bits
constexpr size_t kMaxHeaderName = 63;  // idempotency_header length limit

struct RetryPolicy {
  uint32_t conditions;            // RetryCondition bits
  uint32_t grpc_codes;            // GrpcCode bits
  uint64_t status_bits[kStatusWords];  // individually named status codes
  uint32_t num_retries;
  uint8_t retry_after;            // 1 = honour Retry-After / grpc-retry-pushback-ms
  uint8_t fresh_connection;       // 1 = a retry (or hedge) opens a new connection, never a pooled one
  uint8_t reserved0[2];
  int64_t per_try_timeout_us;     // 0 = none
  int64_t backoff_base_us;
  int64_t backoff_max_us;
  int64_t retry_after_max_us;
  uint64_t max_buffered_body;     // bytes
  char idempotency_header[kMaxHeaderName + 1];  // lower case, NUL-terminated, may be empty

  bool hasStatus(int code) const {
    if (code < 0 || code > kMaxStatus) return false;
    return (status_bits[code / 64] >> (code % 64)) & 1u;
  }
  void addStatus(int code) { status_bits[code / 64] |= uint64_t{1} << (code % 64); }
  bool has(RetryCondition c) const { return conditions & conditionBit(c); }
  bool hasGrpc(GrpcCode c) const { return grpc_codes & grpcBit(c); }
  // True when an HTTP status would be retried by these rules (5xx,
  // gateway-error, retriable-4xx or the code named on its own).
  bool retriesStatus(int code) const;
  std::string_view idempotencyHeader() const;
};

struct BudgetPolicy {
  double retry_ratio;             // retries / original requests over the window
  uint32_t min_retries_per_second;
  uint32_t reserved0;
  int64_t window_us;
};

struct DeadlinePolicy {
  uint8_t propagate;              // rewrite grpc-timeout, set x-timeout-budget ...
  uint8_t accept_inbound;         // inbound grpc-timeout / x-timeout-budget may shorten
  uint8_t reserved0[6];
  int64_t grpc_timeout_offset_us;
  int64_t min_attempt_budget_us;
};

// [defaults.hedge]: another attempt while the first is still out.
// The delay is either fixed (delay_quantile_permille == 0; delay_us == 0 means
// no hedging) or a quantile of the route's own recent attempt latency (time to
// response headers): 900 = "p90", 950 = "p95", 990 = "p99", 999 = "p99.9".
struct HedgePolicy {
  int64_t delay_us;               // fixed delay; 0 (with no quantile) = hedging off
  uint16_t delay_quantile_permille;  // 0 = fixed delay; else 900, 950, 990 or 999
  uint16_t reserved0;
  uint32_t max_attempts;          // attempts in flight at once, the first included (2..5)
  double max_extra_load;          // hedges at most for this fraction of the route's requests

  bool enabled() const { return delay_us > 0 || delay_quantile_permille != 0; }
};

// The largest hedge.max_attempts the policy accepts (and ProxyStream holds).
constexpr uint32_t kMaxHedgeAttempts = 5;
constexpr uint32_t kMinHedgeAttempts = 2;

// The quantiles a hedge delay may name, as permille: 900, 950, 990, 999.
// quantileName(990) = "p99", quantileName(999) = "p99.9"; "" for any other.
std::string_view quantileName(uint32_t permille);
// "p90", "p95", "p99", "p99.9" -> 900, 950, 990, 999; false for anything else.
bool parseQuantile(std::string_view s, uint16_t* permille);
// The names, in increasing order, for messages and documents.
constexpr std::string_view kQuantileNames[] = {"p90", "p95", "p99", "p99.9"};
constexpr uint16_t kQuantilePermille[] = {900, 950, 990, 999};

// [defaults.outlier]: passive ejection of one address of a name with several.
struct OutlierPolicy {
  uint32_t consecutive_failures;  // connect-failure, reset or 5xx in a row; 0 = off
  uint32_t reserved0;
  int64_t ejection_us;            // first ejection; each later one of the same address doubles it
  int64_t max_ejection_us;
  double max_ejected;             // never eject more than this fraction of a name's addresses
};

struct EffectivePolicy {
  int64_t connect_timeout_us;
  int64_t request_timeout_us;     // 0 = none
  int64_t idle_timeout_us;
  int64_t read_timeout_us;        // 0 = none
  RetryPolicy retry;
  BudgetPolicy budget;
  DeadlinePolicy deadline;
  HedgePolicy hedge;              // since ABI 3
  OutlierPolicy outlier;          // since ABI 3
};

static_assert(std::is_trivially_copyable_v<EffectivePolicy>);
static_assert(std::is_standard_layout_v<EffectivePolicy>);
static_assert(sizeof(RetryPolicy) == 8 + 80 + 8 + 40 + 64);
static_assert(sizeof(HedgePolicy) == 24);
static_assert(sizeof(OutlierPolicy) == 32);
static_assert(sizeof(EffectivePolicy) == 32 + sizeof(RetryPolicy) + 24 + 24 + 24 + 32);

// The built-in values of DESIGN.md's [defaults]; what a sidecar enforces when
// no policy has been published (fail open).
EffectivePolicy builtinDefaults();

}  // namespace mulligan::pfc
