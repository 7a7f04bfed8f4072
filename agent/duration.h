// Moved to proto-free-config/duration.h (the canonical spellings are shared
// by the agent's parser and every renderer of the table). The agent's names
// stay as they were.
#pragma once

#include "proto-free-config/duration.h"

namespace mulligan::agent {
using pfc::formatDuration;
using pfc::formatSize;
using pfc::parseDuration;
using pfc::parseSize;
}  // namespace mulligan::agent
