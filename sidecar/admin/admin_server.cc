#include "sidecar/admin/admin_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "sidecar/net/address.h"

namespace mulligan::admin {
namespace {

void reply(evhttp_request* req, int code, const char* reason, const char* content_type, const std::string& body) {
  evkeyvalq* h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", content_type);
  evhttp_add_header(h, "Cache-Control", "no-store");
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}

uint64_t sum(const std::vector<proxy::WorkerCounters*>& ws, proxy::Counter proxy::WorkerCounters::*field) {
  uint64_t total = 0;
  for (auto* w : ws) total += (w->*field).get();
  return total;
}

}  // namespace

AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(const std::string& addr, std::string* error) {
  auto numeric = net::Address::parseNumeric(addr, /*allow_port_zero=*/true);
  if (!numeric) {
    *error = "--admin \"" + addr + "\" is not a numeric ADDR:PORT";
    return false;
  }
  base_ = event_base_new();
  http_ = evhttp_new(base_);
  evhttp_set_gencb(http_, &AdminServer::onRequest, this);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evutil_socket_t fd = socket(numeric->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, numeric->sa(), numeric->len) != 0 || listen(fd, 128) != 0) {
    *error = "cannot listen on admin " + addr + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  if (!evhttp_accept_socket_with_handle(http_, fd)) {
    *error = "cannot serve admin on " + addr;
    close(fd);
    return false;
  }
  auto bound = net::localAddress(fd);
  bound_ = bound ? bound->toString() : addr;
  // stop() wakes the loop through an eventfd: libevent is used without its
  // cross-thread locking (which would tax every event on the data plane).
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  stop_event_ = event_new(
      base_, stop_fd_, EV_READ, [](evutil_socket_t, short, void* b) { event_base_loopexit(static_cast<event_base*>(b), nullptr); },
      base_);
  event_add(stop_event_, nullptr);
  thread_ = std::thread([this] { event_base_dispatch(base_); });
  return true;
}

void AdminServer::stop() {
  if (!base_) return;
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t n = ::write(stop_fd_, &one, sizeof one);
    (void)n;
    thread_.join();
  }
  if (stop_event_) event_free(stop_event_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  evhttp_free(http_);
  event_base_free(base_);
  base_ = nullptr;
  http_ = nullptr;
}

void AdminServer::onRequest(evhttp_request* req, void* arg) { static_cast<AdminServer*>(arg)->handle(req); }

void AdminServer::handle(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  std::string path = evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/";
  evhttp_cmd_type method = evhttp_request_get_command(req);
  bool is_get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
  auto methodNotAllowed = [&](const char* allow) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply(req, 405, "Method Not Allowed", "text/plain", "method not allowed\n");
  };

  if (path == "/healthz") {
    if (!is_get) return methodNotAllowed("GET");
    return reply(req, 200, "OK", "text/plain", "ok\n");
  }
  if (path == "/ready") {
    if (!is_get) return methodNotAllowed("GET");
    if (shared_->draining.load()) return reply(req, 503, "Service Unavailable", "text/plain", "draining\n");
    if (!shared_->policy_status.loaded()) {
      return reply(req, 503, "Service Unavailable", "text/plain", "no policy loaded (enforcing built-in defaults)\n");
    }
    return reply(req, 200, "OK", "text/plain", "ready\n");
  }
  if (path == "/stats") {
    if (!is_get) return methodNotAllowed("GET");
    const auto& ws = shared_->worker_counters;
    auto ps = shared_->policy_status.snapshot();
    std::string body = "{";
    auto field = [&](const char* name, uint64_t v, bool last = false) {
      body += "\"" + std::string(name) + "\":" + std::to_string(v) + (last ? "" : ",");
    };
    field("downstream_accepted", sum(ws, &proxy::WorkerCounters::downstream_accepted));
    field("downstream_active", sum(ws, &proxy::WorkerCounters::downstream_active));
    field("tunnels", sum(ws, &proxy::WorkerCounters::tunnels));
    field("requests", sum(ws, &proxy::WorkerCounters::requests));
    field("attempts", sum(ws, &proxy::WorkerCounters::attempts));
    field("retries", sum(ws, &proxy::WorkerCounters::retries));
    field("upstream_connects", sum(ws, &proxy::WorkerCounters::upstream_connects));
    field("upstream_connect_failures", sum(ws, &proxy::WorkerCounters::upstream_connect_failures));
    field("upstream_reused", sum(ws, &proxy::WorkerCounters::upstream_reused));
    field("upstream_overflow", sum(ws, &proxy::WorkerCounters::upstream_overflow));
    field("bad_requests", sum(ws, &proxy::WorkerCounters::bad_requests));
    body += "\"responses\":{";
    for (int c = 1; c <= 5; ++c) {
      uint64_t n = 0;
      for (auto* w : ws) n += w->responses_by_class[c].get();
      body += "\"" + std::to_string(c) + "xx\":" + std::to_string(n) + (c < 5 ? "," : "");
    }
    body += "},";
    field("policy_generation", ps.loaded_generation);
    field("policy_reloads", ps.reloads);
    field("policy_refused", ps.refused, true);
    body += "}\n";
    return reply(req, 200, "OK", "application/json", body);
  }
  if (path == "/metrics") {
    if (!is_get) return methodNotAllowed("GET");
    // Prometheus text exposition format 0.0.4.
    const auto& ws = shared_->worker_counters;
    auto ps = shared_->policy_status.snapshot();
    std::string body;
    auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
      body += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
              std::to_string(v) + "\n";
    };
    metric("mulligan_downstream_connections_total", "counter", "Connections accepted from the app.",
           sum(ws, &proxy::WorkerCounters::downstream_accepted));
    metric("mulligan_downstream_connections_active", "gauge", "Connections from the app open now.",
           sum(ws, &proxy::WorkerCounters::downstream_active));
    body += "# HELP mulligan_responses_total Responses sent to the app, by status class.\n"
            "# TYPE mulligan_responses_total counter\n";
    for (int c = 1; c <= 5; ++c) {
      uint64_t n = 0;
      for (auto* w : ws) n += w->responses_by_class[c].get();
      body += "mulligan_responses_total{code_class=\"" + std::to_string(c) + "xx\"} " + std::to_string(n) + "\n";
    }
    metric("mulligan_requests_total", "counter", "HTTP requests received.", sum(ws, &proxy::WorkerCounters::requests));
    metric("mulligan_upstream_attempts_total", "counter", "Attempts sent upstream (first tries and retries).",
           sum(ws, &proxy::WorkerCounters::attempts));
    metric("mulligan_retries_total", "counter", "Retries started.", sum(ws, &proxy::WorkerCounters::retries));
    metric("mulligan_upstream_connects_total", "counter", "New upstream TCP connections attempted.",
           sum(ws, &proxy::WorkerCounters::upstream_connects));
    metric("mulligan_upstream_connect_failures_total", "counter", "Upstream connects that failed or timed out.",
           sum(ws, &proxy::WorkerCounters::upstream_connect_failures));
    metric("mulligan_upstream_connections_reused_total", "counter", "Attempts sent on a pooled connection.",
           sum(ws, &proxy::WorkerCounters::upstream_reused));
    metric("mulligan_tunnels_total", "counter", "Connections relayed as opaque TCP, CONNECT or upgrades.",
           sum(ws, &proxy::WorkerCounters::tunnels));
    metric("mulligan_bad_requests_total", "counter", "Requests refused for framing or size (400, 431).",
           sum(ws, &proxy::WorkerCounters::bad_requests));
    metric("mulligan_policy_generation", "gauge", "Generation of the policy table enforced (0 = none).",
           ps.loaded_generation);
    metric("mulligan_policy_reloads_total", "counter", "Policy tables loaded, summed over workers.", ps.reloads);
    metric("mulligan_policy_refused_total", "counter", "Policy tables refused as untrustworthy.", ps.refused);
    return reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  }
  if (path == "/drain") {
    if (method != EVHTTP_REQ_POST) return methodNotAllowed("POST");
    evhttp_connection* conn = evhttp_request_get_connection(req);
    const sockaddr* peer = evhttp_connection_get_addr(conn);
    auto addr = peer ? net::Address::fromSockaddr(peer, peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                                                   : sizeof(sockaddr_in))
                     : std::nullopt;
    if (!addr || !addr->isLoopback()) return reply(req, 403, "Forbidden", "text/plain", "loopback only\n");
    reply(req, 202, "Accepted", "text/plain", "draining\n");
    ::kill(::getpid(), SIGUSR1);  // the main thread's sigwait() starts the graceful stop
    return;
  }
  reply(req, 404, "Not Found", "text/plain", "not found; try /ready /healthz /stats /metrics\n");
}

}  // namespace mulligan::admin
