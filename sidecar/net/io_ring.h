// IoRing: moves a loop's hot-socket I/O into io_uring, so that a proxied
// keep-alive request costs almost no system calls of its own.
//
// Why: on this kind of machine a system call costs about 1 µs (page-table
// isolation without PCID: every entry flushes the TLB), and a proxied
// keep-alive request makes four of them — read the request, send it, read
// the response, send it — plus its share of epoll_wait.
//  - Receiving: each socket has one multishot receive armed in the kernel.
//    The bytes land in a buffer of the ring's pool as they arrive, and the
//    loop collects every socket's completions in one sweep, woken by the
//    ring's descriptor in the ordinary libevent loop (EV_READ on it).
//  - Sending: a writer asks to send at the end of the loop iteration
//    (sendSoon); then every queued writer's bytes go in one io_uring_enter.
//    The sends carry MSG_DONTWAIT, so each completes (or says how much the
//    socket took) within that call: no send is ever left in flight.
// Measured (scripts/bench-ab, the sidecar before and after, wrk -c32
// keep-alive): 0.14 system calls per proxied request instead of 4.1, CPU
// per request 22.8 -> 12.8 µs, requests/s 1.39x. Receives alone gave
// 0.91x CPU; the batched sends most of the rest.
//
// The ring is an option, not a requirement: create() returns null where the
// kernel has no io_uring (or one older than 6.0), or a seccomp profile
// (Docker's and containerd's default ones) refuses it; the sockets then
// read with epoll and write with send(2) as before.
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

#include "sidecar/net/send_batch.h"

struct io_uring;
struct io_uring_sqe;
struct io_uring_buf_ring;

namespace mulligan::net {

class IoRing final : public SendBatch {
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

  // Whoever sends on a socket through the ring's batch (net/send_batch.h).
  using Writer = SendBatch::Writer;

  // Buffers in the pool and the size of each: a read takes one buffer, so a
  // message larger than kBufferSize arrives as several reads. The pool is
  // touched round-robin; its size is what the ring adds to the RSS.
  static constexpr unsigned kBuffers = 128;
  static constexpr unsigned kBufferSize = 4096;

  // The ring for `base`'s loop, or null (and `why`) when io_uring cannot be
  // used here: then callers read with epoll.
  static std::unique_ptr<IoRing> create(event_base* base, std::string* why);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

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

  // Receives in flight (armed slots): for tests.
  size_t armedCount() const { return armed_; }

  // SendBatch: the writers' bytes go with the iteration's arms and cancels,
  // in one io_uring_enter.
  void sendSoon(Writer* writer) override;
  void forget(Writer* writer) override;

 private:
  struct SlotState {
    Reader* reader = nullptr;
    int fd = -1;
    uint32_t generation = 0;  // in user_data (31 bits): completions of an older arm are stale
    bool armed = false;
  };

  IoRing(event_base* base, io_uring* ring, io_uring_buf_ring* buffers, char* memory);
  static bool selfTest(io_uring* ring, io_uring_buf_ring* buffers, char* memory, std::string* why);
  static void onRingReadable(evutil_socket_t, short, void* arg);
  static void onSubmit(evutil_socket_t, short, void* arg);
  // A free submission entry (handing a full queue to the kernel first).
  io_uring_sqe* nextSqe();
  // io_uring_submit, logging (once) a refusal.
  void submitToKernel();
  // Cancels `user_data`'s request before returning (no submission entry needed).
  void syncCancel(uint64_t user_data);
  void arm(Slot slot);
  void cancel(uint64_t user_data);
  void submitSoon();
  void submit();
  void reap();
  // Handles one completion; false if it was stale.
  void complete(uint64_t user_data, int32_t res, uint32_t flags);
  // Prepares the queued writers' sends; false if none.
  bool prepareSends();
  // Hands each send's result to its writer (they completed in the submit).
  void finishSends();
  void giveBack(uint32_t flags);
  // Sends' user_data: this bit and the index in sending_ (receives use at
  // most 63 bits: a 31-bit generation, see userData).
  static constexpr uint64_t kSendTag = uint64_t{1} << 63;
  // Completions to ignore: cancels', and receives' stop() handed over (its
  // slot number is out of range).
  static constexpr uint64_t kIgnored = ~kSendTag;
  static uint64_t userData(Slot slot, uint32_t generation) {
    return (static_cast<uint64_t>(generation & 0x7fffffffu) << 32) | slot;
  }

  std::unique_ptr<io_uring> ring_;
  io_uring_buf_ring* buffers_;
  char* memory_;  // kBuffers * kBufferSize
  ::event ring_ev_;    // EV_READ|EV_PERSIST on the ring's fd: completions waiting
  ::event submit_ev_;  // activated when the first SQE of an iteration is queued
  bool submit_pending_ = false;
  bool submit_error_logged_ = false;
  std::vector<uint64_t> failed_arms_;  // arms that found no room: ended with -EBUSY by submit()
  std::vector<Writer*> writers_;  // asked at the next submit; null: forgotten
  std::vector<Writer*> sending_;  // submitted, result not handed over yet; by send id
  std::vector<SlotState> slots_;
  std::vector<Slot> free_;
  size_t armed_ = 0;
};

}  // namespace mulligan::net
