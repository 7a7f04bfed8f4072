// The compiled policy as ordinary C++ values: what the agent's compiler
// produces and what buildImage() turns into the shared-memory image. Every
// policy here is already effective (inheritance resolved).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layout.h"
#include "policy.h"

namespace mulligan::pfc {

struct RouteModel {
  MatchKind kind = MatchKind::kPathPrefix;
  std::string match;                 // path, "pkg.Service" or "pkg.Service/Method"
  uint32_t methods = kAllMethods;    // Method bits
  EffectivePolicy policy{};
};

struct ServiceModel {
  std::string name;
  std::vector<std::string> hosts;    // lower case; "*.suffix" for wildcards
  uint32_t port = 0;                 // 0 = any
  std::string upstream;              // "host:port" or empty
  EffectivePolicy policy{};          // service level (no route matched)
  std::vector<RouteModel> routes;    // first match wins
};

struct TableModel {
  EffectivePolicy defaults{};        // for requests that match no service
  std::vector<ServiceModel> services;
  std::string source_path;
  uint64_t source_checksum = 0;
  int64_t created_unix_ns = 0;
};

// Serializes a TableModel as a complete, checksummed table image. Identical
// policies are stored once. A builder keeps its buffers between builds, so a
// long-lived one (the agent's Publisher) does not fault in fresh pages for
// every publish of a large table. Not thread-safe.
class ImageBuilder {
 public:
  // Returns the image of `model` as `generation`; valid until the next
  // build(). Throws std::length_error if the image would exceed the 32-bit
  // offsets of the layout (4 GiB).
  const std::vector<uint8_t>& build(const TableModel& model, uint64_t generation);

 private:
  StrRef addString(std::string_view s);
  uint32_t addPolicy(const EffectivePolicy& p);
  void reset(const TableModel& model);

  std::vector<EffectivePolicy> policies_;
  std::vector<uint32_t> slots_;      // open addressing: policy index + 1, 0 = empty
  std::vector<uint64_t> slot_keys_;  // checksum of the policy in the slot
  std::vector<ServiceEntry> services_;
  std::vector<RouteEntry> routes_;
  std::vector<HostEntry> hosts_;
  std::string strings_;
  std::vector<uint8_t> image_;
};

// One-shot convenience: a fresh builder's image.
std::vector<uint8_t> buildImage(const TableModel& model, uint64_t generation);

}  // namespace mulligan::pfc
