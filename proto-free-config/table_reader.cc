#include "proto-free-config/table_reader.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "proto-free-config/checksum.h"

namespace mulligan::pfc {
namespace {

constexpr int64_t kMaxDurationUs = int64_t{24} * 3600 * 1000 * 1000;  // the agent's own limit
constexpr uint32_t kMaxRetries = 25;
constexpr uint64_t kMaxBufferedBody = uint64_t{64} << 20;
constexpr uint32_t kMaxConsecutiveFailures = 1000;  // the agent's own limit

// Checks that `s` holds `count` elements of `elem` bytes inside [header, size)
// at an offset aligned to `align`. All arithmetic in 64 bits: no overflow.
bool sectionOk(const Section& s, size_t size, size_t elem, size_t align) {
  if (s.offset < sizeof(TableHeader) || s.offset % align != 0) return false;
  return uint64_t{s.offset} + uint64_t{s.count} * elem <= size;
}

bool durationOk(int64_t us) { return us >= 0 && us <= kMaxDurationUs; }
// A fraction in [0, 1]; NaN fails too.
bool fractionOk(double v) { return std::isfinite(v) && v >= 0 && v <= 1; }

// Issue 19's fields: the hedging engine sizes arrays by max_attempts and
// the estimator answers only the quantiles it tracks, so both are refused
// outside what the agent can produce.
std::string hedgeOutlierProblem(const EffectivePolicy& p) {
  const HedgePolicy& h = p.hedge;
  if (!durationOk(h.delay_us)) return "hedge delay out of range";
  if (h.delay_quantile_permille != 0 && quantileName(h.delay_quantile_permille).empty()) {
    return "unknown hedge quantile";
  }
  if (h.delay_quantile_permille != 0 && h.delay_us != 0) return "hedge delay both fixed and a quantile";
  if (h.max_attempts < kMinHedgeAttempts || h.max_attempts > kMaxHedgeAttempts) {
    return "hedge max_attempts out of range";
  }
  if (!fractionOk(h.max_extra_load)) return "hedge max_extra_load out of range";
  const OutlierPolicy& o = p.outlier;
  if (o.consecutive_failures > kMaxConsecutiveFailures) return "outlier consecutive_failures out of range";
  if (!durationOk(o.ejection_us) || !durationOk(o.max_ejection_us) || o.ejection_us > o.max_ejection_us) {
    return "outlier durations out of range";
  }
  if (!fractionOk(o.max_ejected)) return "outlier max_ejected out of range";
  return {};
}

std::string policyProblem(const EffectivePolicy& p) {
  if (!durationOk(p.connect_timeout_us) || !durationOk(p.request_timeout_us) || !durationOk(p.idle_timeout_us) ||
      !durationOk(p.read_timeout_us)) {
    return "timeout out of range";
  }
  const RetryPolicy& r = p.retry;
  if (r.conditions >> static_cast<uint32_t>(RetryCondition::kCount)) return "unknown retry condition bits";
  if (r.grpc_codes >> 17) return "unknown gRPC code bits";
  // Codes 0..99 live in word 0 and the low 36 bits of word 1; 600..639 in
  // the high 40 bits of word 9. None of them is a status code.
  if (r.status_bits[0] != 0 || (r.status_bits[1] & ((uint64_t{1} << 36) - 1)) != 0 ||
      (r.status_bits[kStatusWords - 1] >> (kMaxStatus + 1 - 64 * (kStatusWords - 1))) != 0) {
    return "status code out of range";
  }
  if (r.num_retries > kMaxRetries) return "num_retries out of range";
  if (r.retry_after > 1) return "retry_after not a boolean";
  if (r.fresh_connection > 1) return "fresh_connection not a boolean";
  if (!durationOk(r.per_try_timeout_us) || !durationOk(r.backoff_base_us) || !durationOk(r.backoff_max_us) ||
      !durationOk(r.retry_after_max_us) || r.backoff_base_us > r.backoff_max_us) {
    return "retry durations out of range";
  }
  if (r.max_buffered_body > kMaxBufferedBody) return "max_buffered_body out of range";
  if (std::memchr(r.idempotency_header, 0, sizeof r.idempotency_header) == nullptr) {
    return "idempotency_header not terminated";
  }
  const BudgetPolicy& b = p.budget;
  if (!std::isfinite(b.retry_ratio) || b.retry_ratio < 0 || b.retry_ratio > 1000) return "retry_ratio out of range";
  if (b.window_us <= 0 || !durationOk(b.window_us)) return "budget window out of range";
  const DeadlinePolicy& d = p.deadline;
  if (d.propagate > 1 || d.accept_inbound > 1) return "deadline flag not a boolean";
  if (!durationOk(d.grpc_timeout_offset_us) || !durationOk(d.min_attempt_budget_us)) {
    return "deadline durations out of range";
  }
  return hedgeOutlierProblem(p);
}

}  // namespace

std::string validateImage(const uint8_t* data, size_t size) {
  if (size < sizeof(TableHeader)) return "image shorter than its header";
  TableHeader h;
  std::memcpy(&h, data, sizeof h);
  if (h.magic != kTableMagic) return "bad table magic";
  if (h.abi_version != kAbiVersion) {
    return "table ABI version " + std::to_string(h.abi_version) + ", this build reads " + std::to_string(kAbiVersion);
  }
  if (h.header_size != sizeof(TableHeader)) return "table header size mismatch";
  if (h.total_size != size) return "table size field disagrees with the slot size";
  if (checksum64(data + kChecksummedFrom, size - kChecksummedFrom) != h.checksum) return "checksum mismatch";

  if (!sectionOk(h.policies, size, sizeof(EffectivePolicy), alignof(EffectivePolicy)) ||
      !sectionOk(h.services, size, sizeof(ServiceEntry), alignof(ServiceEntry)) ||
      !sectionOk(h.routes, size, sizeof(RouteEntry), alignof(RouteEntry)) ||
      !sectionOk(h.hosts, size, sizeof(HostEntry), alignof(HostEntry)) || !sectionOk(h.strings, size, 1, 1)) {
    return "section out of bounds";
  }
  auto strOk = [&](StrRef r) { return uint64_t{r.offset} + r.len <= h.strings.count; };
  if (!strOk(h.source_path)) return "string out of bounds";
  if (h.policies.count == 0 || h.defaults_policy >= h.policies.count) return "defaults policy index out of range";

  // The image is copied to 8-byte aligned memory by the caller; sections are
  // aligned within it, so typed reads below are well defined.
  auto policies = reinterpret_cast<const EffectivePolicy*>(data + h.policies.offset);
  for (uint32_t i = 0; i < h.policies.count; ++i) {
    if (std::string why = policyProblem(policies[i]); !why.empty()) {
      return "policy " + std::to_string(i) + ": " + why;
    }
  }
  auto services = reinterpret_cast<const ServiceEntry*>(data + h.services.offset);
  for (uint32_t i = 0; i < h.services.count; ++i) {
    const ServiceEntry& s = services[i];
    if (!strOk(s.name) || !strOk(s.upstream)) return "string out of bounds";
    if (s.port > 65535) return "service port out of range";
    if (s.policy_index >= h.policies.count) return "policy index out of range";
    if (uint64_t{s.route_begin} + s.route_count > h.routes.count) return "route range out of bounds";
  }
  auto routes = reinterpret_cast<const RouteEntry*>(data + h.routes.offset);
  for (uint32_t i = 0; i < h.routes.count; ++i) {
    const RouteEntry& r = routes[i];
    if (!strOk(r.match)) return "string out of bounds";
    if (r.policy_index >= h.policies.count) return "policy index out of range";
    if (static_cast<uint8_t>(r.kind) > static_cast<uint8_t>(MatchKind::kGrpcMethod)) return "unknown route kind";
    if (r.methods == 0 || (r.methods & ~kAllMethods) != 0) return "bad route methods";
  }
  auto hosts = reinterpret_cast<const HostEntry*>(data + h.hosts.offset);
  for (uint32_t i = 0; i < h.hosts.count; ++i) {
    const HostEntry& e = hosts[i];
    if (!strOk(e.name) || e.name.len == 0) return "string out of bounds";
    if (e.service_index >= h.services.count) return "host service index out of range";
    if (static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(HostKind::kSuffix)) return "unknown host kind";
  }
  return {};
}

std::shared_ptr<const Table> Table::fromImage(const uint8_t* image, size_t size, std::string* why) {
  std::shared_ptr<Table> t(new Table());
  t->storage_.resize((size + 7) / 8);
  if (size) std::memcpy(t->storage_.data(), image, size);
  t->image_ = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(t->storage_.data()), size);
  std::string problem = validateImage(t->image_.data(), t->image_.size());
  if (!problem.empty()) {
    if (why) *why = std::move(problem);
    return nullptr;
  }
  t->buildIndex();
  return t;
}

void Table::buildIndex() {
  // Group host entries by (kind, name); within a group, services that name a
  // port come before the ones that accept any port.
  std::vector<uint32_t> order(hosts().size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  auto hs = hosts();
  auto svcs = services();
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const HostEntry& x = hs[a];
    const HostEntry& y = hs[b];
    if (x.kind != y.kind) return x.kind < y.kind;
    std::string_view xn = str(x.name), yn = str(y.name);
    if (xn != yn) return xn < yn;
    return (svcs[x.service_index].port != 0) > (svcs[y.service_index].port != 0);
  });
  candidates_.reserve(order.size());
  exact_.reserve(order.size());
  for (uint32_t i : order) {
    const HostEntry& e = hs[i];
    auto& map = e.kind == HostKind::kExact ? exact_ : suffix_;
    auto [it, inserted] = map.try_emplace(str(e.name), HostSlot{static_cast<uint32_t>(candidates_.size()), 0});
    (void)inserted;
    candidates_.push_back(e.service_index);
    it->second.count++;
  }
}

uint32_t Table::pickService(const HostSlot& slot, uint16_t port) const {
  auto svcs = services();
  for (uint32_t i = 0; i < slot.count; ++i) {
    uint32_t s = candidates_[slot.begin + i];
    if (svcs[s].port == 0 || svcs[s].port == port) return s;
  }
  return Match::kNone;
}

uint32_t Table::matchRoute(const ServiceEntry& svc, const RequestKey& key) const {
  if (svc.route_count == 0) return Match::kNone;  // most services: nothing to parse
  Method m;
  uint32_t method_bit = parseMethod(key.method, &m) ? methodBit(m) : 0;
  std::string_view path = key.path;
  std::string_view path_only = path.substr(0, path.find('?'));
  auto rs = routes();
  for (uint32_t i = svc.route_begin; i < svc.route_begin + svc.route_count; ++i) {
    const RouteEntry& r = rs[i];
    // A route limited to some methods never matches a method we don't know.
    if (r.methods != kAllMethods && (r.methods & method_bit) == 0) continue;
    std::string_view match = str(r.match);
    bool hit = false;
    switch (r.kind) {
      case MatchKind::kPathPrefix:
        hit = path.starts_with(match);
        break;
      case MatchKind::kPathExact:
        hit = path_only == match;
        break;
      case MatchKind::kGrpcService:  // "/pkg.Service/Method"
        hit = key.grpc && path_only.size() > match.size() + 2 && path_only[0] == '/' &&
              path_only.substr(1, match.size()) == match && path_only[match.size() + 1] == '/';
        break;
      case MatchKind::kGrpcMethod:
        hit = key.grpc && path_only.size() == match.size() + 1 && path_only[0] == '/' &&
              path_only.substr(1) == match;
        break;
    }
    if (hit) return i;
  }
  return Match::kNone;
}

Match Table::lookup(const RequestKey& key) const {
  Match m;
  char buf[256];
  std::string_view host = normalizeHost(key.authority, buf, sizeof buf);
  uint32_t svc = Match::kNone;
  if (!host.empty()) {
    if (auto it = exact_.find(host); it != exact_.end()) svc = pickService(it->second, key.port);
    // Wildcards: try ".b.example.com", then ".example.com", ... longest first.
    for (size_t dot = host.find('.'); svc == Match::kNone && dot != std::string_view::npos;
         dot = host.find('.', dot + 1)) {
      if (auto it = suffix_.find(host.substr(dot)); it != suffix_.end()) svc = pickService(it->second, key.port);
    }
  }
  if (svc == Match::kNone) {
    m.policy = &defaults();
    return m;
  }
  const ServiceEntry& s = services()[svc];
  m.service = svc;
  m.route = matchRoute(s, key);
  m.policy = &policies()[m.route == Match::kNone ? s.policy_index : routes()[m.route].policy_index];
  return m;
}

TableModel Table::toModel() const {
  TableModel model;
  model.defaults = defaults();
  model.source_path = std::string(sourcePath());
  model.source_checksum = sourceChecksum();
  model.created_unix_ns = createdUnixNs();
  auto hs = hosts();
  for (uint32_t i = 0; i < services().size(); ++i) {
    const ServiceEntry& s = services()[i];
    ServiceModel sm;
    sm.name = std::string(str(s.name));
    sm.upstream = std::string(str(s.upstream));
    sm.port = s.port;
    sm.policy = policies()[s.policy_index];
    for (const HostEntry& h : hs) {
      if (h.service_index != i) continue;
      std::string name(str(h.name));
      sm.hosts.push_back(h.kind == HostKind::kSuffix ? "*" + name : name);
    }
    for (uint32_t r = s.route_begin; r < s.route_begin + s.route_count; ++r) {
      const RouteEntry& re = routes()[r];
      RouteModel rm;
      rm.kind = re.kind;
      rm.match = std::string(str(re.match));
      rm.methods = re.methods;
      rm.policy = policies()[re.policy_index];
      sm.routes.push_back(std::move(rm));
    }
    model.services.push_back(std::move(sm));
  }
  return model;
}

std::string_view normalizeHost(std::string_view authority, char* buf, size_t cap) {
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {  // "[::1]:8080" -> "[::1]"
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {};
    host = host.substr(0, close + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // "orders." is "orders"
  if (host.empty() || host.size() > cap) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  }
  return std::string_view(buf, host.size());
}

}  // namespace mulligan::pfc
