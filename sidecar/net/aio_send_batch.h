// AioSendBatch: a loop's batched sends (net/send_batch.h) through Linux AIO,
// for where io_uring is not used: off (--io-uring off), missing, or refused
// by a seccomp profile. Kubernetes' RuntimeDefault profile — Docker's and
// containerd's default, which the restricted Pod Security Standard requires
// — refuses io_uring but allows io_setup/io_submit, so this is the path
// such pods run.
//
// How: the sends queued in one loop iteration become one io_submit of
// IOCB_CMD_PWRITE on their sockets. For a socket the kernel performs the
// write inside io_submit (a non-blocking sendmsg: it takes what fits and
// never waits) and posts its result to the context's completion ring, which
// the kernel maps into our memory: the results are read from there, with no
// second system call. create() checks on a socket pair that this kernel
// behaves so (a sandbox kernel that completes AIO later, gVisor's say, is
// not used), and submit() waits for a completion that is not there yet
// rather than leave a send in flight.
//
// Receives stay with epoll: one read per readiness.
//
// Threading: one batch per loop; every call on the loop's thread.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <linux/aio_abi.h>

#include <memory>
#include <string>
#include <vector>

#include "sidecar/net/send_batch.h"

namespace mulligan::net {

class AioSendBatch final : public SendBatch {
 public:
  // The batch for `base`'s loop, or null (and `why`) when Linux AIO cannot
  // be used here (no AIO in the kernel, a seccomp profile refusing it, the
  // node's AIO contexts over kMaxShareOfNode taken, completions that do not
  // come at once):
  // then each writer sends with its own send(2).
  static std::unique_ptr<AioSendBatch> create(event_base* base, std::string* why);
  ~AioSendBatch();
  AioSendBatch(const AioSendBatch&) = delete;
  AioSendBatch& operator=(const AioSendBatch&) = delete;

  void sendSoon(Writer* writer) override;
  void forget(Writer* writer) override;

  // Sends handed to the kernel and io_submit calls that carried them: for
  // tests and benchmarks.
  uint64_t sends() const { return sends_; }
  uint64_t submits() const { return submits_; }

  // The context's size (io_setup's nr_events), and so the most sends one
  // io_submit carries. Small on purpose: it counts against the node's
  // fs.aio-max-nr (65536 by default), which databases on the node need too
  // (MySQL's InnoDB will not start without AIO contexts). The kernel gives
  // the ring at least twice this many slots.
  static constexpr unsigned kEntries = 32;
  // AIO is left alone when the node's contexts already hold more than this
  // share of fs.aio-max-nr: sidecars in every pod must not crowd out the
  // applications that need AIO.
  static constexpr double kMaxShareOfNode = 0.5;
  // Whether the node leaves room for our context: `used` of `max` AIO
  // events taken (fs.aio-nr, fs.aio-max-nr; -1: unreadable, then yes: the
  // kernel's own limit still holds).
  static bool nodeHasRoom(long long used, long long max);

 private:
  AioSendBatch(event_base* base, aio_context_t ctx);
  static void onSubmit(evutil_socket_t, short, void* arg);
  void submit();
  // Submits ptrs_ (at most kEntries), handing each writer its result.
  void submitChunk();
  // Hands the completions in the ring to their writers; returns how many.
  size_t reap();
  // Send `id`'s result to its writer, unless forgotten or handed over.
  void handOver(uint64_t id, long result);

  aio_context_t ctx_;
  ::event submit_ev_;  // activated when the first writer of an iteration queues
  bool submit_pending_ = false;
  bool wait_logged_ = false;
  bool refusal_logged_ = false;
  std::vector<Writer*> writers_;  // asked at the next submit; null: forgotten
  std::vector<Writer*> sending_;  // by iocb index (aio_data); null: forgotten or done
  std::vector<iocb> iocbs_;
  std::vector<iocb*> ptrs_;
  uint64_t sends_ = 0;
  uint64_t submits_ = 0;
};

}  // namespace mulligan::net
