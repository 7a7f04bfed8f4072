// mulligan-test-upstream: a fortio-like HTTP/1.1 server whose failures are
// scripted by query parameters (tests/upstreams/README.md), for integration
// tests and benchmarks of the sidecar.
//
// One thread, one libevent loop. Each connection owns a bufferevent and an
// llhttp parser and serves its requests one at a time, as Go's server does: the
// parser pauses at the end of each request and resumes once the answer is
// queued, so pipelined requests are answered in order and a delayed one holds
// back those behind it. Without --log a request costs no allocation beyond the
// first ones on its connection, so wrk can measure the proxy, not this.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <linux/sockios.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "upstream_script.h"

#ifndef MULLIGAN_VERSION
#define MULLIGAN_VERSION "dev"
#endif

namespace mulligan::testupstream {
namespace {

// Generated bodies repeat this pattern from their first byte: byte i is
// kPattern[i % 16], so a client can check any slice it receives.
constexpr std::string_view kPattern = "0123456789abcdef";
// A block of the pattern that generated bodies reference without copying.
constexpr size_t kPatternBlockSize = 64 * 1024;
char g_patternBlock[kPatternBlockSize];

constexpr size_t kOutputHighWater = 256 * 1024;  // a streamed body is refilled below this
constexpr size_t kInputHighWater = 4 << 20;      // stop reading while a request is in hand
constexpr size_t kMaxHeadBytes = 1 << 20;        // a request line + headers larger than this is refused
constexpr timeval kLingerTime = {2, 0};          // lingering close: wait this long for the client's FIN
constexpr timeval kResetPollTime = {0, 1000};    // close=1: how often to look whether earlier answers left

// Request headers worth remembering, by index: the log records each one
// present (the contract of --log); x-request-id and expect also steer the
// answer.
enum Tracked : size_t {
  kXRequestId,
  kAttemptCount,
  kTimeoutBudget,
  kExpectedRqTimeout,
  kGrpcTimeout,
  kGrpcPreviousAttempts,
  kIdempotencyKey,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kExpect,
  kTrackedCount,
};
constexpr std::array<std::string_view, kTrackedCount> kTrackedNames = {
    "x-request-id",   "x-envoy-attempt-count",      "x-timeout-budget", "x-envoy-expected-rq-timeout-ms",
    "grpc-timeout",   "grpc-previous-rpc-attempts", "idempotency-key",  "host",
    "content-length", "transfer-encoding",          "connection",       "expect",
};

bool equalsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

const char* reasonPhrase(int status) {
  struct Reason {
    int status;
    const char* text;
  };
  static constexpr Reason kReasons[] = {{200, "OK"},
                                        {201, "Created"},
                                        {202, "Accepted"},
                                        {204, "No Content"},
                                        {301, "Moved Permanently"},
                                        {302, "Found"},
                                        {304, "Not Modified"},
                                        {400, "Bad Request"},
                                        {401, "Unauthorized"},
                                        {403, "Forbidden"},
                                        {404, "Not Found"},
                                        {408, "Request Timeout"},
                                        {409, "Conflict"},
                                        {413, "Content Too Large"},
                                        {425, "Too Early"},
                                        {429, "Too Many Requests"},
                                        {500, "Internal Server Error"},
                                        {501, "Not Implemented"},
                                        {502, "Bad Gateway"},
                                        {503, "Service Unavailable"},
                                        {504, "Gateway Timeout"}};
  for (const Reason& r : kReasons) {
    if (r.status == status) return r.text;
  }
  return "Status";
}

// RFC 9110 §6.4.1: these answers have no content, whatever the method.
bool statusHasBody(int status) { return status != 204 && status != 304; }

void appendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

void appendHex64(std::string& out, uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  out.append(buf, 16);
}

// JSON string with every byte outside printable ASCII escaped; bytes >= 0x80
// become \u00XX (read as Latin-1), so any header survives as valid JSON/UTF-8.
void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else {
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  out.push_back('"');
}

// FNV-1a, 64 bit: a body checksum with no crypto library (x-body-fnv1a64).
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
uint64_t fnv1a64(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= kFnvPrime;
  }
  return h;
}

uint64_t unixMillis() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// "127.0.0.1:8080", "[::1]:0". (evutil_parse_sockaddr_port refuses port 0,
// the ephemeral port that tests need.)
bool parseListenAddress(const std::string& text, sockaddr_storage& ss, socklen_t& len) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return false;
  unsigned port = 0;
  const char* portBegin = text.data() + colon + 1;
  const char* portEnd = text.data() + text.size();
  auto [end, ec] = std::from_chars(portBegin, portEnd, port);
  if (ec != std::errc() || end != portEnd || port > 65535) return false;
  std::string host = text.substr(0, colon);
  ss = {};
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *sin6;
    return evutil_inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &sin6->sin6_addr) == 1;
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(port));
  len = sizeof *sin;
  return evutil_inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1;
}

struct Options {
  std::string listen = "127.0.0.1:0";
  std::string logPath;
  std::string portFile;
  std::string name = "upstream";
  bool quiet = false;
  bool seeded = false;
  uint64_t seed = 0;
};

class Connection;

// Owns the listener, the connections and everything shared between them:
// request count, fail_first counters, randomness, the log file.
class Server {
 public:
  explicit Server(const Options& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, prints `listening ADDR:PORT` and writes --port-file. False with a
  // message on failure.
  bool start(std::string& error);
  // Runs until SIGTERM or SIGINT; then closes every connection.
  void run();

  // --- for connections ---
  event_base* base() const { return base_; }
  const std::string& name() const { return options_.name; }
  FILE* log() const { return log_; }
  uint64_t requests() const { return requests_; }
  uint64_t countRequest() { return ++requests_; }
  // A client closed its connection before the answer to a request it sent
  // was under way (while the server was delaying it): a cancel, as a
  // proxy's hedge loser or timeout sends it over HTTP/1.
  void countEarlyClose() { ++earlyCloses_; }
  // How many requests carried `key` so far, this one included.
  uint64_t countKey(const std::string& key) { return ++keyCounts_[key]; }
  // Uniform in [0, 100): a percentage draw.
  double draw() { return percent_(rng_); }
  // `Date` header value, formatted at most once a second.
  std::string_view date();
  std::string statsJson() const;
  // The connection closed itself; delete it from the loop, never inside its
  // own callback.
  void retire(Connection* c);

 private:
  static void onAcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self);
  static void onAcceptErrorCb(evconnlistener*, void* self);
  static void onSignalCb(evutil_socket_t sig, short, void* self);
  static void onReapCb(evutil_socket_t, short, void* self);
  void onAccept(evutil_socket_t fd);
  void reap();

  Options options_;
  event_base* base_ = nullptr;
  evconnlistener* listener_ = nullptr;
  event* sigterm_ = nullptr;
  event* sigint_ = nullptr;
  event* reaper_ = nullptr;
  FILE* log_ = nullptr;
  std::unordered_set<Connection*> live_;
  std::vector<Connection*> retired_;
  std::unordered_map<std::string, uint64_t> keyCounts_;
  uint64_t requests_ = 0;
  uint64_t connectionsTotal_ = 0;
  uint64_t earlyCloses_ = 0;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> percent_{0.0, 100.0};
  time_t dateSecond_ = 0;
  char date_[64] = {};
  size_t dateLen_ = 0;
};

// One downstream connection: parses requests with llhttp, answers them one at
// a time as their scripts say.
class Connection {
 public:
  Connection(Server& server, bufferevent* bev, uint64_t serial);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Closes the socket now (the server is shutting down, or the peer is gone).
  void close();

 private:
  enum class Phase {
    kReading,    // parsing; no request in hand
    kDelaying,   // a request in hand, the delay timer armed
    kStreaming,  // writing a generated body as the socket drains
    kStalled,    // sent part of a body on purpose (stall_body); waits for the client to leave
    kClosing,    // the last answer is queued; shut down writing once it is flushed
    kLingering,  // write side shut; discard input until the client's FIN, or a timer
    kResetting,  // close=1 behind pipelined answers: flush those, then reset
    kDead,       // socket closed; the server deletes this from its loop
  };
  enum class BodyKind {
    kText,     // text_ (ok, an error, stats, the echoed path)
    kEcho,     // the request body, body_
    kPattern,  // size=N generated bytes
  };

  // llhttp trampolines.
  static int onMessageBeginCb(llhttp_t* p) { return self(p)->onMessageBegin(); }
  static int onUrlCb(llhttp_t* p, const char* at, size_t n) { return self(p)->onHeadBytes(self(p)->url_, at, n); }
  static int onHeaderFieldCb(llhttp_t* p, const char* at, size_t n) {
    return self(p)->onHeadBytes(self(p)->field_, at, n);
  }
  static int onHeaderValueCb(llhttp_t* p, const char* at, size_t n) {
    return self(p)->onHeadBytes(self(p)->value_, at, n);
  }
  static int onHeaderValueCompleteCb(llhttp_t* p) { return self(p)->onHeaderComplete(); }
  static int onHeadersCompleteCb(llhttp_t* p) { return self(p)->onHeadersComplete(); }
  static int onBodyCb(llhttp_t* p, const char* at, size_t n) { return self(p)->onBody(at, n); }
  static int onMessageCompleteCb(llhttp_t* p) { return self(p)->onMessageComplete(); }
  static Connection* self(llhttp_t* p) { return static_cast<Connection*>(p->data); }
  static const llhttp_settings_t& parserSettings();

  // libevent trampolines.
  static void onReadCb(bufferevent*, void* self) { static_cast<Connection*>(self)->onRead(); }
  static void onWriteCb(bufferevent*, void* self) { static_cast<Connection*>(self)->onWrite(); }
  static void onEventCb(bufferevent*, short what, void* self) { static_cast<Connection*>(self)->onEvent(what); }
  static void onTimerCb(evutil_socket_t, short, void* self) { static_cast<Connection*>(self)->onTimer(); }

  int onMessageBegin();
  int onHeadBytes(std::string& into, const char* at, size_t n);
  int onHeaderComplete();
  int onHeadersComplete();
  int onBody(const char* at, size_t n);
  int onMessageComplete();

  void onRead();
  void onWrite();
  void onEvent(short what);
  void onTimer();

  // Feeds buffered input to the parser and handles each complete request,
  // while the connection is reading.
  void processInput();
  // A complete request: count, decide, log, then answer now or after its delay.
  void handleRequest();
  void decide(uint64_t seen);
  void writeLogLine(uint64_t seen);
  // Writes the head and as much of the body as the script allows now.
  void respond();
  void writeHead();
  void pumpBody();
  // The answer is fully queued: read the next request, or close.
  void finishExchange();
  void closeAfterFlush();
  void armTimer(const timeval& tv);
  void reset();  // RST: SO_LINGER 0, then close
  void badRequest(const char* what);

  Server& server_;
  bufferevent* bev_;
  const uint64_t serial_;
  uint64_t served_ = 0;  // requests on this connection
  event* timer_ = nullptr;
  Phase phase_ = Phase::kReading;
  bool inProcessInput_ = false;

  // The request being parsed or answered. Reused: clear() keeps capacity.
  llhttp_t parser_;
  bool messageReady_ = false;
  std::string url_, field_, value_;
  size_t headBytes_ = 0;  // request line + headers so far, capped at kMaxHeadBytes
  std::array<std::string, kTrackedCount> tracked_;
  uint32_t trackedMask_ = 0;
  std::string headersJson_;  // all headers as JSON pairs, only with --log
  std::string body_;         // only for echo=1
  uint64_t bodyBytes_ = 0;
  uint64_t bodyHash_ = kFnvOffset;
  Script script_;
  std::string scriptError_;
  bool isStats_ = false;
  bool keepAlive_ = true;

  // The answer.
  int status_ = 200;
  bool reset_ = false;
  bool stall_ = false;
  uint64_t delayUs_ = 0;
  uint64_t seen_ = 0;
  BodyKind bodyKind_ = BodyKind::kText;
  uint64_t bodyLen_ = 0;
  uint64_t bodyLimit_ = 0;  // bytes to send: bodyLen_, or half of it when stalling
  uint64_t bodySent_ = 0;
  std::string text_;
  std::string head_;
  std::string logLine_;
};

// ---------------------------------------------------------------------------

Server::Server(const Options& options) : options_(options) {
  if (options_.seeded) {
    rng_.seed(options_.seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }
}

Server::~Server() {
  for (Connection* c : live_) delete c;
  for (Connection* c : retired_) delete c;
  if (listener_) evconnlistener_free(listener_);
  if (sigterm_) event_free(sigterm_);
  if (sigint_) event_free(sigint_);
  if (reaper_) event_free(reaper_);
  if (base_) event_base_free(base_);
  if (log_) std::fclose(log_);
}

bool Server::start(std::string& error) {
  if (!options_.logPath.empty()) {
    log_ = std::fopen(options_.logPath.c_str(), "a");
    if (!log_) {
      error = "cannot open log " + options_.logPath + ": " + std::strerror(errno);
      return false;
    }
  }
  sockaddr_storage ss{};
  socklen_t sslen = 0;
  if (!parseListenAddress(options_.listen, ss, sslen)) {
    error = "bad --listen address: " + options_.listen;
    return false;
  }
  base_ = event_base_new();
  if (!base_) {
    error = "event_base_new failed";
    return false;
  }
  listener_ = evconnlistener_new_bind(base_, onAcceptCb, this,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
                                      reinterpret_cast<sockaddr*>(&ss), sslen);
  if (!listener_) {
    error = "cannot listen on " + options_.listen + ": " + std::strerror(errno);
    return false;
  }
  evconnlistener_set_error_cb(listener_, onAcceptErrorCb);

  sockaddr_storage bound{};
  socklen_t boundLen = sizeof bound;
  getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&bound), &boundLen);
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  std::string addr;
  if (bound.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&bound);
    evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
    port = ntohs(sin6->sin6_port);
    addr = std::string("[") + host + "]";
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&bound);
    evutil_inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    port = ntohs(sin->sin_port);
    addr = host;
  }

  sigterm_ = evsignal_new(base_, SIGTERM, onSignalCb, this);
  sigint_ = evsignal_new(base_, SIGINT, onSignalCb, this);
  reaper_ = event_new(base_, -1, 0, onReapCb, this);
  if (!sigterm_ || !sigint_ || !reaper_ || evsignal_add(sigterm_, nullptr) != 0 ||
      evsignal_add(sigint_, nullptr) != 0) {
    error = "cannot install signal handlers";
    return false;
  }

  if (!options_.portFile.empty()) {
    // Written to a temporary name and renamed, so a reader never sees half.
    std::string tmp = options_.portFile + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f || std::fprintf(f, "%u\n", port) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), options_.portFile.c_str()) != 0) {
      error = "cannot write --port-file " + options_.portFile + ": " + std::strerror(errno);
      return false;
    }
  }
  std::printf("listening %s:%u\n", addr.c_str(), port);
  std::fflush(stdout);
  if (!options_.quiet) {
    std::fprintf(stderr, "mulligan-test-upstream %s: name %s, log %s\n", MULLIGAN_VERSION, options_.name.c_str(),
                 options_.logPath.empty() ? "off" : options_.logPath.c_str());
  }
  return true;
}

void Server::run() {
  event_base_dispatch(base_);
  // close() retires each connection, which edits live_: iterate a copy.
  std::vector<Connection*> open(live_.begin(), live_.end());
  for (Connection* c : open) c->close();
  reap();
}

void Server::onAcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self) {
  static_cast<Server*>(self)->onAccept(fd);
}

void Server::onAccept(evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bufferevent* bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  auto* c = new Connection(*this, bev, ++connectionsTotal_);
  live_.insert(c);
  c->start();
}

void Server::onAcceptErrorCb(evconnlistener*, void* self) {
  // EMFILE and friends: libevent keeps the listener; say so once per burst.
  if (!static_cast<Server*>(self)->options_.quiet) {
    std::fprintf(stderr, "mulligan-test-upstream: accept: %s\n", std::strerror(errno));
  }
}

void Server::onSignalCb(evutil_socket_t sig, short, void* self) {
  auto* s = static_cast<Server*>(self);
  if (!s->options_.quiet) {
    std::fprintf(stderr, "mulligan-test-upstream: signal %d after %llu requests, exiting\n", static_cast<int>(sig),
                 static_cast<unsigned long long>(s->requests_));
  }
  event_base_loopbreak(s->base_);
}

void Server::retire(Connection* c) {
  if (live_.erase(c) == 0) return;
  retired_.push_back(c);
  event_active(reaper_, EV_TIMEOUT, 1);
}

void Server::onReapCb(evutil_socket_t, short, void* self) { static_cast<Server*>(self)->reap(); }

void Server::reap() {
  for (Connection* c : retired_) delete c;
  retired_.clear();
}

std::string_view Server::date() {
  timeval now;
  event_base_gettimeofday_cached(base_, &now);
  if (now.tv_sec != dateSecond_ || dateLen_ == 0) {
    dateSecond_ = now.tv_sec;
    tm t;
    gmtime_r(&dateSecond_, &t);
    dateLen_ = std::strftime(date_, sizeof date_, "%a, %d %b %Y %H:%M:%S GMT", &t);
  }
  return {date_, dateLen_};
}

std::string Server::statsJson() const {
  std::string s = "{\"requests\": ";
  appendUint(s, requests_);
  s += ", \"connections_open\": ";
  appendUint(s, live_.size());
  s += ", \"connections_total\": ";
  appendUint(s, connectionsTotal_);
  s += ", \"early_closes\": ";
  appendUint(s, earlyCloses_);
  s += "}\n";
  return s;
}

// ---------------------------------------------------------------------------

const llhttp_settings_t& Connection::parserSettings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = onMessageBeginCb;
    s.on_url = onUrlCb;
    s.on_header_field = onHeaderFieldCb;
    s.on_header_value = onHeaderValueCb;
    s.on_header_value_complete = onHeaderValueCompleteCb;
    s.on_headers_complete = onHeadersCompleteCb;
    s.on_body = onBodyCb;
    s.on_message_complete = onMessageCompleteCb;
    return s;
  }();
  return settings;
}

Connection::Connection(Server& server, bufferevent* bev, uint64_t serial)
    : server_(server), bev_(bev), serial_(serial) {
  llhttp_init(&parser_, HTTP_REQUEST, &parserSettings());
  parser_.data = this;
}

Connection::~Connection() {
  if (timer_) event_free(timer_);
  if (bev_) bufferevent_free(bev_);
}

void Connection::start() {
  bufferevent_setcb(bev_, onReadCb, onWriteCb, onEventCb, this);
  bufferevent_setwatermark(bev_, EV_READ, 0, kInputHighWater);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void Connection::close() {
  if (phase_ == Phase::kDead) return;
  phase_ = Phase::kDead;
  if (timer_) event_del(timer_);
  // bufferevent_free is safe inside the bufferevent's own callbacks: libevent
  // defers the final release until they return.
  bufferevent_free(bev_);
  bev_ = nullptr;
  server_.retire(this);
}

void Connection::reset() {
  // Answers to earlier pipelined requests may still be queued, here or in the
  // kernel, and an RST would discard them: they were answered, so they go
  // out first. onWrite() and the timer come back here until both are empty.
  evutil_socket_t fd = bufferevent_getfd(bev_);
  int kernelQueued = 0;
  if (evbuffer_get_length(bufferevent_get_output(bev_)) > 0 ||
      (ioctl(fd, SIOCOUTQ, &kernelQueued) == 0 && kernelQueued > 0)) {
    if (phase_ != Phase::kResetting) {
      phase_ = Phase::kResetting;
      bufferevent_disable(bev_, EV_READ);
    }
    if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) armTimer(kResetPollTime);
    return;
  }
  linger lg{1, 0};
  setsockopt(bufferevent_getfd(bev_), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close();
}

// --- parsing ---

int Connection::onMessageBegin() {
  url_.clear();
  headBytes_ = 0;
  field_.clear();
  value_.clear();
  for (size_t i = 0; i < kTrackedCount; ++i) {
    if (trackedMask_ & (1u << i)) tracked_[i].clear();
  }
  trackedMask_ = 0;
  headersJson_.clear();
  body_.clear();
  bodyBytes_ = 0;
  bodyHash_ = kFnvOffset;
  scriptError_.clear();
  isStats_ = false;
  return 0;
}

int Connection::onHeadBytes(std::string& into, const char* at, size_t n) {
  headBytes_ += n;
  if (headBytes_ > kMaxHeadBytes) {
    llhttp_set_error_reason(&parser_, "request head larger than 1 MiB");
    return HPE_USER;
  }
  into.append(at, n);
  return 0;
}

int Connection::onHeaderComplete() {
  for (size_t i = 0; i < kTrackedCount; ++i) {
    if (!equalsLower(field_, kTrackedNames[i])) continue;
    std::string& v = tracked_[i];
    if (trackedMask_ & (1u << i)) v.append(", ");  // RFC 9110 §5.3: repeated fields combine as a list
    v.append(value_);
    trackedMask_ |= 1u << i;
    break;
  }
  if (server_.log()) {
    if (!headersJson_.empty()) headersJson_.push_back(',');
    headersJson_.push_back('[');
    appendJsonString(headersJson_, field_);
    headersJson_.push_back(',');
    appendJsonString(headersJson_, value_);
    headersJson_.push_back(']');
  }
  field_.clear();
  value_.clear();
  return 0;
}

int Connection::onHeadersComplete() {
  // The request-target: origin-form, or absolute-form from a proxy (path after
  // the authority). The fragment never reaches a server, but drop one anyway.
  std::string_view target = url_;
  size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (size_t scheme = path.find("://"); scheme != std::string_view::npos && path.front() != '/') {
    size_t slash = path.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  isStats_ = path == "/__stats";
  if (!parseScript(query, script_, scriptError_)) script_.clear();

  // RFC 9110 §10.1.1: a client that waits for 100 Continue gets it, so curl
  // does not pause a second before sending a large body.
  if ((trackedMask_ & (1u << kExpect)) && equalsLower(tracked_[kExpect], "100-continue") &&
      llhttp_get_http_major(&parser_) == 1 && llhttp_get_http_minor(&parser_) >= 1) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    bufferevent_write(bev_, kContinue.data(), kContinue.size());
  }
  return 0;
}

int Connection::onBody(const char* at, size_t n) {
  bodyBytes_ += n;
  bodyHash_ = fnv1a64(bodyHash_, at, n);
  if (script_.echo) body_.append(at, n);
  return 0;
}

int Connection::onMessageComplete() {
  keepAlive_ = llhttp_should_keep_alive(&parser_) != 0;
  messageReady_ = true;
  return HPE_PAUSED;  // one request at a time; resumed by finishExchange()
}

void Connection::processInput() {
  if (inProcessInput_) return;  // finishExchange() inside the loop below: it continues
  inProcessInput_ = true;
  while (phase_ == Phase::kReading) {
    evbuffer* in = bufferevent_get_input(bev_);
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1 || vec.iov_len == 0) break;
    const char* data = static_cast<const char*>(vec.iov_base);
    llhttp_errno_t err = llhttp_execute(&parser_, data, vec.iov_len);
    if (err == HPE_OK) {
      evbuffer_drain(in, vec.iov_len);
    } else if (err == HPE_PAUSED && messageReady_) {
      evbuffer_drain(in, static_cast<size_t>(llhttp_get_error_pos(&parser_) - data));
      messageReady_ = false;
      handleRequest();
    } else if (err == HPE_PAUSED_UPGRADE) {
      // Upgrade or CONNECT, answered as a plain request: we speak nothing
      // else, so the connection ends here.
      closeAfterFlush();
    } else {
      badRequest(llhttp_errno_name(err));
    }
  }
  inProcessInput_ = false;
}

void Connection::badRequest(const char* what) {
  status_ = 400;
  reset_ = stall_ = false;
  seen_ = server_.requests();
  keepAlive_ = false;
  text_.assign("bad request: ");
  text_.append(what);
  const char* reason = llhttp_get_error_reason(&parser_);
  if (reason && *reason) text_.append(" (").append(reason).append(")");
  text_.push_back('\n');
  bodyKind_ = BodyKind::kText;
  bodyLen_ = bodyLimit_ = text_.size();
  bodySent_ = 0;
  script_.clear();
  bodyBytes_ = 0;
  writeHead();
  pumpBody();
}

// --- answering ---

void Connection::handleRequest() {
  if (isStats_) {
    // Not a request of the test: neither counted nor logged.
    status_ = 200;
    reset_ = stall_ = false;
    delayUs_ = 0;
    seen_ = server_.requests();
    text_ = server_.statsJson();
    bodyKind_ = BodyKind::kText;
    bodyLen_ = text_.size();
    script_.clear();
    respond();
    return;
  }
  uint64_t seen = server_.countRequest();
  ++served_;
  decide(seen);
  if (server_.log()) writeLogLine(seen);
  if (delayUs_ > 0) {
    phase_ = Phase::kDelaying;
    armTimer(timeval{static_cast<time_t>(delayUs_ / 1000000), static_cast<suseconds_t>(delayUs_ % 1000000)});
    return;
  }
  respond();
}

void Connection::decide(uint64_t seen) {
  seen_ = seen;
  status_ = 200;
  reset_ = stall_ = false;
  delayUs_ = 0;
  bodyKind_ = BodyKind::kText;
  if (!scriptError_.empty()) {
    status_ = 400;
    text_ = scriptError_ + "\n";
    bodyLen_ = text_.size();
    return;
  }
  const Script& s = script_;
  // Independent draws, only for what the script asks: a request without
  // parameters touches no random state.
  if (s.status.count) status_ = s.status.pick(server_.draw(), 200);
  if (s.delayUs.count) delayUs_ = s.delayUs.pick(server_.draw(), 0);
  if (s.closePercent > 0) reset_ = server_.draw() < s.closePercent;
  if (s.stallPercent > 0) stall_ = server_.draw() < s.stallPercent;
  if (s.failFirst > 0) {
    // The key: id= (a test's own), else x-request-id (the same on every
    // attempt a proxy makes), else the request-target itself.
    const std::string& key = s.hasId ? s.id : (trackedMask_ & (1u << kXRequestId)) ? tracked_[kXRequestId] : url_;
    if (server_.countKey(key) <= s.failFirst) {
      if (s.failReset) {
        reset_ = true;
      } else {
        status_ = s.failStatus;
      }
      delayUs_ += s.failDelayUs;
    }
  }

  if (s.echo) {
    bodyKind_ = BodyKind::kEcho;
    bodyLen_ = body_.size();
  } else if (s.hasSize) {
    bodyKind_ = BodyKind::kPattern;
    bodyLen_ = s.size;
  } else {
    if (s.echoPath) {
      text_.assign(url_).push_back('\n');
    } else if (status_ >= 200 && status_ < 300) {
      text_.assign("ok\n");
    } else {
      text_.clear();
      appendUint(text_, static_cast<uint64_t>(status_));
      text_.append(" ").append(reasonPhrase(status_)).push_back('\n');
    }
    bodyLen_ = text_.size();
  }
  if (stall_ && !s.hasSize && !s.echo) {
    // A stall needs something to stall in: 1 KiB of pattern, half of it sent.
    bodyKind_ = BodyKind::kPattern;
    bodyLen_ = 1024;
  }
}

void Connection::writeLogLine(uint64_t seen) {
  std::string& l = logLine_;
  l.assign("{\"ts\":");
  appendUint(l, unixMillis());
  l.append(",\"name\":");
  appendJsonString(l, server_.name());
  l.append(",\"seen\":");
  appendUint(l, seen);
  l.append(",\"conn\":");
  appendUint(l, serial_);
  l.append(",\"conn_seq\":");
  appendUint(l, served_);
  l.append(",\"method\":");
  appendJsonString(l, llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(&parser_))));
  l.append(",\"uri\":");
  appendJsonString(l, url_);
  l.append(",\"version\":\"");
  appendUint(l, llhttp_get_http_major(&parser_));
  l.push_back('.');
  appendUint(l, llhttp_get_http_minor(&parser_));
  l.append("\",\"id\":");
  if (script_.hasId) {
    appendJsonString(l, script_.id);
  } else if (trackedMask_ & (1u << kXRequestId)) {
    appendJsonString(l, tracked_[kXRequestId]);
  } else {
    l.append("null");
  }
  l.append(",\"status\":");
  appendUint(l, reset_ ? 0 : static_cast<uint64_t>(status_));
  l.append(reset_ ? ",\"reset\":true" : ",\"reset\":false");
  l.append(stall_ ? ",\"stall\":true" : ",\"stall\":false");
  l.append(",\"delay_ms\":");
  char num[32];
  auto [end, ec] = std::to_chars(num, num + sizeof num, static_cast<double>(delayUs_) / 1000.0);
  (void)ec;
  l.append(num, end);
  for (size_t i = 0; i < kTrackedCount; ++i) {
    if (!(trackedMask_ & (1u << i))) continue;
    l.push_back(',');
    appendJsonString(l, kTrackedNames[i]);
    l.push_back(':');
    appendJsonString(l, tracked_[i]);
  }
  l.append(",\"body_bytes\":");
  appendUint(l, bodyBytes_);
  l.append(",\"body_fnv1a64\":\"");
  appendHex64(l, bodyHash_);
  l.append("\",\"headers\":[");
  l.append(headersJson_);
  l.append("]}\n");
  // Flushed per line: a test reads the log as soon as its response arrives.
  std::fwrite(l.data(), 1, l.size(), server_.log());
  std::fflush(server_.log());
}

void Connection::respond() {
  if (reset_) {
    reset();
    return;
  }
  writeHead();
  pumpBody();
}

void Connection::writeHead() {
  bool head = llhttp_get_method(&parser_) == HTTP_HEAD;
  bool hasBody = statusHasBody(status_);
  if (!hasBody || head) {
    // HEAD still announces the length a GET would get (RFC 9110 §9.3.2).
    bodyLimit_ = 0;
  } else {
    bodyLimit_ = stall_ ? bodyLen_ / 2 : bodyLen_;
  }
  bodySent_ = 0;

  std::string& h = head_;
  h.assign("HTTP/1.1 ");
  appendUint(h, static_cast<uint64_t>(status_));
  h.push_back(' ');
  h.append(reasonPhrase(status_));
  h.append("\r\ndate: ");
  h.append(server_.date());
  h.append(bodyKind_ == BodyKind::kText ? "\r\ncontent-type: text/plain"
                                        : "\r\ncontent-type: application/octet-stream");
  if (hasBody) {
    h.append("\r\ncontent-length: ");
    appendUint(h, bodyLen_);
  }
  h.append("\r\nx-upstream-name: ");
  h.append(server_.name());
  h.append("\r\nx-upstream-seen: ");
  appendUint(h, seen_);
  if (!script_.retryAfter.empty() && (status_ < 200 || status_ > 299)) {
    h.append("\r\nretry-after: ");
    h.append(script_.retryAfter);
  }
  if (script_.echo || bodyBytes_ > 0) {
    h.append("\r\nx-body-bytes: ");
    appendUint(h, bodyBytes_);
    h.append("\r\nx-body-fnv1a64: ");
    appendHex64(h, bodyHash_);
  }
  if (!keepAlive_) {
    h.append("\r\nconnection: close");
  } else if (llhttp_get_http_minor(&parser_) == 0) {
    h.append("\r\nconnection: keep-alive");  // HTTP/1.0 asked for it
  }
  h.append("\r\n\r\n");
  bufferevent_write(bev_, h.data(), h.size());
}

void Connection::pumpBody() {
  evbuffer* out = bufferevent_get_output(bev_);
  if (bodyKind_ == BodyKind::kPattern) {
    while (bodySent_ < bodyLimit_ && evbuffer_get_length(out) < kOutputHighWater) {
      // The block is a whole number of patterns, so any offset maps into it.
      size_t skew = bodySent_ % kPattern.size();
      uint64_t n = std::min<uint64_t>(bodyLimit_ - bodySent_, kPatternBlockSize - skew);
      evbuffer_add_reference(out, g_patternBlock + skew, n, nullptr, nullptr);
      bodySent_ += n;
    }
  } else if (bodySent_ < bodyLimit_) {
    const std::string& src = bodyKind_ == BodyKind::kEcho ? body_ : text_;
    evbuffer_add(out, src.data() + bodySent_, bodyLimit_ - bodySent_);
    bodySent_ = bodyLimit_;
  }
  if (bodySent_ < bodyLimit_) {
    phase_ = Phase::kStreaming;  // onWrite() refills
  } else if (stall_) {
    phase_ = Phase::kStalled;
  } else {
    finishExchange();
  }
}

void Connection::finishExchange() {
  if (!keepAlive_) {
    closeAfterFlush();
    return;
  }
  phase_ = Phase::kReading;
  llhttp_resume(&parser_);
  processInput();
}

void Connection::closeAfterFlush() {
  phase_ = Phase::kClosing;
  bufferevent_disable(bev_, EV_READ);
  onWrite();
}

void Connection::armTimer(const timeval& tv) {
  if (!timer_) timer_ = evtimer_new(server_.base(), onTimerCb, this);
  evtimer_add(timer_, &tv);
}

void Connection::onRead() {
  if (phase_ == Phase::kLingering) {
    evbuffer* in = bufferevent_get_input(bev_);
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  processInput();
}

void Connection::onWrite() {
  if (phase_ == Phase::kStreaming) {
    pumpBody();
  } else if (phase_ == Phase::kResetting) {
    if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) reset();
  } else if (phase_ == Phase::kClosing && evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    // Lingering close: a close() with unread input would send RST, which may
    // destroy the answer before the client reads it. Shut down writing, read
    // until the client's FIN (or a timer), then close.
    phase_ = Phase::kLingering;
    shutdown(bufferevent_getfd(bev_), SHUT_WR);
    bufferevent_enable(bev_, EV_READ);
    armTimer(kLingerTime);
  }
}

void Connection::onEvent(short what) {
  if (what & BEV_EVENT_ERROR) {
    if (phase_ == Phase::kDelaying) server_.countEarlyClose();  // a reset rather than a FIN
    close();
    return;
  }
  if (what & BEV_EVENT_EOF) {
    switch (phase_) {
      case Phase::kDelaying:
        server_.countEarlyClose();
        keepAlive_ = false;  // the client half-closed: answer, then close
        break;
      case Phase::kStreaming:
        keepAlive_ = false;  // the client half-closed: answer, then close
        break;
      case Phase::kClosing:
        break;  // still flushing
      default:
        close();
        break;
    }
  }
}

void Connection::onTimer() {
  if (phase_ == Phase::kDelaying) {
    respond();
  } else if (phase_ == Phase::kLingering) {
    close();
  } else if (phase_ == Phase::kResetting) {
    reset();
  }
}

// ---------------------------------------------------------------------------

void usage(FILE* f) {
  std::fprintf(f,
               "usage: mulligan-test-upstream [--listen ADDR:PORT] [--log FILE] [--port-file FILE]\n"
               "                              [--name NAME] [--seed N] [--quiet]\n"
               "A fortio-like HTTP/1.1 test server; failures are scripted per request by query\n"
               "parameters (status=503:10, delay=100ms, close=1, fail_first=N, size=1MiB, echo=1, ...;\n"
               "see tests/upstreams/README.md). GET /__stats answers {\"requests\": N}.\n"
               "  --listen ADDR:PORT  bind here (default 127.0.0.1:0, an ephemeral port); prints\n"
               "                      'listening ADDR:PORT' on stdout\n"
               "  --log FILE          append one JSON line per request received\n"
               "  --port-file FILE    write the bound port there\n"
               "  --name NAME         x-upstream-name of every answer (default upstream)\n"
               "  --seed N            seed the random draws (default: random)\n"
               "  --quiet             nothing on stderr but errors\n");
}

// Returns 0 to run, or an exit code (help, version, bad usage).
int parseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inlineValue = true;
    }
    auto takeValue = [&]() -> bool {
      if (inlineValue) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return -1;
    } else if (arg == "--version") {
      std::printf("mulligan-test-upstream %s\n", MULLIGAN_VERSION);
      return -1;
    } else if (arg == "--quiet") {
      o.quiet = true;
    } else if (arg == "--listen" || arg == "--log" || arg == "--port-file" || arg == "--name" || arg == "--seed") {
      if (!takeValue()) {
        std::fprintf(stderr, "mulligan-test-upstream: %.*s needs a value\n", static_cast<int>(arg.size()), arg.data());
        return 2;
      }
      if (arg == "--listen") {
        o.listen = value;
      } else if (arg == "--log") {
        o.logPath = value;
      } else if (arg == "--port-file") {
        o.portFile = value;
      } else if (arg == "--name") {
        o.name = value;
        for (char c : o.name) {
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            std::fprintf(stderr, "mulligan-test-upstream: --name must be a valid header value\n");
            return 2;
          }
        }
      } else {
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), o.seed);
        if (ec != std::errc() || end != value.data() + value.size()) {
          std::fprintf(stderr, "mulligan-test-upstream: bad --seed\n");
          return 2;
        }
        o.seeded = true;
      }
    } else {
      std::fprintf(stderr, "mulligan-test-upstream: unknown argument %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  return 0;
}

}  // namespace
}  // namespace mulligan::testupstream

int main(int argc, char** argv) {
  using namespace mulligan::testupstream;
  Options options;
  if (int rc = parseArgs(argc, argv, options); rc != 0) return rc < 0 ? 0 : rc;
  for (size_t i = 0; i < kPatternBlockSize; ++i) g_patternBlock[i] = kPattern[i % kPattern.size()];
  // A client that vanishes mid-write must cost an error event, not the process.
  std::signal(SIGPIPE, SIG_IGN);

  Server server(options);
  std::string error;
  if (!server.start(error)) {
    std::fprintf(stderr, "mulligan-test-upstream: %s\n", error.c_str());
    return 1;
  }
  server.run();
  return 0;
}
