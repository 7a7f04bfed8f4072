#include "sidecar/downstream/tunnel.h"

#include <event2/buffer.h>
#include <sys/socket.h>

namespace mulligan::proxy {

Tunnel::Tunnel(bufferevent* downstream, bufferevent* upstream, std::function<void(const Totals&)> done)
    : done_(std::move(done)) {
  a_.bev = downstream;
  b_.bev = upstream;
  for (Side* s : {&a_, &b_}) {
    bufferevent_setcb(s->bev, &Tunnel::onRead, &Tunnel::onWrite, &Tunnel::onEvent, this);
    bufferevent_setwatermark(s->bev, EV_WRITE, kLowWater, 0);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
  }
  // Bytes that arrived before the tunnel existed (e.g. the first bytes used
  // for protocol detection) go out now.
  relay(a_, b_);
  relay(b_, a_);
}

Tunnel::~Tunnel() {
  for (Side* s : {&a_, &b_}) {
    if (s->bev) bufferevent_free(s->bev);
  }
}

void Tunnel::relay(Side& from, Side& to) {
  evbuffer* in = bufferevent_get_input(from.bev);
  evbuffer* out = bufferevent_get_output(to.bev);
  size_t n = evbuffer_get_length(in);
  if (n == 0) return;
  // Moves the chains, no copy.
  evbuffer_add_buffer(out, in);
  (&from == &a_ ? totals_.downstream_to_upstream : totals_.upstream_to_downstream) += n;
  if (evbuffer_get_length(out) >= kHighWater) bufferevent_disable(from.bev, EV_READ);
}

void Tunnel::onRead(bufferevent* bev, void* arg) {
  auto* t = static_cast<Tunnel*>(arg);
  t->relay(t->sideOf(bev), t->peerOf(bev));
}

void Tunnel::onWrite(bufferevent* bev, void* arg) {
  auto* t = static_cast<Tunnel*>(arg);
  Side& s = t->sideOf(bev);
  Side& peer = t->peerOf(bev);
  // Drained below the low-water mark: let the peer read again.
  if (!peer.read_closed) bufferevent_enable(peer.bev, EV_READ);
  t->maybeShutWrite(s);
}

void Tunnel::onEvent(bufferevent* bev, short what, void* arg) {
  auto* t = static_cast<Tunnel*>(arg);
  Side& s = t->sideOf(bev);
  if (what & BEV_EVENT_EOF) {
    t->relay(s, t->peerOf(bev));
    s.read_closed = true;
    bufferevent_disable(bev, EV_READ);
    t->maybeShutWrite(t->peerOf(bev));
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) t->finish();
}

// Passes a half-close on: once the side's peer has sent EOF and everything it
// sent has been written, shut down our write half toward this side.
void Tunnel::maybeShutWrite(Side& s) {
  if (finished_) return;
  Side& peer = &s == &a_ ? b_ : a_;
  if (peer.read_closed && !s.write_shut && evbuffer_get_length(bufferevent_get_output(s.bev)) == 0) {
    ::shutdown(bufferevent_getfd(s.bev), SHUT_WR);
    s.write_shut = true;
  }
  if (a_.write_shut && b_.write_shut) finish();
}

void Tunnel::finish() {
  if (finished_) return;
  finished_ = true;
  for (Side* s : {&a_, &b_}) bufferevent_disable(s->bev, EV_READ | EV_WRITE);
  if (done_) done_(totals_);
}

}  // namespace mulligan::proxy
