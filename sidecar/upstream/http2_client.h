// The upstream side of HTTP/2: nghttp2 client sessions, pooled per
// destination, and Http2Attempt, one try of a call as one stream on one of
// them.
//
// Why here and not in a codec/ directory: like Http1Attempt and ConnPool,
// these own sockets, timers and the worker's pool, and report to
// ProxyStream; nghttp2 itself is the codec (framing, HPACK, flow control),
// and the glue from its C callbacks to our objects, shared with the
// app-facing server session, is Http2Session (codec/http2/http2_session.h).
//
// Http2ClientSession: one TCP connection to one upstream, many streams.
//   Connecting -> Handshaking -> Ready -> (GOAWAY received / idle / error)
//   Closing. Streams wait (not submitted) until the peer's first SETTINGS
//   arrived, so that its SETTINGS_MAX_CONCURRENT_STREAMS is known before a
//   stream goes out (one round trip per new connection, never a stream
//   refused for a limit we could have known). A session takes new streams
//   while that limit allows; past it, Http2Pool opens another connection, and
//   streams that waited beyond the limit move to another session. After a GOAWAY it takes no new stream (the pool
//   connects anew) and finishes the streams at or below the last stream id;
//   nghttp2 closes the ones beyond it with REFUSED_STREAM, which Http2Attempt
//   reports as the `refused-stream` outcome. Received DATA is acknowledged
//   (WINDOW_UPDATE, via nghttp2_session_consume) only once the attempt's
//   owner took it and downstream is not congested: a slow client slows the
//   upstream, the sidecar does not buffer without bound.
//
//   A session that is still connecting or handshaking when its last waiting
//   attempt goes away (the app closed, the call was cancelled) is closed at
//   once: nothing would use it.
//   Limits (http2_limits.h): an upstream that floods (PING, SETTINGS, empty
//   frames, ACKs it does not read) gets GOAWAY ENHANCE_YOUR_CALM and the
//   connection closes, as after any connection error; the attempts on it
//   see the connection lost.
//
// Http2Pool: the worker's sessions per destination ("ip:port"). At most
// --max-upstream-connections (Config::max_upstream_connections, 0 = no cap)
// sessions per destination, and as many calls in flight on them (submitted
// or waiting for a session): a call beyond either is not queued, it fails
// at once with the `overflow` outcome (503, as for HTTP/1). Not
// thread-safe: one per worker.
//
// Http2Attempt (http2_attempt.h): one try of a call as one stream on a
// session.
//
// Lifetime: sessions are owned by the pool and freed from the loop; attempts
// are owned by their ProxyStream and detach from their session when they end
// (a session never outlives its pool; an attempt may outlive its session).
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sidecar/core/intrusive_list.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/net/address.h"
#include "sidecar/codec/fields.h"
#include "sidecar/upstream/attempt.h"
#include "sidecar/codec/http2/http2_limits.h"
#include "sidecar/codec/http2/http2_session.h"

namespace mulligan::proxy {

class UpstreamContext;
class Http2Attempt;
class Http2Pool;

class Http2ClientSession : public Http2Session {
 public:
  enum class State {
    kConnecting,  // TCP connect in progress; attempts wait
    kHandshaking, // connected, waiting for the peer's SETTINGS (its stream limit); attempts wait
    kReady,       // connected; streams flow
    kClosing,     // GOAWAY received or sent, or idle: no new streams
    kClosed,      // the connection is gone; waiting to be freed
  };

  Http2ClientSession(Http2Pool* pool, UpstreamContext* worker, const net::Address& dest, int64_t connect_timeout_us);
  ~Http2ClientSession() override;

  // Starts the connect (false when it failed at once).
  bool connect();
  // Room for one more stream (counting the ones waiting to be submitted).
  bool canTakeStream() const;
  State state() const { return state_; }

  // --- for Http2Attempt ---
  void attach(Http2Attempt* a);
  // The attempt is done or walked away: reset its stream if still open.
  void detach(Http2Attempt* a, bool reset);
  // The attempt walked away from a response that is about to end by itself
  // (a small declared body): instead of RST_STREAM the stream is left to
  // finish, its data discarded, and reset only if it is not done within
  // kOrphanGraceUs. nghttp2-based servers (nghttpx, Apache, Node) tear the
  // connection down with GOAWAY after ~1000 received resets (their
  // CVE-2023-44487 rate limit), and a retry of every 503 would be one each.
  void orphan(Http2Attempt* a);
  static constexpr int64_t kOrphanGraceUs = 1'000'000;
  void resumeData(int32_t stream_id);
  void consume(int32_t stream_id, size_t n);
  void setIdleTimeoutUs(int64_t us) { idle_timeout_us_ = us; }
  UpstreamContext& worker() { return *worker_; }

  // Calls on this session: submitted, waiting for the handshake, or left to finish.
  size_t load() const { return streams_.size() + waiting_.size() + orphans_.size(); }

  // nghttp2 callbacks (Http2Session's trampolines call these).
  int onFrameSend(const nghttp2_frame* frame) override;
  int onFrameNotSend(const nghttp2_frame* frame, int error) override;
  int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) override;
  int onFrameRecv(const nghttp2_frame* frame) override;
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) override;
  int onStreamClose(int32_t stream_id, uint32_t error_code) override;
  // A request body, for nghttp2 (and its trailers once it ends).
  ssize_t readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) override;

 private:
  static void onConnectEvent(bufferevent* bev, short what, void* arg);
  // Http2Session: input, output drained or a flush asked for, EOF/error.
  void onInput() override;
  void flush() override;
  void onConnectionEvent(short what) override;
  void connected();
  // The peer's first SETTINGS: submit what waited, up to its stream limit.
  void handshakeDone();
  void submit(Http2Attempt* a);
  // The connection ended: every attempt still attached is told.
  void closeWith(const std::string& why, bool connect_failed);
  void maybeIdle();
  Http2Attempt* attemptFor(int32_t stream_id);
  // The upstream went beyond a limit (or nghttp2 found a connection error):
  // GOAWAY, counted and logged, and the connection ends.
  void goAway(Http2Offence o, const char* what);
  void noteGoAway(Http2Offence o, uint32_t code);

  Http2Pool* pool_;
  UpstreamContext* worker_;
  net::Address dest_;
  int64_t connect_timeout_us_;
  int64_t idle_timeout_us_ = 60'000'000;
  State state_ = State::kConnecting;
  event::Timer timer_;  // connect timeout, then idle timeout
  std::vector<Http2Attempt*> waiting_;  // not yet submitted
  // Submitted, open. Found from nghttp2's callbacks through the stream's
  // user data (given to nghttp2_submit_request, so set from the moment the
  // stream exists; nghttp2_session_set_stream_user_data also reaches a
  // request still queued), which points at the attempt exactly while it is
  // in this list: every way out (detach, the stream's close, closeWith)
  // clears it. The list is for the walks over all of them. A map by stream
  // id cost a node malloc per stream and a hash lookup per callback (issue 18).
  core::IntrusiveList<Http2Attempt> streams_;
  // Unlinks `a` (in streams_) and clears its stream's user data.
  void unlink(Http2Attempt* a);
  // The fields of request HEADERS nghttp2 has not packed yet, in submit
  // order: submitted in place (NGHTTP2_NV_FLAG_NO_COPY_*, nvOfInPlace), so
  // nghttp2 reads them when it packs the frame, which may be after the
  // attempt is gone (cancelled or orphaned with its HEADERS still queued:
  // nghttp2 then drops the frame, or sends it, as it would a copy). Owned
  // here, given back to the HeaderStock when the frame went out or was
  // dropped (headDone, from on_frame_send / on_frame_not_send), else freed
  // with the session (nghttp2_session_del packs nothing). Entries from
  // queued_first_ on are live; a done one has stream id 0.
  struct QueuedHead {
    int32_t stream_id;
    HeaderList fields;
  };
  std::vector<QueuedHead> queued_heads_;
  size_t queued_first_ = 0;
  void headDone(int32_t stream_id);
  // Streams left to finish (see orphan()): id and the time to reset it.
  std::vector<std::pair<int32_t, int64_t>> orphans_;
  event::Timer orphan_timer_;
  bool goaway_noted_ = false;
  void onOrphanTimer();
  bool isOrphan(int32_t stream_id) const;
  void dropOrphan(int32_t stream_id);
};

class Http2Pool {
 public:
  explicit Http2Pool(UpstreamContext* worker) : worker_(worker) {}
  ~Http2Pool();
  Http2Pool(const Http2Pool&) = delete;
  Http2Pool& operator=(const Http2Pool&) = delete;

  // A session to `dest` with room for one more stream: an existing one, or a
  // new connection (null when even the connect could not start, or when
  // the destination is at its limits: then `overflow` is set).
  // `reused` (optional) says whether the session was already open.
  // `fresh` (retry.fresh_connection): a new connection, which then joins
  // the pool for later calls — while the destination has fewer than
  // kMaxFreshSessions sessions (else a pooled one, as without `fresh`).
  Http2ClientSession* sessionFor(const net::Address& dest, int64_t connect_timeout_us, bool* reused = nullptr,
                                 bool* overflow = nullptr, bool fresh = false);
  // A session ended: the pool forgets it and frees it from the loop.
  void remove(Http2ClientSession* s);
  size_t sessionCount() const;
  static constexpr size_t kMaxFreshSessions = 16;

 private:
  // Keyed by the address itself, not its text: every call looks its
  // destination up, and printing an address (inet_ntop, a string) cost
  // about 2,000 instructions a request (issue 18).
  struct AddressHash {
    size_t operator()(const net::Address& a) const;
  };
  UpstreamContext* worker_;
  std::unordered_map<net::Address, std::vector<std::unique_ptr<Http2ClientSession>>, AddressHash> sessions_;
};

}  // namespace mulligan::proxy
