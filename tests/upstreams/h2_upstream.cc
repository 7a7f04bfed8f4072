// mulligan-h2-upstream: a small scriptable HTTP/2 (h2c, prior knowledge)
// upstream for integration tests, built on nghttp2 — a real HTTP/2 peer, so
// that tests exercise REFUSED_STREAM, GOAWAY and stream limits as a server
// produces them, not hand-made frames.
//
// Query parameters (any request):
//   status=N      response status (default 200)
//   size=N        response body of N bytes (default: "ok\n")
//   echo=1        the response body is the request body
//   delay=MS      wait before answering
//   id=X          names the request in the log, and for refuse/goaway
//   refuse=N      the first N requests with this id are reset with REFUSED_STREAM
// A stream the client resets before the answer is logged with outcome "reset".
//   goaway=N      the first N requests with this id get a GOAWAY whose last
//                 stream id is below theirs (so the client sees them refused),
//                 then the connection closes
// Flags: --listen ADDR:PORT (port 0 picks one), --port-file F, --log F (JSON
// lines: id, path, method, stream, conn, attempt, grpc_timeout, body_bytes,
// outcome),
// --max-streams N (SETTINGS_MAX_CONCURRENT_STREAMS).
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

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

FILE* g_log = nullptr;
event_base* g_base = nullptr;
uint32_t g_max_streams = 100;
int g_conn_seq = 0;
std::map<std::string, int> g_seen;  // id -> requests seen

struct Conn;

struct Stream {
  Conn* conn;
  int32_t id;
  std::string method, path;
  std::string attempt;
  std::string grpc_timeout;  // as the sidecar rewrote it
  std::string body;
  std::string out;
  size_t out_pos = 0;
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

std::string param(const std::string& path, const std::string& key) {
  size_t q = path.find('?');
  if (q == std::string::npos) return "";
  std::string qs = path.substr(q + 1);
  size_t pos = 0;
  while (pos <= qs.size()) {
    size_t amp = qs.find('&', pos);
    std::string kv = qs.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) return eq == std::string::npos ? "1" : kv.substr(eq + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

void logLine(Stream* s, const char* outcome) {
  s->finished = true;
  if (!g_log) return;
  std::string id = param(s->path, "id");
  fprintf(g_log,
          "{\"id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"stream\":%d,\"conn\":%d,\"attempt\":\"%s\","
          "\"grpc_timeout\":\"%s\",\"body_bytes\":%zu,\"outcome\":\"%s\"}\n",
          id.c_str(), s->method.c_str(), s->path.c_str(), s->id, s->conn->seq, s->attempt.c_str(),
          s->grpc_timeout.c_str(), s->body.size(), outcome);
  fflush(g_log);
}

void flush(Conn* c);

ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src,
                 void*) {
  auto* s = static_cast<Stream*>(src->ptr);
  size_t n = std::min(len, s->out.size() - s->out_pos);
  memcpy(buf, s->out.data() + s->out_pos, n);
  s->out_pos += n;
  if (s->out_pos == s->out.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

void respond(Stream* s) {
  std::string status = param(s->path, "status");
  if (status.empty()) status = "200";
  std::string size = param(s->path, "size");
  if (param(s->path, "echo") == "1") {
    s->out = s->body;
  } else if (!size.empty()) {
    s->out.assign(strtoull(size.c_str(), nullptr, 10), 'x');
  } else {
    s->out = "ok\n";
  }
  std::string len = std::to_string(s->out.size());
  nghttp2_nv nv[] = {
      {(uint8_t*)":status", (uint8_t*)status.data(), 7, status.size(), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t*)"content-length", (uint8_t*)len.data(), 14, len.size(), NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = readBody;
  nghttp2_submit_response(s->conn->session, s->id, nv, 2, &prd);
  logLine(s, "answered");
}

void onDelay(evutil_socket_t, short, void* arg) {
  auto* s = static_cast<Stream*>(arg);
  respond(s);
  flush(s->conn);
}

void requestDone(Stream* s) {
  std::string id = param(s->path, "id");
  int n = id.empty() ? 0 : ++g_seen[id];
  int refuse = atoi(param(s->path, "refuse").c_str());
  int goaway = atoi(param(s->path, "goaway").c_str());
  if (n > 0 && n <= refuse) {
    logLine(s, "refused");
    nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (n > 0 && n <= goaway) {
    logLine(s, "goaway");
    nghttp2_submit_goaway(s->conn->session, NGHTTP2_FLAG_NONE, s->id - 2 > 0 ? s->id - 2 : 0, NGHTTP2_NO_ERROR,
                          nullptr, 0);
    s->conn->closing = true;
    return;
  }
  int delay = atoi(param(s->path, "delay").c_str());
  if (delay > 0) {
    s->timer = evtimer_new(g_base, onDelay, s);
    timeval tv{delay / 1000, (delay % 1000) * 1000};
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
  std::string n(reinterpret_cast<const char*>(name), nl), v(reinterpret_cast<const char*>(value), vl);
  if (n == ":path") s->path = v;
  if (n == ":method") s->method = v;
  if (n == "x-envoy-attempt-count") s->attempt = v;
  if (n == "grpc-timeout") s->grpc_timeout = v;
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

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::string listen = "127.0.0.1:0", port_file, log_path;
  static option opts[] = {{"listen", required_argument, nullptr, 'l'},
                          {"port-file", required_argument, nullptr, 'p'},
                          {"log", required_argument, nullptr, 'g'},
                          {"max-streams", required_argument, nullptr, 'm'},
                          {nullptr, 0, nullptr, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, nullptr)) != -1) {
    switch (o) {
      case 'l': listen = optarg; break;
      case 'p': port_file = optarg; break;
      case 'g': log_path = optarg; break;
      case 'm': g_max_streams = static_cast<uint32_t>(atoi(optarg)); break;
      default:
        fprintf(stderr, "usage: mulligan-h2-upstream [--listen ADDR:PORT] [--port-file F] [--log F] [--max-streams N]\n");
        return 2;
    }
  }
  if (!log_path.empty()) g_log = fopen(log_path.c_str(), "a");
  g_base = event_base_new();
  size_t colon = listen.rfind(':');
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(atoi(listen.c_str() + colon + 1)));
  inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sin.sin_addr);
  evconnlistener* l = evconnlistener_new_bind(g_base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                              1024, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  if (!l) {
    perror("listen");
    return 1;
  }
  sockaddr_in bound{};
  socklen_t bl = sizeof bound;
  getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&bound), &bl);
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    fprintf(f, "%d\n", ntohs(bound.sin_port));
    fclose(f);
    rename(tmp.c_str(), port_file.c_str());
  }
  event_base_dispatch(g_base);
  return 0;
}
