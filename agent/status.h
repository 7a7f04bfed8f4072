// `mulligan-agent status`: what a sidecar enforces and what it did, read from
// its admin endpoint (GET /config and GET /stats), as text for people — in
// the spirit of `linkerd diagnostics proxy-metrics` and `istioctl
// proxy-config`, without port-forwarding: in a pod, `kubectl exec POD -c
// mulligan-agent -- mulligan-agent status` reaches the sidecar's loopback
// admin port.
//
// renderStatus() is pure (tested on canned JSON); the command fetches.
#pragma once

#include <string>

#include "agent/json.h"

namespace mulligan::agent {

// The report: the sidecar's state, the enforced generation and its source,
// the last refusal (agent's or sidecar's; "none"), totals, then one row per
// service and route that had traffic: requests, 5xx, retries, refused
// retries, timeouts, and the reasons behind them.
std::string renderStatus(const std::string& admin, const Json& config, const Json& stats);

}  // namespace mulligan::agent
