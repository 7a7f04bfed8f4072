#include "sidecar/upstream/upstream_conn.h"

#include "sidecar/upstream/conn_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace mulligan::proxy {

UpstreamConn::UpstreamConn(event_base* base, bufferevent* bev, User* user, net::IoRing* ring)
    : base_(base),
      bev_(bev),
      user_(user),
      ring_(ring),
      reader_(Http1Reader::Mode::kResponse, nullptr, kResponseLimits),
      expiry_(base, [this] {
        // Lent out when it fell due: the holder's business (the next put
        // sets a new expiry).
        if (pooled_ != Pooled::kNo) pool_->onExpired(this);
      }) {
  bufferevent_setcb(bev_, nullptr, &UpstreamConn::onBevWritten, &UpstreamConn::onBevEvent, this);
}

UpstreamConn::~UpstreamConn() {
  if (deleted_) *deleted_ = true;
  if (watching_) event_del(&read_ev_);  // added (epoll) or activated (a kick, with a ring)
  if (ring_ && watching_) ring_->detach(slot_);  // before the socket closes
  if (bev_) bufferevent_free(bev_);
}

void UpstreamConn::startWatching() {
  if (!watching_) {
    fd_ = bufferevent_getfd(bev_);
    // With a ring, read_ev_ is never added, only activated: a kick.
    event_assign(&read_ev_, base_, fd_, EV_READ | EV_PERSIST, &UpstreamConn::onRead, this);
    if (ring_) slot_ = ring_->attach(this, fd_);
    watching_ = true;
  }
  resumeReading();
}

net::ReadResult UpstreamConn::readForParse(const char** fresh) {
  if (!ring_) return net::readForParse(bev_, fd_, fresh);
  net::ReadResult r;
  if (ring_len_ != 0) {
    net::takeInput(bev_);
    evbuffer* in = bufferevent_get_input(bev_);
    r.status = net::ReadStatus::kData;
    r.bytes = ring_len_;
    if (evbuffer_get_length(in) == 0) {
      *fresh = ring_data_;
    } else {
      evbuffer_add(in, ring_data_, ring_len_);  // behind the older bytes
      *fresh = nullptr;
    }
    ring_len_ = 0;
    return r;
  }
  *fresh = nullptr;
  if (ring_kick_) {  // the input holds bytes the holder has not seen
    ring_kick_ = false;
    r.status = net::ReadStatus::kData;
    return r;
  }
  if (ring_end_ == 0) {
    r.status = net::ReadStatus::kEof;
  } else if (ring_end_ < 0) {
    r.status = net::ReadStatus::kError;
    r.error = -ring_end_;
  }
  return r;  // else kAgain
}

net::ReadResult UpstreamConn::readSome() {
  if (!ring_) return net::readSome(bev_);
  const char* fresh = nullptr;
  net::ReadResult r = readForParse(&fresh);
  if (fresh) evbuffer_add(bufferevent_get_input(bev_), fresh, r.bytes);
  return r;
}

bool UpstreamConn::somethingArrived() {
  if (ring_) return ring_len_ != 0 || ring_end_ != 1 || ring_kick_;
  char b;
  ssize_t n = ::recv(fd_, &b, 1, MSG_PEEK);
  return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

void UpstreamConn::onRecvData(const char* data, size_t len) {
  if (!reading_ || !user_) {
    // Handed over by pauseReading(), or nobody holds us: unread bytes.
    net::takeInput(bev_);
    evbuffer_add(bufferevent_get_input(bev_), data, len);
    return;
  }
  ring_data_ = data;
  ring_len_ = len;
  deliver();
}

void UpstreamConn::onRecvEnd(int result) {
  reading_ = false;  // the receive is over; resumeReading() arms a new one
  if (!user_) return;
  ring_end_ = result;
  deliver();
}

void UpstreamConn::deliver() {
  bool deleted = false;
  deleted_ = &deleted;
  user_->onConnReadable(this);
  if (deleted) return;
  deleted_ = nullptr;
  ring_kick_ = false;
  if (ring_len_ != 0) {  // the holder did not read them: keep them, in order
    net::takeInput(bev_);
    evbuffer_add(bufferevent_get_input(bev_), ring_data_, ring_len_);
    ring_len_ = 0;
  }
  ring_end_ = 1;
}

bufferevent* UpstreamConn::detach() {
  pauseReading();
  if (watching_) event_del(&read_ev_);  // a pending kick too
  if (ring_ && watching_) ring_->detach(slot_);
  watching_ = false;
  expiry_.cancel();
  bufferevent* b = bev_;
  bev_ = nullptr;
  if (b) bufferevent_setcb(b, nullptr, nullptr, nullptr, nullptr);
  return b;
}

void UpstreamConn::resumeRingReading() {
  ring_->start(slot_);
  // Bytes the receive had when it was paused wait in the input, and the
  // peer may send nothing more: the holder hears of them from the loop.
  if (evbuffer_get_length(bufferevent_get_input(bev_)) != 0) event_active(&read_ev_, EV_READ, 0);
}

// Trampolines: the User may delete `c`; nothing of it is touched afterwards.
void UpstreamConn::onRead(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<UpstreamConn*>(arg);
  if (c->ring_) {  // a kick (resumeRingReading)
    if (!c->reading_ || !c->user_ || evbuffer_get_length(bufferevent_get_input(c->bev_)) == 0) return;
    c->ring_kick_ = true;
    c->deliver();
    return;
  }
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
