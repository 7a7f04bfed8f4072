// Http1Reader: the proxy's view of one direction of an HTTP/1.1 connection,
// parsed by llhttp (never a hand-written parser; llhttp is built in its
// strict mode and none of its lenient flags is ever set). It turns bytes
// into events — head, body pieces, trailers, end — and holds both
// directions to the framing rules of the strictest proxies (HAProxy,
// nginx), which keep a proxy safe from request smuggling (RFC 9112 §2-§7,
// RFC 9110 §5; tests/unit/codec/http1_framing_test.cc lists every rule):
//   - every line of a head ends in CRLF (no bare LF, no bare CR), and so
//     does the end of a chunked body; no obs-fold; names are tokens with
//     no space before the colon; values hold no NUL or other control byte;
//   - the request line is exactly method SP target SP HTTP/1.x: one space
//     each, a token method (any token: "get" and "FROB" are methods, sent
//     on as they are), a target with no control byte, space, non-ASCII
//     byte or '#', version 1.0 or 1.1; a status line's code is 3 digits and
//     its reason holds no control byte;
//   - Content-Length at most once, digits only, no overflow; Transfer-
//     Encoding at most once and exactly "chunked", never with
//     Content-Length and never in an HTTP/1.0 message; chunk sizes hex
//     with no space or sign, CRLF after each chunk's data;
//   - requests: exactly one Host in HTTP/1.1 (absolute-form may omit it),
//     never two, a valid authority in it and in an absolute-form target
//     (no userinfo, not empty); '*' only for OPTIONS.
// A refused head never reaches Handler::onHead. `Upgrade: h2c` is not an
// upgrade here (MessageHead::upgrade stays false and the body is parsed as
// HTTP/1): a proxy must not let an h2c upgrade through (h2c smuggling).
//
// The reader pauses after each complete message, so a connection's next
// pipelined request is not even parsed until the caller resume()s: responses
// go out in order by construction. Body pieces point into the caller's
// buffer and are valid only while that buffer is (a caller may keep them
// until feed() returns and hand them on only then).
//
// Two files: http1_reader.cc drives llhttp and delivers the events,
// http1_framing.cc holds the checks of the rules above that llhttp leaves
// to us.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/codec/message.h"

namespace mulligan::proxy {

// The bytes of the response head an Http1Reader is delivering through
// Handler::onHead, exactly as received, when they arrived in one piece:
// empty for any other head object, or outside that call. A writer that
// would only copy the head field by field can copy these instead (see
// Http1Session::writeHead); valid only during the onHead call chain.
std::string_view rawHeadBytes(const MessageHead& head);

class Http1Reader {
 public:
  enum class Mode { kRequest, kResponse };
  enum class Error {
    kNone,
    kBadMessage,        // 400: malformed or ambiguous framing
    kHeadersTooLarge,   // 431
  };

  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onHead(MessageHead& head) = 0;
    virtual void onBody(const char* data, size_t len) = 0;
    virtual void onTrailers(HeaderList& trailers) = 0;
    virtual void onComplete() = 0;
  };

  struct Limits {
    size_t max_header_bytes = 64 * 1024;
    size_t max_headers = 100;
  };

  Http1Reader(Mode mode, Handler* handler, Limits limits);
  // Gives its header storage back to the thread's HeaderStock.
  ~Http1Reader();
  Http1Reader(const Http1Reader&) = delete;
  Http1Reader& operator=(const Http1Reader&) = delete;

  // Responses only: the request's method decides whether a body may follow
  // (HEAD: never), so tell the reader before feeding each response.
  void expectResponseTo(std::string_view method);
  // Starts over as a new reader in the same mode and with the same limits
  // would, reporting to `handler` from now on: the parser's state, the
  // message in progress (or its error), the request line's offsets and
  // the method to expect are all dropped; only the header storage is kept.
  // For a reader that lives with its connection (an upstream HTTP/1
  // connection's, UpstreamConn::reader()): each user resets it when it
  // takes the connection, whatever the last one left — a response cut off
  // by a cancel, a drained body, a framing error.
  void reset(Handler* handler);

  struct Result {
    size_t consumed = 0;  // bytes used; the rest waits for resume()
    bool paused = false;  // a message completed (or an upgrade began)
    Error error = Error::kNone;
    std::string why;      // for errors
  };
  Result feed(const char* data, size_t len);
  // After a pause: accept the next message.
  void resume();
  // The peer closed: completes a close-delimited body. False when a message
  // was cut short (a truncated response is not a response).
  bool finishOnEof();
  // True between messages (nothing of a new message has been seen).
  bool idle() const { return !in_message_; }
  // Requests, from Handler::onHead until the next message begins: where
  // the head's Host field is among its fields, and its first Expect field
  // (kNoField: none). checkHead's one pass over the fields finds them, so
  // that the caller need not scan the fields again for them.
  static constexpr size_t kNoField = SIZE_MAX;
  size_t hostField() const { return host_field_; }
  size_t expectField() const { return expect_field_; }

 private:
  static const llhttp_settings_t* settings();
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onVersion(llhttp_t* p, const char* at, size_t len);
  static int onStatus(llhttp_t* p, const char* at, size_t len);
  static int onMethod(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  static int onChunkHeader(llhttp_t* p);
  // Counts `len` more bytes of the header section against the limit.
  int addHeaderBytes(size_t len) {
    header_bytes_ += len;
    return header_bytes_ > limits_.max_header_bytes ? headerBytesTooMany() : 0;
  }
  int headerBytesTooMany();
  // A new message: every field of head_ reset (requests: from feed(), at the
  // method's first byte; responses: llhttp's on_message_begin).
  void beginMessage();
  int refuse(std::string why);
  // Requests: reads the method at the start of a message (our own token
  // check: llhttp knows a fixed list of methods). Returns bytes taken.
  size_t scanMethod(const char* p, size_t n);
  // Checks line ends in the head being read: every LF right after a CR.
  // False (with the error set) on a bare LF; stops at the head's end.
  bool scanHeadLines(const char* p, const char* end);
  // One llhttp_execute over [p, p + n), keeping the offsets the request
  // line checks use.
  llhttp_errno_t execute(const char* p, size_t n);
  // The rules llhttp leaves to us, on a complete head (see the top).
  int checkHead(llhttp_t* p);
  // Sets *absolute for an absolute-form target.
  int checkRequestTarget(bool* absolute);
  Result errorResult(llhttp_errno_t err, size_t len);

  Mode mode_;
  Handler* handler_;
  Limits limits_;
  llhttp_t parser_;
  MessageHead head_;
  HeaderList trailers_;
  // Every field below starts as reset() sets it (and a new one must be
  // added there: Http1ReaderTest.ResetAtAnyPointReadsTheNextMessageAsANewReader).
  bool in_headers_ = true;   // false once the head is done (then fields are trailers)
  bool in_message_ = false;
  bool last_was_value_ = false;
  // For rawHeadBytes: where the message began, when it began in the current
  // feed (else null), and where the last header value ended.
  const char* msg_start_ = nullptr;
  const char* last_value_end_ = nullptr;
  const char* feed_end_ = nullptr;
  bool value_complete_ = false;  // a value ended; more value bytes = obs-fold
  const char* feed_begin_ = nullptr;  // the buffer being parsed (obs-fold check)
  char prev_nonblank_ = 0;            // last non-SP/HT byte of earlier buffers
  bool head_request_ = false;
  size_t header_bytes_ = 0;
  // Requests' method (scanMethod): complete (the space after it seen), and
  // whether llhttp was shown another one in its place ("GET" for a token
  // it does not know: same framing, since a request's body length never
  // depends on its method, RFC 9112 §6.3).
  bool method_done_ = false;
  size_t llhttp_method_len_ = 0;
  // Offsets in the bytes llhttp was given for this request (the request
  // line's single spaces): before the current execute, the current
  // execute's start, where the target began (SIZE_MAX: not yet), its length.
  uint64_t exec_base_ = 0;
  const char* exec_begin_ = nullptr;
  uint64_t url_at_ = UINT64_MAX;
  uint64_t url_len_ = 0;
  bool version_seen_ = false;
  // scanHeadLines: on while the head (or a trailer section) is read; the current line's length
  // so far and last byte; whether the start line was seen.
  bool scan_head_ = false;
  bool start_line_seen_ = false;
  uint64_t line_len_ = 0;
  char last_byte_ = 0;
  bool last_chunk_ = false;    // llhttp paused at the last chunk: check the trailer lines
  bool interim_done_ = false;  // a 1xx response completed: go on to the final one
  size_t host_field_ = kNoField;    // see hostField()
  size_t expect_field_ = kNoField;  // see expectField()
  Error user_error_ = Error::kNone;
  std::string user_why_;
};

}  // namespace mulligan::proxy
