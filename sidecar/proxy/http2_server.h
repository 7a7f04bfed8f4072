// Http2ServerSession: the downstream (app-facing) side of an h2c connection
// (prior knowledge: the connection began with the HTTP/2 preface, as gRPC's
// do). An nghttp2 server session; each request stream is an
// Http2ServerStream, the Downstream of one ProxyStream, and many run at once.
//
// SETTINGS: MAX_CONCURRENT_STREAMS kMaxConcurrentStreams, MAX_HEADER_LIST_SIZE
// from --max-header-bytes (a larger header block is answered 431), push off.
// PING and SETTINGS are answered by nghttp2; a client's GOAWAY or RST_STREAM
// ends the affected ProxyStreams (which cancel their upstream streams).
//
// Flow control, both ways (no automatic WINDOW_UPDATE):
//  - request bodies: credit goes back to the app (nghttp2_session_consume)
//    only while the call's upstream backlog is small, so a slow upstream
//    slows the app instead of filling the sidecar;
//  - responses: data waits in the stream's buffer for nghttp2 (a deferred
//    data provider, resumed as data arrives); above kHighWater the
//    ProxyStream pauses its upstream, which stops returning credit there.
//
// Why in proxy/ and not codec/: see http2_client.h.
//
// Lifetime: owned by its Connection. Streams are destroyed from the loop
// after nghttp2 closes them (never inside nghttp2's callbacks).
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "sidecar/event/event_loop.h"
#include "sidecar/proxy/downstream.h"

namespace mulligan::proxy {

class Connection;
class ProxyStream;
class Http2ServerSession;

class Http2ServerStream : public event::Deletable, public Downstream {
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
  ssize_t readResponse(uint8_t* buf, size_t len, uint32_t* flags, bool* submit_trailers);
  const HeaderList& responseTrailers() const { return trailers_; }
  int32_t id() const { return id_; }

  // --- Downstream ---
  Worker& worker() override;
  Protocol protocol() const override { return Protocol::kHttp2; }
  const std::optional<net::Address>& originalDst() const override;
  void writeHead(const MessageHead& head, bool end_stream) override;
  void writeBody(const char* data, size_t len) override;
  void writeTrailers(const HeaderList& trailers) override;
  void responseComplete() override;
  void responseAborted() override;
  void localReply(const LocalReply& reply) override;
  void upgradeToTunnel(bufferevent* upstream) override;
  bool congested() const override { return evbuffer_get_length(out_) >= kHighWater; }
  void flush() override;
  void requestBodyConsumed() override;

 private:
  void submitHead(int status, const HeaderList& headers, bool end_stream);

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

  evbuffer* out_;               // response body waiting for nghttp2
  bool head_submitted_ = false;
  bool out_ended_ = false;      // no more response data
  HeaderList trailers_;
  bool was_congested_ = false;
  bool closed_ = false;
};

class Http2ServerSession : public event::Deletable {
 public:
  static constexpr uint32_t kMaxConcurrentStreams = 256;

  // Takes over `bev` (with the sniffed preface still in its input).
  Http2ServerSession(Connection* conn, bufferevent* bev);
  ~Http2ServerSession() override;

  void start();
  // Graceful stop: GOAWAY, finish the streams in flight, then close.
  void drain();

  // --- for streams ---
  Connection& connection() { return *conn_; }
  Worker& worker();
  nghttp2_session* session() { return session_; }
  void scheduleFlush();

  // nghttp2 callbacks (trampolines call these).
  int onBeginHeaders(const nghttp2_frame* frame);
  int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value);
  int onFrameRecv(const nghttp2_frame* frame);
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len);
  int onStreamClose(int32_t stream_id, uint32_t error_code);
  ssize_t readResponse(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags);

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  static void onFlushEvent(evutil_socket_t, short, void* arg);
  void processInput();
  void flush();
  void closeNow();
  Http2ServerStream* streamFor(int32_t id);

  Connection* conn_;
  bufferevent* bev_;
  nghttp2_session* session_ = nullptr;
  event::EventPtr flush_ev_;
  std::unordered_map<int32_t, std::unique_ptr<Http2ServerStream>> streams_;
  bool draining_ = false;
  bool closed_ = false;
};

}  // namespace mulligan::proxy
