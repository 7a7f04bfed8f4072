#include "sidecar/net/aio_send_batch.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sidecar/core/logging.h"

namespace mulligan::net {
namespace {

// The completion ring the kernel maps at the context's address (fs/aio.c's
// struct aio_ring; its layout is ABI: libaio and fio read it the same way).
// The kernel writes events and `tail`; the reader consumes from `head` and
// stores it back.
struct AioRing {
  unsigned id;
  unsigned nr;  // entries in events[]
  unsigned head;
  unsigned tail;
  unsigned magic;
  unsigned compat_features;
  unsigned incompat_features;
  unsigned header_length;  // sizeof(AioRing)
  io_event events[];
};
constexpr unsigned kAioRingMagic = 0xa10a10a1;

// At most this many iocbs per io_submit: their completions always fit in
// the ring (at least twice kEntries slots), which is emptied after each.
constexpr size_t kChunk = AioSendBatch::kEntries;

// /proc/sys/fs/<name> as a number, or -1.
long long fsSysctl(const char* name) {
  std::string path = std::string("/proc/sys/fs/") + name;
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return -1;
  long long v = -1;
  if (std::fscanf(f, "%lld", &v) != 1) v = -1;
  std::fclose(f);
  return v;
}

AioRing* ringOf(aio_context_t ctx) { return reinterpret_cast<AioRing*>(ctx); }

long ioSetup(unsigned entries, aio_context_t* ctx) { return syscall(SYS_io_setup, entries, ctx); }
long ioDestroy(aio_context_t ctx) { return syscall(SYS_io_destroy, ctx); }
long ioSubmit(aio_context_t ctx, long n, iocb** iocbs) { return syscall(SYS_io_submit, ctx, n, iocbs); }
long ioGetEvents(aio_context_t ctx, long min, long max, io_event* events, timespec* timeout) {
  return syscall(SYS_io_getevents, ctx, min, max, events, timeout);
}

iocb writeIocb(int fd, const char* data, size_t len, uint64_t id) {
  iocb cb{};
  cb.aio_lio_opcode = IOCB_CMD_PWRITE;
  cb.aio_fildes = static_cast<uint32_t>(fd);
  cb.aio_buf = reinterpret_cast<uintptr_t>(data);
  cb.aio_nbytes = len;
  cb.aio_offset = 0;  // a socket has no position: anything else is ESPIPE
  cb.aio_data = id;
  return cb;
}

// Does this kernel complete a socket write inside io_submit, with the
// result in the mapped ring? One write on a socket pair says.
bool selfTest(aio_context_t ctx, std::string* why) {
  AioRing* ring = ringOf(ctx);
  if (ring->magic != kAioRingMagic || ring->header_length != sizeof(AioRing) || ring->nr == 0) {
    *why = "the kernel's AIO completion ring is not the one Linux maps";
    return false;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    *why = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  static const char kProbe[] = "mulligan";
  iocb cb = writeIocb(sv[0], kProbe, sizeof kProbe, 7);
  iocb* one = &cb;
  bool ok = false;
  if (ioSubmit(ctx, 1, &one) != 1) {
    *why = std::string("io_submit: ") + std::strerror(errno);
  } else {
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    if (tail == ring->head) {
      *why = "a socket write's completion did not come within io_submit";
      // Wait for it, so that nothing is in flight when the context goes.
      io_event ev;
      timespec second{1, 0};
      ioGetEvents(ctx, 1, 1, &ev, &second);
    } else {
      const io_event& ev = ring->events[ring->head];
      ok = ev.data == 7 && ev.res == static_cast<int64_t>(sizeof kProbe);
      if (!ok) *why = "a socket write through AIO did not report its bytes";
      __atomic_store_n(&ring->head, (ring->head + 1) % ring->nr, __ATOMIC_RELEASE);
    }
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return ok;
}

}  // namespace

std::unique_ptr<AioSendBatch> AioSendBatch::create(event_base* base, std::string* why) {
  long long used = fsSysctl("aio-nr");
  long long max = fsSysctl("aio-max-nr");
  if (!nodeHasRoom(used, max)) {
    *why = "the node's AIO contexts hold " + std::to_string(used) + " of fs.aio-max-nr " + std::to_string(max) +
           ": left to the applications";
    return nullptr;
  }
  aio_context_t ctx = 0;
  if (ioSetup(kEntries, &ctx) != 0) {
    // ENOSYS: no AIO in this kernel; EPERM: a seccomp profile; EAGAIN: the
    // system's fs.aio-max-nr is reached.
    *why = std::string("io_setup: ") + std::strerror(errno);
    return nullptr;
  }
  if (!selfTest(ctx, why)) {
    ioDestroy(ctx);
    return nullptr;
  }
  return std::unique_ptr<AioSendBatch>(new AioSendBatch(base, ctx));
}

bool AioSendBatch::nodeHasRoom(long long used, long long max) {
  if (used < 0 || max <= 0) return true;
  return static_cast<double>(used + kEntries) <= kMaxShareOfNode * static_cast<double>(max);
}

AioSendBatch::AioSendBatch(event_base* base, aio_context_t ctx) : ctx_(ctx) {
  event_assign(&submit_ev_, base, -1, 0, &AioSendBatch::onSubmit, this);
}

AioSendBatch::~AioSendBatch() {
  event_del(&submit_ev_);
  ioDestroy(ctx_);  // nothing is in flight: every send completed in its submit
}

void AioSendBatch::sendSoon(Writer* writer) {
  if (stateOf(writer) != SendState::kIdle) return;
  stateOf(writer) = SendState::kQueued;
  writers_.push_back(writer);
  if (submit_pending_) return;
  submit_pending_ = true;
  // Runs after the callbacks already active in this iteration: one
  // io_submit for every send they queue.
  event_active(&submit_ev_, EV_TIMEOUT, 0);
}

void AioSendBatch::forget(Writer* writer) {
  if (stateOf(writer) == SendState::kIdle) return;
  for (Writer*& w : stateOf(writer) == SendState::kQueued ? writers_ : sending_) {
    if (w == writer) w = nullptr;
  }
  stateOf(writer) = SendState::kIdle;
}

void AioSendBatch::onSubmit(evutil_socket_t, short, void* arg) { static_cast<AioSendBatch*>(arg)->submit(); }

void AioSendBatch::submit() {
  submit_pending_ = false;
  iocbs_.clear();
  sending_.clear();
  askQueued(writers_, [&](Writer* w, int fd, const char* data, size_t len) {
    iocbs_.push_back(writeIocb(fd, data, len, sending_.size()));
    stateOf(w) = SendState::kSending;
    sending_.push_back(w);
  });
  for (size_t first = 0; first < iocbs_.size(); first += kChunk) {
    // A writer gone since it was asked (forget() cleared its entry) sends
    // nothing: its bytes and descriptor may be gone too.
    ptrs_.clear();
    for (size_t i = first; i < std::min(first + kChunk, iocbs_.size()); ++i) {
      if (sending_[i]) ptrs_.push_back(&iocbs_[i]);
    }
    submitChunk();
  }
  sending_.clear();
}

void AioSendBatch::submitChunk() {
  size_t submitted = 0;
  for (size_t off = 0; off < ptrs_.size();) {
    long r = ioSubmit(ctx_, static_cast<long>(ptrs_.size() - off), ptrs_.data() + off);
    if (r > 0) {
      ++submits_;
      sends_ += static_cast<uint64_t>(r);
      submitted += static_cast<size_t>(r);
      off += static_cast<size_t>(r);
      continue;
    }
    // The iocb at `off` was refused as a whole (io_submit stops at the
    // first it cannot take). Its writer sends the slow way: EAGAIN (the
    // context is full) with every byte, another error with it to report.
    int err = r == 0 ? EAGAIN : errno;
    if (!refusal_logged_) {
      refusal_logged_ = true;
      LOG_WARN("io_submit refused a send (%s): that connection's bytes went the usual way; said once",
               std::strerror(err));
    }
    handOver(ptrs_[off]->aio_data, err == EAGAIN ? 0 : -err);
    ++off;
  }
  // Every submitted send has completed by now (a socket write does not
  // wait); hand each writer its result before anything else runs.
  size_t done = reap();
  for (int tries = 0; done < submitted && tries < 5; ++tries) {
    // Not seen here since create()'s test: wait (a second at a time) rather
    // than leave a send in flight whose bytes the writer may reuse.
    if (!wait_logged_) {
      wait_logged_ = true;
      LOG_WARN("AIO socket writes completed after io_submit returned: waiting for them; said once");
    }
    io_event ev[32];
    timespec second{1, 0};
    long got = ioGetEvents(ctx_, 1, static_cast<long>(std::min<size_t>(submitted - done, 32)), ev, &second);
    for (long i = 0; i < got; ++i) handOver(ev[i].data, static_cast<long>(ev[i].res));
    done += got > 0 ? static_cast<size_t>(got) : 0;
  }
  // Never seen: what is still out counts as failed (the writer's
  // bufferevent then meets the connection's state itself).
  for (const iocb* cb : ptrs_) handOver(cb->aio_data, -EIO);
}

void AioSendBatch::handOver(uint64_t id, long result) {
  if (id >= sending_.size() || !sending_[id]) return;  // forgotten, or handed over already
  Writer* w = sending_[id];
  sending_[id] = nullptr;
  stateOf(w) = SendState::kIdle;
  w->wrote(result);
}

size_t AioSendBatch::reap() {
  AioRing* ring = ringOf(ctx_);
  unsigned head = ring->head;  // ours: only this thread consumes
  unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
  size_t n = 0;
  while (head != tail) {
    const io_event& ev = ring->events[head];
    head = (head + 1) % ring->nr;
    ++n;
    handOver(ev.data, static_cast<long>(ev.res));
  }
  __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
  return n;
}

}  // namespace mulligan::net
