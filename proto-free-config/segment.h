// Segment: the shared-memory object or tmpfs file that holds the table, mapped
// with Boost.Interprocess (raw shared_memory_object / file_mapping plus
// mapped_region; never a managed segment, whose lookups take a mutex).
//
// `--shm` names: a name without any '/' after its first character is a POSIX
// shared-memory name ("mulligan-policy" or "/mulligan-policy", i.e.
// /dev/shm/mulligan-policy); anything else must be an absolute file path
// (e.g. "/var/run/mulligan/policy.shm" on a node-wide tmpfs mount).
//
// Not thread-safe: each Publisher/Subscriber owns one Segment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::interprocess {
class mapped_region;
}

namespace mulligan::pfc {

class Segment {
 public:
  enum class Mode {
    kReadOnly,   // sidecars and `dump`: open an existing segment, map it read-only
    kReadWrite,  // the agent: open or create (mode 0644), map read-write
  };

  // Opens (and for kReadWrite creates) the segment. Returns null with *error
  // set when it cannot ("no such segment", permission denied, ...).
  static std::unique_ptr<Segment> open(const std::string& name, Mode mode, std::string* error);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // The current mapping. Valid until the next remap().
  uint8_t* data() const { return data_; }
  size_t mappedSize() const { return mapped_size_; }
  // The object's size right now (fstat): it may have grown since mapping.
  size_t currentSize() const;
  // Grows the object to `size` bytes (writer only; never shrinks).
  bool grow(size_t size, std::string* error);
  // Maps the whole object again at its current size.
  bool remap(std::string* error);
  // Takes an exclusive advisory lock (flock) so that two agents never write
  // one segment. Non-blocking: false when another process holds it.
  bool lockExclusive(std::string* error);

  const std::string& name() const { return name_; }
  bool isFile() const { return is_file_; }
  int fd() const { return fd_; }

  // True when `name` designates a file path rather than a POSIX shm name.
  static bool isFilePath(const std::string& name);

 private:
  Segment() = default;

  std::string name_;
  bool is_file_ = false;
  Mode mode_ = Mode::kReadOnly;
  int fd_ = -1;  // owned by the Boost object below
  struct Handles;
  std::unique_ptr<Handles> handles_;
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  uint8_t* data_ = nullptr;
  size_t mapped_size_ = 0;
};

}  // namespace mulligan::pfc
