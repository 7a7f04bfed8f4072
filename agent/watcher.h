// PolicyWatcher: tells `mulligan-agent run` when the policy file may have
// changed, using inotify on the file's directory rather than on the file.
//
// Watching the directory is what makes every way of replacing a file visible:
// an in-place write (IN_CLOSE_WRITE), an editor's write-to-temp-then-rename
// (IN_MOVED_TO), and a Kubernetes ConfigMap update, which writes a new
// timestamped directory and atomically renames a `..data_tmp` symlink over
// `..data` in the mount's directory (IN_MOVED_TO on "..data"), while
// `policy.toml` itself stays a symlink into `..data`. The watcher does not
// interpret events: it says "look again", and the caller compares contents.
// A periodic poll backs inotify up (events can overflow; directories can be
// replaced).
#pragma once

#include <string>

namespace mulligan::agent {

class PolicyWatcher {
 public:
  enum class Wake {
    kChanged,   // something in the directory changed: re-read the file
    kTimeout,   // nothing happened within the poll interval: re-read anyway
    kSignal,    // SIGTERM or SIGINT arrived: stop
    kError,     // inotify failed; message in error()
  };

  // Watches the directory of `policy_path` (not following the final symlink).
  // SIGTERM/SIGINT are blocked and delivered through wait() instead.
  explicit PolicyWatcher(const std::string& policy_path);
  ~PolicyWatcher();
  PolicyWatcher(const PolicyWatcher&) = delete;
  PolicyWatcher& operator=(const PolicyWatcher&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Blocks until an event, a signal, or `poll_ms`. After the first event it
  // waits `settle_ms` more for the burst that a rename or ConfigMap swap makes,
  // so one edit yields one re-read.
  Wake wait(int poll_ms, int settle_ms);

 private:
  int inotify_fd_ = -1;
  int signal_fd_ = -1;
  std::string dir_;
  std::string error_;
};

}  // namespace mulligan::agent
