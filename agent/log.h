// One line per event on stderr: "2026-11-23T01:02:03.456Z info mulligan-agent: message".
#pragma once

namespace mulligan::agent {

void logInfo(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace mulligan::agent
