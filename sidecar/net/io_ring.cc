#include "sidecar/net/io_ring.h"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sidecar/core/logging.h"

namespace mulligan::net {
namespace {

constexpr unsigned kQueueDepth = 1024;  // SQEs: arms, cancels and sends of one loop iteration
constexpr uint16_t kBufferGroup = 0;

}  // namespace

std::unique_ptr<IoRing> IoRing::create(event_base* base, std::string* why) {
  auto ring = std::make_unique<io_uring>();
  io_uring_params params{};
  // Completions run when the loop's thread enters the kernel anyway (no
  // interrupt to post them). Not SINGLE_ISSUER: the ring is made on the
  // thread that builds the worker, and used by the worker's own thread.
  params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
  // Room for a loop iteration's completions (every socket's receives, a
  // full batch of sends) without spilling into the kernel's overflow list.
  params.cq_entries = 8 * kQueueDepth;
  int rc = io_uring_queue_init_params(kQueueDepth, ring.get(), &params);
  if (rc < 0) {
    *why = std::string("io_uring_setup: ") + std::strerror(-rc);
    return nullptr;
  }
  // Multishot receives with provided buffers need Linux 6.0.
  io_uring_probe* probe = io_uring_get_probe_ring(ring.get());
  bool recv_ok = probe && io_uring_opcode_supported(probe, IORING_OP_RECV);
  if (probe) io_uring_free_probe(probe);
  void* ring_memory = nullptr;
  char* memory = static_cast<char*>(std::malloc(static_cast<size_t>(kBuffers) * kBufferSize));
  if (!recv_ok || !memory || posix_memalign(&ring_memory, 4096, kBuffers * sizeof(io_uring_buf)) != 0) {
    *why = recv_ok ? "out of memory" : "the kernel's io_uring has no recv";
    std::free(memory);
    io_uring_queue_exit(ring.get());
    return nullptr;
  }
  auto* buffers = static_cast<io_uring_buf_ring*>(ring_memory);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buffers);
  reg.ring_entries = kBuffers;
  reg.bgid = kBufferGroup;
  rc = io_uring_register_buf_ring(ring.get(), &reg, 0);
  if (rc < 0) {
    *why = std::string("io_uring provided buffers: ") + std::strerror(-rc);
    std::free(memory);
    std::free(ring_memory);
    io_uring_queue_exit(ring.get());
    return nullptr;
  }
  io_uring_buf_ring_init(buffers);
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(buffers, memory + static_cast<size_t>(i) * kBufferSize, kBufferSize,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBuffers), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buffers, kBuffers);
  if (!selfTest(ring.get(), buffers, memory, why)) {
    std::free(memory);
    std::free(ring_memory);
    io_uring_queue_exit(ring.get());
    return nullptr;
  }
  return std::unique_ptr<IoRing>(new IoRing(base, ring.release(), buffers, memory));
}

bool IoRing::selfTest(io_uring* ring, io_uring_buf_ring* buffers, char* memory, std::string* why) {
  // What the ring relies on, tried on a socket pair: a multishot receive
  // into a provided buffer that stays armed (Linux 6.0), and a synchronous
  // cancel of it. An older kernel fails one of them; then epoll it is.
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    *why = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  constexpr uint64_t kProbe = 1;
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, kProbe);
  bool ok = ::write(sv[1], "x", 1) == 1 && io_uring_submit_and_wait(ring, 1) >= 0;
  io_uring_cqe* cqe = nullptr;
  if (ok && io_uring_peek_cqe(ring, &cqe) == 0 && cqe) {
    ok = cqe->user_data == kProbe && cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) &&
         (cqe->flags & IORING_CQE_F_MORE);
    if (cqe->flags & IORING_CQE_F_BUFFER) {  // back into the pool
      uint32_t id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      io_uring_buf_ring_add(buffers, memory + static_cast<size_t>(id) * kBufferSize, kBufferSize,
                            static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBuffers), 0);
      io_uring_buf_ring_advance(buffers, 1);
    }
    io_uring_cqe_seen(ring, cqe);
  } else {
    ok = false;
  }
  if (ok) {
    io_uring_sync_cancel_reg reg{};
    reg.addr = kProbe;
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    ok = io_uring_register_sync_cancel(ring, &reg) == 0;
  }
  // Whatever is left (the cancelled receive's last completion) goes.
  unsigned head, seen = 0;
  io_uring_for_each_cqe(ring, head, cqe) ++seen;
  io_uring_cq_advance(ring, seen);
  ::close(sv[0]);
  ::close(sv[1]);
  if (!ok) *why = "the kernel's io_uring lacks multishot receives or synchronous cancel (Linux 6.0+)";
  return ok;
}

IoRing::IoRing(event_base* base, io_uring* ring, io_uring_buf_ring* buffers, char* memory)
    : ring_(ring), buffers_(buffers), memory_(memory) {
  event_assign(&ring_ev_, base, ring_->ring_fd, EV_READ | EV_PERSIST, &IoRing::onRingReadable, this);
  event_add(&ring_ev_, nullptr);
  event_assign(&submit_ev_, base, -1, 0, &IoRing::onSubmit, this);
}

IoRing::~IoRing() {
  event_del(&ring_ev_);
  event_del(&submit_ev_);
  // Tearing the ring down cancels whatever is still armed.
  io_uring_queue_exit(ring_.get());
  std::free(buffers_);
  std::free(memory_);
}

IoRing::Slot IoRing::attach(Reader* reader, int fd) {
  Slot slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<Slot>(slots_.size());
    slots_.emplace_back();
  }
  SlotState& s = slots_[slot];
  s.reader = reader;
  s.fd = fd;
  s.armed = false;
  ++s.generation;
  return slot;
}

void IoRing::start(Slot slot) {
  SlotState& s = slots_[slot];
  if (s.armed) return;
  s.armed = true;
  ++armed_;
  arm(slot);
}

io_uring_sqe* IoRing::nextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (!sqe) {  // a full queue: hand it to the kernel, then there is room
    submitToKernel();
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;  // null only while the kernel refuses submissions
}

void IoRing::submitToKernel() {
  int rc = io_uring_submit(ring_.get());
  if (rc < 0 && !submit_error_logged_) {
    // Transient (-EAGAIN: kernel memory, -EBUSY: completions backed up):
    // what is queued goes with the next submission.
    LOG_WARN("io_uring submit: %s (retried with the next submission)", std::strerror(-rc));
    submit_error_logged_ = true;
  }
}

void IoRing::arm(Slot slot) {
  SlotState& s = slots_[slot];
  io_uring_sqe* sqe = nextSqe();
  if (!sqe) {
    // No room, the kernel refusing: the receive ends with an error, from
    // the loop (not inside the reader's own start()), and the reader
    // closes its connection as for any socket error.
    failed_arms_.push_back(userData(slot, s.generation));
    submitSoon();
    return;
  }
  io_uring_prep_recv_multishot(sqe, s.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, userData(slot, s.generation));
  submitSoon();
}

void IoRing::cancel(uint64_t user_data) {
  io_uring_sqe* sqe = nextSqe();
  if (!sqe) {  // no room: cancel at once (the receive holds its socket open)
    syncCancel(user_data);
    return;
  }
  io_uring_prep_cancel64(sqe, user_data, 0);
  io_uring_sqe_set_data64(sqe, kIgnored);  // the cancel's own completion: ignored
  submitSoon();
}

void IoRing::stop(Slot slot) {
  SlotState& s = slots_[slot];
  if (!s.armed) return;
  s.armed = false;
  --armed_;
  uint64_t key = userData(slot, s.generation);
  ++s.generation;  // whatever completes for the old arm from now on is stale
  // The arm may still sit in the submission queue: hand it over, so that
  // cancelling finds it (a receive that never ran is harmless to cancel).
  // Not submit(): no writer is asked for bytes from inside a stop.
  if (io_uring_sq_ready(ring_.get()) != 0) submitToKernel();
  syncCancel(key);
  // Its completions are all posted now. Hand over the bytes among them, in
  // order, and mark them so that reap() only gives their buffers back.
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    if (cqe->user_data != key) continue;
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER) && s.reader) {
      uint32_t id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      s.reader->onRecvData(memory_ + static_cast<size_t>(id) * kBufferSize, static_cast<size_t>(cqe->res));
    }
    cqe->user_data = kIgnored;  // the CQ is shared memory the kernel no longer reads
  }
}

void IoRing::syncCancel(uint64_t user_data) {
  io_uring_sync_cancel_reg reg{};
  reg.addr = user_data;
  reg.fd = -1;
  reg.timeout.tv_sec = -1;
  reg.timeout.tv_nsec = -1;
  io_uring_register_sync_cancel(ring_.get(), &reg);  // -ENOENT: it had ended already
}

void IoRing::detach(Slot slot) {
  SlotState& s = slots_[slot];
  if (s.armed) {
    s.armed = false;
    --armed_;
    cancel(userData(slot, s.generation));
  }
  ++s.generation;
  s.reader = nullptr;
  s.fd = -1;
  free_.push_back(slot);
}

void IoRing::submitSoon() {
  if (submit_pending_) return;
  submit_pending_ = true;
  // Runs after the callbacks already active in this iteration: one
  // io_uring_enter for all the arms and cancels they queue.
  event_active(&submit_ev_, EV_TIMEOUT, 0);
}

void IoRing::onSubmit(evutil_socket_t, short, void* arg) { static_cast<IoRing*>(arg)->submit(); }

void IoRing::submit() {
  submit_pending_ = false;
  bool sends = prepareSends();
  if (io_uring_sq_ready(ring_.get()) != 0) submitToKernel();
  if (sends) finishSends();
  if (!failed_arms_.empty()) {
    std::vector<uint64_t> failed;
    failed.swap(failed_arms_);
    for (uint64_t key : failed) complete(key, -EBUSY, 0);  // stale keys are ignored there
  }
}

void IoRing::sendSoon(Writer* writer) {
  if (stateOf(writer) != SendState::kIdle) return;
  stateOf(writer) = SendState::kQueued;
  writers_.push_back(writer);
  submitSoon();
}

void IoRing::forget(Writer* writer) {
  if (stateOf(writer) == SendState::kIdle) return;
  for (Writer*& w : stateOf(writer) == SendState::kQueued ? writers_ : sending_) {
    if (w == writer) w = nullptr;
  }
  stateOf(writer) = SendState::kIdle;
}

bool IoRing::prepareSends() {
  if (writers_.empty()) return false;
  bool any = false;
  askQueued(writers_, [&](Writer* w, int fd, const char* data, size_t len) {
    io_uring_sqe* sqe = nextSqe();  // (the sends of a full queue complete in its submit)
    if (!sqe) {  // no room, the kernel refusing: the writer's slow way (its bufferevent)
      w->wrote(0);
      return;
    }
    io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, kSendTag | sending_.size());
    stateOf(w) = SendState::kSending;
    sending_.push_back(w);
    any = true;
  });
  return any;
}

void IoRing::finishSends() {
  // MSG_DONTWAIT sends complete inside io_uring_enter: their completions
  // are all in the queue now. Hand each to its writer at once (before any
  // receive is handled: a writer must learn what went before it writes
  // more), and mark it so that reap() skips it. Completions the CQ had no
  // room for wait in the kernel's overflow list: fetch them first.
  if (io_uring_cq_has_overflow(ring_.get())) io_uring_get_events(ring_.get());
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    if (!(cqe->user_data & kSendTag)) continue;
    size_t id = static_cast<size_t>(cqe->user_data & ~kSendTag);
    cqe->user_data = kIgnored;
    if (id < sending_.size() && sending_[id]) {
      Writer* w = sending_[id];
      sending_[id] = nullptr;
      stateOf(w) = SendState::kIdle;
      w->wrote(cqe->res);
    }
  }
  for (Writer* w : sending_) {
    if (w) return;  // one still out (never seen): reap() hands it over
  }
  sending_.clear();
}

void IoRing::onRingReadable(evutil_socket_t, short, void* arg) { static_cast<IoRing*>(arg)->reap(); }

void IoRing::reap() {
  // Only the completions already posted: handling them makes more (our
  // sends wake the peers, whose answers post while we are in the kernel),
  // and a sweep that chased those would never give the rest of the loop —
  // timers, deferred deletions, other sockets — its turn. The ring's fd
  // stays readable; the next iteration takes the next batch.
  unsigned batch = io_uring_cq_ready(ring_.get());
  // One completion at a time, marked seen before it is handled: a handler
  // may stop() another slot, which walks the completions still queued.
  io_uring_cqe* cqe;
  for (; batch > 0 && __io_uring_peek_cqe(ring_.get(), &cqe, nullptr) == 0 && cqe; --batch) {
    uint64_t user_data = cqe->user_data;
    int32_t res = cqe->res;
    uint32_t flags = cqe->flags;
    io_uring_cqe_seen(ring_.get(), cqe);
    complete(user_data, res, flags);
  }
  if (io_uring_sq_ready(ring_.get()) != 0) submit();  // re-arms, before the loop waits
}

void IoRing::giveBack(uint32_t flags) {
  if (!(flags & IORING_CQE_F_BUFFER)) return;
  uint32_t id = flags >> IORING_CQE_BUFFER_SHIFT;
  io_uring_buf_ring_add(buffers_, memory_ + static_cast<size_t>(id) * kBufferSize, kBufferSize,
                        static_cast<unsigned short>(id), io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(buffers_, 1);
}

void IoRing::complete(uint64_t user_data, int32_t res, uint32_t flags) {
  if (user_data & kSendTag) {  // only if finishSends() missed it
    size_t id = static_cast<size_t>(user_data & ~kSendTag);
    if (id < sending_.size() && sending_[id]) {
      Writer* w = sending_[id];
      sending_[id] = nullptr;
      stateOf(w) = SendState::kIdle;
      w->wrote(res);
    }
    return;
  }
  Slot slot = static_cast<Slot>(user_data);
  if (user_data == kIgnored || slot >= slots_.size() || userData(slot, slots_[slot].generation) != user_data ||
      !slots_[slot].armed) {
    giveBack(flags);  // a cancel's completion, or one of an arm stopped since
    return;
  }
  bool more = flags & IORING_CQE_F_MORE;
  if (res > 0) {
    uint32_t id = flags >> IORING_CQE_BUFFER_SHIFT;
    slots_[slot].reader->onRecvData(memory_ + static_cast<size_t>(id) * kBufferSize, static_cast<size_t>(res));
    giveBack(flags);
    // The reader may have stopped or detached: then this arm is stale.
    if (!more && userData(slot, slots_[slot].generation) == user_data && slots_[slot].armed) arm(slot);
    return;
  }
  giveBack(flags);
  if (more) return;
  if (res == -ENOBUFS) {  // the pool ran dry for a moment: buffers are back now
    arm(slot);
    return;
  }
  SlotState& s = slots_[slot];
  s.armed = false;
  --armed_;
  ++s.generation;
  s.reader->onRecvEnd(res);
}

}  // namespace mulligan::net
