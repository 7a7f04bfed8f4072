// The Connect protocol (connectrpc.com/docs/protocol, the protocol of
// connect-go and connect-es) as far as a retrying proxy reads and writes it:
// which requests are Connect calls, their error codes, the JSON error body of
// a unary call and the end-of-stream message of a streaming one, and the
// sidecar's own errors in those forms. Knows nothing of retries: the codes
// are handed over as numbers (Connect's codes are gRPC's, 1..16), and
// retry/ decides.
//
// Not the CONNECT method (RFC 9110 §9.3.6): that one is a tunnel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::proxy {

enum class ConnectKind : uint8_t {
  kNone,       // not a Connect call
  kUnary,      // connect-protocol-version: 1, a unary content type
               // (application/json, application/proto): the error is the JSON body
  kStreaming,  // content type application/connect+<codec>: enveloped messages,
               // the last one (flag 0x02) the end of the stream
};
// The kind of a request from its content-type and connect-protocol-version
// headers (absent: nullopt). A streaming content type makes a Connect call
// even without connect-protocol-version (connect-es sends it; other clients
// may not).
ConnectKind connectKind(std::optional<std::string_view> content_type,
                        std::optional<std::string_view> protocol_version);

// No Connect error code could be read (absent, not JSON, an unknown code).
constexpr int kNoConnectCode = -1;

// Connect's snake_case name of code 1..16 ("canceled", "unknown", ...,
// "unavailable", "data_loss", "unauthenticated"); "" otherwise (0 is success
// and has no error name).
std::string_view connectCodeName(int code);
// The code of a Connect error name; kNoConnectCode for anything else.
int connectCodeFromName(std::string_view name);
// The HTTP status a unary Connect error answers with (the protocol's table):
// 503 unavailable, 504 deadline_exceeded, 409 already_exists / aborted, ...
int connectHttpStatus(int code);

// A unary error body, {"code":"unavailable","message":"..."}: its code, or
// kNoConnectCode when the body is not such an object.
int parseConnectErrorBody(std::string_view json);
// An end-of-stream message's JSON, {"error":{"code":...},"metadata":{...}}:
// its error's code; 0 when it carries no error (the call succeeded);
// kNoConnectCode when it is not such an object.
int parseConnectEndStream(std::string_view json);

// The envelope of a streaming message: 1 byte of flags, 4 bytes of length
// (big-endian), the message.
constexpr size_t kConnectEnvelopeHeader = 5;
constexpr uint8_t kConnectFlagCompressed = 0x01;
constexpr uint8_t kConnectFlagEndStream = 0x02;

// The sidecar's own errors (DESIGN.md "Connect"): a unary error body, and a
// whole end-of-stream message (envelope included) carrying the same error.
// `message` is JSON-escaped here.
std::string connectErrorJson(int code, std::string_view message);
std::string connectEndStreamMessage(int code, std::string_view message);

// Follows the envelopes of a Connect stream as its bytes pass, so that the
// proxy knows whether what went downstream so far ends between two messages
// (where it may append an end-of-stream message of its own, at a deadline).
class ConnectEnvelopeTracker {
 public:
  void feed(const char* data, size_t len);
  // The bytes so far are whole envelopes.
  bool atBoundary() const { return header_got_ == 0 && body_left_ == 0; }
  // An end-of-stream envelope went by: the stream has its end already.
  bool ended() const { return ended_; }

 private:
  uint8_t header_[kConnectEnvelopeHeader] = {};
  size_t header_got_ = 0;
  uint64_t body_left_ = 0;
  bool ended_ = false;
};

// The start of a Connect response the proxy holds back (headers and the
// first bytes) until it knows whether the response is an error it may still
// retry. Fed the response body as it arrives; keeps at most `cap` bytes
// (max_buffered_body): past that it gives up and says commit.
//   Unary (an error status): the whole body is the JSON error, read at end().
//   Streaming (200): the first envelope decides: a message commits at once;
//   an end-of-stream message is read whole, and its error (if any) decides.
// Single-threaded, one per held response.
class ConnectErrorReader {
 public:
  enum class Verdict : uint8_t {
    kMore,    // keep holding: more bytes are needed
    kCommit,  // not an error (or not readable within cap): let it through
    kError,   // an error whose code() is known (or kNoConnectCode for a unary
              // body that is not a Connect error: its HTTP status decides)
  };
  ConnectErrorReader(bool streaming, size_t cap) : streaming_(streaming), cap_(cap) {}

  Verdict feed(const char* data, size_t len);
  // The response ended (no more body).
  Verdict end();
  int code() const { return code_; }
  // What was held so far: goes downstream after the head when committed.
  const std::string& held() const { return held_; }
  std::string take() { return std::move(held_); }

 private:
  Verdict decideStreaming();

  bool streaming_;
  size_t cap_;
  int code_ = kNoConnectCode;
  std::string held_;
};

}  // namespace mulligan::proxy
