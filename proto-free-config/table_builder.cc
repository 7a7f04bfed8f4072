// ImageBuilder: TableModel -> the offset-based image described in layout.h.
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "proto-free-config/checksum.h"
#include "proto-free-config/layout.h"
#include "proto-free-config/table_model.h"

namespace mulligan::pfc {
namespace {

void checkFits(uint64_t bytes) {
  if (bytes > std::numeric_limits<uint32_t>::max()) throw std::length_error("policy table exceeds 4 GiB");
}

}  // namespace

// Strings are not deduplicated: names, hosts and paths are nearly all
// distinct, and a hash map over them cost more than it saved.
StrRef ImageBuilder::addString(std::string_view s) {
  checkFits(strings_.size() + s.size());
  StrRef ref{static_cast<uint32_t>(strings_.size()), static_cast<uint32_t>(s.size())};
  strings_.append(s);
  return ref;
}

// Policies are deduplicated by their bytes: a table of 10,000 services that
// mostly share a handful of policies stores a handful. Open addressing keyed
// by checksum (confirmed with memcmp) keeps it cache-friendly.
uint32_t ImageBuilder::addPolicy(const EffectivePolicy& p) {
  uint64_t key = checksum64(&p, sizeof p);
  size_t mask = slots_.size() - 1;
  for (size_t i = key & mask;; i = (i + 1) & mask) {
    uint32_t slot = slots_[i];
    if (slot == 0) {
      policies_.push_back(p);
      slots_[i] = static_cast<uint32_t>(policies_.size());  // index + 1; 0 = empty
      slot_keys_[i] = key;
      return slots_[i] - 1;
    }
    if (slot_keys_[i] == key && std::memcmp(&policies_[slot - 1], &p, sizeof p) == 0) return slot - 1;
  }
}

// Empties the arrays (keeping their capacity) and sizes them for `model`; the
// policy table gets twice the most policies there can be, so it never fills.
void ImageBuilder::reset(const TableModel& model) {
  size_t routes_n = 0, hosts_n = 0, string_bytes = model.source_path.size();
  for (const ServiceModel& svc : model.services) {
    routes_n += svc.routes.size();
    hosts_n += svc.hosts.size();
    string_bytes += svc.name.size() + svc.upstream.size();
    for (const auto& h : svc.hosts) string_bytes += h.size();
    for (const auto& r : svc.routes) string_bytes += r.match.size();
  }
  policies_.clear();
  services_.clear();
  routes_.clear();
  hosts_.clear();
  strings_.clear();
  policies_.reserve(model.services.size() + routes_n + 1);
  services_.reserve(model.services.size());
  routes_.reserve(routes_n);
  hosts_.reserve(hosts_n);
  strings_.reserve(string_bytes);
  size_t cap = 16;
  while (cap < 2 * (model.services.size() + routes_n + 1)) cap *= 2;
  slots_.assign(cap, 0);
  slot_keys_.resize(cap);
}

const std::vector<uint8_t>& ImageBuilder::build(const TableModel& model, uint64_t generation) {
  reset(model);
  uint32_t defaults_policy = addPolicy(model.defaults);
  for (const ServiceModel& svc : model.services) {
    ServiceEntry e{};
    e.name = addString(svc.name);
    e.upstream = addString(svc.upstream);
    e.port = svc.port;
    e.policy_index = addPolicy(svc.policy);
    e.route_begin = static_cast<uint32_t>(routes_.size());
    e.route_count = static_cast<uint32_t>(svc.routes.size());
    uint32_t service_index = static_cast<uint32_t>(services_.size());
    for (const RouteModel& r : svc.routes) {
      RouteEntry re{};
      re.match = addString(r.match);
      re.methods = r.methods;
      re.policy_index = addPolicy(r.policy);
      re.kind = r.kind;
      routes_.push_back(re);
    }
    for (const std::string& host : svc.hosts) {
      HostEntry he{};
      bool wildcard = host.size() > 2 && host[0] == '*' && host[1] == '.';
      he.kind = wildcard ? HostKind::kSuffix : HostKind::kExact;
      // "*.example.com" is stored as ".example.com": the suffix a name must end with.
      he.name = addString(wildcard ? std::string_view(host).substr(1) : std::string_view(host));
      he.service_index = service_index;
      hosts_.push_back(he);
    }
    services_.push_back(e);
  }

  TableHeader h{};
  h.magic = kTableMagic;
  h.abi_version = kAbiVersion;
  h.header_size = sizeof(TableHeader);
  h.generation = generation;
  h.created_unix_ns = model.created_unix_ns;
  h.source_checksum = model.source_checksum;
  h.source_path = addString(model.source_path);
  h.defaults_policy = defaults_policy;

  uint64_t off = sizeof(TableHeader);
  auto place = [&](Section& s, size_t count, size_t elem, size_t align) {
    off = (off + align - 1) / align * align;
    checkFits(off + count * elem);
    s.offset = static_cast<uint32_t>(off);
    s.count = static_cast<uint32_t>(count);
    off += count * elem;
  };
  place(h.policies, policies_.size(), sizeof(EffectivePolicy), alignof(EffectivePolicy));
  place(h.services, services_.size(), sizeof(ServiceEntry), alignof(ServiceEntry));
  place(h.routes, routes_.size(), sizeof(RouteEntry), alignof(RouteEntry));
  place(h.hosts, hosts_.size(), sizeof(HostEntry), alignof(HostEntry));
  place(h.strings, strings_.size(), 1, 1);
  h.total_size = (off + 7) / 8 * 8;

  image_.resize(h.total_size);
  uint8_t* out = image_.data();
  // Zero the gaps (alignment padding, tail) so the image is deterministic.
  auto copy = [&](uint64_t& cursor, const Section& s, const void* src, size_t bytes) {
    std::memset(out + cursor, 0, s.offset - cursor);
    if (bytes) std::memcpy(out + s.offset, src, bytes);
    cursor = s.offset + bytes;
  };
  uint64_t cursor = sizeof(TableHeader);
  copy(cursor, h.policies, policies_.data(), policies_.size() * sizeof(EffectivePolicy));
  copy(cursor, h.services, services_.data(), services_.size() * sizeof(ServiceEntry));
  copy(cursor, h.routes, routes_.data(), routes_.size() * sizeof(RouteEntry));
  copy(cursor, h.hosts, hosts_.data(), hosts_.size() * sizeof(HostEntry));
  copy(cursor, h.strings, strings_.data(), strings_.size());
  std::memset(out + cursor, 0, h.total_size - cursor);
  std::memcpy(out, &h, sizeof h);
  uint64_t sum = checksum64(out + kChecksummedFrom, image_.size() - kChecksummedFrom);
  std::memcpy(out + offsetof(TableHeader, checksum), &sum, sizeof sum);
  return image_;
}

std::vector<uint8_t> buildImage(const TableModel& model, uint64_t generation) {
  ImageBuilder b;
  return b.build(model, generation);
}

}  // namespace mulligan::pfc
