#include "sidecar/admin/admin_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "sidecar/admin/explain.h"
#include "sidecar/admin/pages.h"
#include "sidecar/admin/stats_render.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"
#include "proto-free-config/render.h"

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

// /explain's "endpoints" (added here, beside explain.h's answer): the
// matched service's upstream and, when it is a name, its addresses now and
// which of them outlier detection has ejected ({"destination": null} when
// no service with an upstream matches).
void addExplainEndpoints(proxy::SharedState& shared, const pfc::Table* table, const ExplainQuery& q,
                         std::string* json) {
  std::string field = "\"endpoints\":{\"destination\":null}";
  if (table) {
    pfc::Match m = table->lookup(pfc::RequestKey{q.host, q.port, q.method, q.path, q.grpc});
    if (m.service != pfc::Match::kNone) {
      const pfc::ServiceEntry& svc = table->services()[m.service];
      std::string_view upstream = table->str(svc.upstream);
      if (!upstream.empty()) {
        StatsSnapshot s;
        std::vector<const stats::EndpointStats*> eps;
        for (const stats::WorkerStats* w : shared.worker_stats) eps.push_back(&w->endpoints);
        s.endpoints = stats::collectEndpoints(eps, event::monotonicNowUs());
        bool numeric = net::Address::parseNumeric(upstream).has_value();
        field = "\"endpoints\":{\"destination\":" + pfc::jsonQuote(upstream) +
                ",\"name\":" + (numeric ? "false" : "true") + ",\"addresses\":" +
                (numeric ? "[{\"address\":" + pfc::jsonQuote(upstream) + ",\"ejected\":false}]"
                         : endpointsJson(s, table->str(svc.name), upstream)) +
                "}";
      }
    }
  }
  size_t close = json->rfind('}');
  if (close == std::string::npos) return;
  json->insert(close, "," + field);
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
  // Every method evhttp knows reaches handle(), which answers 405 + Allow
  // for the wrong ones; a method token evhttp does not know gets its 501
  // (RFC 9110 §15.6.2). (evhttp 2.1 reads a CONNECT request's body until
  // the client closes, so a CONNECT client sees its 405 at once but the
  // connection stays open until it hangs up.)
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                        EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
  evutil_socket_t fd = socket(numeric->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, numeric->sa(), numeric->len) != 0 || listen(fd, 128) != 0) {
    *error = "cannot listen on admin " + addr + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  evhttp_bound_socket* handle = evhttp_accept_socket_with_handle(http_, fd);
  if (!handle) {
    *error = "cannot serve admin on " + addr;
    close(fd);
    return false;
  }
  gate_ = std::make_unique<net::AcceptGate>(base_, "admin", /*keep_spare=*/true);
  gate_->add(evhttp_bound_socket_get_listener(handle));
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
  evhttp_free(http_);  // (its connections' close callbacks still use the gate)
  gate_.reset();
  event_base_free(base_);
  base_ = nullptr;
  http_ = nullptr;
}

StatsSnapshot AdminServer::snapshot() {
  int64_t now = event::monotonicNowUs();
  StatsSnapshot s = takeSnapshot(*shared_, now);
  s.agent = agent_refusal_.read(now);
  return s;
}

void AdminServer::onRequest(evhttp_request* req, void* arg) { static_cast<AdminServer*>(arg)->handle(req); }

// Its descriptor is closed right after this (on the same thread): the gate
// takes its reserve back from the next loop iteration.
void AdminServer::onConnectionClosed(evhttp_connection*, void* arg) {
  static_cast<AdminServer*>(arg)->gate_->connectionClosed();
}

void AdminServer::handle(evhttp_request* req) {
  gate_->accepted();  // a connection got through: ends an out-of-descriptors episode
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), &AdminServer::onConnectionClosed, this);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  std::string path = uri && evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/";
  evhttp_cmd_type method = evhttp_request_get_command(req);
  // evhttp parses a CONNECT target as an authority; ours are paths.
  if (method == EVHTTP_REQ_CONNECT && evhttp_request_get_uri(req)) {
    path = evhttp_request_get_uri(req);
    path = path.substr(0, path.find('?'));
  }
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
    return reply(req, 200, "OK", "application/json", statsJson(snapshot()));
  }
  if (path == "/metrics") {
    if (!is_get) return methodNotAllowed("GET");
    return reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                 metricsText(snapshot()));
  }
  if (path == "/config") {
    if (!is_get) return methodNotAllowed("GET");
    return reply(req, 200, "OK", "application/json", configJson(snapshot()));
  }
  if (path == "/explain") {
    if (!is_get) return methodNotAllowed("GET");
    std::string error;
    auto query = parseExplainQuery(uri && evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "", &error);
    if (!query) return reply(req, 400, "Bad Request", "text/plain", "/explain: " + error + "\n");
    int64_t now = event::monotonicNowUs();
    auto table = shared_->policy_status.table();
    // The registry hands out a service's budget lock-free; asking for one
    // that no request used yet claims its slot early (the same slot the
    // first request would claim).
    auto budget = [&](std::string_view service, const pfc::BudgetPolicy& p) {
      return shared_->budgets.get(service).snapshot(now, p);
    };
    std::string json = explainJson(table.get(), *query, budget);
    addExplainEndpoints(*shared_, table.get(), *query, &json);
    return reply(req, 200, "OK", "application/json", json);
  }
  if (path == "/") {
    if (!is_get) return methodNotAllowed("GET");
    return reply(req, 200, "OK", "text/html; charset=utf-8", indexHtml(snapshot()));
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
  reply(req, 404, "Not Found", "text/plain", "not found; try / /ready /healthz /config /explain /stats /metrics\n");
}

}  // namespace mulligan::admin
