// The script of one request to mulligan-test-upstream: what its query
// parameters ask the server to do (status, delay, reset, body, ...). The
// value parsers (status lists, durations, sizes, percent-decoding) are shared
// with mulligan-h2-upstream.
//
// Pure parsing, no I/O and no randomness: the server draws the random numbers
// and asks the script what they select. The grammar of every parameter is in
// tests/upstreams/README.md; unknown parameters are ignored (tests add their
// own, like `i=42`), a malformed known one is an error the server answers
// with 400 and the message.
//
// A Script is reused from request to request on one connection: clear() keeps
// the strings' capacity, so a request without parameters costs no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mulligan::testupstream {

// One alternative of a weighted list: `value` applies with `percent`
// probability (0..100).
template <typename T>
struct Weighted {
  T value{};
  double percent = 100;
};

// `v1:p1,v2:p2,...`: alternatives whose probabilities add up, in order (as
// fortio's `status=503:10,429:5`). An item without `:p` has 100%.
template <typename T>
struct ChoiceList {
  static constexpr size_t kMaxItems = 8;
  std::array<Weighted<T>, kMaxItems> items;
  size_t count = 0;

  // Selects by `draw`, uniform in [0, 100): the first item whose cumulative
  // percentage exceeds the draw, else `fallback` (also when empty).
  T pick(double draw, T fallback) const {
    double acc = 0;
    for (size_t i = 0; i < count; ++i) {
      acc += items[i].percent;
      if (draw < acc) return items[i].value;
    }
    return fallback;
  }
};

// What the query asks for. Defaults describe a plain `200 ok\n`.
struct Script {
  ChoiceList<int> status;        // status=503:10,429:5 (default 200)
  ChoiceList<uint64_t> delayUs;  // delay=100ms[:50] (a list, as status)
  double closePercent = 0;       // close=1[:P]: reset the connection instead of answering
  double stallPercent = 0;       // stall_body=1[:P]: headers + half the body, then silence
  std::string retryAfter;        // retry_after=V: `Retry-After: V` on non-2xx answers
  uint64_t failFirst = 0;        // fail_first=N: the first N requests of an id fail
  int failStatus = 503;          // fail_status=CODE, or
  bool failReset = false;        // fail_status=reset
  uint64_t failDelayUs = 0;      // fail_delay=DUR: extra delay of the failing ones
  bool hasSize = false;          // size=N|1MiB: body of N pattern bytes
  uint64_t size = 0;
  bool echo = false;      // echo=1: body = the request body
  bool echoPath = false;  // echo_path=1: body = the request-target + "\n"
  bool hasId = false;     // id=X: the fail_first key (else x-request-id, else the URI)
  std::string id;

  void clear();
};

// Calls fn(key, raw, pair) for each `key=raw` pair of a query string (the
// part after '?'), in order; `raw` is not decoded, and is empty when the pair
// has no '=' (then pair == key). Stops, returning false, when fn does.
template <typename Fn>
bool forEachParam(std::string_view query, Fn fn) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!fn(pair.substr(0, eq), raw, pair)) return false;
  }
  return true;
}

// Parses a query string (the part after '?', without '#...'), percent- and
// '+'-decoded. Returns false with a one-line `error` on a malformed value of
// a known parameter; `out` is then partially filled and must not be used.
bool parseScript(std::string_view query, Script& out, std::string& error);

// `status=` values (decoded): `CODE[:P][,CODE:P...]`, CODE in 200..599.
bool parseStatusList(std::string_view text, ChoiceList<int>& out);

// `grpc_status=` values (decoded): `CODE[:P][,CODE:P...]`, CODE a gRPC status
// code in 0..16.
bool parseGrpcStatusList(std::string_view text, ChoiceList<int>& out);

// A whole decimal number, nothing else.
bool parseUint(std::string_view s, uint64_t& out);

// `100ms`, `1.5s`, `250us`, `2m` -> microseconds. A unit is required.
bool parseDurationUs(std::string_view text, uint64_t& us);

// `10000`, `10000B`, `64KiB`, `1MiB`, `2GiB` -> bytes.
bool parseSize(std::string_view text, uint64_t& bytes);

// Decodes %XX and '+' (application/x-www-form-urlencoded). A '%' not followed
// by two hex digits is kept as is.
void percentDecode(std::string_view in, std::string& out);

}  // namespace mulligan::testupstream
