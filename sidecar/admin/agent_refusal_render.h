// How the admin endpoint renders the agent's last refused policy file
// (policy::AgentRefusalReader::Result), for /config, /stats and the / page.
//
// JSON (agentRefusalJson):
//   {"by": "agent",
//    "why": "FILE:LINE:COL: message",     the agent's own diagnostic line
//    "file", "line", "column", "message", line/column 0: the file as a whole
//    "errors": N,                          errors in that file (the first is shown)
//    "count": N,                           files refused since the segment was made
//    "unix_ms": N, "at": "2026-12-01T20:25:49.265Z",
//    "kept_generation": G,                 the generation that stayed enforced
//    "superseded": bool}                   true once a later file was published:
//                                          the refusal is history, not the state
// A refusal is kept as history after a good edit (as Kubernetes keeps a
// container's lastState): "superseded" and the metric
// mulligan_policy_agent_refused (0 then) say whether it still holds.
#pragma once

#include <string>

#include "sidecar/policy/agent_refusal.h"

namespace mulligan::admin {

// "null" when the agent never refused a file in this segment.
std::string agentRefusalJson(const policy::AgentRefusalReader::Result& a);

// True while the newest policy file the agent read is refused, i.e. no
// generation was published since (the enforced table is older than the file).
bool agentRefusalInEffect(const policy::AgentRefusalReader::Result& a);

// "2026-12-01T20:25:49.265Z"; "" when unknown (unix_ms <= 0).
std::string utcText(int64_t unix_ms);

}  // namespace mulligan::admin
