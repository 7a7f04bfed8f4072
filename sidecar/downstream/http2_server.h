// Http2ServerSession: the downstream (app-facing) side of an h2c connection
// (prior knowledge: the connection began with the HTTP/2 preface, as gRPC's
// do). An nghttp2 server session; each request stream is an
// Http2ServerStream, the Downstream of one ProxyStream, and many run at once.
//
// SETTINGS: MAX_CONCURRENT_STREAMS kMaxConcurrentStreams, MAX_HEADER_LIST_SIZE
// 64 KiB (a larger header block is answered 431), push off.
// PING and SETTINGS are answered by nghttp2; a client's GOAWAY or RST_STREAM
// ends the affected ProxyStreams (which cancel their upstream streams).
//
// Limits (http2_limits.h): a client that floods (PING, SETTINGS, empty
// frames, resets, ACKs it does not read) or opens a stream whose id is at or
// below one it already used (RFC 9113 §5.1.1) gets GOAWAY (ENHANCE_YOUR_CALM
// or PROTOCOL_ERROR) and the connection closes once that is written (at
// most kGoawayLingerUs later); its streams are cancelled. Any other
// connection error nghttp2 finds ends the same way (PROTOCOL_ERROR, or the
// code nghttp2 chose).
//
// Flow control, both ways (no automatic WINDOW_UPDATE):
//  - request bodies: credit goes back to the app (nghttp2_session_consume)
//    only while the call's upstream backlog is small, so a slow upstream
//    slows the app instead of filling the sidecar;
//  - responses: data waits in the stream's buffer for nghttp2 (a deferred
//    data provider, resumed as data arrives); above kHighWater the
//    ProxyStream pauses its upstream, which stops returning credit there.
//
// The nghttp2 glue (callbacks, flushing into the bufferevent, SETTINGS,
// windows) is Http2Session's (codec/http2/http2_session.h), shared with the
// upstream client sessions; this class is what the frames mean downstream.
//
// Lifetime: owned by its Connection. Streams are destroyed from the loop
// after nghttp2 closes them (never inside nghttp2's callbacks).
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include "sidecar/core/intrusive_list.h"
#include "sidecar/core/recycled.h"
#include "sidecar/event/event_loop.h"
#include "sidecar/codec/fields.h"
#include "sidecar/downstream/downstream_context.h"
#include "sidecar/stream/downstream.h"
#include "sidecar/codec/http2/http2_limits.h"
#include "sidecar/codec/http2/http2_session.h"
#include "sidecar/codec/http2/stream_body.h"

namespace mulligan::proxy {

class Connection;
class ProxyStream;
class Worker;
class Http2ServerSession;

// Recycled: one is made per request stream; its memory is reused from a
// per-thread list (as ProxyStream's), long enough for a burst of a few
// hundred streams (64, the default, left half of them to malloc at 128 in
// flight). Linked into its session's list of
// streams while the session owns it (see Http2ServerSession::streams_).
class Http2ServerStream : public event::Deletable,
                          public Downstream,
                          public core::Recycled<Http2ServerStream, 256>,
                          public core::IntrusiveLink<Http2ServerStream> {
 public:
  static constexpr size_t kHighWater = 256 * 1024;  // response bytes waiting for the app
  static constexpr size_t kLowWater = 64 * 1024;
  // Request body bytes the upstream may hold back before the app gets no more credit.
  static constexpr size_t kRequestBacklogLimit = 256 * 1024;

  Http2ServerStream(Http2ServerSession* session, int32_t id);
  ~Http2ServerStream() override;

  // --- from the session (nghttp2 callbacks) ---
  void onHeader(std::string_view name, std::string_view value);
  void onHeadersEnd(bool end_stream);
  void onData(const uint8_t* data, size_t len);
  void onRemoteEnd();
  void onClosed(uint32_t error_code);
  // A HEADERS frame of this stream went out (the response head is the
  // first): its fields' storage can be given back.
  void onHeadSent();
  ssize_t readResponse(uint8_t* buf, size_t len, uint32_t* flags, bool* submit_trailers);
  const HeaderList& responseTrailers() const { return trailers_; }
  int32_t id() const { return id_; }

  // --- Downstream ---
  DownstreamContext& worker();
  StreamContext& streamContext() override;
  Protocol protocol() const override { return Protocol::kHttp2; }
  const std::optional<net::Address>& originalDst() const override;
  void writeHead(const MessageHead& head, bool end_stream) override;
  void writeHeadTaking(MessageHead& head, bool end_stream) override;
  void writeBody(const char* data, size_t len) override;
  void writeTrailers(const HeaderList& trailers) override;
  void responseComplete() override;
  void responseAborted() override;
  void localReply(const LocalReply& reply) override;
  void upgradeToTunnel(bufferevent* upstream) override;
  bool congested() const override { return out_.length() >= kHighWater; }
  void flush() override;
  void requestBodyConsumed() override;

 private:
  // A head of our own (copied into resp_head_), then submitRespHead.
  void submitHead(int status, const HeaderList& headers, bool end_stream);
  // Submits `status` and resp_head_ (`filter`: without its connection-specific
  // fields) without a copy.
  void submitRespHead(int status, bool filter, bool end_stream);

  Http2ServerSession* session_;
  int32_t id_;
  RequestHead head_;
  size_t header_bytes_ = 0;
  size_t header_count_ = 0;
  bool too_large_ = false;
  bool in_trailers_ = false;
  HeaderList req_trailers_;
  bool request_ended_ = false;
  std::unique_ptr<ProxyStream> proxy_;
  size_t held_ = 0;  // request bytes not yet credited back to the app

  StreamBody out_;              // response body waiting for nghttp2
  bool head_submitted_ = false;
  // The response head's fields as nghttp2 reads them: submitted without a
  // copy (NGHTTP2_NV_FLAG_NO_COPY_NAME/VALUE), so they must outlive the
  // packing of the HEADERS frame (in nghttp2_session_mem_send). The
  // upstream's own list, taken (writeHeadTaking), or a copy. Written once,
  // given back when that frame has gone out (onHeadSent: nghttp2 reads the
  // fields no more) or, at the latest, with the stream: nghttp2 packs it
  // only while the stream is open, and this stream is freed only after
  // nghttp2 closed it (onStreamClose) or with the session (whose
  // nghttp2_session_del packs nothing).
  HeaderList resp_head_;
  char status_text_[12];        // resp_head_'s :status value, read in place as well
  bool out_ended_ = false;      // no more response data
  HeaderList trailers_;
  bool was_congested_ = false;
  bool closed_ = false;
};

class Http2ServerSession : public Http2Session {
 public:
  static constexpr uint32_t kMaxConcurrentStreams = 256;
  // Request streams open at once in one worker, all its connections
  // together; a stream beyond it is refused at once (RST_STREAM
  // REFUSED_STREAM: never processed, safe for the client to retry, RFC 9113
  // §8.7) before anything is allocated for it. Each open stream holds a few
  // KiB (its call, its attempt, both sides' nghttp2 state): this bounds what
  // many connections that each open their 256 streams can make a worker
  // hold (issue 15: 1,000 connections x 100 abandoned streams).
  static constexpr size_t kMaxStreamsPerWorker = 2048;
  // Request streams open now on this thread (tests).
  static size_t openStreams();

  // Takes over `bev` (with the sniffed preface still in its input).
  Http2ServerSession(Connection* conn, bufferevent* bev);
  ~Http2ServerSession() override;

  void start();
  // Graceful stop: GOAWAY, finish the streams in flight, then close.
  void drain();

  // --- for streams ---
  Connection& connection() { return *conn_; }
  DownstreamContext& worker();
  // (session() and scheduleFlush(): Http2Session.)

  // Stream ids we reset that the client may still send frames on (RFC 9113
  // §5.4.2: it may not have seen the reset yet); more are forgotten.
  static constexpr size_t kResetMemory = 256;

  // nghttp2 callbacks (Http2Session's trampolines call these).
  int onBeginFrame(const nghttp2_frame_hd& hd) override;
  int onFrameSend(const nghttp2_frame* frame) override;
  int onBeginHeaders(const nghttp2_frame* frame) override;
  int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) override;
  int onFrameRecv(const nghttp2_frame* frame) override;
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) override;
  int onStreamClose(int32_t stream_id, uint32_t error_code) override;
  // A response body, for nghttp2 (and its trailers once it ends).
  ssize_t readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) override;

 private:
  // Http2Session: input, output drained or a flush asked for, EOF/error/timeout.
  void onInput() override { processInput(); }
  void flush() override;
  void onConnectionEvent(short what) override;
  // Feeds the input to nghttp2 (offend() from a callback makes it stop;
  // then goAway).
  void processInput();
  void closeNow();
  Http2ServerStream* streamFor(int32_t id);
  // GOAWAY for `o`, counted and logged; the streams are cancelled and the
  // connection closes once the GOAWAY is written (or after kGoawayLingerUs).
  void goAway(Http2Offence o, int nghttp2_error = 0);
  // Counts and logs the GOAWAY and arms the linger timer (once).
  void noteGoAway(Http2Offence o, uint32_t code);
  bool wasReset(int32_t id) const;

  Connection* conn_;
  // The open request streams, owned (made in onBeginHeaders, handed to the
  // loop to free in onStreamClose, or freed with the session). Found from
  // nghttp2's callbacks through the stream's user data
  // (nghttp2_session_set_stream_user_data), which points at the stream
  // exactly while it is in this list; the list is for the walks over all
  // of them (GOAWAY, close, teardown). A map by stream id cost a node
  // malloc per stream and a hash lookup per callback (issue 18).
  core::IntrusiveList<Http2ServerStream> streams_;
  bool draining_ = false;
  bool closed_ = false;
  bool going_away_ = false;              // GOAWAY for an offence sent: input is discarded
  event::Timer linger_;
  int32_t highest_stream_id_ = 0;        // of the client's HEADERS frames so far
  std::array<int32_t, kResetMemory> reset_ids_{};
  size_t reset_next_ = 0;
};

}  // namespace mulligan::proxy
