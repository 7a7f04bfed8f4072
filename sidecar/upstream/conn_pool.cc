#include "sidecar/upstream/conn_pool.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cerrno>

#include "sidecar/event/event_loop.h"
#include "sidecar/net/socket_read.h"

namespace mulligan::proxy {

void ConnList::pushBack(UpstreamConn* c) {
  c->next_ = nullptr;
  c->prev_ = tail;
  if (tail) {
    tail->next_ = c;
  } else {
    head = c;
  }
  tail = c;
  ++size;
}

void ConnList::remove(UpstreamConn* c) {
  (c->prev_ ? c->prev_->next_ : head) = c->next_;
  (c->next_ ? c->next_->prev_ : tail) = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --size;
}

ConnPool::~ConnPool() {
  for (auto& [key, d] : dests_) {
    for (ConnList* list : {&d.idle, &d.draining}) {
      for (UpstreamConn* c = list->head; c;) {
        UpstreamConn* next = c->next_;
        delete c;
        c = next;
      }
      *list = ConnList{};
    }
  }
}

size_t ConnPool::openCount(const std::string& key) const {
  auto it = dests_.find(key);
  return it == dests_.end() ? 0 : it->second.open;
}

UpstreamConn* ConnPool::take(const std::string& key, Slot* slot) {
  auto it = dests_.find(key);
  if (it == dests_.end()) return nullptr;
  PoolDestination& d = it->second;
  // Most recently used first: it is the least likely to have been closed by
  // the upstream's own idle timeout.
  UpstreamConn* c = d.idle.tail;
  if (!c) return nullptr;
  d.idle.remove(c);
  --total_idle_;
  ++reused_;
  c->pooled_ = UpstreamConn::Pooled::kNo;  // its timer, if it fires now, does nothing
  c->user_ = nullptr;
  // The connection's claim goes with it: `open` does not change.
  slot->release();
  slot->dest_ = &d;
  return c;
}

bool ConnPool::reserve(const std::string& key, Slot* slot) {
  PoolDestination& d = dests_[key];
  if (limits_.max_connections_per_destination != 0 && d.open >= limits_.max_connections_per_destination) {
    return false;
  }
  slot->release();
  slot->dest_ = &d;
  ++d.open;
  return true;
}

void ConnPool::put(UpstreamConn* conn, Slot slot, int64_t idle_timeout_us) {
  PoolDestination* d = slot.dest_;
  if (!d || idle_timeout_us <= 0 || !conn->watching_ || idleFull(*d) ||
      evbuffer_get_length(bufferevent_get_input(conn->bev())) != 0) {
    delete conn;
    return;  // `slot` released here
  }
  slot.dest_ = nullptr;  // the idle connection keeps the claim
  conn->pool_ = this;
  conn->dest_ = d;
  conn->user_ = this;
  conn->pooled_ = UpstreamConn::Pooled::kIdle;
  d->idle.pushBack(conn);
  ++total_idle_;
  conn->resumeReading();  // normally still on: only a back-pressure pause left it off
  armExpiry(conn, idle_timeout_us);
}

void ConnPool::putDraining(UpstreamConn* conn, Slot slot, uint64_t remaining, int64_t idle_timeout_us) {
  PoolDestination* d = slot.dest_;
  if (!d || idle_timeout_us <= 0 || remaining == 0 || remaining > kMaxDrainBytes || !conn->watching_ ||
      evbuffer_get_length(bufferevent_get_output(conn->bev())) != 0) {
    delete conn;
    return;
  }
  slot.dest_ = nullptr;
  conn->pool_ = this;
  conn->dest_ = d;
  conn->user_ = this;
  conn->pooled_ = UpstreamConn::Pooled::kDraining;
  conn->drain_left_ = remaining;
  conn->idle_timeout_us_ = idle_timeout_us;
  d->draining.pushBack(conn);
  conn->resumeReading();  // a cancelled attempt paused it
  armExpiry(conn, kDrainTimeoutUs);
  // Bytes may be buffered already; discard them now (readiness only
  // reports new ones).
  if (evbuffer_get_length(bufferevent_get_input(conn->bev())) != 0) drainRead(conn);
}

void ConnPool::drop(UpstreamConn* c) {
  PoolDestination* d = c->dest_;
  if (c->pooled_ == UpstreamConn::Pooled::kIdle) {
    ++closed_while_idle_;
    --total_idle_;
    d->idle.remove(c);
  } else {
    d->draining.remove(c);
  }
  --d->open;
  delete c;
}

// Discards the rest of a walked-away response body; at its exact end the
// connection becomes idle, as if the response had been read in full.
void ConnPool::drainRead(UpstreamConn* c) {
  evbuffer* in = bufferevent_get_input(c->bev());
  size_t n = evbuffer_get_length(in);
  if (n > c->drain_left_) {  // bytes after the response: not HTTP we can reuse
    drop(c);
    return;
  }
  evbuffer_drain(in, n);
  c->drain_left_ -= n;
  if (c->drain_left_ != 0) return;
  ++drained_;
  PoolDestination* d = c->dest_;
  d->draining.remove(c);
  if (idleFull(*d)) {
    --d->open;
    delete c;
    return;
  }
  c->pooled_ = UpstreamConn::Pooled::kIdle;
  d->idle.pushBack(c);
  ++total_idle_;
  armExpiry(c, c->idle_timeout_us_);
}

void ConnPool::onConnReadable(UpstreamConn* c) {
  if (c->pooled_ == UpstreamConn::Pooled::kDraining) {
    net::ReadResult r = c->readSome();
    switch (r.status) {
      case net::ReadStatus::kData:
        drainRead(c);
        return;
      case net::ReadStatus::kAgain:
        return;
      case net::ReadStatus::kEof:
      case net::ReadStatus::kError:
        drop(c);
        return;
    }
    return;
  }
  // An idle HTTP/1 connection has nothing to say; bytes mean a protocol
  // error or an early close notice (e.g. a 408), EOF or an error that it
  // is gone. Either way it is not reusable. A readiness report with
  // nothing behind it leaves it be.
  if (c->somethingArrived()) drop(c);
}

// Write-side EOF or error on a pooled connection.
void ConnPool::onConnEvent(UpstreamConn* c, short) { drop(c); }

}  // namespace mulligan::proxy
