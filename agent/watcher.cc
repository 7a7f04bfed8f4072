#include "agent/watcher.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mulligan::agent {
namespace {

std::string dirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Drains whatever inotify has queued; returns false on a read error.
bool drain(int fd) {
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

PolicyWatcher::PolicyWatcher(const std::string& policy_path) : dir_(dirOf(policy_path)) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0 || signal_fd_ < 0) {
    error_ = std::string("inotify/signalfd: ") + std::strerror(errno);
    return;
  }
  uint32_t events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |
                    IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY;
  if (::inotify_add_watch(inotify_fd_, dir_.c_str(), events) < 0) {
    error_ = "cannot watch " + dir_ + ": " + std::strerror(errno);
  }
}

PolicyWatcher::~PolicyWatcher() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

PolicyWatcher::Wake PolicyWatcher::wait(int poll_ms, int settle_ms) {
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
  int n = ::poll(fds, 2, poll_ms);
  if (n < 0) {
    if (errno == EINTR) return Wake::kTimeout;
    error_ = std::string("poll: ") + std::strerror(errno);
    return Wake::kError;
  }
  if (fds[1].revents & POLLIN) return Wake::kSignal;
  if (n == 0) return Wake::kTimeout;
  // Let the burst finish (rename + symlink swap + old directory removal).
  do {
    if (!drain(inotify_fd_)) {
      error_ = std::string("inotify read: ") + std::strerror(errno);
      return Wake::kError;
    }
    fds[0].revents = 0;
  } while (::poll(fds, 1, settle_ms) > 0);
  return Wake::kChanged;
}

}  // namespace mulligan::agent
