// AccessLogWriter: the access log's destination, off the request path.
//
// Why a writer thread (one per process) and not a flush from each worker's
// loop: the normal destination is stdout, a pipe read by the container
// runtime. A worker that wrote to it itself would either block when the pipe
// is full (stalling every request on that worker) or need O_NONBLOCK on the
// descriptor — and O_NONBLOCK lives on the open file description, which
// stdout shares with whoever else holds that pipe end (the parent, a shell,
// other processes of the pod's init), whose blocking writes would then fail
// with EAGAIN. A thread of its own can wait on a slow destination without
// anyone noticing; the workers only copy finished lines into memory.
//
// The request path (append(), on a worker's thread):
//   * formats the line into that worker's scratch string (no heap
//     allocation once warm), then copies it into that worker's ring: a
//     single-producer single-consumer byte ring (atomics only, no lock, no
//     system call);
//   * when the ring has no room the line is DROPPED and counted (dropped(),
//     /metrics mulligan_access_log_dropped_total): a slow destination never
//     slows traffic;
//   * the only system call it can make is waking the writer thread, once
//     when it was idle (parked) with nothing to write, and once when a ring
//     passes half full while it naps — never once per line under load.
//
// The writer thread drains every ring in batches (one write per ring per
// wake-up, FLUSH_INTERVAL apart while there is traffic), whole lines only, so
// lines from different workers never interleave. It logs once when lines
// start being dropped and once when writing catches up again (with how many
// were lost), not a line per drop.
//
// How it writes without touching anyone else's descriptor flags:
//   * a pipe or FIFO: a private open file description of the same pipe
//     (/proc/self/fd/N reopened), made O_NONBLOCK; the original descriptor
//     keeps its flags. Where /proc is missing, plain blocking writes on the
//     original descriptor (still only this thread waits);
//   * a socket (systemd's journal stream): send(MSG_DONTWAIT);
//   * a regular file, a terminal, /dev/null: plain write(2).
// Waits are poll(2) with a short timeout, so stop() is never stuck behind a
// reader that stopped reading: at stop it writes what is left for up to
// kStopFlushUs, then gives up, saying how much was lost.
//
// Lifetime: create() before the workers start, start() the thread, workers
// append(); after every worker has joined, stop() flushes and joins. The
// destructor stops it if needed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/stream/access_log.h"

namespace mulligan::proxy {

class AccessLogWriter {
 public:
  struct Options {
    AccessLogFilter filter = AccessLogFilter::kNotable;
    int workers = 1;
    // Per worker; a power of two. 1 MiB holds ~3000 lines: a second of a
    // busy worker's lines while the writer thread (or the reader of its
    // pipe) is starved of CPU; at 50k lines/s half of it fills in ~10 ms,
    // which wakes the writer early. Pages are touched only as lines pass
    // through them: under `notable` most never are.
    size_t ring_bytes = 1024 * 1024;
    // How long the writer lets lines gather between batches while traffic flows.
    int64_t flush_interval_us = 20'000;
  };

  // `where`: "-" for stdout, else a file path opened for appending (created
  // 0666 & umask, as fopen "a" would). Null and `*error` set when it cannot
  // be opened.
  static std::unique_ptr<AccessLogWriter> open(const std::string& where, const Options& options, std::string* error);
  // Over a descriptor the caller keeps open (tests, and stdout).
  AccessLogWriter(int fd, bool owns_fd, const Options& options);
  ~AccessLogWriter();
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  void start();
  // Flushes what the rings hold (bounded by kStopFlushUs) and joins the
  // thread. Call after the workers have stopped appending. Idempotent.
  void stop();

  // --- worker side: `worker` is the caller's index, each index used by one
  // thread only ---
  // Whether `r` gets a line; call with the fields isNotable() reads filled.
  bool wants(const AccessRecord& r) const { return accessLogWants(options_.filter, r); }
  // Formats `r` and hands it to the writer; false when dropped (no room).
  bool append(int worker, const AccessRecord& r);

  // Any thread: lines dropped so far, all workers.
  uint64_t dropped() const;
  AccessLogFilter filter() const { return options_.filter; }

  static constexpr int64_t kStopFlushUs = 2'000'000;

 private:
  struct Ring;
  enum : int { kRunning = 0, kNapping = 1, kParked = 2 };  // writer's state_

  void run();
  // Writes what each ring holds; returns the bytes written. Waits on a full
  // destination until stop_deadline_us_ once stopping, else as long as it takes.
  size_t drainAll();
  bool anyPending() const;
  void wake();
  void noteDrops();

  Options options_;
  int fd_ = -1;          // what we write to (may be a private reopen of out_fd_)
  int out_fd_ = -1;      // the destination as given
  bool owns_out_fd_ = false;
  bool owns_fd_ = false;
  bool is_socket_ = false;
  bool nonblocking_ = false;  // fd_ is our own O_NONBLOCK description (or a socket)
  std::vector<std::unique_ptr<Ring>> rings_;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> state_{kRunning};
  std::atomic<bool> stop_{false};
  int64_t stop_deadline_us_ = 0;  // writer thread: monotonic, set when it sees stop_
  bool write_failed_logged_ = false;
  // Drop episodes (writer thread only).
  bool dropping_ = false;
  uint64_t dropped_seen_ = 0;
  uint64_t dropped_at_episode_start_ = 0;
  int64_t last_drop_us_ = 0;
  // Lines lost to a broken destination (writer thread only writes it).
  std::atomic<uint64_t> lost_{0};
};

}  // namespace mulligan::proxy
