// Logging for the sidecar: one line per event on stderr, with a UTC timestamp
// and level; access logs are JSON lines on stdout (see proxy/access_log.h).
// Formatting happens only when the level is enabled, so a disabled debug line
// on the hot path costs one comparison.
#pragma once

#include <atomic>
#include <cstdarg>

namespace mulligan {

enum class LogLevel : int {
  kDebug = 0,  // per-request detail; off by default
  kInfo = 1,   // lifecycle: listening, policy generations, drain
  kWarn = 2,   // refused tables, upstream trouble worth a look
  kError = 3,  // cannot do what was asked
};

extern std::atomic<int> g_log_level;

inline bool logEnabled(LogLevel l) { return static_cast<int>(l) >= g_log_level.load(std::memory_order_relaxed); }

// "2026-11-23T01:02:03.456Z info mulligan-sidecar: message", one write per
// line (lines from several threads never interleave); at most 2 KiB.
void logWrite(LogLevel l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void logWriteV(LogLevel l, const char* fmt, va_list ap) __attribute__((format(printf, 2, 0)));
// The program each line names: "mulligan-sidecar" unless set. Set once, at
// the start of main, before any other thread logs (mulligan-agent's does).
void setLogProgram(const char* name);

// Parses "debug", "info", "warn", "error"; false if unknown.
bool parseLogLevel(const char* s, LogLevel* out);

}  // namespace mulligan

#define MULLIGAN_LOG(level, ...)                                                   \
  do {                                                                             \
    if (::mulligan::logEnabled(level)) ::mulligan::logWrite(level, __VA_ARGS__);   \
  } while (0)
#define LOG_DEBUG(...) MULLIGAN_LOG(::mulligan::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) MULLIGAN_LOG(::mulligan::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) MULLIGAN_LOG(::mulligan::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) MULLIGAN_LOG(::mulligan::LogLevel::kError, __VA_ARGS__)
