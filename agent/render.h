// The table as people read it: fully expanded TOML (every effective value,
// so a dump shows exactly what is enforced, and compiles back to the same
// table) or JSON (for tools and the admin endpoint).
#pragma once

#include <cstdint>
#include <string>

#include "proto-free-config/table_model.h"

namespace mulligan::agent {

std::string renderToml(const pfc::TableModel& model, uint64_t generation);
std::string renderJson(const pfc::TableModel& model, uint64_t generation);

// One effective policy as a JSON object (durations as "250ms" strings).
// `route_level` leaves out the fields a route cannot set (idle_timeout, budget).
std::string policyToJson(const pfc::EffectivePolicy& p, bool route_level = false);
// The retry_on list in its canonical spelling, e.g. ["connect-failure", "503"].
std::vector<std::string> retryOnNames(const pfc::RetryPolicy& r);

}  // namespace mulligan::agent
