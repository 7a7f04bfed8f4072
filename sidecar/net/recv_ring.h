// RecvRing: receives on a loop's hot sockets through io_uring, so that a
// proxied keep-alive request costs no read system call at all.
//
// Why: on this kind of machine a system call costs about 1 µs (page-table
// isolation without PCID: every entry flushes the TLB), and a proxied
// keep-alive request makes four of them — read the request, send it, read
// the response, send it. With epoll each read is a readiness report plus a
// recv. Here each socket has one multishot receive armed in the kernel: the
// bytes land in a buffer of the ring's pool as they arrive, and the loop
// collects the completions of every socket in one sweep, woken by the
// ring's descriptor in the ordinary libevent loop (EV_READ on it). Measured
// on the floor relay (bench/floor_relay.cc --io-uring): 1.25-1.45x the
// requests/s of epoll + recv, about 0.7x the CPU per request.
//
// The ring is an option, not a requirement: create() returns null where the
// kernel has no io_uring, or a seccomp profile (Docker's and containerd's
// default ones) refuses it, and the sockets then read with epoll as before.
//
// Threading: one ring per loop; every call on the loop's thread.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct io_uring;
struct io_uring_buf_ring;

namespace mulligan::net {

class RecvRing {
 public:
  // Whoever owns a socket that receives through the ring.
  class Reader {
   public:
    // `len` > 0 bytes arrived, in order; `data` is valid during the call only.
    virtual void onRecvData(const char* data, size_t len) = 0;
    // The receive ended by itself: `result` 0 is the peer's EOF, < 0 a
    // socket error (-errno). Never called after stop() or detach().
    virtual void onRecvEnd(int result) = 0;

   protected:
    ~Reader() = default;
  };

  // Buffers in the pool and the size of each: a read takes one buffer, so a
  // message larger than kBufferSize arrives as several reads. The pool is
  // touched round-robin; its size is what the ring adds to the RSS.
  static constexpr unsigned kBuffers = 128;
  static constexpr unsigned kBufferSize = 4096;

  // The ring for `base`'s loop, or null (and `why`) when io_uring cannot be
  // used here: then callers read with epoll.
  static std::unique_ptr<RecvRing> create(event_base* base, std::string* why);
  ~RecvRing();
  RecvRing(const RecvRing&) = delete;
  RecvRing& operator=(const RecvRing&) = delete;

  using Slot = uint32_t;
  // A slot for `reader`, receiving from `fd` once started. The fd must stay
  // open until detach().
  Slot attach(Reader* reader, int fd);
  // Starts receiving (idempotent). The receive is armed before the loop
  // next waits.
  void start(Slot slot);
  // Stops receiving, synchronously: what the kernel had already received
  // was handed to onRecvData before this returns, and nothing more is, so
  // the socket can be read another way from here on (epoll, a tunnel).
  void stop(Slot slot);
  bool receiving(Slot slot) const { return slots_[slot].armed; }
  // The reader is going away: no more calls to it, its bytes are dropped.
  // Call before closing the fd (the kernel's receive holds the socket open
  // until it is cancelled, which this does).
  void detach(Slot slot);

  // Receives in flight (armed slots): for tests and the admin page.
  size_t armedCount() const { return armed_; }

 private:
  struct SlotState {
    Reader* reader = nullptr;
    int fd = -1;
    uint32_t generation = 0;  // in user_data: completions of an older arm are stale
    bool armed = false;
  };

  RecvRing(event_base* base, io_uring* ring, io_uring_buf_ring* buffers, char* memory);
  static bool selfTest(io_uring* ring, io_uring_buf_ring* buffers, char* memory, std::string* why);
  static void onRingReadable(evutil_socket_t, short, void* arg);
  static void onSubmit(evutil_socket_t, short, void* arg);
  void arm(Slot slot);
  void cancel(uint64_t user_data);
  void submitSoon();
  void submit();
  void reap();
  // Handles one completion; false if it was stale.
  void complete(uint64_t user_data, int32_t res, uint32_t flags);
  void giveBack(uint32_t flags);
  static uint64_t userData(Slot slot, uint32_t generation) {
    return (static_cast<uint64_t>(generation) << 32) | slot;
  }

  event_base* base_;
  std::unique_ptr<io_uring> ring_;
  io_uring_buf_ring* buffers_;
  char* memory_;  // kBuffers * kBufferSize
  ::event ring_ev_;    // EV_READ|EV_PERSIST on the ring's fd: completions waiting
  ::event submit_ev_;  // activated when the first SQE of an iteration is queued
  bool submit_pending_ = false;
  std::vector<SlotState> slots_;
  std::vector<Slot> free_;
  size_t armed_ = 0;
};

}  // namespace mulligan::net
