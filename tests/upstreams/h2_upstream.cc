// mulligan-h2-upstream: a small scriptable HTTP/2 (h2c, prior knowledge) and
// gRPC upstream built on nghttp2 — a real HTTP/2 peer, so that tests exercise
// REFUSED_STREAM, GOAWAY and stream limits as a server produces them, not
// hand-made frames — and the HTTP/2 / gRPC upstream of scripts/bench (one
// thread, libevent, nothing logged unless --log).
//
//   mulligan-h2-upstream [--listen ADDR:PORT] [--port-file F] [--log F]
//                        [--max-streams N] [--name NAME] [--seed N]
//
// Query parameters, flags, answers and the log are documented in
// tests/upstreams/README.md ("mulligan-h2-upstream"). The value syntax of
// status=, delay= and size= is mulligan-test-upstream's (upstream_script.h).
//
// Not a general server: no TLS, no HTTP/1.1 upgrade, no flow-control tuning
// beyond nghttp2's defaults, request bodies held in memory.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

#include "upstream_script.h"

namespace {

using mulligan::testupstream::ChoiceList;
using mulligan::testupstream::parseUint;

FILE* g_log = nullptr;
event_base* g_base = nullptr;
uint32_t g_max_streams = 100;
int g_conn_seq = 0;
std::string g_name = "h2-upstream";
std::minstd_rand g_rng{std::random_device{}()};
std::unordered_map<std::string, uint64_t> g_seen;  // id -> requests seen

const std::string k200 = "200", kGrpcType = "application/grpc", kText = "text/plain",
                  kOctets = "application/octet-stream", kInjected = "injected failure", kZero = "0";

// What a request's query asks for. Defaults: a plain 200 "ok\n".
struct Query {
  ChoiceList<int> status;      // status=503 | 503:10,429:5
  ChoiceList<int> grpcStatus;  // grpc_status=14 | 14:10 (gRPC requests)
  uint64_t delayUs = 0;        // delay=MS (a bare number) | 100ms | 1.5s
  bool hasSize = false;        // size=N | 64KiB
  uint64_t size = 0;
  bool echo = false;     // echo=1
  std::string id;        // id=X
  uint64_t refuse = 0;   // refuse=N
  uint64_t goaway = 0;   // goaway=N
  uint64_t slowFirst = 0;  // slow_first=N: only the first N with this id wait `delay`
};

// Parses the part of PATH after '?'. False with `error` on a malformed value
// of a known parameter; unknown parameters are ignored.
bool parseQuery(std::string_view path, Query& q, std::string& error) {
  size_t mark = path.find('?');
  if (mark == std::string_view::npos) return true;
  std::string value;
  return mulligan::testupstream::forEachParam(path.substr(mark + 1), [&](std::string_view key, std::string_view raw,
                                                                         std::string_view pair) {
    // A bare key (`echo`) means 1, as before.
    mulligan::testupstream::percentDecode(pair.size() == key.size() ? std::string_view("1") : raw, value);
    bool ok = true;
    if (key == "status") {
      ok = mulligan::testupstream::parseStatusList(value, q.status);
    } else if (key == "grpc_status") {
      ok = mulligan::testupstream::parseGrpcStatusList(value, q.grpcStatus);
    } else if (key == "delay") {
      uint64_t ms = 0;
      if (parseUint(value, ms) && ms <= 86400000) {
        q.delayUs = ms * 1000;  // a bare number is milliseconds
      } else {
        ok = mulligan::testupstream::parseDurationUs(value, q.delayUs);
      }
    } else if (key == "size") {
      ok = q.hasSize = mulligan::testupstream::parseSize(value, q.size);
    } else if (key == "echo") {
      q.echo = value == "1" || value == "true";
      ok = q.echo || value == "0" || value == "false";
    } else if (key == "id") {
      q.id = value;
    } else if (key == "refuse") {
      ok = parseUint(value, q.refuse);
    } else if (key == "goaway") {
      ok = parseUint(value, q.goaway);
    } else if (key == "slow_first") {
      ok = parseUint(value, q.slowFirst);
    }
    if (!ok) error.assign("bad query parameter: ").append(pair);
    return ok;
  });
}

// One pick from LIST (uniform draw in [0, 100)), FALLBACK when it is empty.
int draw(const ChoiceList<int>& list, int fallback) {
  if (list.count == 0) return fallback;
  std::uniform_real_distribution<double> u(0.0, 100.0);
  return list.pick(u(g_rng), fallback);
}

struct Conn;

struct Stream {
  Conn* conn;
  int32_t id;
  std::string method, path;
  std::string attempt;         // x-envoy-attempt-count
  std::string grpc_timeout;    // as the sidecar rewrote it
  std::string timeout_budget;  // x-timeout-budget, as the sidecar set it
  std::string expected_rq;     // x-envoy-expected-rq-timeout-ms
  bool grpc = false;           // content-type application/grpc...
  bool parsed = false;         // `query` holds the path's query
  Query query;
  std::string body;  // the request body
  std::string out;   // the response body, unless `pattern`
  uint64_t out_len = 0, out_pos = 0;
  bool pattern = false;      // size=: out_len bytes of 'x', never held
  bool trailers = false;     // gRPC: grpc-status: 0 after the body
  std::string status;        // kept alive while nghttp2 holds pointers to it
  event* timer = nullptr;
  bool finished = false;  // answered, refused or sent away: logged already
};

struct Conn {
  int seq;
  bufferevent* bev;
  nghttp2_session* session = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams;
  bool closing = false;
};

// JSON string body: printable ASCII as is (quotes and backslashes escaped),
// anything else as \u00XX.
std::string json(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o;
}

void logLine(Stream* s, const char* outcome) {
  s->finished = true;
  if (!g_log) return;
  if (!s->parsed) {  // reset before the request ended: its id is still wanted
    std::string error;
    parseQuery(s->path, s->query, error);
    s->parsed = true;
  }
  fprintf(g_log,
          "{\"id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"stream\":%d,\"conn\":%d,\"attempt\":\"%s\","
          "\"grpc_timeout\":\"%s\",\"timeout_budget\":\"%s\",\"expected_rq\":\"%s\",\"body_bytes\":%zu,"
          "\"outcome\":\"%s\"}\n",
          json(s->query.id).c_str(), json(s->method).c_str(), json(s->path).c_str(), s->id, s->conn->seq,
          json(s->attempt).c_str(), json(s->grpc_timeout).c_str(), json(s->timeout_budget).c_str(),
          json(s->expected_rq).c_str(), s->body.size(), outcome);
  fflush(g_log);
}

void flush(Conn* c);

ssize_t readBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                 nghttp2_data_source* src, void*) {
  auto* s = static_cast<Stream*>(src->ptr);
  size_t n = static_cast<size_t>(std::min<uint64_t>(len, s->out_len - s->out_pos));
  if (s->pattern) {
    memset(buf, 'x', n);
  } else {
    memcpy(buf, s->out.data() + s->out_pos, n);
  }
  s->out_pos += n;
  if (s->out_pos == s->out_len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv t[] = {{(uint8_t*)"grpc-status", (uint8_t*)kZero.data(), 11, 1, NGHTTP2_NV_FLAG_NONE}};
      nghttp2_submit_trailer(session, id, t, 1);
    }
  }
  return static_cast<ssize_t>(n);
}

nghttp2_nv nv(const char* name, const std::string& value) {
  return {(uint8_t*)name, (uint8_t*)value.data(), strlen(name), value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Submits the answer: headers, then s->out (or the pattern) through readBody.
void submit(Stream* s, const std::string& status, const std::string& type) {
  std::string len = std::to_string(s->out_len);
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = readBody;
  if (s->trailers) {  // gRPC: no content-length, trailers follow
    nghttp2_nv h[] = {nv(":status", status), nv("content-type", type), nv("x-upstream-name", g_name)};
    nghttp2_submit_response(s->conn->session, s->id, h, 3, &prd);
  } else {
    nghttp2_nv h[] = {nv(":status", status), nv("content-length", len), nv("content-type", type),
                      nv("x-upstream-name", g_name)};
    nghttp2_submit_response(s->conn->session, s->id, h, 4, &prd);
  }
}

void respond(Stream* s) {
  const Query& q = s->query;
  int code = draw(q.status, 200);
  s->status = code == 200 ? k200 : std::to_string(code);
  if (s->grpc && code == 200) {
    if (int g = draw(q.grpcStatus, 0); g != 0) {  // trailers-only: one HEADERS frame with END_STREAM
      s->status = std::to_string(g);
      nghttp2_nv h[] = {nv(":status", k200), nv("content-type", kGrpcType), nv("grpc-status", s->status),
                        nv("grpc-message", kInjected), nv("x-upstream-name", g_name)};
      nghttp2_submit_response(s->conn->session, s->id, h, 5, nullptr);
      logLine(s, "answered");
      return;
    }
    s->trailers = true;  // the request's framed message echoed, then grpc-status: 0
    s->out = s->body;
    s->out_len = s->out.size();
    submit(s, k200, kGrpcType);
    logLine(s, "answered");
    return;
  }
  const std::string* type = &kText;
  if (q.echo) {
    s->out = s->body;
    type = &kOctets;
  } else if (q.hasSize) {
    s->pattern = true;
    s->out_len = q.size;
    type = &kOctets;
  } else {
    s->out = code < 300 ? "ok\n" : s->status + "\n";
  }
  if (!s->pattern) s->out_len = s->out.size();
  submit(s, s->status, *type);
  logLine(s, "answered");
}

void onDelay(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Stream*>(arg);
  respond(s);
  flush(s->conn);
}

void requestDone(Stream* s) {
  std::string error;
  s->parsed = true;
  if (!parseQuery(s->path, s->query, error)) {
    s->status = "400";
    s->out = error + "\n";
    s->out_len = s->out.size();
    submit(s, s->status, kText);
    logLine(s, "bad");
    return;
  }
  const Query& q = s->query;
  uint64_t n = q.id.empty() ? 0 : ++g_seen[q.id];
  if (n > 0 && n <= q.refuse) {
    logLine(s, "refused");
    nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (n > 0 && n <= q.goaway) {
    logLine(s, "goaway");
    nghttp2_submit_goaway(s->conn->session, NGHTTP2_FLAG_NONE, s->id - 2 > 0 ? s->id - 2 : 0, NGHTTP2_NO_ERROR,
                          nullptr, 0);
    s->conn->closing = true;
    return;
  }
  // slow_first=N: the first N requests with this id are slow, the later
  // ones (a hedge, a retry) answer at once.
  bool slow = q.slowFirst == 0 || (n > 0 && n <= q.slowFirst);
  if (q.delayUs > 0 && slow) {
    s->timer = evtimer_new(g_base, onDelay, s);
    timeval tv{static_cast<time_t>(q.delayUs / 1000000), static_cast<suseconds_t>(q.delayUs % 1000000)};
    evtimer_add(s->timer, &tv);
    return;
  }
  respond(s);
}

Stream* streamOf(Conn* c, int32_t id) {
  auto it = c->streams.find(id);
  return it == c->streams.end() ? nullptr : it->second.get();
}

int onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  auto* c = static_cast<Conn*>(ud);
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto s = std::make_unique<Stream>();
    s->conn = c;
    s->id = f->hd.stream_id;
    c->streams[s->id] = std::move(s);
  }
  return 0;
}

int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nl, const uint8_t* value,
             size_t vl, uint8_t, void* ud) {
  Stream* s = streamOf(static_cast<Conn*>(ud), f->hd.stream_id);
  if (!s) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), nl), v(reinterpret_cast<const char*>(value), vl);
  if (n == ":path") s->path = v;
  if (n == ":method") s->method = v;
  if (n == "content-type" && v.substr(0, 16) == "application/grpc") s->grpc = true;
  if (g_log) {  // only the log wants these
    if (n == "x-envoy-attempt-count") s->attempt = v;
    if (n == "grpc-timeout") s->grpc_timeout = v;
    if (n == "x-timeout-budget") s->timeout_budget = v;
    if (n == "x-envoy-expected-rq-timeout-ms") s->expected_rq = v;
  }
  return 0;
}

int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* ud) {
  if (Stream* s = streamOf(static_cast<Conn*>(ud), id)) s->body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  Stream* s = streamOf(static_cast<Conn*>(ud), f->hd.stream_id);
  if (s && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    requestDone(s);
  }
  return 0;
}

int onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* ud) {
  auto* c = static_cast<Conn*>(ud);
  auto it = c->streams.find(id);
  if (it != c->streams.end()) {
    // The client reset a stream we had not answered (e.g. CANCEL after its timeout).
    if (!it->second->finished && error_code != NGHTTP2_NO_ERROR) logLine(it->second.get(), "reset");
    if (it->second->timer) event_free(it->second->timer);
    c->streams.erase(it);
  }
  return 0;
}

void closeConn(Conn* c) {
  for (auto& [id, s] : c->streams) {
    if (s->timer) event_free(s->timer);
  }
  nghttp2_session_del(c->session);
  bufferevent_free(c->bev);
  delete c;
}

void flush(Conn* c) {
  for (;;) {
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n <= 0) break;
    evbuffer_add(bufferevent_get_output(c->bev), data, static_cast<size_t>(n));
  }
}

void onWrite(bufferevent*, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  if ((c->closing || (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))) &&
      evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
    closeConn(c);
  }
}

void onRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  size_t len = evbuffer_get_length(in);
  unsigned char* p = evbuffer_pullup(in, -1);
  ssize_t n = nghttp2_session_mem_recv(c->session, p, len);
  if (n < 0) {
    closeConn(c);
    return;
  }
  evbuffer_drain(in, len);
  flush(c);
  onWrite(bev, c);
}

void onEvent(bufferevent*, short, void* arg) { closeConn(static_cast<Conn*>(arg)); }

void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void*) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* c = new Conn();
  c->seq = ++g_conn_seq;
  c->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    return cb;
  }();
  nghttp2_session_server_new(&c->session, cbs, c);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g_max_streams}};
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1);
  bufferevent_setcb(c->bev, onRead, onWrite, onEvent, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  flush(c);
}

void onSignal(evutil_socket_t, short, void*) { event_base_loopbreak(g_base); }

const char kUsage[] =
    "usage: mulligan-h2-upstream [--listen ADDR:PORT] [--port-file F] [--log F] [--max-streams N]\n"
    "                            [--name NAME] [--seed N]\n";

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::string listen = "127.0.0.1:0", port_file, log_path;
  static const option opts[] = {{"listen", required_argument, nullptr, 'l'},
                                {"port-file", required_argument, nullptr, 'p'},
                                {"log", required_argument, nullptr, 'g'},
                                {"max-streams", required_argument, nullptr, 'm'},
                                {"name", required_argument, nullptr, 'n'},
                                {"seed", required_argument, nullptr, 's'},
                                {"help", no_argument, nullptr, 'h'},
                                {nullptr, 0, nullptr, 0}};
  for (int o; (o = getopt_long(argc, argv, "", opts, nullptr)) != -1;) {
    switch (o) {
      case 'l': listen = optarg; break;
      case 'p': port_file = optarg; break;
      case 'g': log_path = optarg; break;
      case 'm': g_max_streams = static_cast<uint32_t>(strtoul(optarg, nullptr, 10)); break;
      case 'n': g_name = optarg; break;
      case 's': g_rng.seed(static_cast<unsigned>(strtoul(optarg, nullptr, 10))); break;
      case 'h': printf("%s", kUsage); return 0;
      default: fprintf(stderr, "%s", kUsage); return 2;
    }
  }
  size_t colon = listen.rfind(':');
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  if (colon == std::string::npos || inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sin.sin_addr) != 1) {
    fprintf(stderr, "mulligan-h2-upstream: bad --listen %s (want IPv4:PORT)\n", listen.c_str());
    return 2;
  }
  sin.sin_port = htons(static_cast<uint16_t>(atoi(listen.c_str() + colon + 1)));
  if (!log_path.empty() && !(g_log = fopen(log_path.c_str(), "a"))) {
    fprintf(stderr, "mulligan-h2-upstream: cannot open %s: %s\n", log_path.c_str(), strerror(errno));
    return 1;
  }
  g_base = event_base_new();
  evconnlistener* l = evconnlistener_new_bind(g_base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                              1024, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  if (!l) {
    fprintf(stderr, "mulligan-h2-upstream: cannot listen on %s: %s\n", listen.c_str(), strerror(errno));
    return 1;
  }
  socklen_t slen = sizeof sin;
  getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&sin), &slen);
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (!f) {
      fprintf(stderr, "mulligan-h2-upstream: cannot write %s: %s\n", tmp.c_str(), strerror(errno));
      return 1;
    }
    fprintf(f, "%d\n", ntohs(sin.sin_port));
    fclose(f);
    rename(tmp.c_str(), port_file.c_str());
  }
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip);
  printf("listening %s:%u\n", ip, ntohs(sin.sin_port));
  fflush(stdout);
  event* sigterm = evsignal_new(g_base, SIGTERM, onSignal, nullptr);
  event* sigint = evsignal_new(g_base, SIGINT, onSignal, nullptr);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  event_base_dispatch(g_base);
  event_free(sigterm);
  event_free(sigint);
  evconnlistener_free(l);
  return 0;
}
