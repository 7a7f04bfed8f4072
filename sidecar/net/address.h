// Socket addresses: parsing "host:port" / "[v6]:port", printing, and the
// original destination of an iptables-redirected connection.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::net {

// A numeric IPv4 or IPv6 socket address.
struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  void setPort(uint16_t port);
  bool isLoopback() const;
  std::string toString() const;  // "1.2.3.4:80", "[::1]:80"
  bool operator==(const Address& o) const;

  static std::optional<Address> fromSockaddr(const sockaddr* sa, socklen_t len);
  // Numeric literal only ("127.0.0.1:80", "[::1]:80"); no name resolution.
  // Port 0 ("pick one") is accepted only for addresses we listen on.
  static std::optional<Address> parseNumeric(std::string_view host_port, bool allow_port_zero = false);
};

// Splits "host:port" or "[v6]:port" into its parts. `host` keeps no brackets.
// Returns false when there is no valid port (1..65535, or 0 when allowed) or
// the host is empty.
bool splitHostPort(std::string_view in, std::string_view* host, uint16_t* port, bool allow_port_zero = false);

// The destination the app originally dialled, for a connection that iptables
// REDIRECTed to us (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). Nullopt when the
// connection was not redirected (it was made to our listener's own address).
// `family` is the socket's own (AF_INET or AF_INET6): for an accepted
// socket, its peer's family, which accept already told the caller. Costs one getsockopt for a connection made straight to us (no
// conntrack entry), and a getsockname too only when that succeeds.
std::optional<Address> originalDestination(int fd, int family);

// The local address a socket is bound to.
std::optional<Address> localAddress(int fd);

// True when `a` is an IPv6 address and this kernel (or network namespace)
// has IPv6 turned off: no AF_INET6 sockets at all, or `::1` not assigned
// (net.ipv6.conf.lo.disable_ipv6=1). A pod's second listener, [::1]:15001,
// is then skipped with a warning rather than keeping the sidecar — and the
// pod's network — from starting. Any other bind failure stays an error.
bool ipv6Unavailable(const Address& a);

}  // namespace mulligan::net
