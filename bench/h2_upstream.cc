// mulligan-bench-h2-upstream: the HTTP/2 (h2c, prior knowledge) and gRPC
// upstream of scripts/bench, with the failure injection the benchmark needs.
//
//   mulligan-bench-h2-upstream [--listen ADDR:PORT] [--name NAME] [--seed N]
//
// Prints "listening ADDR:PORT" on stdout (port 0 picks one). One thread,
// libevent + nghttp2. Every answer carries x-upstream-name: NAME.
//
// A request is answered when its stream ends (body included):
// - gRPC (content-type application/grpc...): 200, content-type
//   application/grpc, the request body echoed (it is already a framed gRPC
//   message), then the trailer grpc-status: 0. With ?grpc_status=CODE:P in the
//   path, P% of calls instead get a trailers-only answer (:status 200,
//   grpc-status CODE, grpc-message) — gRPC's way of failing (14 = UNAVAILABLE).
// - anything else: "ok\n" with 200, or with ?status=CODE:P, P% of requests get
//   CODE and "CODE\n". The same syntax as mulligan-test-upstream's status=.
//
// Not a general server: no TLS, no HTTP/1.1 upgrade, no flow-control tuning
// beyond nghttp2's defaults, bodies held in memory (they are small here).
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

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>

namespace {

std::string g_name = "h2-upstream";
std::minstd_rand g_rng{std::random_device{}()};

// "CODE" or "CODE:P" (P a percentage); returns CODE when the draw says so, else 0.
int drawCode(std::string_view spec) {
  if (spec.empty()) return 0;
  size_t colon = spec.find(':');
  int code = std::atoi(std::string(spec.substr(0, colon)).c_str());
  double pct = colon == std::string_view::npos ? 100.0 : std::atof(std::string(spec.substr(colon + 1)).c_str());
  std::uniform_real_distribution<double> u(0.0, 100.0);
  return u(g_rng) < pct ? code : 0;
}

// The value of query parameter KEY in PATH ("" when absent).
std::string_view queryParam(std::string_view path, std::string_view key) {
  size_t q = path.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = path.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

struct Stream {
  std::string path;
  bool grpc = false;
  std::string body;      // request body, then the response body
  size_t sent = 0;       // response body bytes handed to nghttp2
  std::string status;    // kept alive while nghttp2 holds pointers to it
  bool trailers = false; // send grpc-status: 0 after the body
};

class Session {
 public:
  Session(event_base* base, evutil_socket_t fd) {
    bev_ = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    nghttp2_session_server_new(&h2_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, iv, 1);
    bufferevent_setcb(bev_, onReadCb, onWriteCb, onEventCb, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    flush();
  }
  ~Session() {
    nghttp2_session_del(h2_);
    bufferevent_free(bev_);
  }

 private:
  // Trampolines: cast user_data, call one member.
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
      static_cast<Session*>(ud)->streams_[f->hd.stream_id] = std::make_unique<Stream>();
    return 0;
  }
  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    Stream* s = static_cast<Session*>(ud)->find(f->hd.stream_id);
    if (!s) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":path") s->path = v;
    if (n == "content-type" && v.substr(0, 16) == "application/grpc") s->grpc = true;
    return 0;
  }
  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* ud) {
    if (Stream* s = static_cast<Session*>(ud)->find(id)) s->body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int onFrame(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      static_cast<Session*>(ud)->respond(f->hd.stream_id);
    return 0;
  }
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t, void* ud) {
    static_cast<Session*>(ud)->streams_.erase(id);
    return 0;
  }
  static ssize_t readBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source*, void* ud) {
    return static_cast<Session*>(ud)->readBody(id, buf, len, flags);
  }
  static void onReadCb(bufferevent*, void* ud) { static_cast<Session*>(ud)->onRead(); }
  static void onWriteCb(bufferevent*, void* ud) { static_cast<Session*>(ud)->onWrite(); }
  // A Session deletes itself (and its bufferevent) from these callbacks, as
  // libevent's samples do: bufferevents are reference-counted, so freeing one
  // inside its own callback defers the real release until the callback returns.
  static void onEventCb(bufferevent*, short what, void* ud) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) delete static_cast<Session*>(ud);
  }

  Stream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  void respond(int32_t id) {
    Stream* s = find(id);
    if (!s) return;
    auto nv = [](const char* n, const std::string& v) {
      return nghttp2_nv{(uint8_t*)n, (uint8_t*)v.data(), std::strlen(n), v.size(), NGHTTP2_NV_FLAG_NONE};
    };
    static const std::string k200 = "200", kGrpcType = "application/grpc";
    if (s->grpc) {
      int code = drawCode(queryParam(s->path, "grpc_status"));
      if (code != 0) {  // trailers-only: one HEADERS frame with END_STREAM
        s->status = std::to_string(code);
        static const std::string msg = "injected failure";
        nghttp2_nv h[] = {nv(":status", k200), nv("content-type", kGrpcType), nv("grpc-status", s->status),
                          nv("grpc-message", msg), nv("x-upstream-name", g_name)};
        nghttp2_submit_response(h2_, id, h, 5, nullptr);
        return;
      }
      s->trailers = true;
      nghttp2_nv h[] = {nv(":status", k200), nv("content-type", kGrpcType), nv("x-upstream-name", g_name)};
      nghttp2_data_provider dp{};
      dp.read_callback = readBody;
      nghttp2_submit_response(h2_, id, h, 3, &dp);
      return;
    }
    int code = drawCode(queryParam(s->path, "status"));
    s->status = code ? std::to_string(code) : k200;
    s->body = code ? s->status + "\n" : "ok\n";
    static const std::string kText = "text/plain";
    nghttp2_nv h[] = {nv(":status", s->status), nv("content-type", kText), nv("x-upstream-name", g_name)};
    nghttp2_data_provider dp{};
    dp.read_callback = readBody;
    nghttp2_submit_response(h2_, id, h, 3, &dp);
  }

  ssize_t readBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags) {
    Stream* s = find(id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(len, s->body.size() - s->sent);
    std::memcpy(buf, s->body.data() + s->sent, n);
    s->sent += n;
    if (s->sent == s->body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        static const std::string zero = "0";
        nghttp2_nv t[] = {{(uint8_t*)"grpc-status", (uint8_t*)zero.data(), 11, 1, NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_trailer(h2_, id, t, 1);
      }
    }
    return static_cast<ssize_t>(n);
  }

  void onRead() {
    evbuffer* in = bufferevent_get_input(bev_);
    size_t len = evbuffer_get_length(in);
    unsigned char* data = evbuffer_pullup(in, -1);
    ssize_t r = nghttp2_session_mem_recv(h2_, data, len);
    if (r < 0) {
      delete this;
      return;
    }
    evbuffer_drain(in, len);
    flush();
  }
  void onWrite() {
    if (!nghttp2_session_want_read(h2_) && !nghttp2_session_want_write(h2_) &&
        evbuffer_get_length(bufferevent_get_output(bev_)) == 0)
      delete this;
  }
  // Hands everything nghttp2 has to send to the socket's output buffer.
  void flush() {
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(h2_, &data)) > 0) bufferevent_write(bev_, data, static_cast<size_t>(n));
  }

  bufferevent* bev_ = nullptr;
  nghttp2_session* h2_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
};

void onAccept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void*) {
  new Session(evconnlistener_get_base(l), fd);  // deletes itself when the connection ends
}

void onSignal(evutil_socket_t, short, void* base) { event_base_loopbreak(static_cast<event_base*>(base)); }

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  static const option opts[] = {{"listen", required_argument, nullptr, 'l'}, {"name", required_argument, nullptr, 'n'},
                                {"seed", required_argument, nullptr, 's'},   {"help", no_argument, nullptr, 'h'},
                                {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "", opts, nullptr)) != -1;) {
    switch (c) {
      case 'l': listen = optarg; break;
      case 'n': g_name = optarg; break;
      case 's': g_rng.seed(static_cast<unsigned>(std::strtoul(optarg, nullptr, 10))); break;
      case 'h':
        std::printf("usage: mulligan-bench-h2-upstream [--listen ADDR:PORT] [--name NAME] [--seed N]\n");
        return 0;
      default: return 2;
    }
  }
  size_t colon = listen.rfind(':');
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  if (colon == std::string::npos || inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sin.sin_addr) != 1) {
    std::fprintf(stderr, "mulligan-bench-h2-upstream: bad --listen %s (want IPv4:PORT)\n", listen.c_str());
    return 2;
  }
  sin.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
  signal(SIGPIPE, SIG_IGN);
  event_base* base = event_base_new();
  evconnlistener* l = evconnlistener_new_bind(base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                              reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  if (!l) {
    std::fprintf(stderr, "mulligan-bench-h2-upstream: cannot listen on %s: %s\n", listen.c_str(), std::strerror(errno));
    return 1;
  }
  socklen_t slen = sizeof sin;
  getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&sin), &slen);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof ip);
  std::printf("listening %s:%u\n", ip, ntohs(sin.sin_port));
  std::fflush(stdout);
  event* sigterm = evsignal_new(base, SIGTERM, onSignal, base);
  event* sigint = evsignal_new(base, SIGINT, onSignal, base);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  event_base_dispatch(base);
  event_free(sigterm);
  event_free(sigint);
  evconnlistener_free(l);
  event_base_free(base);
  return 0;
}
