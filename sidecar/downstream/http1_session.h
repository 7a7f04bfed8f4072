// Http1Session: the downstream (app-facing) side of an HTTP/1.1 connection.
// It parses requests with an Http1Reader and runs one ProxyStream at a time:
// the reader pauses after each request, so pipelined requests wait, unparsed,
// in the input buffer until the current response is complete — responses go
// out in order. Framing errors answer 400, header limits 431, and close.
//
// I/O: the bufferevent is used for queued writes only (and their errors).
// With the worker's net::IoRing, reads arrive through one multishot receive
// armed for the connection's life, and a small response burst is sent in
// the ring's batch at the end of the loop iteration. Without it (or while
// lingering) reads go through the session's own EV_READ|EV_PERSIST event
// and net::readSome (one readv per readiness, no FIONREAD ioctl), and
// flush() sends at once. Either way unread bytes wait in the bufferevent's
// input buffer. The idle timeout is a separate, lazily re-armed timer (see
// idle_timer_); the read event's own timeout is only the linger limit.
// A tunnel after Upgrade/CONNECT gets the bufferevent back, unread bytes in
// its input, and reads through it again.
//
// Two files: http1_session.cc is the request side (reading, parsing, the
// timeouts, closing), http1_session_write.cc the response side (HTTP/1
// response framing and the write burst).
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sidecar/event/event_loop.h"
#include "sidecar/net/io_ring.h"
#include "sidecar/codec/fields.h"
#include "sidecar/downstream/downstream_context.h"
#include "sidecar/stream/downstream.h"
#include "sidecar/codec/http1/http1_reader.h"

namespace mulligan::proxy {

class Connection;
class ProxyStream;

class Http1Session : public event::Deletable,
                     public Downstream,
                     private Http1Reader::Handler,
                     private net::IoRing::Reader,
                     private net::SendBatch::Writer {
 public:
  static constexpr size_t kHighWater = 1 << 20;  // downstream output back-pressure
  static constexpr size_t kLowWater = 256 << 10;
  // Input back-pressure: the session stops reading the app while this much
  // of the request body waits for the upstream, or while this much of a
  // pipelined next request waits for the current response.
  static constexpr size_t kInputHighWater = 256 << 10;

  // Takes over `bev` (with the sniffed bytes still in its input).
  Http1Session(Connection* conn, bufferevent* bev);
  ~Http1Session() override;

  // Parses what was sniffed — `fresh` (the thread's read buffer, bytes not
  // in the input) first, then the input — and only then registers for
  // reading (unless that closed the connection or holds its input back).
  // libevent folds the changes of one loop iteration (EV_CHANGELIST), so a
  // connection whose whole exchange fits the iteration costs no epoll_ctl;
  // one whose call is still in flight costs one (its EOF must be seen).
  // A request that said "close" and is complete when the call starts waits
  // kAbortWatchDelayUs before its socket is registered (see abort_watch_).
  void start(const char* fresh = nullptr, size_t fresh_len = 0);
  // Graceful stop: close now if between requests, else after this response.
  void drain();

  Connection& connection() { return *conn_; }

  // --- Downstream, for the current ProxyStream: HTTP/1 response framing
  // (content-length or re-chunked, connection: close, HEAD/204/304) lives here.
  DownstreamContext& worker();
  StreamContext& streamContext() override;
  Protocol protocol() const override { return Protocol::kHttp1; }
  const std::optional<net::Address>& originalDst() const override;
  void writeHead(const MessageHead& head, bool end_stream) override;
  void writeBody(const char* data, size_t len) override;
  void writeTrailers(const HeaderList& trailers) override;
  void responseComplete() override;
  void responseAborted() override;
  void localReply(const LocalReply& reply) override;
  // After a 101 (or a CONNECT's 2xx): relay raw bytes between the app and
  // `upstream` from now on.
  void upgradeToTunnel(bufferevent* upstream) override;
  bool congested() const override {
    return inline_out_.size() + evbuffer_get_length(staged_) + evbuffer_get_length(bufferevent_get_output(bev_)) >=
           kHighWater;
  }
  // Writes what is staged (one send or writev, no epoll change) when
  // nothing is queued before it; what the socket does not take is queued in
  // the bufferevent, which finishes it when the socket is writable. With
  // the worker's send batch (io_uring, or Linux AIO on the epoll path) a
  // small burst goes at the end of the loop iteration, in one system call
  // with every other connection's.
  void flush() override;
  // The upstream took queued request body: reading the app may resume.
  void requestBodyConsumed() override { updateInputHold(); }

 private:
  static void onReadable(evutil_socket_t fd, short what, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  void onReadable(short what);
  void onLingerTimeout();  // read_ev_ timed out: only lingering sets a timeout on it
  // Bytes from the app (either way of reading): parse them.
  void onAppBytes(const char* data, size_t len);
  // net::IoRing::Reader
  void onRecvData(const char* data, size_t len) override;
  void onRecvEnd(int result) override;
  // net::SendBatch::Writer: the batched send of inline_out_.
  bool bytesToSend(int* fd, const char** data, size_t* len) override;
  void wrote(long result) override;
  // flush(), now: for whatever must come after the bytes are in the socket
  // (closing, shutting down, a tunnel).
  void flushNow();
  void onPeerEof();
  // Reads the app (adds read_ev_ unless it is added already) and counts
  // its silence from now: the idle timeout closes it (not while lingering:
  // linger() owns reading then).
  void startReadingIdle();
  // The app was silent for the idle timeout.
  void onIdleTimer();
  // startReadingIdle, unless closed or already reading.
  void onAbortWatch();
  // --request-header-timeout: armed when a request head begins (see
  // head_timer_), cancelled when it is complete; expired, it answers 408.
  void armHeadTimer();
  void onHeadTimeout();
  void stopReading();
  // Stops reading the app while the upstream (or the current response) is
  // behind, and starts again once it caught up (see kInputHighWater).
  void updateInputHold();
  bool inputHeld() const;
  // Parses what is buffered: first `fresh` (bytes just read into the
  // thread's read buffer, when the input evbuffer was empty), whose unparsed
  // rest goes to the input evbuffer, then the input evbuffer.
  void processInput(const char* fresh = nullptr, size_t fresh_len = 0);
  void rejectRequest(int status, const char* reason, const std::string& why);
  // Appends response bytes to the current write burst: to inline_out_ while
  // the burst is small, else to staged_ (see inline_out_).
  void stage(const char* data, size_t len);
  // After writeHead formatted a head: into inline_out_ itself (`direct`),
  // where it stays unless it outgrew kInlineOut, or into a scratch string
  // that is staged now.
  void stageFormatted(bool direct);
  // staged_, after moving inline_out_ into it: for writers that need an
  // evbuffer. Everything staged so far stays ahead of what they add.
  evbuffer* stagedBuffer();
  void closeWhenFlushed();
  void linger();
  void closeNow();
  // The response is fully written to the output buffer.
  void streamFinished(bool keep_alive);
  // The response cannot be completed (upstream broke mid-body): close.
  void streamAborted();
  // 100 Continue for an `Expect: 100-continue` request: we answer it and
  // buffer the body (the upstream gets no Expect; we may replay the body).
  void sendContinue();

  // Hands what the last feed parsed to the stream (see parsed_).
  void deliverParsed();

  // Http1Reader::Handler: each records what it got in parsed_ only.
  void onHead(MessageHead& head) override;
  void onBody(const char* data, size_t len) override;
  void onTrailers(HeaderList& trailers) override;
  void onComplete() override;

  Connection* conn_;
  bufferevent* bev_;
  evutil_socket_t fd_;     // bev_'s socket (kept: bufferevent_getfd takes a lock)
  ::event read_ev_;        // EV_READ|EV_PERSIST on bev_'s socket (no ring, or lingering)
  bool reading_ = false;   // read_ev_ is added, or the ring receives
  // The worker's io_uring receiver (null: read_ev_ only). While reading
  // (not lingering) the app's bytes arrive through it, one multishot
  // receive armed for the life of the connection: no system call per read.
  net::IoRing* ring_ = nullptr;
  net::IoRing::Slot slot_ = 0;
  // Reading through ring_: lingering reads with read_ev_ (its timeout is the limit).
  bool readingByRing() const { return reading_ && ring_ && !lingering_; }
  net::SendBatch* sends_ = nullptr;  // the worker's send batch (null: send(2) at once)
  bool input_held_ = false;  // reading paused for back-pressure (updateInputHold)
  evbuffer* staged_;
  // The current write burst while it is small — a response head and a small
  // body, most keep-alive responses — sent by flush() with one send() when
  // nothing is queued: no evbuffer chain, i.e. no malloc and free per
  // response (STYLE.md "Hot path"). Holds bytes only while staged_ is empty
  // (bytes past kInlineOut, or written through stagedBuffer(), move it into
  // staged_ first), so the order of the bytes holds. Its capacity is kept
  // for the next response (at most about 2 * kInlineOut per connection).
  std::string inline_out_;
  static constexpr size_t kInlineOut = 4096;
  Http1Reader reader_;
  // A client that said "close" and sent its whole request has nothing more
  // to say but its EOF or reset, and that matters (it aborts the call) only
  // if the call lasts: reading starts this much later, so that a call
  // answered sooner never registers the socket with epoll (an epoll_ctl to
  // add, another to delete at close). Abort detection waits that long.
  static constexpr int64_t kAbortWatchDelayUs = 10'000;
  event::Timer abort_watch_;
  // The idle timeout (silence from the app): every read pushes it back, which
  // an ExpiryTimer does with a store. A timeout on read_ev_ instead would be
  // re-added by libevent — a timer-heap update — after every read.
  event::ExpiryTimer idle_timer_;
  int64_t idle_us_ = 0;  // the policy's idle timeout when reading (re)started; 0 = none
  // The request-header timeout (nginx client_header_timeout, HAProxy timeout
  // http-request, Envoy request_headers_timeout): from the first byte of a
  // request head — for the connection's first request, from its accept —
  // to the head's end. Between keep-alive requests the idle timeout alone
  // applies; a pipelined request's head counts from when the previous
  // response is done and its bytes are parsed. The body is not bounded by it.
  event::Timer head_timer_;
  bool awaiting_head_ = true;  // the next bytes parsed belong to a request head
  bool first_head_ = true;     // the connection's first request: anchored at accept
  // What one reader_.feed() parsed, handed to the stream only once the
  // feed returned without error: nothing of a read goes upstream before
  // every byte of it was parsed (a framing error later in the same bytes
  // answers 400 with nothing sent). Body pieces point into the bytes fed,
  // which stay put until processInput drains them after delivery. The
  // vector's capacity is kept (no allocation per request).
  struct Parsed {
    MessageHead* head = nullptr;  // a request head (the reader's, until it resumes)
    std::vector<std::pair<const char*, size_t>> body;
    HeaderList* trailers = nullptr;
    bool complete = false;
  };
  Parsed parsed_;
  std::unique_ptr<ProxyStream> stream_;
  bool waiting_for_response_ = false;  // reader paused after a complete request
  bool finished_early_ = false;        // response done before the request ended
  bool close_after_response_ = false;
  bool closing_ = false;               // flushing the last bytes, then close
  bool lingering_ = false;             // our side shut down; discarding input until EOF
  bool closed_ = false;
  bool peer_eof_ = false;

  // The current request/response, as HTTP/1 frames it.
  bool head_request_ = false;        // the request is a HEAD: its response has no body
  int version_minor_ = 1;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool head_written_ = false;
  bool head_only_ = false;           // HEAD / 204 / 304: no body
  bool downstream_chunked_ = false;  // we re-chunk the body
  bool downstream_close_ = false;    // close after this response
  bool trailers_sent_ = false;
};

}  // namespace mulligan::proxy
