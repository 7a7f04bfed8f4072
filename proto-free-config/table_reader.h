// Reading a table image: validation of untrusted bytes, typed access, and the
// lookup index a sidecar uses on every request.
//
// A Table owns a private copy of the image (never a pointer into shared
// memory), so once built it is immutable and can be shared between threads
// and kept alive by requests in flight while newer generations arrive.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto-free-config/layout.h"
#include "proto-free-config/table_model.h"

namespace mulligan::pfc {

// Checks every invariant a reader relies on: magic, ABI, sizes, checksum,
// section bounds and alignment, every string and index in range, enum values
// known, policy values in the ranges the agent enforces. Returns "" when the
// image is sound, else a one-line reason ("checksum mismatch", ...).
std::string validateImage(const uint8_t* data, size_t size);

// Result of Table::lookup(): which service and route matched and the policy
// to enforce. `policy` always points into the Table (the defaults when nothing
// matched) and lives as long as the Table.
struct Match {
  static constexpr uint32_t kNone = 0xffffffffu;
  uint32_t service = kNone;  // index into services(), kNone = no service matched
  uint32_t route = kNone;    // index into routes() (global), kNone = service level
  const EffectivePolicy* policy = nullptr;
};

// What a request is matched on. `authority` is the Host header or :authority
// (a port in it is ignored; `port` is the destination port, 0 if unknown).
struct RequestKey {
  std::string_view authority;
  uint16_t port = 0;
  std::string_view method;  // upper case token, e.g. "GET"
  std::string_view path;    // origin-form, may include "?query"
  bool grpc = false;        // content-type application/grpc*
};

class Table {
 public:
  // Validates `image` and builds the lookup index. Returns null and sets
  // *why when the bytes cannot be trusted.
  static std::shared_ptr<const Table> fromImage(const uint8_t* image, size_t size, std::string* why);
  static std::shared_ptr<const Table> fromImage(const std::vector<uint8_t>& image, std::string* why) {
    return fromImage(image.data(), image.size(), why);
  }

  uint64_t generation() const { return header().generation; }
  int64_t createdUnixNs() const { return header().created_unix_ns; }
  uint64_t sourceChecksum() const { return header().source_checksum; }
  uint64_t checksum() const { return header().checksum; }
  size_t imageSize() const { return image_.size(); }
  std::string_view sourcePath() const { return str(header().source_path); }

  const EffectivePolicy& defaults() const { return policies()[header().defaults_policy]; }
  std::span<const EffectivePolicy> policies() const { return section<EffectivePolicy>(header().policies); }
  std::span<const ServiceEntry> services() const { return section<ServiceEntry>(header().services); }
  std::span<const RouteEntry> routes() const { return section<RouteEntry>(header().routes); }
  std::span<const HostEntry> hosts() const { return section<HostEntry>(header().hosts); }
  std::string_view str(StrRef r) const {
    return std::string_view(reinterpret_cast<const char*>(image_.data()) + header().strings.offset + r.offset, r.len);
  }

  // Host (exact, then the longest "*.suffix"), port (a service with the
  // destination's port beats one with no port), then the service's routes in
  // order (first match wins). No allocation; safe from many threads.
  Match lookup(const RequestKey& key) const;

  // The table as a model again (for `mulligan-agent dump`).
  TableModel toModel() const;

 private:
  // Services sharing one host name, specific-port entries first.
  struct HostSlot {
    uint32_t begin;  // into candidates_
    uint32_t count;
  };

  Table() = default;
  const TableHeader& header() const { return *reinterpret_cast<const TableHeader*>(image_.data()); }
  template <typename T>
  std::span<const T> section(Section s) const {
    return std::span<const T>(reinterpret_cast<const T*>(image_.data() + s.offset), s.count);
  }
  void buildIndex();
  uint32_t pickService(const HostSlot& slot, uint16_t port) const;
  uint32_t matchRoute(const ServiceEntry& svc, const RequestKey& key) const;

  // 8-byte aligned storage for the image (the policies hold int64/double).
  std::vector<uint64_t> storage_;
  std::span<const uint8_t> image_;
  std::unordered_map<std::string_view, HostSlot> exact_;
  std::unordered_map<std::string_view, HostSlot> suffix_;  // keys start with "."
  std::vector<uint32_t> candidates_;                       // service indices
};

// Lower-cases `authority` without its port into `buf` (capacity `cap`) and
// returns the host part; "" when it does not fit or is empty.
std::string_view normalizeHost(std::string_view authority, char* buf, size_t cap);

}  // namespace mulligan::pfc
