// Transports: the worker's AttemptFactory — Http1Attempt for HTTP/1 calls,
// Http2Attempt for HTTP/2 (and gRPC) calls, on the worker's pools. A new
// transport (HTTP/2 over TLS, say) is one more case here.
#pragma once

#include <memory>

#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

class UpstreamContext;

class Transports final : public AttemptFactory {
 public:
  explicit Transports(UpstreamContext* worker) : worker_(worker) {}
  std::unique_ptr<Attempt> newAttempt(Attempt::Owner* owner, const AttemptSpec& spec) override;

 private:
  UpstreamContext* worker_;
};

}  // namespace mulligan::proxy
