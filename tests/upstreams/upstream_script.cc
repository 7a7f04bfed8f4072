#include "upstream_script.h"

#include <charconv>
#include <cmath>

namespace mulligan::testupstream {
namespace {

bool parseDouble(std::string_view s, double& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

bool parsePercent(std::string_view s, double& out) { return parseDouble(s, out) && out >= 0 && out <= 100; }

// A status we can answer with: no 1xx (interim responses are not final
// answers), nothing outside the three-digit range.
bool parseStatus(std::string_view s, int& out) {
  uint64_t v = 0;
  if (!parseUint(s, v) || v < 200 || v > 599) return false;
  out = static_cast<int>(v);
  return true;
}

// Splits "value[:percent]"; the percentage defaults to 100.
bool splitWeight(std::string_view item, std::string_view& value, double& percent) {
  size_t colon = item.rfind(':');
  percent = 100;
  value = item;
  if (colon == std::string_view::npos) return true;
  value = item.substr(0, colon);
  return parsePercent(item.substr(colon + 1), percent);
}

template <typename T, typename ParseValue>
bool parseList(std::string_view text, ChoiceList<T>& out, ParseValue parseValue) {
  out.count = 0;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (out.count == ChoiceList<T>::kMaxItems) return false;
    std::string_view value;
    Weighted<T>& w = out.items[out.count];
    if (!splitWeight(item, value, w.percent) || !parseValue(value, w.value)) return false;
    ++out.count;
  }
  return out.count > 0;
}

// "1", "true", "0", "false", optionally with ":percent" (only for "1"/"true").
bool parseFlag(std::string_view text, double& percent) {
  std::string_view value;
  if (!splitWeight(text, value, percent)) return false;
  if (value == "1" || value == "true" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "no") {
    percent = 0;
    return true;
  }
  return false;
}

bool parseBool(std::string_view text, bool& out) {
  double percent = 0;
  if (text.find(':') != std::string_view::npos || !parseFlag(text, percent)) return false;
  out = percent > 0;
  return true;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void Script::clear() {
  status.count = 0;
  delayUs.count = 0;
  closePercent = 0;
  stallPercent = 0;
  retryAfter.clear();
  failFirst = 0;
  failStatus = 503;
  failReset = false;
  failDelayUs = 0;
  hasSize = false;
  size = 0;
  echo = false;
  echoPath = false;
  hasId = false;
  id.clear();
}

bool parseUint(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool parseStatusList(std::string_view text, ChoiceList<int>& out) { return parseList(text, out, parseStatus); }

bool parseGrpcStatusList(std::string_view text, ChoiceList<int>& out) {
  return parseList(text, out, [](std::string_view s, int& code) {
    uint64_t v = 0;
    if (!parseUint(s, v) || v > 16) return false;
    code = static_cast<int>(v);
    return true;
  });
}

bool parseDurationUs(std::string_view text, uint64_t& us) {
  size_t unitAt = text.find_first_not_of("0123456789.");
  if (unitAt == 0 || unitAt == std::string_view::npos) return false;
  double n = 0;
  if (!parseDouble(text.substr(0, unitAt), n) || n < 0) return false;
  std::string_view unit = text.substr(unitAt);
  double scale = 0;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "s") {
    scale = 1e6;
  } else if (unit == "m") {
    scale = 60e6;
  } else {
    return false;
  }
  double v = std::ceil(n * scale);
  if (v > 86400e6) return false;  // a day: anything longer is a typo
  us = static_cast<uint64_t>(v);
  return true;
}

bool parseSize(std::string_view text, uint64_t& bytes) {
  size_t unitAt = text.find_first_not_of("0123456789");
  std::string_view digits = text.substr(0, unitAt);
  std::string_view unit = unitAt == std::string_view::npos ? std::string_view() : text.substr(unitAt);
  uint64_t n = 0;
  if (!parseUint(digits, n)) return false;
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "KiB") {
    scale = 1ULL << 10;
  } else if (unit == "MiB") {
    scale = 1ULL << 20;
  } else if (unit == "GiB") {
    scale = 1ULL << 30;
  } else {
    return false;
  }
  constexpr uint64_t kMax = 1ULL << 40;  // streamed, so only sanity bounds it
  if (n > kMax / scale) return false;
  bytes = n * scale;
  return true;
}

void percentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 && hexValue(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
}

bool parseScript(std::string_view query, Script& out, std::string& error) {
  out.clear();
  std::string value;  // decoded; a query without known keys never fills it
  return forEachParam(query, [&](std::string_view key, std::string_view raw, std::string_view pair) {
    bool ok = true;
    if (key == "status") {
      percentDecode(raw, value);
      ok = parseStatusList(value, out.status);
    } else if (key == "delay") {
      percentDecode(raw, value);
      ok = parseList(value, out.delayUs, parseDurationUs);
    } else if (key == "close") {
      percentDecode(raw, value);
      ok = parseFlag(value, out.closePercent);
    } else if (key == "stall_body") {
      percentDecode(raw, value);
      ok = parseFlag(value, out.stallPercent);
    } else if (key == "retry_after") {
      percentDecode(raw, out.retryAfter);
      // Copied into a header verbatim: nothing that could split it.
      for (char c : out.retryAfter) ok = ok && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      ok = ok && !out.retryAfter.empty();
    } else if (key == "fail_first") {
      percentDecode(raw, value);
      ok = parseUint(value, out.failFirst);
    } else if (key == "fail_status") {
      percentDecode(raw, value);
      out.failReset = value == "reset" || value == "close";
      ok = out.failReset || parseStatus(value, out.failStatus);
    } else if (key == "fail_delay") {
      percentDecode(raw, value);
      ok = parseDurationUs(value, out.failDelayUs);
    } else if (key == "size") {
      percentDecode(raw, value);
      ok = parseSize(value, out.size);
      out.hasSize = ok;
    } else if (key == "echo") {
      percentDecode(raw, value);
      ok = parseBool(value, out.echo);
    } else if (key == "echo_path") {
      percentDecode(raw, value);
      ok = parseBool(value, out.echoPath);
    } else if (key == "id") {
      percentDecode(raw, out.id);
      out.hasId = true;
    } else {
      return true;  // not ours: tests tag requests with their own parameters
    }
    if (!ok) {
      error.assign("bad query parameter: ");
      error.append(pair);
    }
    return ok;
  });
}

}  // namespace mulligan::testupstream
