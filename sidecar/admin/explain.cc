#include "sidecar/admin/explain.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "proto-free-config/duration.h"
#include "proto-free-config/render.h"
#include "sidecar/core/clock.h"
#include "sidecar/core/random.h"
#include "sidecar/net/address.h"
#include "sidecar/retry/deadline.h"
#include "sidecar/retry/retry_state.h"

namespace mulligan::admin {
namespace {

// The engine asked at one instant, held still: the deadline and the decision
// see the same "now" (the real one, so an HTTP-date Retry-After is read
// against today's date).
class StillClock final : public core::Clock {
 public:
  StillClock() : now_us_(core::systemClock().nowUs()), unix_s_(core::systemClock().systemNowUnixSeconds()) {}
  int64_t nowUs() const override { return now_us_; }
  int64_t systemNowUnixSeconds() const override { return unix_s_; }

 private:
  int64_t now_us_;
  int64_t unix_s_;
};

// Every draw at the top of its range: the backoff shown is the longest wait.
class HighestDraw final : public core::Random {
 public:
  uint64_t nextU64() override { return UINT64_MAX; }
};

bool parseUnsigned(const char* s, uint64_t max, uint64_t* out) {
  if (!*s || std::strlen(s) > 19) return false;
  uint64_t v = 0;
  for (const char* p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + static_cast<uint64_t>(*p - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool parseBool(const char* s, bool* out) {
  if (!std::strcmp(s, "1") || !std::strcmp(s, "true") || !std::strcmp(s, "yes")) {
    *out = true;
  } else if (!std::strcmp(s, "0") || !std::strcmp(s, "false") || !std::strcmp(s, "no") || !*s) {
    *out = false;
  } else {
    return false;
  }
  return true;
}

std::string shortest(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

const char* matchKindKey(pfc::MatchKind k) {
  switch (k) {
    case pfc::MatchKind::kPathPrefix:
      return "path_prefix";
    case pfc::MatchKind::kPathExact:
      return "path_exact";
    case pfc::MatchKind::kGrpcService:
    case pfc::MatchKind::kGrpcMethod:
      return "grpc";
  }
  return "path_prefix";
}

std::string methodList(uint32_t bits) {
  std::string out = "[";
  bool first = true;
  for (uint32_t m = 0; m < static_cast<uint32_t>(pfc::Method::kCount); ++m) {
    if (!(bits & (1u << m))) continue;
    out += (first ? "" : ",") + pfc::jsonQuote(pfc::methodName(static_cast<pfc::Method>(m)));
    first = false;
  }
  return out + "]";
}

// A copy of `p` whose retry_on names nothing.
pfc::EffectivePolicy withoutRetryOn(const pfc::EffectivePolicy& p) {
  pfc::EffectivePolicy q = p;
  q.retry.conditions = 0;
  q.retry.grpc_codes = 0;
  for (uint64_t& w : q.retry.status_bits) w = 0;
  return q;
}

}  // namespace

std::optional<ExplainQuery> parseExplainQuery(const char* query, std::string* error) {
  evkeyvalq params;
  params.tqh_first = nullptr;
  params.tqh_last = &params.tqh_first;
  if (!query || evhttp_parse_query_str(query, &params) != 0) {
    *error = "malformed query string";
    evhttp_clear_headers(&params);
    return std::nullopt;
  }
  ExplainQuery q;
  bool have_host = false;
  std::string err;
  for (evkeyval* kv = params.tqh_first; kv && err.empty(); kv = kv->next.tqe_next) {
    std::string key = kv->key;
    const char* v = kv->value;
    uint64_t n = 0;
    if (key == "host") {
      q.host = v;
      have_host = !q.host.empty();
    } else if (key == "port") {
      if (!parseUnsigned(v, 65535, &n)) err = "port: not a port number";
      q.port = static_cast<uint16_t>(n);
    } else if (key == "method") {
      q.method = v;
      pfc::Method m;
      if (!pfc::parseMethod(q.method, &m)) err = "method: not a method this proxy knows (GET, POST, ...)";
    } else if (key == "path") {
      q.path = v;
      if (q.path.empty() || q.path[0] != '/') err = "path: must start with /";
    } else if (key == "grpc") {
      if (!parseBool(v, &q.grpc)) err = "grpc: use 1 or 0";
    } else if (key == "idempotency_key") {
      if (!parseBool(v, &q.has_idempotency_key)) err = "idempotency_key: use 1 or 0";
    } else if (key == "status") {
      if (!parseUnsigned(v, 599, &n) || n < 100) err = "status: not an HTTP status 100..599";
      if (!q.outcome) q.outcome = retry::Outcome::response(static_cast<int>(n));
      q.outcome->kind = retry::OutcomeKind::kResponse;
      q.outcome->status = static_cast<int>(n);
    } else if (key == "grpc_status") {
      if (!parseUnsigned(v, 16, &n)) err = "grpc_status: not a gRPC status 0..16";
      if (!q.outcome) q.outcome = retry::Outcome::response(200);
      q.outcome->kind = retry::OutcomeKind::kResponse;
      q.outcome->grpc_status = static_cast<int>(n);
      q.grpc = true;
    } else if (key == "outcome") {
      std::string o = v;
      if (o == "connect-failure") {
        q.outcome = retry::Outcome::connectFailure();
      } else if (o == "reset") {
        q.outcome = retry::Outcome::reset();
      } else if (o == "refused-stream") {
        q.outcome = retry::Outcome::refusedStream();
      } else if (o == "per-try-timeout") {
        q.outcome = retry::Outcome::perTryTimeout();
      } else {
        err = "outcome: one of connect-failure, reset, refused-stream, per-try-timeout (or use status=)";
      }
    } else if (key == "attempt") {
      if (!parseUnsigned(v, 1000, &n) || n < 1) err = "attempt: 1..1000";
      q.attempt = static_cast<uint32_t>(n);
    } else if (key == "body_size") {
      if (!parseUnsigned(v, UINT64_MAX / 2, &n)) err = "body_size: bytes, an integer";
      q.body_size = n;
    } else if (key == "retry_after") {
      q.retry_after = std::string(v);
    } else {
      err = "unknown parameter \"" + key +
            "\" (known: host port method path grpc status grpc_status outcome attempt idempotency_key body_size "
            "retry_after)";
    }
  }
  evhttp_clear_headers(&params);
  if (err.empty() && !have_host) err = "host is required, e.g. /explain?host=orders&path=/api/items&status=503";
  if (!err.empty()) {
    *error = err;
    return std::nullopt;
  }
  if (q.port == 0) {
    // As the data plane does for a request without a destination port: the
    // port in the authority ("orders:8080"), else 80.
    std::string_view h;
    uint16_t p = 0;
    q.port = net::splitHostPort(q.host, &h, &p) ? p : 80;
  }
  return q;
}

std::string explainJson(const pfc::Table* table, const ExplainQuery& q, const BudgetReader& live_budget) {
  static const pfc::EffectivePolicy kBuiltin = pfc::builtinDefaults();
  pfc::Match m;
  if (table) m = table->lookup(pfc::RequestKey{q.host, q.port, q.method, q.path, q.grpc});
  const pfc::EffectivePolicy& policy = table ? *m.policy : kBuiltin;
  std::string service_name;

  std::string b = "{\"generation\":" + std::to_string(table ? table->generation() : 0);
  b += ",\"request\":{\"host\":" + pfc::jsonQuote(q.host) + ",\"port\":" + std::to_string(q.port) +
       ",\"method\":" + pfc::jsonQuote(q.method) + ",\"path\":" + pfc::jsonQuote(q.path) +
       ",\"grpc\":" + (q.grpc ? "true" : "false") + "}";
  if (table && m.service != pfc::Match::kNone) {
    const pfc::ServiceEntry& svc = table->services()[m.service];
    service_name = std::string(table->str(svc.name));
    b += ",\"service\":{\"name\":" + pfc::jsonQuote(service_name) + ",\"index\":" + std::to_string(m.service) + "}";
  } else {
    b += ",\"service\":null";
  }
  if (table && m.route != pfc::Match::kNone) {
    const pfc::ServiceEntry& svc = table->services()[m.service];
    const pfc::RouteEntry& r = table->routes()[m.route];
    b += ",\"route\":{\"ordinal\":" + std::to_string(m.route - svc.route_begin) + ",\"" + matchKindKey(r.kind) +
         "\":" + pfc::jsonQuote(table->str(r.match)) + ",\"methods\":" + methodList(r.methods) + "}";
  } else {
    b += ",\"route\":null";
  }
  b += ",\"policy_level\":\"" +
       std::string(!table ? "built-in defaults"
                          : m.service == pfc::Match::kNone ? "[defaults]"
                                                           : m.route == pfc::Match::kNone ? "service" : "route") +
       "\"";
  b += ",\"policy\":" + pfc::policyToJson(policy);

  if (q.outcome) {
    retry::Outcome o = *q.outcome;
    if (q.retry_after) o.retry_after = retry::HeaderValue(*q.retry_after);
    StillClock clock;
    int64_t now = clock.nowUs();
    retry::Deadline deadline = retry::computeDeadline(now, policy, nullptr, nullptr);
    retry::RequestFacts facts;
    facts.method = q.method;
    facts.grpc = q.grpc;
    facts.has_idempotency_key = q.has_idempotency_key;
    facts.body_size = q.body_size;

    // Which retry_on entries name this outcome: the engine's own wouldRetry,
    // asked once per entry with a policy naming only that entry.
    std::string matched = "[";
    auto tryEntry = [&](const pfc::EffectivePolicy& single, std::string_view name) {
      retry::RetryState rs(single, facts, deadline);
      if (rs.wouldRetry(o)) matched += (matched.size() > 1 ? "," : "") + pfc::jsonQuote(name);
    };
    for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
      auto cond = static_cast<pfc::RetryCondition>(c);
      if (!policy.retry.has(cond)) continue;
      pfc::EffectivePolicy single = withoutRetryOn(policy);
      single.retry.conditions = pfc::conditionBit(cond);
      tryEntry(single, pfc::conditionName(cond));
    }
    for (int code = pfc::kMinStatus; code <= pfc::kMaxStatus; ++code) {
      if (!policy.retry.hasStatus(code)) continue;
      pfc::EffectivePolicy single = withoutRetryOn(policy);
      single.retry.addStatus(code);
      tryEntry(single, std::to_string(code));
    }
    for (uint32_t g = 0; g <= static_cast<uint32_t>(pfc::GrpcCode::kUnauthenticated); ++g) {
      auto code = static_cast<pfc::GrpcCode>(g);
      if (!policy.retry.hasGrpc(code)) continue;
      pfc::EffectivePolicy single = withoutRetryOn(policy);
      single.retry.grpc_codes = pfc::grpcBit(code);
      tryEntry(single, pfc::grpcCodeName(code));
    }
    matched += "]";

    retry::RetryState rs(policy, facts, deadline);
    for (uint32_t i = 0; i < q.attempt; ++i) rs.attemptStarted();
    bool would = rs.wouldRetry(o);
    retry::RetryBudget scratch;
    scratch.recordRequest(now, policy.budget);
    HighestDraw rnd;
    retry::Decision d = rs.decide(o, clock, scratch, rnd);

    b += ",\"retry\":{\"outcome\":" + pfc::jsonQuote(o.reason()) + ",\"attempt\":" + std::to_string(q.attempt) +
         ",\"would_retry\":" + (would ? "true" : "false") + ",\"matched_by\":" + matched;
    b += ",\"decision\":{\"retry\":" + std::string(d.retry ? "true" : "false") +
         ",\"refusal\":" + pfc::jsonQuote(retry::refusalName(d.refusal));
    if (d.retry) {
      b += ",\"wait\":" + pfc::jsonQuote(pfc::formatDuration(d.wait_us)) +
           ",\"pushback\":" + (d.pushback ? "true" : "false") +
           ",\"spends_budget\":" + (d.spent_budget ? "true" : "false");
    }
    b += "}";
    retry::RetryBudget::Snapshot live = live_budget(service_name, policy.budget);
    bool admit = static_cast<double>(live.retries + 1) <= live.allowed;
    b += ",\"budget\":{\"service\":" + pfc::jsonQuote(service_name) +
         ",\"window\":" + pfc::jsonQuote(pfc::formatDuration(live.window_us)) +
         ",\"requests\":" + std::to_string(live.requests) + ",\"retries\":" + std::to_string(live.retries) +
         ",\"allowed\":" + shortest(live.allowed) + ",\"refused\":" + std::to_string(live.refused) +
         ",\"budget_would_admit\":" + (admit ? "true" : "false") + "}";
    b += "}";
  }
  b += "}\n";
  return b;
}

}  // namespace mulligan::admin
