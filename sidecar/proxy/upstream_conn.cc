#include "sidecar/proxy/upstream_conn.h"

namespace mulligan::proxy {

UpstreamConn::UpstreamConn(event_base* base, bufferevent* bev, User* user)
    : base_(base), bev_(bev), user_(user) {
  bufferevent_setcb(bev_, nullptr, &UpstreamConn::onBevWritten, &UpstreamConn::onBevEvent, this);
}

UpstreamConn::~UpstreamConn() {
  if (reading_) event_del(&read_ev_);
  if (timer_assigned_) event_del(&idle_timer_);
  if (bev_) bufferevent_free(bev_);
}

void UpstreamConn::startWatching() {
  if (!watching_) {
    fd_ = bufferevent_getfd(bev_);
    event_assign(&read_ev_, base_, fd_, EV_READ | EV_PERSIST, &UpstreamConn::onRead, this);
    watching_ = true;
  }
  resumeReading();
}

bufferevent* UpstreamConn::detach() {
  pauseReading();
  watching_ = false;
  if (timer_assigned_) {
    event_del(&idle_timer_);
    timer_assigned_ = false;
    timer_pending_ = false;
  }
  bufferevent* b = bev_;
  bev_ = nullptr;
  if (b) bufferevent_setcb(b, nullptr, nullptr, nullptr, nullptr);
  return b;
}

// Trampolines: the User may delete `c`; nothing of it is touched afterwards.
void UpstreamConn::onRead(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<UpstreamConn*>(arg);
  if (!c->user_) {
    c->pauseReading();  // nobody to read for; level-triggered would spin
    return;
  }
  c->user_->onConnReadable(c);
}

void UpstreamConn::onBevWritten(bufferevent*, void* arg) {
  auto* c = static_cast<UpstreamConn*>(arg);
  if (c->user_) c->user_->onConnWritten(c);
}

void UpstreamConn::onBevEvent(bufferevent*, short what, void* arg) {
  auto* c = static_cast<UpstreamConn*>(arg);
  if (c->user_) {
    c->user_->onConnEvent(c, what);
  } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    bufferevent_disable(c->bev_, EV_WRITE);  // no holder: do not report it again
  }
}

}  // namespace mulligan::proxy
