// Http2Attempt: the HTTP/2 transport of one try of a call — one stream on a
// pooled nghttp2 client session (http2_client.h). Its state, its one timer
// (the connect timeout while it waits for a session, then the header and
// read timeouts) and its outcomes are the Attempt lifecycle's (attempt.h);
// this class turns the session's callbacks (submitted, headers, data, stream
// closed, session lost) into lifecycle events. cancel() resets the stream
// with CANCEL, or lets a small answer finish (Http2ClientSession::orphan).
//
// Lifetime: owned by its ProxyStream; detaches from its session when it
// ends (an attempt may outlive its session, never the reverse).
// Recycled: one is made per try; its memory is reused from a per-thread
// list, and its request and response fields are HeaderStock lists, so a try
// costs no malloc for them once the worker is warm.
#pragma once

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/core/intrusive_list.h"
#include "sidecar/core/recycled.h"
#include "sidecar/net/address.h"
#include "sidecar/codec/http2/stream_body.h"
#include "sidecar/upstream/attempt.h"

namespace mulligan::proxy {

class UpstreamContext;
class Http2ClientSession;

// Linked into its session's list of streams while submitted and open
// (Http2ClientSession::streams_).
class Http2Attempt : public Attempt, public core::Recycled<Http2Attempt, 256>, public core::IntrusiveLink<Http2Attempt> {
 public:
  Http2Attempt(UpstreamContext* worker, Owner* owner, const net::Address& dest, Timeouts timeouts);
  ~Http2Attempt() override;

  // Attempt
  void sendHead(const RequestHead& head, const retry::AttemptHeaders& extra) override;
  void sendBody(const char* data, size_t len) override;
  void endRequest(const HeaderList* trailers) override;
  void start() override;
  void flush() override;
  void setIdleTimeoutUs(int64_t us) override { idle_timeout_us_ = us; }
  void forbidReuse() override {}  // streams are independent: nothing to forbid
  void pauseReading(bool paused) override;
  void cancel() override;
  // A hedge's loser still waiting for its head, whose request went out
  // whole: left to the session's orphan rule (see Http2ClientSession::orphan)
  // rather than reset at once; otherwise as cancel().
  void cancelAsLoser() override;
  bufferevent* releaseConnection() override { return nullptr; }
  size_t requestBacklog() const override { return body_.length(); }
  bool reused() const override { return reused_; }

  // --- for Http2ClientSession ---
  // The request's fields, names lower-cased, pseudo-headers first (for
  // the submit), and the same taken by the session once submitted (nghttp2
  // reads them in place until it packed the HEADERS frame).
  const HeaderList& requestFields() const { return fields_; }
  HeaderList takeRequestFields() { return std::move(fields_); }
  bool hasBody() const { return has_body_; }
  int32_t streamId() const { return stream_id_; }
  void submitted(int32_t stream_id);
  void onHeader(std::string_view name, std::string_view value);
  void onHeadersEnd(bool end_stream);
  void onData(const uint8_t* data, size_t len);
  void onRemoteEnd();
  void onStreamClose(uint32_t error_code);
  // The session died (connection closed or never made).
  void onSessionLost(const std::string& why, bool connect_failed, bool submitted);
  ssize_t readBody(uint8_t* buf, size_t len, uint32_t* flags, bool* submit_trailers);
  const HeaderList& requestTrailers() const { return trailers_; }
  void onReadDone();
  // Moves a waiting attempt to another session of the pool.
  void rehome(Http2ClientSession* s) { session_ = s; }
  // The session is being freed (worker teardown): forget it, no callbacks.
  void forgetSession() { session_ = nullptr; }

 private:
  // Attempt: a failure or an abort resets the stream.
  void onFailed(retry::OutcomeKind kind) override;
  void onAborted() override { detach(true); }
  void detach(bool reset);

  UpstreamContext* worker_;
  int64_t idle_timeout_us_ = 0;
  Http2ClientSession* session_ = nullptr;
  int32_t stream_id_ = -1;
  bool reused_ = false;    // the stream went on an already open session

  // Request.
  HeaderList fields_;        // names lower-cased; from HeaderStock, the session's once submitted
  StreamBody body_;          // request body not yet taken by nghttp2
  bool has_body_ = false;    // a body follows the HEADERS
  bool body_ended_ = false;  // endRequest() seen
  HeaderList trailers_;

  // Response.
  // Largest declared response body cancel() lets finish instead of resetting.
  static constexpr uint64_t kOrphanMaxBody = 64 << 10;
  MessageHead head_;
  bool head_end_stream_ = false;  // the final head came with END_STREAM
  HeaderList resp_trailers_;
  bool paused_ = false;
  size_t unconsumed_ = 0;  // DATA held back from WINDOW_UPDATE while paused
  bool remote_ended_ = false;
};

}  // namespace mulligan::proxy
