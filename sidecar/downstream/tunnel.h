// Tunnel: relays bytes between two connected bufferevents, both directions,
// untouched — for opaque TCP (anything that is not HTTP), CONNECT, and
// upgraded connections (WebSocket).
//
// Back-pressure: when one side's output holds more than kHighWater bytes, the
// other side stops reading until it drains below kLowWater, so a slow reader
// never makes the sidecar buffer without bound. Half-close: when one side
// sends EOF, its peer's write half is shut down once everything pending has
// been flushed, and the other direction goes on; the tunnel ends when both
// directions have closed, or at once on an error. Owns both bufferevents.
#pragma once

#include <event2/bufferevent.h>

#include <cstdint>
#include <functional>

#include "sidecar/event/event_loop.h"

namespace mulligan::proxy {

class Tunnel : public event::Deletable {
 public:
  static constexpr size_t kHighWater = 1 << 20;
  static constexpr size_t kLowWater = 256 << 10;

  struct Totals {
    uint64_t downstream_to_upstream = 0;
    uint64_t upstream_to_downstream = 0;
  };

  // `done` runs once, from the loop, when the tunnel has ended; the owner
  // then destroys the tunnel (deferred). Bytes already in either input
  // buffer are relayed first.
  Tunnel(bufferevent* downstream, bufferevent* upstream, std::function<void(const Totals&)> done);
  ~Tunnel() override;

 private:
  struct Side {
    bufferevent* bev = nullptr;
    bool read_closed = false;   // EOF seen from this side
    bool write_shut = false;    // we shut down this side's write half
  };

  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  Side& sideOf(bufferevent* bev) { return bev == a_.bev ? a_ : b_; }
  Side& peerOf(bufferevent* bev) { return bev == a_.bev ? b_ : a_; }
  void relay(Side& from, Side& to);
  void maybeShutWrite(Side& s);
  void finish();

  Side a_;  // downstream (the app)
  Side b_;  // upstream
  Totals totals_;
  std::function<void(const Totals&)> done_;
  bool finished_ = false;
};

}  // namespace mulligan::proxy
