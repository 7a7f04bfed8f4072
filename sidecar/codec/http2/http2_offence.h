// Http2Offence: why a session ended an HTTP/2 peer's connection with GOAWAY
// (http2_limits.h has the limits). Apart from http2_limits.h, so that the
// counters (shared_state.h) and the admin's renderer name them without
// nghttp2's header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mulligan::proxy {

// Why a session ended a peer's connection with GOAWAY.
enum class Http2Offence : uint8_t {
  kPingFlood,          // PING faster than kControlBurst / kControlPerSecond
  kSettingsFlood,      // SETTINGS likewise, or more entries than nghttp2 allows in one
  kOutboundFlood,      // ACKs queued faster than the peer reads (nghttp2's max_outbound_ack)
  kEmptyFrames,        // kMaxEmptyFrames empty DATA/HEADERS/CONTINUATION in a row
  kContinuationFlood,  // more CONTINUATION frames than nghttp2's limit
  kRapidReset,         // RST_STREAM faster than kResetBurst / kResetPerSecond
  kStreamId,           // a new stream's id at or below one already used (RFC 9113 §5.1.1)
  kProtocol,           // any other connection error nghttp2 found
  kCount,
};
constexpr size_t kHttp2OffenceCount = static_cast<size_t>(Http2Offence::kCount);

// Which side of the sidecar the peer is on (the label of the counter).
enum class Http2Side : uint8_t {
  kDownstream,  // the app's connection (Http2ServerSession)
  kUpstream,    // an upstream session (Http2ClientSession)
};

// "ping-flood", "settings-flood", ... (the metric's reason label).
std::string_view offenceName(Http2Offence o);

}  // namespace mulligan::proxy
