#include "sidecar/codec/http2/http2_limits.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <string>

#include "sidecar/core/logging.h"

namespace mulligan::proxy {

std::string_view offenceName(Http2Offence o) {
  switch (o) {
    case Http2Offence::kPingFlood: return "ping-flood";
    case Http2Offence::kSettingsFlood: return "settings-flood";
    case Http2Offence::kOutboundFlood: return "outbound-flood";
    case Http2Offence::kEmptyFrames: return "empty-frames";
    case Http2Offence::kContinuationFlood: return "continuation-flood";
    case Http2Offence::kRapidReset: return "rapid-reset";
    case Http2Offence::kStreamId: return "stream-id";
    case Http2Offence::kProtocol: return "protocol-error";
    case Http2Offence::kCount: break;
  }
  return "protocol-error";
}

uint32_t offenceErrorCode(Http2Offence o) {
  switch (o) {
    case Http2Offence::kStreamId:
    case Http2Offence::kProtocol:
      return NGHTTP2_PROTOCOL_ERROR;
    default:
      return NGHTTP2_ENHANCE_YOUR_CALM;
  }
}

Http2Offence offenceOfNghttp2Error(int rv) {
  switch (rv) {
    case NGHTTP2_ERR_FLOODED: return Http2Offence::kOutboundFlood;
    case NGHTTP2_ERR_TOO_MANY_SETTINGS: return Http2Offence::kSettingsFlood;
#ifdef NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: return Http2Offence::kContinuationFlood;
#endif
    default: return Http2Offence::kProtocol;
  }
}

void applyNghttp2Limits(nghttp2_option* opt) {
  // nghttp2 otherwise keeps up to SETTINGS_MAX_CONCURRENT_STREAMS closed
  // streams per connection for the RFC 7540 priority tree, which we do not
  // use: ~56 KiB per connection whose streams are done, most of the
  // memory of issue 15's storm (1,000 connections x 100 streams).
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, Http2FloodGuard::kMaxOutboundAcks);
  nghttp2_option_set_max_settings(opt, Http2FloodGuard::kMaxSettingsEntries);
  // Debian 12's 1.52.0 carries the CVE-2023-44487 and CVE-2024-27316
  // backports (the functions below); they are nghttp2 1.57 / 1.61 upstream.
  nghttp2_option_set_max_continuations(opt, Http2FloodGuard::kMaxContinuations);
  // Ours trips first (ENHANCE_YOUR_CALM, counted); nghttp2's is the backstop.
  nghttp2_option_set_stream_reset_rate_limit(opt, 2 * Http2FloodGuard::kResetBurst,
                                             2 * Http2FloodGuard::kResetPerSecond);
}

bool TokenBucket::take(int64_t now_us) {
  if (last_us_ >= 0 && now_us > last_us_) {
    tokens_ += static_cast<double>(now_us - last_us_) * per_second_ / 1e6;
    if (tokens_ > burst_) tokens_ = burst_;
  }
  last_us_ = now_us;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

bool Http2FloodGuard::onFrameHeader(const nghttp2_frame_hd& hd, int64_t now_us) {
  switch (hd.type) {
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION: {
      // "Empty" means no payload and nothing ended: a frame that moves
      // nothing forward (an END_STREAM or END_HEADERS frame may be empty).
      bool ends = (hd.flags & NGHTTP2_FLAG_END_STREAM) ||
                  (hd.type != NGHTTP2_DATA && (hd.flags & NGHTTP2_FLAG_END_HEADERS));
      if (hd.length != 0 || ends) {
        empty_in_a_row_ = 0;
      } else if (++empty_in_a_row_ > kMaxEmptyFrames) {
        return offend(Http2Offence::kEmptyFrames);
      }
      return false;
    }
    case NGHTTP2_PING:
      if (!(hd.flags & NGHTTP2_FLAG_ACK) && !pings_.take(now_us)) return offend(Http2Offence::kPingFlood);
      return false;
    case NGHTTP2_SETTINGS:
      if (!(hd.flags & NGHTTP2_FLAG_ACK) && !settings_.take(now_us)) return offend(Http2Offence::kSettingsFlood);
      return false;
    case NGHTTP2_RST_STREAM:
      if (count_resets_ && !resets_.take(now_us)) return offend(Http2Offence::kRapidReset);
      return false;
    default:
      return false;
  }
}

namespace {

struct Lingering {
  bufferevent* bev;
  event* timer;
  static void done(Lingering* l) {
    event_free(l->timer);
    bufferevent_free(l->bev);
    delete l;
  }
  static void onRead(bufferevent* bev, void*) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  static void onWrite(bufferevent*, void* arg) { done(static_cast<Lingering*>(arg)); }
  static void onEvent(bufferevent*, short, void* arg) { done(static_cast<Lingering*>(arg)); }
  static void onTimeout(evutil_socket_t, short, void* arg) { done(static_cast<Lingering*>(arg)); }
};

}  // namespace

void lingerClose(bufferevent* bev, int64_t linger_us) {
  auto* l = new Lingering{bev, nullptr};
  l->timer = evtimer_new(bufferevent_get_base(bev), &Lingering::onTimeout, l);
  timeval tv{static_cast<time_t>(linger_us / 1'000'000), static_cast<suseconds_t>(linger_us % 1'000'000)};
  evtimer_add(l->timer, &tv);
  // The write callback runs when the output drains to the low watermark (0).
  bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
  bufferevent_setcb(bev, &Lingering::onRead, &Lingering::onWrite, &Lingering::onEvent, l);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  Lingering::onRead(bev, l);
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    // Nothing left to write: a write callback would never come.
    event_active(l->timer, EV_TIMEOUT, 0);
  }
}

namespace {

// Per worker thread: when each (side, reason) was last logged, and how
// many were not logged since.
struct OffenceLog {
  int64_t last_us[2][kHttp2OffenceCount] = {};
  uint64_t quiet[2][kHttp2OffenceCount] = {};
  bool logged[2][kHttp2OffenceCount] = {};
};
thread_local OffenceLog t_log;

}  // namespace

void noteOffence(Http2Side side, Http2Offence o, uint32_t code, const char* peer, int64_t now_us) {
  size_t s = static_cast<size_t>(side), r = static_cast<size_t>(o);
  if (t_log.logged[s][r] && now_us - t_log.last_us[s][r] < kOffenceLogIntervalUs) {
    ++t_log.quiet[s][r];
    return;
  }
  uint64_t quiet = t_log.quiet[s][r];
  t_log.logged[s][r] = true;
  t_log.last_us[s][r] = now_us;
  t_log.quiet[s][r] = 0;
  std::string name(offenceName(o));
  std::string more = quiet ? " (" + std::to_string(quiet) + " more since the last such line)" : "";
  LOG_WARN("HTTP/2 %s %s: %s, GOAWAY %s, connection closed%s",
           side == Http2Side::kDownstream ? "client" : "upstream", peer, name.c_str(), nghttp2_http2_strerror(code),
           more.c_str());
}

}  // namespace mulligan::proxy
