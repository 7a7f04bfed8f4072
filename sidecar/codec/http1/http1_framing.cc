// Http1Reader's framing rules (http1_reader.h lists them; each is proven
// in tests/unit/codec/http1_framing_test.cc): the checks llhttp leaves to
// us — the request line's method and target, line ends, a complete head's
// Host, Content-Length and Transfer-Encoding — apart from the parsing they
// guard (http1_reader.cc).
#include <cstring>
#include <string>

#include "sidecar/codec/header_stock.h"
#include "sidecar/codec/http1/http1_reader.h"

namespace mulligan::proxy {

namespace {

// RFC 9110 §5.6.2 tchar, for methods (names llhttp checks itself).
constexpr bool isTchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}
// RFC 3986 §3.2.2 reg-name / IP-literal and §3.2.3 port bytes: unreserved,
// sub-delims but ',' (a Host "list" is two hosts to a lenient peer), '%',
// ':' and '[' ']'. No '@' (userinfo), '/', '?', '#', space or control byte.
constexpr bool isAuthorityByte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("-._~!$&'()*+;=%:[]").find(static_cast<char>(c)) != std::string_view::npos;
}
struct ByteTable {
  bool tchar[256];
  bool authority[256];
  constexpr ByteTable() : tchar(), authority() {
    for (int c = 0; c < 256; ++c) {
      tchar[c] = isTchar(static_cast<unsigned char>(c));
      authority[c] = isAuthorityByte(static_cast<unsigned char>(c));
    }
  }
};
constexpr ByteTable kBytes;

bool validAuthority(std::string_view v) {
  for (char c : v) {
    if (!kBytes.authority[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

std::string_view trimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// True when the comma-separated list `v` holds `token` (case-insensitive).
bool listHas(std::string_view v, std::string_view token) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    if (iequals(trimOws(v.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

int Http1Reader::refuse(std::string why) {
  user_error_ = Error::kBadMessage;
  user_why_ = std::move(why);
  return -1;
}

int Http1Reader::checkHead(llhttp_t* p) {
  MessageHead& h = head_;
  // RFC 9112 §2.3: HTTP/1.0 and 1.1 are what we speak; a peer sending 1.2
  // or 2.0 over this syntax is not one we can frame for.
  if (p->http_major != 1 || p->http_minor > 1) {
    return refuse("unsupported HTTP version " + std::to_string(p->http_major) + "." + std::to_string(p->http_minor));
  }
  if (mode_ == Mode::kResponse && h.status < 100) return refuse("invalid status code");
  // One pass over the fields, by name length first (most names have a
  // length none of these has). llhttp itself refuses Content-Length with
  // Transfer-Encoding, a Content-Length that is not digits or overflows,
  // non-token names but the space (refused in onHeaderField) and CR, LF,
  // NUL and other control bytes in values (http1_framing_test proves each
  // on the llhttp we build); obs-fold was refused in onHeaderValue.
  size_t hosts = 0, lengths = 0, codings = 0;
  std::string_view host, coding;
  bool h2c = false;
  host_field_ = expect_field_ = kNoField;
  size_t index = 0;
  for (const auto& [name, value] : h.headers) {
    switch (name.size()) {
      case 0:
        return refuse("empty header name");
      case 4:
        if (iequals(name, "host")) {
          ++hosts;
          host = value;
          host_field_ = index;
        }
        break;
      case 6:
        if (expect_field_ == kNoField && mode_ == Mode::kRequest && iequals(name, "expect")) expect_field_ = index;
        break;
      case 7:
        if (mode_ == Mode::kRequest && iequals(name, "upgrade") && listHas(value, "h2c")) h2c = true;
        break;
      case 14:
        if (iequals(name, "content-length")) ++lengths;
        break;
      case 17:
        if (iequals(name, "transfer-encoding")) {
          ++codings;
          coding = value;
        }
        break;
      default:
        break;
    }
    ++index;
  }
  // RFC 9112 §6.3: several Content-Length fields may be merged when equal;
  // nginx refuses them all, and so do we.
  if (lengths > 1) return refuse("more than one Content-Length");
  if (codings != 0) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
    if (p->http_minor == 0) return refuse("Transfer-Encoding in an HTTP/1.0 message");
    // RFC 9112 §6.3 rule 4 for requests; for both, nginx's rule: "chunked"
    // once and alone, which is all a proxy can frame and forward.
    if (codings > 1) return refuse("more than one Transfer-Encoding field");
    if (!iequals(trimOws(coding), "chunked")) {
      return refuse("Transfer-Encoding \"" + std::string(coding) + "\": only \"chunked\" is accepted");
    }
  }
  if (mode_ == Mode::kResponse) return 0;
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1 ...
  if (hosts > 1) return refuse("more than one Host");
  if (hosts == 1 && !validAuthority(host)) return refuse("invalid Host \"" + std::string(host) + "\"");
  bool absolute = false;
  if (checkRequestTarget(&absolute) != 0) return -1;
  // ... which an absolute-form target stands for when missing (its
  // authority wins over Host anyway, RFC 9112 §3.2.2).
  if (hosts == 0 && p->http_minor == 1 && !absolute) return refuse("HTTP/1.1 request without Host");
  // `Upgrade: h2c` would turn the connection into HTTP/2 behind our back
  // (h2c smuggling): this request is an ordinary one, its Upgrade and
  // HTTP2-Settings dropped as the hop-by-hop fields they are.
  if (h2c) p->upgrade = 0;
  return 0;
}

int Http1Reader::checkRequestTarget(bool* absolute) {
  std::string_view t = head_.target;
  std::string_view m = head_.method;
  if (!t.empty() && t[0] == '/') return 0;  // origin-form, the usual case
  if (m == "CONNECT") {
    // authority-form (RFC 9112 §3.2.3): host:port.
    return !t.empty() && validAuthority(t) ? 0 : refuse("invalid CONNECT target");
  }
  if (t == "*") return m == "OPTIONS" ? 0 : refuse("'*' target outside OPTIONS");
  // absolute-form (RFC 9112 §3.2.2): a forward-proxy request. http only:
  // an https URI goes through CONNECT.
  constexpr std::string_view kHttp = "http://";
  if (t.size() < kHttp.size() || !iequals(t.substr(0, kHttp.size()), kHttp)) {
    return refuse("invalid request target");
  }
  std::string_view authority = t.substr(kHttp.size());
  authority = authority.substr(0, authority.find_first_of("/?"));
  if (authority.empty() || !validAuthority(authority)) {
    return refuse("invalid authority in the request target");
  }
  *absolute = true;
  return 0;
}

size_t Http1Reader::scanMethod(const char* p, size_t n) {
  const char* q = p;
  const char* end = p + n;
  while (q < end && kBytes.tchar[static_cast<unsigned char>(*q)]) ++q;
  HeaderStock::append(head_.method, p, static_cast<size_t>(q - p));
  if (addHeaderBytes(static_cast<size_t>(q - p)) != 0) return n;
  if (q == end) return n;
  if (*q != ' ' || head_.method.empty()) {
    refuse("invalid method");
    return n;
  }
  method_done_ = true;
  return static_cast<size_t>(q - p);
}

bool Http1Reader::scanHeadLines(const char* p, const char* end) {
  while (scan_head_ && p < end) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (lf == nullptr) {
      line_len_ += static_cast<uint64_t>(end - p);
      last_byte_ = end[-1];
      return true;
    }
    char before = lf > p ? lf[-1] : last_byte_;
    uint64_t line = line_len_ + static_cast<uint64_t>(lf - p);  // bytes before the LF
    // RFC 9112 §2.2: a bare LF is a line end to some parsers and not to
    // others; llhttp takes it at the end of the start line and of the head.
    if (before != '\r' || line == 0) {
      refuse(start_line_seen_ ? "bare LF in the header section" : "bare LF in the start line");
      return false;
    }
    if (line == 1) {
      if (start_line_seen_) scan_head_ = false;  // the empty line: the head ended
    } else {
      start_line_seen_ = true;
    }
    line_len_ = 0;
    last_byte_ = '\n';
    p = lf + 1;
  }
  return true;
}

}  // namespace mulligan::proxy
