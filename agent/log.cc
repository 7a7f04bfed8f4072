#include "agent/log.h"

#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace mulligan::agent {
namespace {

void logLine(const char* level, const char* fmt, va_list ap) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char line[4096];
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s mulligan-agent: ",
                        utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                        static_cast<long>(tv.tv_usec / 1000), level);
  if (n < 0) return;
  std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n), fmt, ap);
  // One fputs per line so that lines from concurrent writers do not interleave.
  std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

}  // namespace

void logInfo(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logLine("info", fmt, ap);
  va_end(ap);
}

void logError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  logLine("error", fmt, ap);
  va_end(ap);
}

}  // namespace mulligan::agent
