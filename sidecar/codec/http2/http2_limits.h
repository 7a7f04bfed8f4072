// What the sidecar tolerates from an HTTP/2 peer, on both sides (the app's
// h2c connections, Http2ServerSession; upstream sessions, Http2ClientSession),
// and how a peer that goes beyond it is told.
//
// nghttp2's own limits come first (applyNghttp2Limits): SETTINGS entries per
// frame, CONTINUATION frames per header block, PING/SETTINGS ACKs queued
// but not yet sent, and (server) its RST_STREAM rate limit, kept above ours
// as a backstop. Where nghttp2 has no limit, or answers one with the wrong
// code, Http2FloodGuard counts from the frame headers as they arrive
// (nghttp2's on_begin_frame callback):
//  - PING and SETTINGS that ask for an ACK: token buckets (kControlBurst,
//    refilled kControlPerSecond). Each one makes us write; a peer that
//    sends them without reading fills our output, which is what Envoy's
//    outbound control-frame limit and CVE-2019-9512/9515 are about. The PING
//    bucket is full again whenever we send the peer HEADERS or DATA: a
//    receiver measuring the bandwidth-delay product (gRPC's BDP estimator)
//    pings once per round trip while data flows, which on loopback is
//    thousands a second; gRPC's own servers forgive pings the same way
//    (ping strikes reset when data is sent).
//  - consecutive DATA / HEADERS / CONTINUATION frames with an empty payload
//    that end nothing (kMaxEmptyFrames; CVE-2019-9518, Envoy's
//    max_consecutive_inbound_frames_with_empty_payload);
//  - RST_STREAM from a client (rapid reset, CVE-2023-44487): a token bucket
//    like nghttp2's (burst kResetBurst, kResetPerSecond), answered with
//    ENHANCE_YOUR_CALM rather than nghttp2's INTERNAL_ERROR.
// Each offender gets GOAWAY with Http2Offence's error code and the
// connection closes; `mulligan_http2_goaways_total{side,reason}` counts it
// and the log says so once per episode (noteOffence).
//
// Threading: a guard belongs to one session (one worker thread).
#pragma once

#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sidecar/codec/http2/http2_offence.h"

namespace mulligan::proxy {

// The GOAWAY error code (RFC 9113 §7): ENHANCE_YOUR_CALM for floods,
// PROTOCOL_ERROR for a stream id that goes backwards and other errors.
uint32_t offenceErrorCode(Http2Offence o);
// What nghttp2_session_mem_recv's error `rv` means as an offence.
Http2Offence offenceOfNghttp2Error(int rv);

// Sets nghttp2's own limits on `opt` (both sides; the reset rate limit only
// matters to a server session).
void applyNghttp2Limits(nghttp2_option* opt);

// A token bucket: `burst` tokens to start with and at most, `per_second`
// more each second.
class TokenBucket {
 public:
  TokenBucket(uint32_t burst, uint32_t per_second) : burst_(burst), per_second_(per_second), tokens_(burst) {}
  // Takes one token at `now_us`; false when there was none.
  bool take(int64_t now_us);

 private:
  double burst_;
  double per_second_;
  double tokens_;
  int64_t last_us_ = -1;
};

class Http2FloodGuard {
 public:
  static constexpr uint32_t kControlBurst = 1000;
  static constexpr uint32_t kControlPerSecond = 100;
  static constexpr uint32_t kMaxEmptyFrames = 100;
  static constexpr uint32_t kResetBurst = 1000;
  static constexpr uint32_t kResetPerSecond = 33;
  // nghttp2's: CONTINUATION frames after one HEADERS (a full 64 KiB header
  // list fits in four 16 KiB frames), ACKs queued unsent, SETTINGS entries.
  static constexpr size_t kMaxContinuations = 8;
  static constexpr size_t kMaxOutboundAcks = 1000;
  static constexpr size_t kMaxSettingsEntries = 32;

  // `count_resets`: a server counts the client's RST_STREAM frames.
  explicit Http2FloodGuard(bool count_resets) : count_resets_(count_resets) {}

  // One inbound frame header (nghttp2's on_begin_frame, CONTINUATION
  // included). Returns true when the frame crosses a limit; offence() says
  // which.
  bool onFrameHeader(const nghttp2_frame_hd& hd, int64_t now_us);
  Http2Offence offence() const { return offence_; }
  // We sent the peer HEADERS or DATA (nghttp2's on_frame_send).
  void onDataSent() { pings_ = TokenBucket(kControlBurst, kControlPerSecond); }

 private:
  bool offend(Http2Offence o) {
    offence_ = o;
    return true;
  }

  bool count_resets_;
  TokenBucket pings_{kControlBurst, kControlPerSecond};
  TokenBucket settings_{kControlBurst, kControlPerSecond};
  TokenBucket resets_{kResetBurst, kResetPerSecond};
  uint32_t empty_in_a_row_ = 0;
  Http2Offence offence_ = Http2Offence::kProtocol;
};

// Takes over `bev` (a connection its owner is done with) and frees it once
// its output is written, or after `linger_us` at most. What arrives
// meanwhile is read and dropped, so that the close is a FIN after the last
// frame rather than a reset that could discard it (close() with unread
// input sends RST).
void lingerClose(bufferevent* bev, int64_t linger_us);

// Counts an offence in this worker's counters' slot (the caller passes it)
// and logs it at most once per episode: the first offence of a (side,
// reason) logs at once, later ones within kOffenceLogIntervalUs only count,
// and the next line says how many there were.
// `code`: the GOAWAY's error code (nghttp2 picks its own for errors it finds).
void noteOffence(Http2Side side, Http2Offence o, uint32_t code, const char* peer, int64_t now_us);
constexpr int64_t kOffenceLogIntervalUs = 10'000'000;

}  // namespace mulligan::proxy
