#include "sidecar/codec/connect_rpc.h"

#include <array>
#include <cctype>

namespace mulligan::proxy {
namespace {

// connectrpc.com/docs/protocol "Error Codes": gRPC's codes 1..16, snake_case
// (and "canceled" with one l).
constexpr std::array<std::string_view, 17> kNames = {
    "",          "canceled",       "unknown",           "invalid_argument",   "deadline_exceeded",
    "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted",   "out_of_range",   "unimplemented",     "internal",           "unavailable",
    "data_loss", "unauthenticated",
};
// The same table's HTTP statuses.
constexpr std::array<int, 17> kHttp = {200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401};

bool ieqPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// A minimal JSON reader (RFC 8259) for the two shapes above: finds a member
// of an object by name and skips everything else, strings with escapes and
// nested values included, never allocating. Depth-limited: the bodies are
// the peer's, bounded by max_buffered_body, and must not blow the stack.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}

  // At an object: the raw text of member `name`'s value (whitespace-trimmed);
  // nullopt if there is none or the object is malformed. Consumes the object.
  std::optional<std::string_view> member(std::string_view name) {
    ws();
    if (!eat('{')) return std::nullopt;
    std::optional<std::string_view> found;
    ws();
    if (eat('}')) {
      ws();
      ok_ = i_ == s_.size();
      return std::nullopt;
    }
    for (;;) {
      ws();
      std::optional<std::string_view> key = string();
      if (!key) return std::nullopt;
      ws();
      if (!eat(':')) return std::nullopt;
      ws();
      size_t start = i_;
      if (!skipValue(0)) return std::nullopt;
      if (*key == name && !found) found = s_.substr(start, i_ - start);
      ws();
      if (eat(',')) continue;
      if (eat('}')) break;
      return std::nullopt;
    }
    ws();
    if (i_ != s_.size()) return std::nullopt;  // trailing garbage: not this shape
    ok_ = true;
    return found;
  }

  // The last member() call read a well-formed object (with or without the
  // member).
  bool ok() const { return ok_; }

  // A whole value that is a plain string (no escapes needed for code names):
  // its contents; nullopt otherwise.
  static std::optional<std::string_view> plainString(std::string_view v) {
    if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::nullopt;
    v = v.substr(1, v.size() - 2);
    if (v.find('\\') != std::string_view::npos) return std::nullopt;
    return v;
  }

 private:
  static constexpr int kMaxDepth = 32;

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  // A string token; its raw contents (escapes left as they are).
  std::optional<std::string_view> string() {
    if (!eat('"')) return std::nullopt;
    size_t start = i_;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\\') {
        i_ += 2;
        continue;
      }
      if (c == '"') {
        std::string_view out = s_.substr(start, i_ - start);
        ++i_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      ++i_;
    }
    return std::nullopt;
  }
  bool skipValue(int depth) {
    if (depth > kMaxDepth || i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '"') return string().has_value();
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      ws();
      if (eat(close)) return true;
      for (;;) {
        ws();
        if (c == '{') {
          if (!string()) return false;
          ws();
          if (!eat(':')) return false;
          ws();
        }
        if (!skipValue(depth + 1)) return false;
        ws();
        if (eat(',')) continue;
        return eat(close);
      }
    }
    // A number or true/false/null: a run of their characters.
    size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '.')) {
      ++i_;
    }
    return i_ > start;
  }

  std::string_view s_;
  size_t i_ = 0;
  bool ok_ = false;
};

int codeOf(std::optional<std::string_view> value) {
  if (!value) return kNoConnectCode;
  std::optional<std::string_view> name = Json::plainString(*value);
  return name ? connectCodeFromName(*name) : kNoConnectCode;
}

void appendJsonString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

ConnectKind connectKind(std::optional<std::string_view> content_type,
                        std::optional<std::string_view> protocol_version) {
  // connectrpc.com/docs/protocol: streaming requests are
  // "application/connect+" Message-Codec; unary requests carry
  // Connect-Protocol-Version: 1.
  if (content_type && ieqPrefix(*content_type, "application/connect+")) return ConnectKind::kStreaming;
  if (protocol_version) {
    std::string_view v = *protocol_version;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (v == "1") return ConnectKind::kUnary;
  }
  return ConnectKind::kNone;
}

std::string_view connectCodeName(int code) {
  return code >= 1 && code < static_cast<int>(kNames.size()) ? kNames[code] : std::string_view{};
}

int connectCodeFromName(std::string_view name) {
  for (int i = 1; i < static_cast<int>(kNames.size()); ++i) {
    if (kNames[i] == name) return i;
  }
  return kNoConnectCode;
}

int connectHttpStatus(int code) {
  return code >= 0 && code < static_cast<int>(kHttp.size()) ? kHttp[code] : 500;
}

int parseConnectErrorBody(std::string_view json) { return codeOf(Json(json).member("code")); }

int parseConnectEndStream(std::string_view json) {
  Json j(json);
  std::optional<std::string_view> error = j.member("error");
  if (!j.ok()) return kNoConnectCode;
  // No error (absent or null): the call succeeded.
  if (!error || *error == "null") return 0;
  return codeOf(Json(*error).member("code"));
}

std::string connectErrorJson(int code, std::string_view message) {
  std::string out = "{\"code\":";
  appendJsonString(out, connectCodeName(code));
  if (!message.empty()) {
    out += ",\"message\":";
    appendJsonString(out, message);
  }
  out += '}';
  return out;
}

std::string connectEndStreamMessage(int code, std::string_view message) {
  std::string json = "{\"error\":" + connectErrorJson(code, message) + "}";
  std::string out;
  out.reserve(kConnectEnvelopeHeader + json.size());
  out += static_cast<char>(kConnectFlagEndStream);
  auto n = static_cast<uint32_t>(json.size());
  out += static_cast<char>(n >> 24);
  out += static_cast<char>(n >> 16 & 0xff);
  out += static_cast<char>(n >> 8 & 0xff);
  out += static_cast<char>(n & 0xff);
  out += json;
  return out;
}

void ConnectEnvelopeTracker::feed(const char* data, size_t len) {
  while (len > 0) {
    if (body_left_ > 0) {
      size_t n = body_left_ < len ? static_cast<size_t>(body_left_) : len;
      body_left_ -= n;
      data += n;
      len -= n;
      continue;
    }
    header_[header_got_++] = static_cast<uint8_t>(*data++);
    --len;
    if (header_got_ == kConnectEnvelopeHeader) {
      header_got_ = 0;
      if (header_[0] & kConnectFlagEndStream) ended_ = true;
      body_left_ = uint64_t{header_[1]} << 24 | uint64_t{header_[2]} << 16 | uint64_t{header_[3]} << 8 | header_[4];
    }
  }
}

ConnectErrorReader::Verdict ConnectErrorReader::feed(const char* data, size_t len) {
  if (held_.size() + len > cap_) {
    held_.append(data, len);  // handed on as it is
    return Verdict::kCommit;
  }
  held_.append(data, len);
  return streaming_ ? decideStreaming() : Verdict::kMore;
}

ConnectErrorReader::Verdict ConnectErrorReader::end() {
  if (streaming_) {
    Verdict v = decideStreaming();
    return v == Verdict::kMore ? Verdict::kCommit : v;  // a truncated envelope: the client will see it
  }
  code_ = parseConnectErrorBody(held_);
  return Verdict::kError;
}

ConnectErrorReader::Verdict ConnectErrorReader::decideStreaming() {
  if (held_.size() < kConnectEnvelopeHeader) return Verdict::kMore;
  auto flags = static_cast<uint8_t>(held_[0]);
  if (!(flags & kConnectFlagEndStream)) return Verdict::kCommit;  // a message: the call is under way
  if (flags & kConnectFlagCompressed) return Verdict::kCommit;    // unreadable here: pass it on
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(held_[i])); };
  uint32_t len = b(1) << 24 | b(2) << 16 | b(3) << 8 | b(4);
  if (len > cap_) return Verdict::kCommit;
  if (held_.size() < kConnectEnvelopeHeader + len) return Verdict::kMore;
  int code = parseConnectEndStream(std::string_view(held_).substr(kConnectEnvelopeHeader, len));
  if (code <= 0) return Verdict::kCommit;  // success, or not readable
  code_ = code;
  return Verdict::kError;
}

}  // namespace mulligan::proxy
