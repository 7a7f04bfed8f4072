// SendBatch: small sends queued during one loop iteration and handed to the
// kernel together at its end, in one system call, instead of one send(2)
// each. Two kernels' interfaces do it: io_uring (IoRing, where the kernel
// and the seccomp profile allow it) and Linux AIO (AioSendBatch, which
// Docker's and containerd's default seccomp profiles — Kubernetes'
// RuntimeDefault — allow where they refuse io_uring).
//
// Why: a system call costs about 1 µs on this kind of machine (page-table
// isolation without PCID flushes the TLB on every entry), and a proxied
// keep-alive HTTP/1.1 request makes two sends: the request upstream, the
// response downstream.
//
// The sends do not wait: each completes (or says how much the socket took)
// within the batch's system call, so no send is ever left in flight and a
// writer's bytes need to stay put only until wrote().
//
// Threading: one batch per loop; every call on the loop's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mulligan::net {

class SendBatch {
 public:
  // Whoever sends on a socket through a batch.
  class Writer {
   public:
    // At the end of the loop iteration: the bytes to send now (`*fd`,
    // `*data`, `*len`), which must stay put until wrote(); or false, when
    // the writer has sent its bytes another way meanwhile (or has none).
    virtual bool bytesToSend(int* fd, const char** data, size_t* len) = 0;
    // What the socket took of them (0..len), or -errno: the writer queues
    // the rest the slow way (its bufferevent).
    virtual void wrote(long result) = 0;
    // sendSoon() was called and bytesToSend() not yet.
    bool sendQueued() const { return send_state_ == SendState::kQueued; }

   protected:
    ~Writer() = default;

   private:
    friend class SendBatch;
    enum class SendState : uint8_t { kIdle, kQueued, kSending };
    SendState send_state_ = SendState::kIdle;
  };

  // Asks `writer` for its bytes at the end of this loop iteration and sends
  // them with every other writer's, in one system call. Idempotent until
  // the writer is asked.
  virtual void sendSoon(Writer* writer) = 0;
  // `writer` is going away (or sends another way now): forget it. Cheap
  // when it is not queued.
  virtual void forget(Writer* writer) = 0;

 protected:
  ~SendBatch() = default;
  // The implementations' view of a writer's state.
  using SendState = Writer::SendState;
  static SendState& stateOf(Writer* w) { return w->send_state_; }

  // Asks each writer queued since the last submit (`queued`: emptied, its
  // capacity kept) for its bytes, once: `take(writer, fd, data, len)` for
  // each that still has some, which must send them or hand the writer its
  // result. A writer asked may queue again meanwhile (one that sends
  // another way); it waits for the next submit.
  template <typename Take>
  static void askQueued(std::vector<Writer*>& queued, Take&& take) {
    std::vector<Writer*> now;
    now.swap(queued);
    for (Writer* w : now) {
      int fd;
      const char* data;
      size_t len;
      if (!w) continue;  // forgotten
      w->send_state_ = SendState::kIdle;  // asked: it may queue again from here on
      if (w->bytesToSend(&fd, &data, &len)) take(w, fd, data, len);
    }
    now.clear();
    if (queued.empty()) queued.swap(now);
  }
};

}  // namespace mulligan::net
