#include "proto-free-config/render.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "proto-free-config/duration.h"

namespace mulligan::pfc {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629 §4: no
// overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8Length(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) { return at(k) >= lo && at(k) <= hi; };
  unsigned c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// A double-quoted string valid both as a TOML basic string and as JSON
// (see appendJsonQuoted).
std::string quote(std::string_view s) {
  std::string out;
  appendJsonQuoted(&out, s);
  return out;
}

// Text safe inside a TOML comment: one line, UTF-8.
std::string commentText(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8Length(s, i);
    if (len == 0) {
      out += kReplacement;
      ++i;
    } else if (len == 1 && (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7f)) {
      out += '?';
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Shortest text that reads back as the same double.
std::string shortestDouble(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

// A TOML float: always with a fraction or exponent so it stays a float.
std::string tomlFloat(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = shortestDouble(v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string jsonNumber(double v) { return std::isfinite(v) ? shortestDouble(v) : "null"; }

std::string quotedList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + quote(items[i]);
  return out + "]";
}

const char* boolText(bool b) { return b ? "true" : "false"; }
std::string durationText(int64_t us) { return quote(formatDuration(us)); }

// hedge.delay as the policy writes it: a quantile name or a duration. A
// permille no name exists for (a corrupt table) shows as "p<permille>/1000"
// rather than as a delay it is not.
std::string hedgeDelay(const HedgePolicy& h) {
  if (h.delay_quantile_permille == 0) return formatDuration(h.delay_us);
  std::string_view name = quantileName(h.delay_quantile_permille);
  return name.empty() ? "p" + std::to_string(h.delay_quantile_permille) + "/1000" : std::string(name);
}

std::string matchKey(MatchKind k) {
  switch (k) {
    case MatchKind::kPathPrefix:
      return "path_prefix";
    case MatchKind::kPathExact:
      return "path_exact";
    case MatchKind::kGrpcService:
    case MatchKind::kGrpcMethod:
      return "grpc";
  }
  return "path_prefix";
}

std::vector<std::string> methodNames(uint32_t bits) {
  std::vector<std::string> out;
  for (uint32_t m = 0; m < static_cast<uint32_t>(Method::kCount); ++m) {
    if (bits & (1u << m)) out.emplace_back(methodName(static_cast<Method>(m)));
  }
  return out;
}

std::string createdText(int64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  struct tm tm;
  char buf[32];
  if (unix_ns <= 0 || !gmtime_r(&secs, &tm) || !std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
    return "unknown";
  }
  return buf;
}

// ------------------------------------------------------------------ TOML --

// One "key = value" per line, every line prefixed with `indent`.
class TomlWriter {
 public:
  explicit TomlWriter(std::string* out) : out_(out) {}
  void setIndent(std::string indent) { indent_ = std::move(indent); }
  void line(std::string_view text) { *out_ += indent_ + std::string(text) + "\n"; }
  void field(std::string_view key, std::string_view value) { line(std::string(key) + " = " + std::string(value)); }
  void header(std::string_view name) {
    *out_ += "\n";
    line(name);
  }

 private:
  std::string* out_;
  std::string indent_;
};

// The policy's own fields, then its sub-tables as [<prefix>.retry] etc.
// Routes leave out idle_timeout and budget, which they cannot set.
void tomlPolicy(TomlWriter& w, const EffectivePolicy& p, const std::string& prefix, bool route_level) {
  w.field("connect_timeout", durationText(p.connect_timeout_us));
  w.field("request_timeout", durationText(p.request_timeout_us));
  if (!route_level) w.field("idle_timeout", durationText(p.idle_timeout_us));
  w.field("read_timeout", durationText(p.read_timeout_us));

  const RetryPolicy& r = p.retry;
  w.header("[" + prefix + ".retry]");
  w.field("retry_on", quotedList(retryOnNames(r)));
  w.field("num_retries", std::to_string(r.num_retries));
  w.field("per_try_timeout", durationText(r.per_try_timeout_us));
  w.field("backoff_base", durationText(r.backoff_base_us));
  w.field("backoff_max", durationText(r.backoff_max_us));
  w.field("retry_after", boolText(r.retry_after));
  w.field("retry_after_max", durationText(r.retry_after_max_us));
  w.field("idempotency_header", quote(r.idempotencyHeader()));
  w.field("max_buffered_body", quote(formatSize(r.max_buffered_body)));
  w.field("fresh_connection", boolText(r.fresh_connection));

  if (!route_level) {
    w.header("[" + prefix + ".budget]");
    w.field("retry_ratio", tomlFloat(p.budget.retry_ratio));
    w.field("min_retries_per_second", std::to_string(p.budget.min_retries_per_second));
    w.field("window", durationText(p.budget.window_us));
  }

  w.header("[" + prefix + ".deadline]");
  w.field("propagate", boolText(p.deadline.propagate));
  w.field("accept_inbound", boolText(p.deadline.accept_inbound));
  w.field("grpc_timeout_offset", durationText(p.deadline.grpc_timeout_offset_us));
  w.field("min_attempt_budget", durationText(p.deadline.min_attempt_budget_us));

  w.header("[" + prefix + ".hedge]");
  w.field("delay", quote(hedgeDelay(p.hedge)));
  w.field("max_attempts", std::to_string(p.hedge.max_attempts));
  w.field("max_extra_load", tomlFloat(p.hedge.max_extra_load));

  w.header("[" + prefix + ".outlier]");
  w.field("consecutive_failures", std::to_string(p.outlier.consecutive_failures));
  w.field("ejection", durationText(p.outlier.ejection_us));
  w.field("max_ejection", durationText(p.outlier.max_ejection_us));
  w.field("max_ejected", tomlFloat(p.outlier.max_ejected));
}

// ------------------------------------------------------------------ JSON --

// A small streaming JSON writer: commas and (when pretty) indentation are
// its business, escaping is quote()'s.
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty) : pretty_(pretty) {}

  void beginObject() { open('{'); }
  void endObject() { close('}'); }
  void beginArray() { open('['); }
  void endArray() { close(']'); }
  void key(std::string_view k) {
    separate();
    out_ += quote(k);
    out_ += pretty_ ? ": " : ":";
    after_key_ = true;
  }
  // A complete value, already in JSON syntax.
  void raw(std::string_view v) {
    separate();
    out_ += v;
  }
  void string(std::string_view s) { raw(quote(s)); }
  void number(uint64_t v) { raw(std::to_string(v)); }
  void number(int64_t v) { raw(std::to_string(v)); }
  void boolean(bool b) { raw(boolText(b)); }
  // A short array of strings, on one line even when pretty.
  void stringList(const std::vector<std::string>& items) {
    std::string s = "[";
    for (size_t i = 0; i < items.size(); ++i) s += (i ? (pretty_ ? ", " : ",") : "") + quote(items[i]);
    raw(s + "]");
  }
  std::string take() { return std::move(out_); }

 private:
  // Before a key or a value: a comma unless it is the first in its
  // container, and a new line when pretty. A value right after its key
  // follows on the same line.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
      newline();
    }
  }
  void open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline();
    out_ += c;
  }
  void newline() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(2 * first_.size(), ' ');
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool pretty_;
  bool after_key_ = false;
};

// The policy's fields into the current object (no braces, so a service's
// fields can sit next to its name, as in the TOML).
void jsonPolicyFields(JsonWriter& w, const EffectivePolicy& p, bool route_level) {
  w.key("connect_timeout");
  w.string(formatDuration(p.connect_timeout_us));
  w.key("request_timeout");
  w.string(formatDuration(p.request_timeout_us));
  if (!route_level) {
    w.key("idle_timeout");
    w.string(formatDuration(p.idle_timeout_us));
  }
  w.key("read_timeout");
  w.string(formatDuration(p.read_timeout_us));

  const RetryPolicy& r = p.retry;
  w.key("retry");
  w.beginObject();
  w.key("retry_on");
  w.stringList(retryOnNames(r));
  w.key("num_retries");
  w.number(uint64_t{r.num_retries});
  w.key("per_try_timeout");
  w.string(formatDuration(r.per_try_timeout_us));
  w.key("backoff_base");
  w.string(formatDuration(r.backoff_base_us));
  w.key("backoff_max");
  w.string(formatDuration(r.backoff_max_us));
  w.key("retry_after");
  w.boolean(r.retry_after);
  w.key("retry_after_max");
  w.string(formatDuration(r.retry_after_max_us));
  w.key("idempotency_header");
  w.string(r.idempotencyHeader());
  w.key("max_buffered_body");
  w.string(formatSize(r.max_buffered_body));
  w.key("fresh_connection");
  w.boolean(r.fresh_connection);
  w.endObject();

  if (!route_level) {
    w.key("budget");
    w.beginObject();
    w.key("retry_ratio");
    w.raw(jsonNumber(p.budget.retry_ratio));
    w.key("min_retries_per_second");
    w.number(uint64_t{p.budget.min_retries_per_second});
    w.key("window");
    w.string(formatDuration(p.budget.window_us));
    w.endObject();
  }

  w.key("deadline");
  w.beginObject();
  w.key("propagate");
  w.boolean(p.deadline.propagate);
  w.key("accept_inbound");
  w.boolean(p.deadline.accept_inbound);
  w.key("grpc_timeout_offset");
  w.string(formatDuration(p.deadline.grpc_timeout_offset_us));
  w.key("min_attempt_budget");
  w.string(formatDuration(p.deadline.min_attempt_budget_us));
  w.endObject();

  w.key("hedge");
  w.beginObject();
  w.key("delay");
  w.string(hedgeDelay(p.hedge));
  w.key("max_attempts");
  w.number(uint64_t{p.hedge.max_attempts});
  w.key("max_extra_load");
  w.raw(jsonNumber(p.hedge.max_extra_load));
  w.endObject();

  w.key("outlier");
  w.beginObject();
  w.key("consecutive_failures");
  w.number(uint64_t{p.outlier.consecutive_failures});
  w.key("ejection");
  w.string(formatDuration(p.outlier.ejection_us));
  w.key("max_ejection");
  w.string(formatDuration(p.outlier.max_ejection_us));
  w.key("max_ejected");
  w.raw(jsonNumber(p.outlier.max_ejected));
  w.endObject();
}

}  // namespace

std::vector<std::string> retryOnNames(const RetryPolicy& r) {
  std::vector<std::string> out;
  for (uint32_t c = 0; c < static_cast<uint32_t>(RetryCondition::kCount); ++c) {
    if (r.has(static_cast<RetryCondition>(c)))
      out.emplace_back(conditionName(static_cast<RetryCondition>(c)));
  }
  for (int code = kMinStatus; code <= kMaxStatus; ++code) {
    if (r.hasStatus(code)) out.push_back(std::to_string(code));
  }
  for (uint32_t g = 0; g <= static_cast<uint32_t>(GrpcCode::kUnauthenticated); ++g) {
    std::string_view name = grpcCodeName(static_cast<GrpcCode>(g));
    // A code without a name cannot be in a compiled policy; from a corrupt
    // table it is shown by number rather than dropped.
    if (r.hasGrpc(static_cast<GrpcCode>(g)))
      out.push_back(name.empty() ? "grpc-" + std::to_string(g) : std::string(name));
  }
  return out;
}

std::string jsonQuote(std::string_view s) { return quote(s); }

char* writeJsonQuoted(char* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Bytes that go out as they are: printable ASCII but the two JSON
  // metacharacters. Most text (an access log's paths and names) is all of
  // them, so runs of them are copied whole, not a byte at a time.
  auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; };
  *out++ = '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && plain(static_cast<unsigned char>(s[run]))) ++run;
    std::memcpy(out, s.data() + i, run - i);
    out += run - i;
    i = run;
    if (i == s.size()) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = utf8Length(s, i);
      if (len == 0) {  // not UTF-8: JSON text must be (RFC 8259 §8.1)
        std::memcpy(out, kReplacement.data(), kReplacement.size());
        out += kReplacement.size();
        ++i;
      } else {
        std::memcpy(out, s.data() + i, len);
        out += len;
        i += len;
      }
      continue;
    }
    ++i;
    *out++ = '\\';
    switch (c) {
      case '"': *out++ = '"'; break;
      case '\\': *out++ = '\\'; break;
      case '\b': *out++ = 'b'; break;
      case '\t': *out++ = 't'; break;
      case '\n': *out++ = 'n'; break;
      case '\f': *out++ = 'f'; break;
      case '\r': *out++ = 'r'; break;
      default:  // other control characters, and DEL (TOML wants it escaped)
        *out++ = 'u';
        *out++ = '0';
        *out++ = '0';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 15];
    }
  }
  *out++ = '"';
  return out;
}

void appendJsonQuoted(std::string* out, std::string_view s) {
  size_t used = out->size();
  out->resize(used + jsonQuotedBound(s.size()));
  char* end = writeJsonQuoted(out->data() + used, s);
  out->resize(static_cast<size_t>(end - out->data()));
}

std::string policyToJson(const EffectivePolicy& policy) {
  JsonWriter w(/*pretty=*/false);
  w.beginObject();
  jsonPolicyFields(w, policy, /*route_level=*/false);
  w.endObject();
  return w.take();
}

std::string renderToml(const TableModel& m, uint64_t generation) {
  std::string out;
  out += "# Mulligan policy table, generation " + std::to_string(generation) + ".\n";
  out += "# Every value is the effective one; this file compiles back to the same table.\n";
  out += "# source: " + commentText(m.source_path.empty() ? "(unknown)" : m.source_path) + "\n";
  out += "# source checksum: " + hex64(m.source_checksum) + "\n";
  out += "# compiled: " + createdText(m.created_unix_ns) + "\n";
  out += "version = 1\n";
  TomlWriter w(&out);
  w.header("[defaults]");
  tomlPolicy(w, m.defaults, "defaults", false);
  for (const ServiceModel& s : m.services) {
    w.setIndent("");
    w.header("[[service]]");
    w.field("name", quote(s.name));
    w.field("hosts", quotedList(s.hosts));
    if (s.port) w.field("port", std::to_string(s.port));
    if (!s.upstream.empty()) w.field("upstream", quote(s.upstream));
    tomlPolicy(w, s.policy, "service", false);
    w.setIndent("  ");
    for (const RouteModel& r : s.routes) {
      w.header("[[service.route]]");
      w.field(matchKey(r.kind), quote(r.match));
      if (r.methods != kAllMethods) w.field("methods", quotedList(methodNames(r.methods)));
      tomlPolicy(w, r.policy, "service.route", true);
    }
  }
  return out;
}

std::string renderJson(const TableModel& m, uint64_t generation) {
  JsonWriter w(/*pretty=*/true);
  w.beginObject();
  w.key("generation");
  w.number(generation);
  w.key("source");
  w.beginObject();
  w.key("path");
  w.string(m.source_path);
  w.key("checksum");
  w.string(hex64(m.source_checksum));
  w.key("created_unix_ns");
  w.number(m.created_unix_ns);
  w.endObject();
  w.key("defaults");
  w.beginObject();
  jsonPolicyFields(w, m.defaults, false);
  w.endObject();
  w.key("services");
  w.beginArray();
  for (const ServiceModel& s : m.services) {
    w.beginObject();
    w.key("name");
    w.string(s.name);
    w.key("hosts");
    w.stringList(s.hosts);
    w.key("port");
    w.number(uint64_t{s.port});
    w.key("upstream");
    w.string(s.upstream);
    jsonPolicyFields(w, s.policy, false);
    w.key("routes");
    w.beginArray();
    for (const RouteModel& r : s.routes) {
      w.beginObject();
      w.key(matchKey(r.kind));
      w.string(r.match);
      w.key("methods");
      w.stringList(methodNames(r.methods));
      jsonPolicyFields(w, r.policy, true);
      w.endObject();
    }
    w.endArray();
    w.endObject();
  }
  w.endArray();
  w.endObject();
  return w.take() + "\n";
}

}  // namespace mulligan::pfc
