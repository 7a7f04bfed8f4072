// Http2Session: the nghttp2 glue both HTTP/2 sides share, written once —
// the app-facing server session (downstream/http2_server.h) and the
// upstream client sessions (upstream/http2_client.h) derive from it.
//
// nghttp2 is the codec (framing, HPACK, flow control, stream states); this
// is the thin layer between it and the connection's socket:
//  - one table of C callbacks for every session, each a trampoline that
//    casts user_data and calls one virtual member (STYLE.md), the flood
//    guard's checks (http2_limits.h) run before the session's own;
//  - the session's creation: its options (no automatic WINDOW_UPDATE —
//    credit goes back only as the other side takes the bytes; nghttp2's own
//    limits) and our SETTINGS (push off, kStreamWindow per stream, a header
//    list limit, the connection's receive window);
//  - reading: the session reads its socket itself (its own EV_READ event),
//    into a per-thread buffer handed straight to nghttp2_session_mem_recv
//    (receive()). A bufferevent read asked FIONREAD before every read (a
//    quarter of the HTTP/2 path's system calls), read at most 4 KiB, and
//    copied it into an evbuffer that receive() then peeked and drained
//    (issue 18). Bytes already in the bufferevent's input when the session
//    took over (the sniffed preface) are fed first;
//  - send(): nghttp2_session_mem_send into the connection's output, up to
//    kOutputHighWater (the rest stays in nghttp2 until the socket drains:
//    a peer that does not read cannot make us buffer without bound);
//  - writeOut(): that output to the socket at once, in one writev; only
//    what the socket does not take waits for EV_WRITE;
//  - sendAndWrite(): while nothing waits in the output (the usual case),
//    frames go from nghttp2 to the socket through a flat per-thread buffer
//    in one send, and only what the socket does not take goes to the output. The bufferevent's
//    write event is armed only then: armed whenever output was added and
//    disarmed when it drained, it cost two epoll_ctl calls per write (a
//    third of the HTTP/2 path's system calls, issue 18);
//  - scheduleFlush(): one send() from the loop, however many streams asked
//    for it in this iteration;
//  - request and response bodies as deferred data providers (readData), and
//    trailers (submitTrailers).
// What differs stays in the sessions: what a frame means to them, when they
// close, how they count a GOAWAY.
//
// Threading: one session belongs to one worker thread. Lifetime: a session
// is freed from the loop (event::Deletable), never inside an nghttp2 or
// libevent callback of its own.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sidecar/codec/header_list.h"
#include "sidecar/codec/http2/http2_limits.h"
#include "sidecar/event/event_loop.h"

namespace mulligan::proxy {

class Http2Session : public event::Deletable {
 public:
  enum class Role : uint8_t {
    kServer,  // the app's h2c connection: it opens the streams
    kClient,  // a connection to an upstream: we open the streams
  };

  // Frames are produced into the connection's output only while it holds
  // less than this; the socket draining (the write callback) asks for more.
  static constexpr size_t kOutputHighWater = 64 * 1024;
  // Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE), both
  // sides. Credit returns only as the other side takes the bytes, so this
  // bounds what one stream can make the sidecar hold.
  static constexpr uint32_t kStreamWindow = 256 * 1024;
  // Our receive window per connection. The app's connection carries request
  // bodies, several streams' worth; an upstream connection carries the
  // responses of many calls at once, so it gets more.
  static constexpr int32_t kServerConnectionWindow = 4 * 1024 * 1024;
  static constexpr int32_t kClientConnectionWindow = 16 * 1024 * 1024;
  // Streams a client session opens before the peer's SETTINGS say how many
  // it allows (nghttp2's peer_max_concurrent_streams).
  static constexpr uint32_t kAssumedPeerMaxStreams = 100;
  // After a GOAWAY for an offence, the longest wait for it to be written
  // before the connection closes anyway (a peer that does not read).
  static constexpr int64_t kGoawayLingerUs = 1'000'000;

  ~Http2Session() override;
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // flush() from the loop, once however often it is asked for before it
  // runs; nothing after stopIo().
  void scheduleFlush();
  nghttp2_session* session() { return session_; }
  Role role() const { return role_; }
  // A data provider whose reads come to readData() (for the submit of a
  // stream's HEADERS when a body follows).
  static nghttp2_data_provider dataProvider();

 protected:
  Http2Session(event_base* base, Role role);

  // --- nghttp2's callbacks (the trampolines call these) ---
  // Return 0, or an nghttp2 error: NGHTTP2_ERR_CALLBACK_FAILURE makes
  // mem_recv fail (receive() returns it), as offend() does.
  // A frame header arrived and the flood guard let it pass.
  virtual int onBeginFrame(const nghttp2_frame_hd&) { return 0; }
  // A frame went out (the flood guard saw it first).
  virtual int onFrameSend(const nghttp2_frame*) { return 0; }
  // A queued frame will never go out (`error`: why, an nghttp2 error code):
  // a request's HEADERS whose stream was reset before it was sent, or that
  // the session can no longer open (GOAWAY, closing). nghttp2 reads the
  // frame's fields no more.
  virtual int onFrameNotSend(const nghttp2_frame*, int /*error*/) { return 0; }
  virtual int onBeginHeaders(const nghttp2_frame*) { return 0; }
  virtual int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) = 0;
  virtual int onFrameRecv(const nghttp2_frame* frame) = 0;
  virtual int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) = 0;
  virtual int onStreamClose(int32_t stream_id, uint32_t error_code) = 0;
  // The body of a stream submitted with dataProvider(): up to `len` bytes
  // into `buf`, NGHTTP2_DATA_FLAG_EOF in `flags` at its end, or
  // NGHTTP2_ERR_DEFERRED for nothing yet (nghttp2_session_resume_data then).
  virtual ssize_t readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) = 0;

  // --- the connection's callbacks, after startIo() ---
  // Bytes arrived (one clock read for what they start: event::ClockScope):
  // receive() feeds them to nghttp2, discardInput() drops them; either way
  // they are gone when onInput returns.
  virtual void onInput() = 0;
  // Write what nghttp2 has (send()), and close when the session is done.
  // Runs when the output drained and from scheduleFlush().
  virtual void flush() = 0;
  // The connection ended or went silent, as a bufferevent says it
  // (BEV_EVENT_* bits): EOF or a read error (BEV_EVENT_READING | _EOF or
  // _ERROR: reading has stopped), a write error (BEV_EVENT_WRITING |
  // BEV_EVENT_ERROR), or the read timeout (BEV_EVENT_READING |
  // BEV_EVENT_TIMEOUT: reading goes on; the session closes, or counts the
  // silence again with setReadTimeoutUs()).
  virtual void onConnectionEvent(short what) = 0;

  // Creates the nghttp2 session for role() and queues our SETTINGS: push
  // off, kStreamWindow, `max_header_list` (SETTINGS_MAX_HEADER_LIST_SIZE:
  // a larger header block is refused by nghttp2), and for a server
  // `max_concurrent_streams`; the connection's window is the role's.
  void startSession(uint32_t max_header_list, uint32_t max_concurrent_streams = 0);
  // bev_ (connected) reads and writes through this session from now on:
  // the session reads its socket (its own EV_READ event: the bufferevent's
  // read side goes off) and writes through the bufferevent's output (what
  // it holds already is written now). Bytes waiting in the bufferevent's
  // input (a sniffed preface) are fed first, by the next receive().
  void startIo();
  // No more reading, writing or flushing (the connection is over). receive()
  // stops at once when a callback calls this.
  void stopIo();
  bool ioStopped() const { return stopped_; }
  // stopIo(), and bev_ is the caller's (nothing of the session's reads it
  // any more: lingerClose()).
  bufferevent* releaseBev();
  // Silence from the peer longer than `us` (counted from the last read, or
  // from now when no read came since) is reported as BEV_EVENT_READING |
  // BEV_EVENT_TIMEOUT; 0 for none. What a bufferevent's read timeout did,
  // with a compare and a store per read (event::ExpiryTimer).
  void setReadTimeoutUs(int64_t us);

  // Hands the input (what waited in the bufferevent's input, then the bytes
  // of the current read) to nghttp2 until all is taken or stopIo(). Returns
  // 0, or nghttp2's error: a connection error (offenceOf says which).
  int receive();
  // Drops the input instead (a connection that is going away).
  void discardInput();
  // Frames into the output until it holds `high_water` bytes or nghttp2 has
  // nothing more. Returns 0 or nghttp2's error (the session is broken).
  int send(size_t high_water = kOutputHighWater);
  // Writes the output to the socket now; what is left (the socket is full,
  // or failed: the bufferevent then reports the error) is written when the
  // socket is writable, and flush() runs once it all went.
  void writeOut();
  // send() and writeOut() until nghttp2 has nothing more to say or the
  // socket is full (then flush() runs again once it drained). Returns
  // send()'s error.
  int sendAndWrite();
  bool outputEmpty() const;
  // Neither side wants anything more (both GOAWAYs exchanged, or a fatal error).
  bool finished() const;

  // A callback found an offence: the first one is kept and nghttp2 stops
  // (receive() returns NGHTTP2_ERR_CALLBACK_FAILURE).
  int offend(Http2Offence o);
  // The offence behind receive()'s error `rv`: a callback's, else nghttp2's.
  Http2Offence offenceOf(int rv) const { return offence_ ? *offence_ : offenceOfNghttp2Error(rv); }
  const std::optional<Http2Offence>& offence() const { return offence_; }

  // HEADERS with `trailers` (names lower-cased) after the stream's data;
  // from readData, with NGHTTP2_DATA_FLAG_NO_END_STREAM set.
  void submitTrailers(int32_t stream_id, const HeaderList& trailers);

  // Stops reading and frees bev_ (its socket with it); for destructors
  // that must free it before something else of theirs.
  void closeSocket();

  // Owned: freed with the session unless taken (set to null) before.
  bufferevent* bev_ = nullptr;
  nghttp2_session* session_ = nullptr;

 private:
  friend struct Http2Trampolines;

  // What one readiness of the socket reads: up to this per read (a
  // per-thread buffer: the worker is single-threaded), again while a read
  // fills it, at most kMaxReadsPerEvent times (level-triggered epoll
  // reports the rest: other connections get their turn).
  static constexpr size_t kReadBufferSize = 64 * 1024;
  static constexpr int kMaxReadsPerEvent = 4;
  void onReadable();
  void stopReading();
  // sendAndWrite() while the output is empty: send() and writeOut() without
  // the output in between (`more`: stopped at the high-water mark).
  int sendDirect(bool* more);
  // The bufferevent's EV_WRITE on exactly while its output holds bytes.
  void armWrite();

  Role role_;
  Http2FloodGuard guard_;
  std::optional<Http2Offence> offence_;
  event::EventPtr flush_ev_;
  bool stopped_ = false;
  bool write_armed_ = false;  // the bufferevent's EV_WRITE is enabled
  ::event read_ev_;            // EV_READ | EV_PERSIST on fd_, assigned by startIo()
  bool read_assigned_ = false;
  bool reading_ = false;       // read_ev_ is added
  evutil_socket_t fd_ = -1;
  bool buffered_input_ = false;  // the bufferevent's input may hold bytes (startIo)
  const uint8_t* fresh_ = nullptr;  // the current read's bytes not yet taken
  size_t fresh_len_ = 0;
  event::ExpiryTimer read_timer_;
  int64_t read_timeout_us_ = 0;
};

// A content-length value nghttp2 has already validated (digits only, RFC
// 9113 §8.1.1), as a number.
uint64_t validatedContentLength(std::string_view value);

// `name` lower-cased (RFC 9113 §8.2.1: field names are lower case in HTTP/2).
std::string lower(std::string_view name);
// `name` lower-cased without a copy when it already is (every name that came
// in over HTTP/2 is: nghttp2 refuses upper case), else into `scratch`: the
// view is valid until `scratch` changes.
std::string_view lowered(std::string_view name, std::string& scratch);
// A name/value pair for nghttp2 pointing into `name` and `value`, which
// must stay put until the submit (which copies them).
nghttp2_nv makeNv(std::string_view name, std::string_view value);
// `fields` as nghttp2 pairs for one submit (which copies them), in an array
// of this thread's that the next call reuses: valid until then, and while
// `fields` is unchanged. Names go as they are (lower-case them on the way in).
const nghttp2_nv* nvOf(const HeaderList& fields);
// As nvOf, but the pairs say NGHTTP2_NV_FLAG_NO_COPY_NAME | _VALUE: nghttp2
// keeps pointers into `fields` and reads them when it packs the HEADERS
// frame, so `fields` must stay unchanged (and alive) until nghttp2 reports
// that frame sent or not sent (on_frame_send / on_frame_not_send), or the
// session is deleted. Names must be lower case already: nghttp2 lower-cases
// only what it copies (RFC 9113 §8.2.1).
const nghttp2_nv* nvOfInPlace(const HeaderList& fields);

// Fields for one nghttp2 submit, names lower-cased as they are added. The
// storage is a HeaderList from this thread's HeaderStock, given back at the
// end, so a submit allocates nothing once the worker is warm (there were
// two std::strings a field, and a lower-cased copy of each name).
class Http2Fields {
 public:
  Http2Fields();
  ~Http2Fields();
  Http2Fields(const Http2Fields&) = delete;
  Http2Fields& operator=(const Http2Fields&) = delete;

  void add(std::string_view name, std::string_view value);
  // The pairs (nvOf), valid until the next add() or data() on this thread.
  const nghttp2_nv* data() const { return nvOf(fields_); }
  size_t size() const { return fields_.size(); }

 private:
  HeaderList fields_;
};

}  // namespace mulligan::proxy
