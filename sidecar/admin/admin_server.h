// The admin endpoint (DESIGN.md "Admin endpoint"): an evhttp server on its
// own thread and event loop, so it never competes with the data plane for a
// loop or a lock. It reads only what workers publish for it (atomics and the
// policy status, the per-service counters of stats/, the newest table).
// Routes: GET / (HTML), /ready, /healthz, /config, /explain, /stats,
// /metrics (HEAD too), POST /drain (loopback peers only); every other method
// on these routes is refused with 405 and an Allow header (a method token
// evhttp does not know: 501 from evhttp); other paths 404.
// Renderers live in stats_render.h, explain.h and pages.h.
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <memory>
#include <string>
#include <thread>

#include "sidecar/admin/stats_render.h"
#include "sidecar/policy/agent_refusal.h"
#include "sidecar/net/accept_gate.h"
#include "sidecar/worker/shared_state.h"

namespace mulligan::admin {

class AdminServer {
 public:
  explicit AdminServer(proxy::SharedState* shared) : shared_(shared), agent_refusal_(shared->config.shm) {}
  ~AdminServer();

  bool start(const std::string& addr, std::string* error);  // binds, then serves on a thread
  void stop();
  const std::string& address() const { return bound_; }

 private:
  static void onConnectionClosed(evhttp_connection* conn, void* arg);
  static void onRequest(evhttp_request* req, void* arg);
  void handle(evhttp_request* req);
  // takeSnapshot() plus what only the admin thread reads (the agent's refusal).
  StatsSnapshot snapshot();

  proxy::SharedState* shared_;
  policy::AgentRefusalReader agent_refusal_;  // admin thread only
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  // Keeps a descriptor in reserve for the admin's own accept, and pauses
  // with back-off instead of spinning when there is none (see AcceptGate):
  // the admin answers while the workers are out of descriptors.
  std::unique_ptr<net::AcceptGate> gate_;
  std::string bound_;
  int stop_fd_ = -1;
  ::event* stop_event_ = nullptr;
  std::thread thread_;
};

}  // namespace mulligan::admin
