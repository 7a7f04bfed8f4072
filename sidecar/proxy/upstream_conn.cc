#include "sidecar/proxy/upstream_conn.h"

#include "sidecar/proxy/conn_pool.h"

namespace mulligan::proxy {

UpstreamConn::UpstreamConn(event_base* base, bufferevent* bev, User* user)
    : base_(base), bev_(bev), user_(user), expiry_(base, [this] {
        // Lent out when it fell due: the holder's business (the next put
        // sets a new expiry).
        if (pooled_ != Pooled::kNo) pool_->onExpired(this);
      }) {
  bufferevent_setcb(bev_, nullptr, &UpstreamConn::onBevWritten, &UpstreamConn::onBevEvent, this);
}

UpstreamConn::~UpstreamConn() {
  if (reading_) event_del(&read_ev_);
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
  expiry_.cancel();
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
