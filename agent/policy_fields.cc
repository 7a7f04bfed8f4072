#include "agent/policy_fields.h"

#include <cstdio>
#include <cstdlib>

namespace mulligan::agent {
namespace {

constexpr int64_t kMs = 1000;                // microseconds
constexpr int64_t kS = 1000 * kMs;
constexpr int64_t kHourUs = 3600 * kS;
constexpr int64_t kDayUs = 24 * kHourUs;
constexpr int64_t kMiB = int64_t{1} << 20;

// JSON Schema patterns (ECMA-262; taplo and python-jsonschema read them alike).
// They check the spelling; the compiler checks more (see checkOnlyRules()).
constexpr std::string_view kServiceNamePattern = "^[a-z0-9._-]+$";
constexpr std::string_view kUpstreamPattern = "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$";
constexpr std::string_view kTokenPattern = "^[!#$%&'*+.^_`|~0-9A-Za-z-]*$";  // RFC 9110 §5.6.2, or "" = none
constexpr std::string_view kPathPrefixPattern = "^/[^\\u0000-\\u0020\\u007f]*$";
constexpr std::string_view kPathExactPattern = "^/[^\\u0000-\\u0020\\u007f?#]*$";
constexpr std::string_view kGrpcPattern = "^/?[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*(/[A-Za-z0-9_]+)?$";

using S = Section;
using K = FieldKind;

// clang-format off
constexpr FieldSpec kFields[] = {
  // ---------------------------------------------------------------- top level
  {S::kRoot, "version", K::kInteger, 0, 1, 1, false, {},
   "The policy format's version",
   "Only 1 exists. Optional, but write it: a later format will be told apart by it.",
   "version = 1"},
  {S::kRoot, "defaults", K::kTable, 0, 0, 0, false, {},
   "Values for every request, and what services and routes inherit",
   "Requests that match no [[service]] use these values. Every field is optional: a field left out keeps its "
   "built-in value.",
   "[defaults]"},
  {S::kRoot, "service", K::kTableArray, 0, 0, 0, false, {},
   "One [[service]] table per upstream service",
   "A request belongs to the service whose hosts has the request's Host (or :authority) without its port, an "
   "exact name before the longest \"*.\" suffix, and, when the service sets port, whose destination port is that "
   "port. A request no service matches uses [defaults].",
   "[[service]]"},

  // ------------------------------------------------------ every policy level
  {S::kPolicy, "connect_timeout", K::kDuration, kAtAllLevels, 1, kDayUs, false, {},
   "Longest wait for a TCP connection to the upstream, per attempt",
   "A connect that takes longer fails the attempt as connect-failure (retried when retry_on names it).",
   "connect_timeout = \"2s\""},
  {S::kPolicy, "request_timeout", K::kDuration, kAtAllLevels, 0, kDayUs, false, {},
   "The whole call's deadline, every attempt and backoff included; \"0s\" = none",
   "The clock starts when the request headers arrive. An inbound grpc-timeout or x-timeout-budget may make the "
   "deadline earlier (deadline.accept_inbound), never later. When it passes before response headers the client "
   "gets 504 with x-mulligan-timeout: request (gRPC: grpc-status 4). It bounds streaming calls too: give "
   "long-lived streams a route with \"0s\".",
   "request_timeout = \"5s\""},
  {S::kPolicy, "idle_timeout", K::kDuration, kAtDefaults | kAtService, 1, kDayUs, false, {},
   "How long a keep-alive connection may stay unused, on both sides",
   "Per connection, so not settable on a route (a connection serves many routes).",
   "idle_timeout = \"30s\""},
  {S::kPolicy, "read_timeout", K::kDuration, kAtAllLevels, 0, kDayUs, false, {},
   "Longest silence from the upstream inside a response; \"0s\" = none",
   "",
   "read_timeout = \"10s\""},
  {S::kPolicy, "retry", K::kTable, kAtAllLevels, 0, 0, false, {},
   "When and how a failed attempt is tried again",
   "Written [defaults.retry], retry = { ... } on a service or route, or as dotted keys (retry.num_retries = 3). "
   "Each field is inherited on its own.",
   "retry = { num_retries = 3 }"},
  {S::kPolicy, "budget", K::kTable, kAtDefaults | kAtService, 0, 0, false, {},
   "A cap on retries per service, as Linkerd and Finagle have",
   "Per service, so not settable on a route. Retries beyond the budget do not happen (refusal reason budget).",
   "budget = { retry_ratio = 0.1 }"},
  {S::kPolicy, "deadline", K::kTable, kAtAllLevels, 0, 0, false, {},
   "How the call's deadline is taken from the caller and passed on upstream",
   "",
   "deadline = { propagate = false }"},
  {S::kPolicy, "hedge", K::kTable, kAtAllLevels, 0, 0, false, {},
   "Another attempt while the first is still out, to cut tail latency (hedging)",
   "Off unless delay is set. Trades extra upstream load for a shorter tail: each hedge is one more request the "
   "upstream serves, charged to the retry budget and capped by max_extra_load. Written [defaults.hedge], "
   "hedge = { ... } on a service or route, or as dotted keys (hedge.delay = \"p99\"); each field inherited on "
   "its own.",
   "hedge = { delay = \"p99\" }"},
  {S::kPolicy, "outlier", K::kTable, kAtAllLevels, 0, 0, false, {},
   "Passive ejection of a failing address of a name with several addresses",
   "Trades capacity for avoiding a failing address: an ejected address gets no attempts until its ejection "
   "ends, so the others carry its share. Applies to destinations whose name resolves to several addresses.",
   "outlier = { consecutive_failures = 3 }"},

  // ------------------------------------------------------------------ retry
  {S::kRetry, "retry_on", K::kRetryOn, kAtAllLevels, 0, 0, false, {},
   "The outcomes that are retried",
   "Condition names, HTTP status codes (\"429\" or 429) and gRPC status names; see \"retry_on names\". One field: "
   "a level that sets it replaces the whole inherited list. [] retries nothing.",
   "retry_on = [\"5xx\", \"connect-failure\"]"},
  {S::kRetry, "num_retries", K::kInteger, kAtAllLevels, 0, 25, false, {},
   "Retries after the first attempt",
   "0 turns retries off.",
   "num_retries = 3"},
  {S::kRetry, "per_try_timeout", K::kDuration, kAtAllLevels, 0, kDayUs, false, {},
   "Longest wait for one attempt's response headers; \"0s\" = none",
   "When it fires the attempt fails as per-try-timeout (retried when retry_on names it), and the client gets 504 "
   "with x-mulligan-timeout: per-try when no retry follows. It is capped by what is left of request_timeout.",
   "per_try_timeout = \"1s\""},
  {S::kRetry, "backoff_base", K::kDuration, kAtAllLevels, 1, kHourUs, false, {},
   "The first retry's backoff ceiling",
   "Before retry n the sidecar waits a uniformly random time in [0, min(backoff_max, backoff_base * 2^(n-1))) "
   "(full jitter). Must not be more than the effective backoff_max.",
   "backoff_base = \"100ms\""},
  {S::kRetry, "backoff_max", K::kDuration, kAtAllLevels, 1, kHourUs, false, {},
   "The largest backoff ceiling",
   "Must not be less than the effective backoff_base.",
   "backoff_max = \"1s\""},
  {S::kRetry, "retry_after", K::kBoolean, kAtAllLevels, 0, 0, false, {},
   "Honour a 429 or 503 response's Retry-After",
   "The wait is the server's (delta-seconds or HTTP-date) instead of the backoff, when it fits retry_after_max and "
   "the time left; otherwise the response goes back as it is, without a retry. gRPC's grpc-retry-pushback-ms is "
   "honoured the same way.",
   "retry_after = false"},
  {S::kRetry, "retry_after_max", K::kDuration, kAtAllLevels, 0, kHourUs, false, {},
   "The longest Retry-After (or gRPC pushback) waited for",
   "A longer one means: no retry.",
   "retry_after_max = \"2s\""},
  {S::kRetry, "idempotency_header", K::kString, kAtAllLevels, 0, 63, false, kTokenPattern,
   "The request header that makes a POST or PATCH safe to retry; \"\" = none does",
   "POST and PATCH are retried only when the request carries this header, or when the request provably never "
   "reached the upstream (connect-failure, refused-stream). A header name (RFC 9110 token), at most 63 "
   "characters; compared without regard to case.",
   "idempotency_header = \"x-request-id\""},
  {S::kRetry, "max_buffered_body", K::kSize, kAtAllLevels, 0, 64 * kMiB, false, {},
   "The largest request body kept for a retry",
   "A request whose body is larger is not retried once its body has been sent (refusal reason body-too-large).",
   "max_buffered_body = \"1MiB\""},
  {S::kRetry, "fresh_connection", K::kBoolean, kAtAllLevels, 0, 0, false, {},
   "A retry or hedge opens a new connection instead of taking a pooled one",
   "Behind a ClusterIP Service kube-proxy picks the pod once per connection, so a retry on a pooled connection "
   "goes back to the pod that just failed; a new connection may land on another one. The cost is a TCP connect "
   "(a round trip) per retry. false reuses pooled connections: cheaper, for upstreams that are one address or "
   "where the next address is chosen per request anyway.",
   "fresh_connection = false"},

  // ----------------------------------------------------------------- budget
  {S::kBudget, "retry_ratio", K::kNumber, kAtDefaults | kAtService, 0, 10, false, {},
   "Retries allowed per original request, over the window",
   "0.2 allows one retry for every five requests, on top of min_retries_per_second.",
   "retry_ratio = 0.1"},
  {S::kBudget, "min_retries_per_second", K::kInteger, kAtDefaults | kAtService, 0, 1000000, false, {},
   "Retries per second always allowed, however few requests there are",
   "",
   "min_retries_per_second = 5"},
  {S::kBudget, "window", K::kDuration, kAtDefaults | kAtService, kS, kHourUs, false, {},
   "The time over which requests and retries are counted",
   "",
   "window = \"30s\""},

  // --------------------------------------------------------------- deadline
  {S::kDeadline, "propagate", K::kBoolean, kAtAllLevels, 0, 0, false, {},
   "Tell the upstream how much time is left",
   "Each attempt carries x-timeout-budget and x-envoy-expected-rq-timeout-ms (milliseconds) and, for gRPC, "
   "grpc-timeout rewritten to the time left (Connect: connect-timeout-ms). Rounded up, never 0.",
   "propagate = false"},
  {S::kDeadline, "accept_inbound", K::kBoolean, kAtAllLevels, 0, 0, false, {},
   "Let the caller's grpc-timeout or x-timeout-budget shorten request_timeout",
   "",
   "accept_inbound = false"},
  {S::kDeadline, "grpc_timeout_offset", K::kDuration, kAtAllLevels, 0, kHourUs, false, {},
   "Headroom subtracted from the grpc-timeout sent upstream",
   "So that the upstream gives up a little before the sidecar does.",
   "grpc_timeout_offset = \"10ms\""},
  {S::kDeadline, "min_attempt_budget", K::kDuration, kAtAllLevels, 0, kHourUs, false, {},
   "No attempt starts with less time than this left",
   "A retry that would start with less is not made (refusal reason deadline).",
   "min_attempt_budget = \"20ms\""},

  // ------------------------------------------------------------------ hedge
  {S::kHedge, "delay", K::kHedgeDelay, kAtAllLevels, 0, kHourUs, false, {},
   "How long the first attempt may go without response headers before a hedge starts; \"0s\" = no hedging",
   "A duration, or \"p90\", \"p95\", \"p99\", \"p99.9\": that quantile of the route's own recent attempt "
   "latency (time to response headers), measured by each sidecar worker. A quantile follows the upstream as it "
   "speeds up or slows down; a fixed delay is predictable. The lower the delay, the more requests are hedged: "
   "\"p90\" can hedge up to a tenth of them, \"p99\" a hundredth (max_extra_load caps it either way). Only "
   "requests that may be retried at all are hedged (safe methods, or POST and PATCH with the idempotency header, "
   "a body within max_buffered_body); the first response that is not a retry_on condition wins and the other "
   "attempts are cancelled.",
   "delay = \"p99\""},
  {S::kHedge, "max_attempts", K::kInteger, kAtAllLevels, 2, 5, false, {},
   "Attempts of one request in flight at once, the first included",
   "2 sends at most one hedge. More cuts the tail further when several upstreams are slow at once, at the price "
   "of more load on all of them.",
   "max_attempts = 3"},
  {S::kHedge, "max_extra_load", K::kNumber, kAtAllLevels, 0, 1, false, {},
   "Hedges are sent for at most this fraction of the route's requests",
   "The extra upstream load hedging may cost: 0.05 is at most 5% more requests. Hedges also spend retry budget, "
   "and none starts beyond the budget or the deadline.",
   "max_extra_load = 0.1"},

  // ---------------------------------------------------------------- outlier
  {S::kOutlier, "consecutive_failures", K::kInteger, kAtAllLevels, 0, 1000, false, {},
   "Failures in a row from one address that eject it; 0 = no ejection",
   "A connect-failure, reset or 5xx counts; any other response resets the count. Lower reacts faster to a bad "
   "address and ejects healthy ones on a short burst of errors more often.",
   "consecutive_failures = 3"},
  {S::kOutlier, "ejection", K::kDuration, kAtAllLevels, 1, kDayUs, false, {},
   "How long an address's first ejection lasts",
   "Each later ejection of the same address doubles it, up to max_ejection. Must not be more than the effective "
   "max_ejection.",
   "ejection = \"10s\""},
  {S::kOutlier, "max_ejection", K::kDuration, kAtAllLevels, 1, kDayUs, false, {},
   "The longest an ejection lasts, however often the address was ejected",
   "Must not be less than the effective ejection.",
   "max_ejection = \"1m\""},
  {S::kOutlier, "max_ejected", K::kNumber, kAtAllLevels, 0, 1, false, {},
   "Never eject more than this fraction of a name's addresses",
   "The guard against ejecting everything when the fault is not the addresses' (a bad deploy, the caller's own "
   "requests): 0.5 keeps at least half of the addresses in use. 0 never ejects.",
   "max_ejected = 0.3"},

  // ---------------------------------------------------------------- service
  {S::kService, "name", K::kString, 0, 1, 128, true, kServiceNamePattern,
   "The service's name, in /stats, /metrics and the access log",
   "Unique (without regard to case); lower-case letters, digits, '.', '_' and '-', at most 128 characters.",
   "name = \"orders\""},
  {S::kService, "hosts", K::kStringList, 0, 0, 0, true, {},
   "The Host / :authority names that select this service, without a port",
   "Host names, IPv4 or IPv6 addresses, or \"*.example.com\" suffix wildcards (the longest suffix wins). "
   "Compared without regard to case, a trailing dot dropped. A (host, port) pair belongs to one service only.",
   "hosts = [\"orders\", \"orders.default.svc.cluster.local\"]"},
  {S::kService, "port", K::kInteger, 0, 1, 65535, false, {},
   "Match only requests to this destination port",
   "Left out: any port.",
   "port = 8080"},
  {S::kService, "upstream", K::kString, 0, 0, 0, false, kUpstreamPattern,
   "Where to send the service's requests when no iptables redirect or proxy-style target says where",
   "HOST:PORT, [IPv6]:PORT. A name that resolves to several addresses spreads attempts over them.",
   "upstream = \"127.0.0.1:9000\""},
  {S::kService, "route", K::kTableArray, 0, 0, 0, false, {},
   "Routes of the service: the first that matches wins",
   "A request no route matches uses the service level. A route that an earlier route of the service always "
   "matches first is an error: put the more specific routes first.",
   "[[service.route]]"},

  // ------------------------------------------------------------------ route
  {S::kRoute, "path_prefix", K::kString, 0, 0, 0, false, kPathPrefixPattern,
   "Match requests whose path starts with this",
   "Exactly one of path_prefix, path_exact and grpc. \"/\" matches everything, gRPC calls included.",
   "path_prefix = \"/api/\""},
  {S::kRoute, "path_exact", K::kString, 0, 0, 0, false, kPathExactPattern,
   "Match requests whose path (without the query) is exactly this",
   "",
   "path_exact = \"/healthz\""},
  {S::kRoute, "grpc", K::kString, 0, 0, 0, false, kGrpcPattern,
   "Match gRPC calls to a service (\"pkg.Service\") or one method (\"pkg.Service/Method\")",
   "Only gRPC requests (content-type application/grpc*) match a grpc route.",
   "grpc = \"shop.Orders/Get\""},
  {S::kRoute, "methods", K::kMethods, 0, 0, 0, false, {},
   "Match only these HTTP methods",
   "Upper case. Left out: every method.",
   "methods = [\"GET\", \"HEAD\"]"},
};
// clang-format on

constexpr std::string_view kRouteMatchKeys[] = {"path_prefix", "path_exact", "grpc"};

// Ordered as the compiler's suggestions prefer them: pfc's conditions, then
// gRPC names (statuses are checked separately).
constexpr RetryOnHelp kRetryOnHelp[] = {
    {"connect-failure", "The TCP connection to the upstream was refused, unreachable or timed out "
                        "(connect_timeout). The request never left: POST is retried too."},
    {"reset", "The connection was closed or reset before response headers."},
    {"refused-stream", "HTTP/2: the upstream refused the stream (REFUSED_STREAM) or it was beyond a GOAWAY's last "
                       "stream id: never processed, so retried for any method and at no budget cost."},
    {"per-try-timeout", "The attempt's per_try_timeout fired before response headers."},
    {"5xx", "Any response status 500 to 599."},
    {"gateway-error", "Response status 502, 503 or 504."},
    {"retriable-4xx", "Response status 409."},
    {"cancelled", "gRPC status 1 CANCELLED."},
    {"deadline-exceeded", "gRPC status 4 DEADLINE_EXCEEDED."},
    {"internal", "gRPC status 13 INTERNAL."},
    {"resource-exhausted", "gRPC status 8 RESOURCE_EXHAUSTED."},
    {"unavailable", "gRPC status 14 UNAVAILABLE."},
};

constexpr CheckOnlyRule kCheckOnlyRules[] = {
    {"Duration limits: the schema checks a duration's spelling, not its value (connect_timeout and idle_timeout "
     "more than 0s; timeouts at most 24h; backoffs, retry_after_max, grpc_timeout_offset, min_attempt_budget and "
     "hedge.delay at most 1h; window 1s to 1h; outlier.ejection and outlier.max_ejection more than 0s, at most "
     "24h).",
     "[defaults]\nrequest_timeout = \"25h\"\n"},
    {"Duration spelling beyond the pattern: units in decreasing order, each at most once, a whole number of "
     "microseconds.",
     "[defaults]\nconnect_timeout = \"1s2m\"\n"},
    {"The size limit of max_buffered_body written as a string (at most 64MiB).",
     "[defaults.retry]\nmax_buffered_body = \"65MiB\"\n"},
    {"backoff_base is at most backoff_max, compared on the effective values of each level.",
     "[defaults.retry]\nbackoff_base = \"1s\"\n"},
    {"outlier.ejection is at most outlier.max_ejection, compared on the effective values of each level.",
     "[defaults.outlier]\nejection = \"10m\"\n"},
    {"A hedge delay set on a route (other than its service's) whose methods can never be retried (only POST, "
     "PATCH or CONNECT, with an empty idempotency_header, on a path route) is an error: nothing there could be "
     "hedged.",
     "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\n\n  [[service.route]]\n  path_prefix = \"/\"\n"
     "  methods = [\"POST\"]\n  retry = { idempotency_header = \"\" }\n  hedge = { delay = \"50ms\" }\n"},
    {"Service names are unique (without regard to case: they label metrics).",
     "[[service]]\nname = \"orders\"\nhosts = [\"a\"]\n\n[[service]]\nname = \"orders\"\nhosts = [\"b\"]\n"},
    {"A (host, port) pair belongs to one service only.",
     "[[service]]\nname = \"a\"\nhosts = [\"orders\"]\n\n[[service]]\nname = \"b\"\nhosts = [\"orders\"]\n"},
    {"Each hosts entry is a host name, an IP address or a \"*.suffix\" wildcard, without a port, listed once.",
     "[[service]]\nname = \"orders\"\nhosts = [\"orders:8080\"]\n"},
    {"upstream names a valid host and a port 1 to 65535.",
     "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\nupstream = \"orders:99999\"\n"},
    {"A route that an earlier route of its service always matches first is unreachable, and an error.",
     "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\n\n  [[service.route]]\n  path_prefix = \"/api/\"\n\n"
     "  [[service.route]]\n  path_prefix = \"/api/items\"\n"},
    {"A grpc route whose methods leave out POST never matches (gRPC calls are POST), and is an error.",
     "[[service]]\nname = \"orders\"\nhosts = [\"orders\"]\n\n  [[service.route]]\n  grpc = \"shop.Orders\"\n"
     "  methods = [\"GET\"]\n"},
};

}  // namespace

std::span<const FieldSpec> policyFields() { return kFields; }

const FieldSpec& policyField(Section section, std::string_view name) {
  for (const FieldSpec& f : kFields) {
    if (f.section == section && f.name == name) return f;
  }
  std::fprintf(stderr, "policyField: no field \"%.*s\" in section %d\n", static_cast<int>(name.size()), name.data(),
               static_cast<int>(section));
  std::abort();
}

std::vector<std::string_view> fieldNames(Section section, KindFilter filter) {
  std::vector<std::string_view> out;
  for (const FieldSpec& f : kFields) {
    if (f.section != section) continue;
    bool table = f.kind == FieldKind::kTable || f.kind == FieldKind::kTableArray;
    if ((filter == KindFilter::kTables && !table) || (filter == KindFilter::kValues && table)) continue;
    out.push_back(f.name);
  }
  return out;
}

std::vector<std::string_view> levelKeys(LevelBit level) {
  std::vector<std::string_view> out;
  for (const FieldSpec& f : kFields) {
    if ((f.section == Section::kPolicy && (f.levels & level)) || (f.section == Section::kService && level == kAtService) ||
        (f.section == Section::kRoute && level == kAtRoute)) {
      out.push_back(f.name);
    }
  }
  return out;
}

std::span<const std::string_view> routeMatchKeys() { return kRouteMatchKeys; }

std::span<const RetryOnHelp> retryOnHelp() { return kRetryOnHelp; }

std::span<const CheckOnlyRule> checkOnlyRules() { return kCheckOnlyRules; }

std::span<const Section> subTableSections() {
  static constexpr Section kSubTables[] = {Section::kRetry, Section::kBudget, Section::kDeadline, Section::kHedge,
                                           Section::kOutlier};
  return kSubTables;
}

bool isSubTable(Section section) {
  for (Section s : subTableSections()) {
    if (s == section) return true;
  }
  return false;
}

std::string_view sectionName(Section section) {
  switch (section) {
    case Section::kRoot: return "";
    case Section::kPolicy: return "";
    case Section::kRetry: return "retry";
    case Section::kBudget: return "budget";
    case Section::kDeadline: return "deadline";
    case Section::kHedge: return "hedge";
    case Section::kOutlier: return "outlier";
    case Section::kService: return "service";
    case Section::kRoute: return "route";
  }
  return "";
}

}  // namespace mulligan::agent
