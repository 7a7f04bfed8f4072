// HTTP/1 framing, rule by rule (RFC 9112 §2-§7, RFC 9110 §5, and the
// request-smuggling shapes of the public research: James Kettle's desync
// work, the HTTP Garden's parser discrepancies). Every row is fed whole and
// byte by byte, and must come out the same way both times: a message the
// sidecar would forward, or kBadMessage (400 for a request, 502 for a
// response). Where a rule is about the head, a refused message must not
// have reached the handler's onHead at all: that is what lets the session
// refuse it before anything goes upstream.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sidecar/codec/http1/http1_reader.h"

namespace mulligan::proxy {
namespace {

struct Recorder : Http1Reader::Handler {
  std::vector<MessageHead> heads;
  std::string body;
  HeaderList trailers;
  int complete = 0;
  void onHead(MessageHead& h) override { heads.push_back(h); }
  void onBody(const char* d, size_t n) override { body.append(d, n); }
  void onTrailers(HeaderList& t) override { trailers = t; }
  void onComplete() override { ++complete; }
};

enum class Want {
  kOk,        // parsed: one complete message
  kBadHead,   // refused before onHead
  kBadBody,   // refused after the head (in the body's framing)
  kBadEnd,    // refused after an earlier message (a 1xx) completed
};

struct Row {
  const char* name;
  std::string input;
  Want want;
};

struct Outcome {
  Http1Reader::Error error = Http1Reader::Error::kNone;
  std::string why;
  Recorder rec;
};

// Feeds `in` in pieces of `step` bytes (a piece the reader did not take is
// fed again with the next byte appended, as a socket's next read would),
// stopping at the first complete message or error.
Outcome run(Http1Reader::Mode mode, const std::string& in, size_t step) {
  Outcome o;
  Http1Reader r(mode, &o.rec, {});
  r.expectResponseTo("GET");
  size_t pos = 0;
  size_t avail = 0;
  while (pos < in.size()) {
    avail = std::min(in.size() - pos, std::max(avail, step));
    auto res = r.feed(in.data() + pos, avail);
    if (res.error != Http1Reader::Error::kNone) {
      o.error = res.error;
      o.why = res.why;
      return o;
    }
    if (res.paused) return o;
    pos += res.consumed;
    avail -= res.consumed;
  }
  return o;
}

void check(Http1Reader::Mode mode, const Row& row) {
  for (size_t step : {row.input.size(), size_t{1}}) {
    Outcome o = run(mode, row.input, step);
    SCOPED_TRACE(std::string(row.name) + (step == 1 ? " (byte by byte)" : " (whole)"));
    switch (row.want) {
      case Want::kOk:
        EXPECT_EQ(o.error, Http1Reader::Error::kNone) << o.why;
        EXPECT_GE(o.rec.complete, 1);  // (an interim response completes too)
        break;
      case Want::kBadHead:
        EXPECT_EQ(o.error, Http1Reader::Error::kBadMessage);
        EXPECT_TRUE(o.rec.heads.empty()) << "the head reached the handler";
        EXPECT_FALSE(o.why.empty());
        break;
      case Want::kBadBody:
        EXPECT_EQ(o.error, Http1Reader::Error::kBadMessage);
        EXPECT_EQ(o.rec.complete, 0);
        EXPECT_FALSE(o.why.empty());
        break;
      case Want::kBadEnd:
        EXPECT_EQ(o.error, Http1Reader::Error::kBadMessage);
        EXPECT_FALSE(o.why.empty());
        break;
    }
  }
}

const std::string kPost = "POST /p HTTP/1.1\r\nHost: svc\r\n";
const std::string kChunked = kPost + "Transfer-Encoding: chunked\r\n\r\n";

std::vector<Row> requestRows() {
  return {
      // --- Request line (RFC 9112 §3) ---
      {"plain GET", "GET / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"empty line before the request line (§2.2)", "\r\nGET / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"lowercase method is a token", "get / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"unknown token method", "FROB / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"token method with symbols", "M-SEARCH! / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"known method's prefix", "GE / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"known method plus letters", "GETX / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"non-token byte in method", "GE(T / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"NUL in method", std::string("GE\0T / HTTP/1.1\r\nHost: svc\r\n\r\n", 29), Want::kBadHead},
      {"empty method", " / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"two spaces after method", "GET  / HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"tab after method", "GET\t/ HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"two spaces before version", "GET /  HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"space after version", "GET / HTTP/1.1 \r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"no version (HTTP/0.9)", "GET /\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"no version, bare LF, a body (llhttp #877)", "GET /x\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Want::kBadHead},
      {"version 1.2", "GET / HTTP/1.2\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"version 2.0", "GET / HTTP/2.0\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"version 0.9", "GET / HTTP/0.9\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"lowercase version", "GET / http/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"two-digit version", "GET / HTTP/1.10\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"request line ends in bare LF", "GET / HTTP/1.1\nHost: svc\r\n\r\n", Want::kBadHead},
      {"request line ends in bare CR", "GET / HTTP/1.1\rHost: svc\r\n\r\n", Want::kBadHead},
      {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"non-ASCII byte in target", "GET /a\xc3\xa9 HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"asterisk-form for OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"absolute-form", "GET http://svc/a HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kOk},
      {"absolute-form, no Host", "GET http://svc/a HTTP/1.1\r\n\r\n", Want::kOk},
      {"absolute-form with userinfo", "GET http://u@svc/a HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"absolute-form with empty authority", "GET http:///a HTTP/1.1\r\nHost: svc\r\n\r\n", Want::kBadHead},
      {"CONNECT authority-form", "CONNECT svc:443 HTTP/1.1\r\nHost: svc:443\r\n\r\n", Want::kOk},

      // --- Header fields (RFC 9110 §5, RFC 9112 §5) ---
      {"space before colon", "GET / HTTP/1.1\r\nHost: svc\r\nX-A : 1\r\n\r\n", Want::kBadHead},
      {"tab before colon", "GET / HTTP/1.1\r\nHost: svc\r\nX-A\t: 1\r\n\r\n", Want::kBadHead},
      {"space inside name", "GET / HTTP/1.1\r\nHost: svc\r\nX A: 1\r\n\r\n", Want::kBadHead},
      {"empty name", "GET / HTTP/1.1\r\nHost: svc\r\n: 1\r\n\r\n", Want::kBadHead},
      {"no colon", "GET / HTTP/1.1\r\nHost: svc\r\nX-A\r\n\r\n", Want::kBadHead},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: 1\r\n 2\r\n\r\n", Want::kBadHead},
      {"obs-fold with tab", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: 1\r\n\t2\r\n\r\n", Want::kBadHead},
      {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: svc\r\n\r\n", Want::kBadHead},
      {"NUL in value", std::string("GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\0b\r\n\r\n", 37), Want::kBadHead},
      {"bare CR in value", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\rb\r\n\r\n", Want::kBadHead},
      {"bare CR hiding a field (CVE-2023-30589)",
       kPost + "X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n", Want::kBadHead},
      {"control byte in value", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\x01z\r\n\r\n", Want::kBadHead},
      {"DEL in value", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\x7fz\r\n\r\n", Want::kBadHead},
      {"tab and obs-text in value", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\tb\xe9\r\n\r\n", Want::kOk},
      {"empty value", "GET / HTTP/1.1\r\nHost: svc\r\nX-A:\r\n\r\n", Want::kOk},
      {"field line ends in bare LF", "GET / HTTP/1.1\r\nHost: svc\nX-A: 1\r\n\r\n", Want::kBadHead},
      {"head ends in bare LF", "GET / HTTP/1.1\r\nHost: svc\r\n\n", Want::kBadHead},
      {"head ends in bare LF twice", "GET / HTTP/1.1\nHost: svc\n\n", Want::kBadHead},
      {"field line ends in bare CR", "GET / HTTP/1.1\r\nHost: svc\rX-A: 1\r\n\r\n", Want::kBadHead},

      // --- Host (RFC 9112 §3.2) ---
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", Want::kBadHead},
      {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", Want::kOk},
      {"two Host fields", "GET / HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n", Want::kBadHead},
      {"two equal Host fields", "GET / HTTP/1.1\r\nHost: svc\r\nhost: svc\r\n\r\n", Want::kBadHead},
      {"Host list", "GET / HTTP/1.1\r\nHost: svc, evil\r\n\r\n", Want::kBadHead},
      {"Host with a path", "GET / HTTP/1.1\r\nHost: svc/evil\r\n\r\n", Want::kBadHead},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@svc\r\n\r\n", Want::kBadHead},
      {"Host with a space", "GET / HTTP/1.1\r\nHost: s vc\r\n\r\n", Want::kBadHead},
      {"Host with port", "GET / HTTP/1.1\r\nHost: svc:8080\r\n\r\n", Want::kOk},
      {"Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Want::kOk},

      // --- Content-Length (RFC 9112 §6.3, RFC 9110 §8.6) ---
      {"Content-Length", kPost + "Content-Length: 5\r\n\r\nhello", Want::kOk},
      {"body holds LFs", kPost + "Content-Length: 6\r\n\r\n\na\n\nb\n", Want::kOk},
      {"chunked body holds LFs", kChunked + "3\r\n\n\n\n\r\n0\r\n\r\n", Want::kOk},
      {"Content-Length 0", kPost + "Content-Length: 0\r\n\r\n", Want::kOk},
      {"Content-Length leading zeros", kPost + "Content-Length: 005\r\n\r\nhello", Want::kOk},
      {"Content-Length with OWS", kPost + "Content-Length:  5 \r\n\r\nhello", Want::kOk},
      {"two equal Content-Length", kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", Want::kBadHead},
      {"two differing Content-Length", kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", Want::kBadHead},
      {"Content-Length list", kPost + "Content-Length: 5, 5\r\n\r\nhello", Want::kBadHead},
      {"Content-Length plus sign", kPost + "Content-Length: +5\r\n\r\nhello", Want::kBadHead},
      {"Content-Length minus sign", kPost + "Content-Length: -5\r\n\r\nhello", Want::kBadHead},
      {"Content-Length hex", kPost + "Content-Length: 0x5\r\n\r\nhello", Want::kBadHead},
      {"Content-Length with letters", kPost + "Content-Length: 5a\r\n\r\nhello", Want::kBadHead},
      {"Content-Length with inner space", kPost + "Content-Length: 1 2\r\n\r\nhello", Want::kBadHead},
      {"Content-Length empty", kPost + "Content-Length: \r\n\r\nhello", Want::kBadHead},
      {"Content-Length overflow", kPost + "Content-Length: 99999999999999999999999\r\n\r\n", Want::kBadHead},
      {"Content-Length 2^64", kPost + "Content-Length: 18446744073709551616\r\n\r\n", Want::kBadHead},
      {"Content-Length name with space", kPost + "Content-Length : 5\r\n\r\nhello", Want::kBadHead},

      // --- Transfer-Encoding (RFC 9112 §6.1, §6.3) ---
      {"chunked", kChunked + "5\r\nhello\r\n0\r\n\r\n", Want::kOk},
      {"Chunked in capitals", kPost + "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", Want::kOk},
      {"chunked with OWS", kPost + "Transfer-Encoding:  chunked \r\n\r\n0\r\n\r\n", Want::kOk},
      {"TE and Content-Length", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"Content-Length after TE", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE gzip", kPost + "Transfer-Encoding: gzip\r\n\r\n", Want::kBadHead},
      {"TE identity", kPost + "Transfer-Encoding: identity\r\n\r\n", Want::kBadHead},
      {"TE unknown coding", kPost + "Transfer-Encoding: foo\r\n\r\n", Want::kBadHead},
      {"TE chunked then gzip", kPost + "Transfer-Encoding: chunked, gzip\r\n\r\n", Want::kBadHead},
      {"TE gzip then chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE chunked twice in a list", kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE chunked twice in fields", kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE gzip field then chunked field", kPost + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE empty", kPost + "Transfer-Encoding: \r\n\r\n", Want::kBadHead},
      {"TE with parameter", kPost + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE xchunked", kPost + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE chunked with vertical tab", kPost + "Transfer-Encoding: \x0b" "chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},
      {"TE name with space", kPost + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", Want::kBadHead},

      // --- Chunked coding (RFC 9112 §7.1) ---
      {"chunk size in capitals", kChunked + "A\r\n0123456789\r\n0\r\n\r\n", Want::kOk},
      {"chunk size leading zeros", kChunked + "005\r\nhello\r\n0\r\n\r\n", Want::kOk},
      {"chunk extension", kChunked + "5;a=b\r\nhello\r\n0\r\n\r\n", Want::kOk},
      {"chunk extension quoted", kChunked + "5;a=\"b c\"\r\nhello\r\n0\r\n\r\n", Want::kOk},
      {"chunk extension without value", kChunked + "5;a\r\nhello\r\n0\r\n\r\n", Want::kOk},
      {"trailer field", kChunked + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", Want::kOk},
      {"chunk size not hex", kChunked + "g\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size 0x", kChunked + "0x5\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size with sign", kChunked + "+5\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size empty", kChunked + "\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size leading space", kChunked + " 5\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size trailing space", kChunked + "5 \r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size trailing tab", kChunked + "5\t\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size overflow", kChunked + "10000000000000000\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size ends in bare LF", kChunked + "5\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size ends in bare CR", kChunked + "5\rhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk data ends in bare LF", kChunked + "5\r\nhello\n0\r\n\r\n", Want::kBadBody},
      {"chunk data too long", kChunked + "5\r\nhelloXX\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk data ends without CRLF", kChunked + "5\r\nhelloXX0\r\n\r\n", Want::kBadBody},
      {"last chunk ends in bare LF", kChunked + "0\n\r\n", Want::kBadBody},
      {"body ends in bare LF", kChunked + "0\r\n\n", Want::kBadBody},
      {"body ends in bare LF after a trailer", kChunked + "0\r\nX-T: 1\r\n\n", Want::kBadBody},
      {"trailer ends in bare LF after a CR", kChunked + "0\r\nX-T: 1\r\n\r\r\n", Want::kBadBody},
      {"last chunk with extension then bare LF", kChunked + "0;a=b\r\n\n", Want::kBadBody},
      {"two trailers", kChunked + "0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", Want::kOk},
      {"chunk extension with bare CR", kChunked + "5;a\rb\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk extension with bare LF", kChunked + "5;a\nb\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk extension with NUL", kChunked + std::string("5;a\0b\r\nhello\r\n0\r\n\r\n", 14), Want::kBadBody},
      {"chunk extension with control byte", kChunked + "5;a\x01" "b\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk extension not a token", kChunked + "5;a b\r\nhello\r\n0\r\n\r\n", Want::kBadBody},
      {"trailer line ends in bare LF", kChunked + "0\r\nX-T: 1\n\r\n", Want::kBadBody},
      {"trailer obs-fold", kChunked + "0\r\nX-T: 1\r\n 2\r\n\r\n", Want::kBadBody},
      {"trailer NUL", kChunked + std::string("0\r\nX-T: a\0b\r\n\r\n", 15), Want::kBadBody},
      {"trailer space before colon", kChunked + "0\r\nX-T : 1\r\n\r\n", Want::kBadBody},
  };
}

std::vector<Row> responseRows() {
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  return {
      // --- Status line (RFC 9112 §4) ---
      {"plain", ok + "Content-Length: 2\r\n\r\nok", Want::kOk},
      {"body holds LFs", ok + "Content-Length: 6\r\n\r\n\na\n\nb\n", Want::kOk},
      {"chunked body holds LFs", ok + "Transfer-Encoding: chunked\r\n\r\n3\r\n\n\n\n\r\n0\r\n\r\n", Want::kOk},
      {"no reason phrase", "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", Want::kOk},
      {"HTTP/1.0 close-delimited is not complete before EOF", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Want::kOk},
      {"version 2.0", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"version 1.2", "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"lowercase version", "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"status line ends in bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"control byte in reason", "HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},

      // --- Header fields ---
      {"space before colon", ok + "Content-Length : 2\r\n\r\nok", Want::kBadHead},
      {"obs-fold", ok + "X-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"NUL in value", ok + std::string("X-A: a\0b\r\nContent-Length: 2\r\n\r\nok", 33), Want::kBadHead},
      {"bare CR in value", ok + "X-A: a\rb\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"control byte in value", ok + "X-A: a\x01z\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"field line ends in bare LF", ok + "X-A: 1\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"head ends in bare LF", ok + "Content-Length: 2\r\n\nok", Want::kBadHead},

      // --- Content-Length ---
      {"two equal Content-Length", ok + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nok", Want::kBadHead},
      {"two differing Content-Length", ok + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nok", Want::kBadHead},
      {"Content-Length list", ok + "Content-Length: 2, 2\r\n\r\nok", Want::kBadHead},
      {"Content-Length plus sign", ok + "Content-Length: +2\r\n\r\nok", Want::kBadHead},
      {"Content-Length minus sign", ok + "Content-Length: -2\r\n\r\nok", Want::kBadHead},
      {"Content-Length overflow", ok + "Content-Length: 99999999999999999999999\r\n\r\nok", Want::kBadHead},

      // --- Transfer-Encoding ---
      {"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Want::kOk},
      {"TE and Content-Length", ok + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Want::kBadHead},
      {"TE gzip", ok + "Transfer-Encoding: gzip\r\n\r\nok", Want::kBadHead},
      {"TE gzip then chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Want::kBadHead},
      {"TE chunked twice", ok + "Transfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Want::kBadHead},
      {"TE chunked then gzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\nok", Want::kBadHead},
      {"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Want::kBadHead},

      // --- Chunked coding ---
      {"chunk size not hex", ok + "Transfer-Encoding: chunked\r\n\r\ng\r\nok\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size overflow", ok + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nok\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size leading space", ok + "Transfer-Encoding: chunked\r\n\r\n 2\r\nok\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk size ends in bare LF", ok + "Transfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", Want::kBadBody},
      {"chunk data ends in bare LF", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n", Want::kBadBody},
      {"chunk extension with bare CR", ok + "Transfer-Encoding: chunked\r\n\r\n2;a\rb\r\nok\r\n0\r\n\r\n", Want::kBadBody},
      {"trailer line ends in bare LF", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\n\r\n", Want::kBadBody},
      {"body ends in bare LF", ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\n", Want::kBadBody},
      {"interim then bare LF in the final head", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", Want::kBadEnd},
      {"interim then final", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Want::kOk},
  };
}

TEST(Http1FramingTest, RequestsWholeAndByteByByte) {
  for (const Row& row : requestRows()) check(Http1Reader::Mode::kRequest, row);
}

TEST(Http1FramingTest, ResponsesWholeAndByteByByte) {
  for (const Row& row : responseRows()) check(Http1Reader::Mode::kResponse, row);
}

// A token method is a method: llhttp knows a fixed list, but the head the
// handler gets carries the method as it came, whole or in pieces.
TEST(Http1FramingTest, TokenMethodsAreKeptAsTheyCame) {
  for (std::string m : {"get", "FROB", "M-SEARCH!", "GE", "GETX", "PROPFIND", "GET", "DELETE", "OPTIONS"}) {
    std::string in = m + " /x HTTP/1.1\r\nHost: svc\r\nContent-Length: 2\r\n\r\nok";
    for (size_t step : {in.size(), size_t{1}}) {
      Outcome o = run(Http1Reader::Mode::kRequest, in, step);
      ASSERT_EQ(o.error, Http1Reader::Error::kNone) << m << " " << o.why;
      ASSERT_EQ(o.rec.heads.size(), 1u) << m;
      EXPECT_EQ(o.rec.heads[0].method, m);
      EXPECT_EQ(o.rec.heads[0].target, "/x");
      EXPECT_EQ(o.rec.body, "ok") << m;
      EXPECT_FALSE(o.rec.heads[0].upgrade);
    }
  }
}

// Pipelined requests with token methods: each one read from its own first
// byte (the reader pauses after each).
TEST(Http1FramingTest, PipelinedTokenMethods) {
  Recorder rec;
  Http1Reader r(Http1Reader::Mode::kRequest, &rec, {});
  std::string in = "get /1 HTTP/1.1\r\nHost: x\r\n\r\n\r\nFROB /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t pos = 0;
  while (pos < in.size()) {
    auto res = r.feed(in.data() + pos, in.size() - pos);
    ASSERT_EQ(res.error, Http1Reader::Error::kNone) << res.why;
    pos += res.consumed;
    if (res.paused) r.resume();
  }
  ASSERT_EQ(rec.heads.size(), 3u);
  EXPECT_EQ(rec.heads[0].method, "get");
  EXPECT_EQ(rec.heads[1].method, "FROB");
  EXPECT_EQ(rec.heads[1].target, "/2");
  EXPECT_EQ(rec.heads[2].method, "GET");
  EXPECT_TRUE(r.idle());
}

// RFC 9113 §3.1 / h2c smuggling: `Upgrade: h2c` is not an upgrade through
// the sidecar; its body is parsed as HTTP/1. A WebSocket upgrade still is.
TEST(Http1FramingTest, H2cIsNotAnUpgradeButWebSocketIs) {
  const std::string h2c =
      "POST / HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nok";
  const std::string ws = "GET / HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{1000}}) {
    Outcome o = run(Http1Reader::Mode::kRequest, h2c, step);
    ASSERT_EQ(o.error, Http1Reader::Error::kNone) << o.why;
    ASSERT_EQ(o.rec.heads.size(), 1u);
    EXPECT_FALSE(o.rec.heads[0].upgrade);
    EXPECT_EQ(o.rec.body, "ok");
    EXPECT_EQ(o.rec.complete, 1);
    Outcome w = run(Http1Reader::Mode::kRequest, ws, step);
    ASSERT_EQ(w.rec.heads.size(), 1u);
    EXPECT_TRUE(w.rec.heads[0].upgrade);
  }
}

}  // namespace
}  // namespace mulligan::proxy
