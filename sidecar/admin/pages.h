// GET /config and GET / — pure renderers over what the admin thread read.
//
// configJson(): the table enforced now, as JSON:
//   {"enforced": bool,                  false: no table yet (built-in defaults)
//    "generation": N,                   0 when none
//    "loaded_unix_ms": N,               when a worker first loaded it
//    "loaded_at": "2026-12-01T20:25:49.265Z",   the same, for people
//    "layout": "<layout version>",
//    "last_refused": the newer of the two refusals below, or null:
//        {"by": "sidecar", "generation", "unix_ms", "why", "after_enforced"}
//        a published table this sidecar could not trust, or
//        {"by": "agent", "why": "FILE:LINE:COL: message", ...}
//        a policy file the agent refused (agent_refusal_render.h),
//    "agent_refused": the agent's last refusal (even when older) | null,
//    "table": <exactly what `mulligan-agent dump --format json` prints for
//              the same generation: source path and checksum, defaults,
//              every service and route with its effective values> | null,
//    "builtin_defaults": {...} (only when enforced is false)}
// The "table" member is pfc::renderJson(table.toModel(), generation): the
// agent's dump calls the same function, so the two cannot disagree.
//
// indexHtml(): a small self-contained page (no scripts, no external
// resources) linking every route and listing the enforced table's services
// and routes with their live counters. Every table string is HTML-escaped.
#pragma once

#include <string>

#include "sidecar/admin/stats_render.h"

namespace mulligan::admin {

std::string configJson(const StatsSnapshot& s);
std::string indexHtml(const StatsSnapshot& s);

}  // namespace mulligan::admin
