// Http1Reader: the proxy's view of one direction of an HTTP/1.1 connection,
// parsed by llhttp (never a hand-written parser). It turns bytes into
// events — head, body pieces, trailers, end — and enforces the framing rules
// that keep a proxy safe from request smuggling (RFC 9112 §6.3, §11.2):
// Content-Length together with Transfer-Encoding, duplicate differing
// Content-Length, a Transfer-Encoding other than a final "chunked", bad chunk
// sizes and obs-fold are errors; llhttp's lenient modes are all off.
//
// The reader pauses after each complete message, so a connection's next
// pipelined request is not even parsed until the caller resume()s: responses
// go out in order by construction. Body pieces point into the caller's
// buffer and are valid only during the callback.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "sidecar/proxy/header_list.h"

namespace mulligan::proxy {

// (Http1Reader::onMessageBegin resets every field: keep the two in step.)
struct MessageHead {
  // Requests
  std::string method;
  std::string target;       // request-target as received
  // Responses
  int status = 0;
  std::string reason;
  // Both
  int version_minor = 1;    // HTTP/1.<minor>
  HeaderList headers;
  bool keep_alive = true;   // llhttp_should_keep_alive at headers time
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool upgrade = false;     // Upgrade request/101, or CONNECT
  bool needs_eof = false;   // response body delimited by close
};

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

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onStatus(llhttp_t* p, const char* at, size_t len);
  static int onMethod(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  // Counts `len` more bytes of the header section against the limit.
  int addHeaderBytes(size_t len) {
    header_bytes_ += len;
    return header_bytes_ > limits_.max_header_bytes ? headerBytesTooMany() : 0;
  }
  int headerBytesTooMany();

  Mode mode_;
  Handler* handler_;
  Limits limits_;
  llhttp_t parser_;
  MessageHead head_;
  HeaderList trailers_;
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
  Error user_error_ = Error::kNone;
  std::string user_why_;
};

}  // namespace mulligan::proxy
