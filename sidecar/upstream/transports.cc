#include "sidecar/upstream/transports.h"

#include "sidecar/upstream/http1_attempt.h"
#include "sidecar/upstream/http2_attempt.h"
#include "sidecar/upstream/upstream_context.h"

namespace mulligan::proxy {

std::unique_ptr<Attempt> Transports::newAttempt(Attempt::Owner* owner, const AttemptSpec& spec) {
  // HTTP/1 clients go to HTTP/1 upstreams, HTTP/2 (and gRPC) to HTTP/2.
  std::unique_ptr<Attempt> a;
  if (spec.protocol == Protocol::kHttp2) {
    a = std::make_unique<Http2Attempt>(worker_, owner, spec.dest, spec.timeouts);
  } else {
    a = std::make_unique<Http1Attempt>(worker_, owner, spec.dest, spec.method, spec.timeouts);
  }
  a->useTimerQueues(worker_->timerQueues());
  a->setEndpoint(spec.endpoint);
  a->setFreshConnection(spec.fresh_connection);
  return a;
}

}  // namespace mulligan::proxy
