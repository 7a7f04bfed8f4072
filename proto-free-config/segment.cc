#include "proto-free-config/segment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstring>
#include <optional>

namespace bip = boost::interprocess;

namespace mulligan::pfc {

struct Segment::Handles {
  std::optional<bip::shared_memory_object> shm;
  std::optional<bip::file_mapping> file;
};

namespace {

// "/mulligan-policy" and "mulligan-policy" name the same POSIX object; Boost
// wants it without the leading slash.
std::string shmName(const std::string& name) { return name[0] == '/' ? name.substr(1) : name; }

}  // namespace

bool Segment::isFilePath(const std::string& name) { return name.find('/', 1) != std::string::npos; }

std::unique_ptr<Segment> Segment::open(const std::string& name, Mode mode, std::string* error) {
  std::unique_ptr<Segment> seg(new Segment());
  seg->name_ = name;
  seg->mode_ = mode;
  seg->is_file_ = isFilePath(name);
  seg->handles_ = std::make_unique<Handles>();
  if (name.empty() || (seg->is_file_ && name[0] != '/')) {
    *error = "bad segment name \"" + name + "\" (use a POSIX shm name or an absolute file path)";
    return nullptr;
  }
  bool rw = mode == Mode::kReadWrite;
  try {
    if (seg->is_file_) {
      if (rw) {
        // file_mapping needs an existing file: create it with the mode we
        // want (writable by the agent, readable by the sidecar's user).
        int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
          *error = name + ": " + std::strerror(errno);
          return nullptr;
        }
        ::fchmod(fd, 0644);
        ::close(fd);
      }
      seg->handles_->file.emplace(name.c_str(), rw ? bip::read_write : bip::read_only);
      seg->fd_ = seg->handles_->file->get_mapping_handle().handle;
    } else {
      if (rw) {
        bip::permissions perm(0644);
        seg->handles_->shm.emplace(bip::open_or_create, shmName(name).c_str(), bip::read_write, perm);
      } else {
        seg->handles_->shm.emplace(bip::open_only, shmName(name).c_str(), bip::read_only);
      }
      seg->fd_ = seg->handles_->shm->get_mapping_handle().handle;
      // The process umask may have narrowed the creation mode; readers in
      // other containers need read access.
      if (rw) ::fchmod(seg->fd_, 0644);
    }
  } catch (const bip::interprocess_exception& e) {
    *error = name + ": " + e.what();
    return nullptr;
  }
  if (seg->currentSize() > 0 && !seg->remap(error)) return nullptr;
  return seg;
}

Segment::~Segment() = default;

size_t Segment::currentSize() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

bool Segment::grow(size_t size, std::string* error) {
  if (size <= currentSize()) return true;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    *error = name_ + ": cannot grow to " + std::to_string(size) + " bytes: " + std::strerror(errno);
    return false;
  }
  return remap(error);
}

bool Segment::remap(std::string* error) {
  region_.reset();
  data_ = nullptr;
  mapped_size_ = 0;
  size_t size = currentSize();
  if (size == 0) {
    *error = name_ + ": segment is empty";
    return false;
  }
  bip::mode_t m = mode_ == Mode::kReadWrite ? bip::read_write : bip::read_only;
  try {
    if (is_file_) {
      region_ = std::make_unique<bip::mapped_region>(*handles_->file, m, 0, size);
    } else {
      region_ = std::make_unique<bip::mapped_region>(*handles_->shm, m, 0, size);
    }
  } catch (const bip::interprocess_exception& e) {
    *error = name_ + ": cannot map: " + e.what();
    return false;
  }
  data_ = static_cast<uint8_t*>(region_->get_address());
  mapped_size_ = region_->get_size();
  return true;
}

bool Segment::lockExclusive(std::string* error) {
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    *error = name_ + ": another writer holds the segment (" + std::strerror(errno) + ")";
    return false;
  }
  return true;
}

}  // namespace mulligan::pfc
