// Moved to proto-free-config/render.h so that the sidecar's admin endpoint
// (GET /config) renders the table with the very code `mulligan-agent dump`
// uses. The agent's names stay as they were.
#pragma once

#include "proto-free-config/render.h"

namespace mulligan::agent {
using pfc::policyToJson;
using pfc::renderJson;
using pfc::renderToml;
using pfc::retryOnNames;
}  // namespace mulligan::agent
