#include "sidecar/stream/access_log_writer.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "sidecar/core/logging.h"

namespace mulligan::proxy {
namespace {

int64_t nowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How long one poll(2) on a full destination lasts before the writer looks
// at its stop flag and its drop counters again.
constexpr int kPollMs = 100;
// A drop episode ends after this long without a new drop.
constexpr int64_t kEpisodeQuietUs = 1'000'000;

size_t roundUpPow2(size_t n) {
  size_t p = 4096;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

// One worker's lines on their way out: a single-producer (the worker),
// single-consumer (the writer thread) byte ring. head and tail count bytes
// ever pushed and written; the producer owns head, the consumer tail, and
// each reads the other's with acquire. The ring only ever holds whole lines
// (a line that does not fit is dropped, never split).
struct AccessLogWriter::Ring {
  explicit Ring(size_t capacity) : buf(new char[capacity]), cap(capacity), mask(capacity - 1) {}
  std::unique_ptr<char[]> buf;  // left uninitialised: untouched pages cost no RSS
  size_t cap, mask;
  alignas(64) std::atomic<uint64_t> head{0};     // written by the producer only
  alignas(64) std::atomic<uint64_t> tail{0};     // written by the consumer only
  alignas(64) std::atomic<uint64_t> dropped{0};  // written by the producer only
  std::string scratch;                           // producer only: the line being formatted
};

std::unique_ptr<AccessLogWriter> AccessLogWriter::open(const std::string& where, const Options& options,
                                                       std::string* error) {
  if (where == "-") return std::make_unique<AccessLogWriter>(STDOUT_FILENO, false, options);
  int fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) {
    *error = std::strerror(errno);
    return nullptr;
  }
  return std::make_unique<AccessLogWriter>(fd, true, options);
}

AccessLogWriter::AccessLogWriter(int fd, bool owns_fd, const Options& options)
    : options_(options), fd_(fd), out_fd_(fd), owns_out_fd_(owns_fd) {
  size_t cap = roundUpPow2(options_.ring_bytes);
  for (int i = 0; i < std::max(1, options_.workers); ++i) rings_.push_back(std::make_unique<Ring>(cap));
  struct stat st{};
  if (fstat(fd, &st) != 0) return;
  if (S_ISSOCK(st.st_mode)) {
    is_socket_ = true;  // send(MSG_DONTWAIT): non-blocking per call, no flag changed
    nonblocking_ = true;
  } else if (S_ISFIFO(st.st_mode)) {
    if (owns_fd) {
      // Our own description (a FIFO given by path): nobody else shares its flags.
      nonblocking_ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0;
    } else {
      // Inherited (stdout): opening the pipe again through /proc gives a new
      // open file description of the same pipe, whose O_NONBLOCK is ours
      // alone; the inherited one (shared with our parent) keeps its flags.
      std::string self = "/proc/self/fd/" + std::to_string(fd);
      int own = ::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (own >= 0) {
        fd_ = own;
        owns_fd_ = true;
        nonblocking_ = true;
      } else {
        LOG_DEBUG("access log: cannot reopen %s (%s): blocking writes on the writer thread", self.c_str(),
                  std::strerror(errno));
      }
    }
  }
}

AccessLogWriter::~AccessLogWriter() {
  stop();
  if (owns_fd_) ::close(fd_);
  if (owns_out_fd_) ::close(out_fd_);
}

void AccessLogWriter::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "access-log");
}

void AccessLogWriter::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    cv_.notify_one();
  }
  thread_.join();
}

bool AccessLogWriter::append(int worker, const AccessRecord& r) {
  Ring& ring = *rings_[static_cast<size_t>(worker) % rings_.size()];
  ring.scratch.clear();
  formatAccessLine(r, &ring.scratch);
  const size_t n = ring.scratch.size();
  const uint64_t h = ring.head.load(std::memory_order_relaxed);
  const uint64_t t = ring.tail.load(std::memory_order_acquire);
  if (n > ring.cap - (h - t)) {
    ring.dropped.store(ring.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  const size_t off = h & ring.mask;
  const size_t first = std::min(n, ring.cap - off);
  std::memcpy(ring.buf.get() + off, ring.scratch.data(), first);
  std::memcpy(ring.buf.get(), ring.scratch.data() + first, n - first);
  // seq_cst, as is the state_ load below: with the writer's store of
  // kParked and its load of head in park(), at least one side sees the
  // other, so a line is never left behind a parked writer.
  ring.head.store(h + n, std::memory_order_seq_cst);
  int s = state_.load(std::memory_order_seq_cst);
  if (s == kParked || (s == kNapping && h + n - t > ring.cap / 2)) wake();
  return true;
}

void AccessLogWriter::wake() {
  if (state_.exchange(kRunning) == kRunning) return;  // someone else did
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_one();
}

uint64_t AccessLogWriter::dropped() const {
  uint64_t n = lost_.load(std::memory_order_relaxed);
  for (const auto& r : rings_) n += r->dropped.load(std::memory_order_relaxed);
  return n;
}

bool AccessLogWriter::anyPending() const {
  for (const auto& r : rings_) {
    if (r->head.load(std::memory_order_seq_cst) != r->tail.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

void AccessLogWriter::run() {
  for (;;) {
    const bool stopping = stop_.load();
    if (stopping && stop_deadline_us_ == 0) stop_deadline_us_ = nowUs() + kStopFlushUs;
    size_t moved = drainAll();
    noteDrops();
    if (stopping) break;
    if (moved == 0) {
      // Nothing came since the last batch: sleep until a worker has a line
      // (or, during a drop episode, until it is time to say it ended).
      std::unique_lock<std::mutex> lock(mu_);
      state_.store(kParked, std::memory_order_seq_cst);
      if (!anyPending() && !stop_.load()) {
        auto woken = [&] { return state_.load() != kParked || stop_.load(); };
        if (dropping_) {
          cv_.wait_for(lock, std::chrono::microseconds(kEpisodeQuietUs), woken);
        } else {
          cv_.wait(lock, woken);
        }
      }
      state_.store(kRunning);
      if (stop_.load()) continue;
    }
    // Let lines gather: one write per ring per interval, not one per line.
    // A ring passing half full cuts the nap short (append()).
    std::unique_lock<std::mutex> lock(mu_);
    state_.store(kNapping);
    cv_.wait_for(lock, std::chrono::microseconds(options_.flush_interval_us),
                 [&] { return state_.load() != kNapping || stop_.load(); });
    state_.store(kRunning);
  }
  // Whatever could not be written by now is lost; say so (a clean stop with
  // a destination that reads writes everything).
  uint64_t left = 0;
  for (const auto& r : rings_) left += r->head.load() - r->tail.load();
  if (left) {
    LOG_WARN("access log: %llu bytes not written at exit (destination not reading)",
             static_cast<unsigned long long>(left));
  }
  if (dropping_) {
    LOG_WARN("access log: %llu lines were dropped", static_cast<unsigned long long>(dropped() - dropped_at_episode_start_));
  }
}

size_t AccessLogWriter::drainAll() {
  size_t moved = 0;
  for (auto& rp : rings_) {
    Ring& ring = *rp;
    uint64_t t = ring.tail.load(std::memory_order_relaxed);
    const uint64_t h = ring.head.load(std::memory_order_acquire);
    // Everything up to h is whole lines; write all of it before the next
    // ring so that a short write never lets another worker's line in
    // between the halves of one line.
    while (t != h) {
      const size_t off = t & ring.mask;
      const size_t len = h - t;
      const size_t first = std::min(len, ring.cap - off);
      iovec iov[2] = {{ring.buf.get() + off, first}, {ring.buf.get(), len - first}};
      const int iovcnt = len > first ? 2 : 1;
      ssize_t n;
      if (is_socket_) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(iovcnt);
        n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      } else {
        n = ::writev(fd_, iov, iovcnt);
      }
      if (n > 0) {
        t += static_cast<uint64_t>(n);
        moved += static_cast<size_t>(n);
        ring.tail.store(t, std::memory_order_release);  // room for the worker at once
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // The destination is full: wait for room, a little at a time, so
        // that drops are reported while we wait and a stop is not held up.
        if (stop_deadline_us_ == 0 && stop_.load()) stop_deadline_us_ = nowUs() + kStopFlushUs;
        if (stop_deadline_us_ && nowUs() >= stop_deadline_us_) return moved;
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, kPollMs);
        noteDrops();
        continue;
      }
      // The destination is gone or broken (EPIPE: nobody reads; ENOSPC...):
      // these lines cannot be written; count them with the drops and go on,
      // so that the workers' rings keep moving.
      if (!write_failed_logged_) {
        write_failed_logged_ = true;
        LOG_WARN("access log: cannot write (%s); lines are being dropped",
                 n < 0 ? std::strerror(errno) : "wrote nothing");
      }
      uint64_t lines = 0;
      for (uint64_t i = t; i != h; ++i) lines += ring.buf[i & ring.mask] == '\n';
      lost_.store(lost_.load(std::memory_order_relaxed) + lines, std::memory_order_relaxed);
      ring.tail.store(h, std::memory_order_release);
      break;
    }
  }
  return moved;
}

void AccessLogWriter::noteDrops() {
  const uint64_t total = dropped();
  const int64_t now = nowUs();
  if (total != dropped_seen_) {
    if (!dropping_) {
      dropping_ = true;
      dropped_at_episode_start_ = dropped_seen_;
      LOG_WARN("access log: its destination is not keeping up; dropping lines until it does "
               "(counted in mulligan_access_log_dropped_total)");
    }
    dropped_seen_ = total;
    last_drop_us_ = now;
    return;
  }
  // Over when nothing was dropped for a while AND everything held was
  // written: a destination still not reading drops nothing new only
  // because nothing new came.
  if (dropping_ && now - last_drop_us_ >= kEpisodeQuietUs && !anyPending()) {
    dropping_ = false;
    LOG_WARN("access log: writing again; %llu lines were dropped",
             static_cast<unsigned long long>(total - dropped_at_episode_start_));
  }
}

}  // namespace mulligan::proxy
