// UpstreamConn: one upstream HTTP/1 TCP connection, made once per TCP
// connection and kept for its whole life, whoever holds it: an Http1Attempt
// (connect, then one request and its response) or the worker's ConnPool
// (idle, or draining a walked-away body).
//
// It owns:
//  - the socket bufferevent, used for connect, writes and write-side events.
//    Its read side stays disabled; its callbacks are set once, to this
//    object, at construction.
//  - ONE EV_READ|EV_PERSIST event on the socket, added once when the
//    connection is up (startWatching) and left added across every hand-off
//    between the pool and an attempt. It is deleted only to pause reading
//    for back-pressure (pauseReading) and at close / detach. So lending a
//    pooled connection and taking it back adds or deletes no event and
//    changes no epoll interest (no epoll_ctl per request).
//  - the pool's expiry timer (an event::ExpiryTimer: a put pushes it back
//    without touching libevent) and list links, which only ConnPool touches.
//  - the response parser (an Http1Reader), kept with the connection rather
//    than made per request: only the holder that reads (an Http1Attempt)
//    feeds it, and it reset()s it when it takes the connection, so nothing
//    a cancelled or drained response left in it carries over.
//
// Every readiness and bufferevent event goes to the current holder, the
// User set with setUser(): a hand-off is a pointer store. The holder reads
// with readForParse / readSome into the bufferevent's input buffer, so that
// unread bytes stay where whoever holds the connection next (the pool's
// checks, a tunnel) looks for them.
//
// With the worker's io_uring receiver (net::IoRing) the read event is a
// multishot receive instead, armed as long as the read event would be
// added: the bytes have arrived when onConnReadable runs, and the holder's
// read takes them from here with no system call. Bytes the holder leaves
// go to the input buffer, as unread bytes do.
//
// Ownership: exactly one holder at a time; `delete` closes the socket. It is
// safe to delete a connection from inside one of its own callbacks (the
// trampolines touch nothing after calling the User), and libevent allows
// freeing a bufferevent or deleting an event from its own callback.
// Not thread-safe: a worker's connections live on its loop.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstdint>

#include "sidecar/codec/http1/http1_reader.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/io_ring.h"
#include "sidecar/net/socket_read.h"

namespace mulligan::proxy {

class ConnPool;
struct ConnList;
struct PoolDestination;

class UpstreamConn final : private net::IoRing::Reader {
 public:
  // Whoever holds the connection now. Callbacks run from the loop; the User
  // may delete the connection inside them.
  class User {
   public:
    // The socket is readable: bytes, EOF or an error are waiting.
    virtual void onConnReadable(UpstreamConn* c) = 0;
    // A bufferevent event: BEV_EVENT_CONNECTED (connect done), or EOF /
    // ERROR met by the write side.
    virtual void onConnEvent(UpstreamConn* c, short what) = 0;
    // The output buffer drained to its low watermark.
    virtual void onConnWritten(UpstreamConn* c) = 0;

   protected:
    ~User() = default;
  };

  // Takes `bev` (a socket bufferevent made with BEV_OPT_CLOSE_ON_FREE,
  // connecting or connected, read side disabled) and points its callbacks
  // here. `base` is the loop of `bev`; `ring` its io_uring receiver, if any.
  UpstreamConn(event_base* base, bufferevent* bev, User* user, net::IoRing* ring = nullptr);
  // Closes the socket (unless detach() took it).
  ~UpstreamConn();
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;

  // The limits of every upstream response head.
  static constexpr Http1Reader::Limits kResponseLimits{256 * 1024, 500};

  bufferevent* bev() const { return bev_; }
  // The connection's response parser (see the top). Its user calls
  // reset(itself) when it takes the connection, before feeding it.
  Http1Reader& reader() { return reader_; }
  // The socket (made by bufferevent_socket_connect, so known from
  // startWatching on; asked of the bufferevent before that).
  evutil_socket_t fd() const { return fd_ >= 0 ? fd_ : bufferevent_getfd(bev_); }
  void setUser(User* user) { user_ = user; }
  User* user() const { return user_; }

  // The socket is connected: starts watching it for reads. Once per
  // connection; later calls only resume a paused read event.
  void startWatching();
  // Back-pressure (or "nothing more to read for me"): stop / resume the
  // read event. Cheap no-ops when already in that state.
  // Pausing a ring receive waits for it to stop (a system call; bytes it
  // had received land in the input buffer).
  void pauseReading() {
    if (reading_) {
      reading_ = false;  // first: what stopping hands over is kept, not delivered
      if (ring_) {
        ring_->stop(slot_);
      } else {
        event_del(&read_ev_);
      }
    }
  }
  void resumeReading() {
    if (!reading_ && watching_) {
      reading_ = true;
      if (ring_) {
        resumeRingReading();
      } else {
        event_add(&read_ev_, nullptr);
      }
    }
  }
  bool reading() const { return reading_; }
  // The read a holder makes in onConnReadable (net::readForParse's
  // contract): `*fresh` points at bytes not in the input buffer, or is null
  // when they were appended behind older ones there.
  net::ReadResult readForParse(const char** fresh);
  // The same, always appended to the input buffer (net::readSome's).
  net::ReadResult readSome();
  // In onConnReadable of a connection nobody expects bytes on (idle in the
  // pool): true when bytes, EOF or an error did arrive (a readiness report
  // may have nothing behind it; a ring's report always has).
  bool somethingArrived();
  // A holder that walked away (a cancelled attempt) stops the bufferevent's
  // writes and write-side events; the next holder resumes them. Tracked
  // here so that the common case (never stopped) costs a flag test, not a
  // bufferevent_get_enabled (a lock) per request.
  void stopWriting() {
    if (!writes_stopped_) {
      bufferevent_disable(bev_, EV_WRITE);
      writes_stopped_ = true;
    }
  }
  void resumeWriting() {
    if (writes_stopped_) {
      bufferevent_enable(bev_, EV_WRITE);
      writes_stopped_ = false;
    }
  }

  // Hands the bufferevent over to a new owner (a tunnel): the read event and
  // the idle timer go, the bufferevent's callbacks are cleared, and this
  // object no longer closes it. Unread bytes stay in its input buffer. The
  // caller then deletes this object.
  bufferevent* detach();

 private:
  friend class ConnPool;
  friend struct ConnList;
  // Where the pool keeps it (ConnPool's bookkeeping, see conn_pool.h).
  enum class Pooled : uint8_t {
    kNo,        // lent out (or never pooled): the User is its holder
    kIdle,      // on its destination's idle list
    kDraining,  // on its destination's draining list
  };

  static void onRead(evutil_socket_t, short, void* arg);
  // net::IoRing::Reader
  void onRecvData(const char* data, size_t len) override;
  void onRecvEnd(int result) override;
  // Calls the holder with what the ring delivered, and keeps what it did
  // not take in the input buffer (if the holder did not delete us).
  void deliver();
  void resumeRingReading();
  static void onBevWritten(bufferevent*, void* arg);
  static void onBevEvent(bufferevent*, short what, void* arg);

  event_base* base_;
  bufferevent* bev_;
  evutil_socket_t fd_ = -1;  // bev_'s socket once connected (kept: bufferevent_getfd takes a lock)
  User* user_;
  ::event read_ev_;
  bool watching_ = false;  // read_ev_ assigned
  bool reading_ = false;   // read_ev_ added
  bool writes_stopped_ = false;  // stopWriting() disabled EV_WRITE
  net::IoRing* ring_;          // null: read_ev_
  net::IoRing::Slot slot_ = 0;  // ring_'s, from startWatching on
  // What the ring delivered, while the holder's onConnReadable runs.
  const char* ring_data_ = nullptr;
  size_t ring_len_ = 0;
  int ring_end_ = 1;          // 1: none; 0: EOF; < 0: -errno
  bool ring_kick_ = false;    // read_ev_ activated: the input holds unseen bytes
  bool* deleted_ = nullptr;   // set by the destructor while deliver() runs
  Http1Reader reader_;

  // --- ConnPool's, untouched by anyone else ---
  Pooled pooled_ = Pooled::kNo;
  ConnPool* pool_ = nullptr;
  PoolDestination* dest_ = nullptr;
  UpstreamConn* prev_ = nullptr;  // in dest_'s idle or draining list
  UpstreamConn* next_ = nullptr;
  event::ExpiryTimer expiry_;     // idle (or draining) until then; fires only while pooled
  uint64_t drain_left_ = 0;     // kDraining: body bytes still to discard
  int64_t idle_timeout_us_ = 0; // kDraining: the idle timeout once drained
};

}  // namespace mulligan::proxy
