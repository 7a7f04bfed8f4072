#include "sidecar/core/logging.h"

#include <sys/time.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace mulligan {

std::atomic<int> g_log_level{static_cast<int>(LogLevel::kInfo)};

namespace {
const char* g_program = "mulligan-sidecar";
}  // namespace

void setLogProgram(const char* name) { g_program = name; }

void logWrite(LogLevel l, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logWriteV(l, fmt, ap);
  va_end(ap);
}

void logWriteV(LogLevel l, const char* fmt, va_list ap) {
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char line[2048];
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", utc.tm_year + 1900,
                        utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                        static_cast<long>(tv.tv_usec / 1000), kNames[static_cast<int>(l)], g_program);
  if (n < 0) return;
  n = std::min(n, static_cast<int>(sizeof line) - 2);
  int m = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, ap);
  size_t len = std::min(sizeof line - 2, static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m));
  line[len] = '\n';
  // One write per line: lines from several worker threads never interleave.
  std::fwrite(line, 1, len + 1, stderr);
}

bool parseLogLevel(const char* s, LogLevel* out) {
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; ++i) {
    if (std::strcmp(s, kNames[i]) == 0) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

}  // namespace mulligan
