#include "sidecar/net/address.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace mulligan::net {

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void Address::setPort(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

bool Address::isLoopback() const {
  if (family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr) >> 24) == 127;
  }
  if (family() == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr);
  return false;
}

std::string Address::toString() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  return "?";
}

// The endpoint, not the bytes: the kernel fills sockaddrs differently from
// one call to the next (SO_ORIGINAL_DST leaves the length the caller passed
// and carries the socket's flow label; getsockname reports neither), so a
// byte comparison calls the same address different.
bool Address::operator==(const Address& o) const {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&o.storage);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&o.storage);
    return a->sin6_port == b->sin6_port && a->sin6_scope_id == b->sin6_scope_id &&
           std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
  }
  return len == o.len && std::memcmp(&storage, &o.storage, len) == 0;
}

std::optional<Address> Address::fromSockaddr(const sockaddr* sa, socklen_t len) {
  if (!sa || len > sizeof(sockaddr_storage)) return std::nullopt;
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return std::nullopt;
  // The family's own size: SO_ORIGINAL_DST does not shorten `len` to what
  // it wrote (it stays sizeof(sockaddr_storage)).
  socklen_t own = sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (len < own) return std::nullopt;
  Address a;
  std::memcpy(&a.storage, sa, own);
  a.len = own;
  return a;
}

bool splitHostPort(std::string_view in, std::string_view* host, uint16_t* port, bool allow_port_zero) {
  size_t colon;
  if (!in.empty() && in.front() == '[') {
    size_t close = in.find(']');
    if (close == std::string_view::npos || close + 1 >= in.size() || in[close + 1] != ':') return false;
    *host = in.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = in.rfind(':');
    if (colon == std::string_view::npos) return false;
    *host = in.substr(0, colon);
    if (host->find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
  }
  std::string_view digits = in.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || value > 65535) return false;
  if (value == 0 && !allow_port_zero) return false;
  *port = static_cast<uint16_t>(value);
  return !host->empty();
}

std::optional<Address> Address::parseNumeric(std::string_view host_port, bool allow_port_zero) {
  std::string_view host;
  uint16_t port;
  if (!splitHostPort(host_port, &host, &port, allow_port_zero)) return std::nullopt;
  std::string h(host);
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::optional<Address> localAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::optional<Address> originalDestination(int fd, int family) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rc = family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len)
                              : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
  if (rc != 0) return std::nullopt;  // no conntrack entry: not redirected
  auto orig = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (!orig) return std::nullopt;
  // A conntrack entry without a REDIRECT (any NAT table loaded: every pod
  // with the redirect) reports the address the app dialled, which is then
  // our own listener's (DESIGN.md "Where a request goes"): not redirected.
  auto local = localAddress(fd);
  if (local && *orig == *local) return std::nullopt;
  return orig;
}

bool ipv6Unavailable(const Address& a) {
  if (a.family() != AF_INET6) return false;
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno == EAFNOSUPPORT;
  bool loopback = IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
  bool missing = false;
  if (loopback) {
    sockaddr_in6 probe{};
    probe.sin6_family = AF_INET6;
    probe.sin6_addr = in6addr_loopback;  // port 0: only whether ::1 exists is asked
    missing = ::bind(fd, reinterpret_cast<const sockaddr*>(&probe), sizeof probe) != 0 && errno == EADDRNOTAVAIL;
  }
  ::close(fd);
  return missing;
}

}  // namespace mulligan::net
