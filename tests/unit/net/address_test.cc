#include "sidecar/net/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace mulligan::net {
namespace {

// What SO_ORIGINAL_DST hands back: the address in the first bytes of a
// sockaddr_storage whose length it leaves as the caller passed it.
Address asOriginalDst(const Address& a, uint32_t flowinfo = 0) {
  sockaddr_storage ss{};
  std::memcpy(&ss, a.sa(), a.len);
  if (a.family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_flowinfo = htonl(flowinfo);
  return *Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof ss);
}

TEST(AddressTest, OriginalDstOfTheListenerItselfEqualsTheListenerV4) {
  auto listener = *Address::parseNumeric("127.0.0.1:15001");
  Address orig = asOriginalDst(listener);
  EXPECT_EQ(orig.len, sizeof(sockaddr_in));
  EXPECT_TRUE(orig == listener);
  EXPECT_FALSE(orig == *Address::parseNumeric("127.0.0.1:15002"));
  EXPECT_FALSE(orig == *Address::parseNumeric("127.0.0.2:15001"));
}

TEST(AddressTest, OriginalDstOfTheListenerItselfEqualsTheListenerV6) {
  auto listener = *Address::parseNumeric("[::1]:15001");
  Address orig = asOriginalDst(listener, 0x12345);  // the socket's flow label rides along
  EXPECT_EQ(orig.len, sizeof(sockaddr_in6));
  EXPECT_TRUE(orig == listener);
  EXPECT_FALSE(orig == *Address::parseNumeric("[::2]:15001"));
  EXPECT_FALSE(orig == *Address::parseNumeric("127.0.0.1:15001"));
}

TEST(AddressTest, ShortSockaddrIsRefused) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  EXPECT_FALSE(Address::fromSockaddr(reinterpret_cast<sockaddr*>(&v6), sizeof(sockaddr_in)).has_value());
}

}  // namespace
}  // namespace mulligan::net
