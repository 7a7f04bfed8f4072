#include "agent/log.h"

#include <cstdarg>

#include "sidecar/core/logging.h"

namespace mulligan::agent {

// The sidecar's log line, with "mulligan-agent" in it (main sets the name).
void logInfo(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logWriteV(LogLevel::kInfo, fmt, ap);
  va_end(ap);
}

void logError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logWriteV(LogLevel::kError, fmt, ap);
  va_end(ap);
}

}  // namespace mulligan::agent
