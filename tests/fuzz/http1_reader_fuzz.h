// The HTTP/1 reader fuzz targets' common driver (http1_request_fuzz.cc,
// http1_response_fuzz.cc). A connection's bytes are parsed twice: whole, in
// one feed, and in pieces cut where the input says (down to byte by byte),
// each time with the callers' protocol (Http1Session, Http1Attempt): resume
// after each message, stop at an error or at an upgrade, finishOnEof() at
// the end. Both parses must deliver the same events (an error is an error,
// be it 400 or 431; see parse()): a reader that decides
// differently depending on how TCP split the bytes is a request-smuggling
// bug (the proxy and the upstream would disagree on where a message ends).
//
// Input: one control byte, then the bytes of the connection.
//   bits 0-1  how to cut the second parse: 0 byte by byte, else pieces of
//             1..(8 << 2*bits) bytes from a generator seeded by the input
//   bit 2     responses: they answer a HEAD request (no body)
//   bits 3-4  header limits: 0 the defaults, else small ones (to reach 431)
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "sidecar/codec/http1/http1_reader.h"
#include "tests/fuzz/fuzz_target.h"

namespace mulligan::fuzz {

using proxy::HeaderList;
using proxy::Http1Reader;
using proxy::MessageHead;

// Writes every event into one string, so that two parses compare at once.
// Body bytes are recorded as they come but pieces are merged: how a body is
// cut is not an event.
class EventLog : public Http1Reader::Handler {
 public:
  std::string log;
  bool upgrade = false;  // the last head began a tunnel
  size_t raw_bytes = 0;  // rawHeadBytes() seen (checked for bounds by ASan)

  void onHead(MessageHead& h) override {
    std::string_view raw = proxy::rawHeadBytes(h);
    for (char c : raw) raw_bytes += static_cast<unsigned char>(c) != 0xff;  // touch every byte
    endBody();
    log += "\nHEAD " + h.method + " " + h.target + " " + std::to_string(h.status) + " [" + h.reason + "] 1." +
           std::to_string(h.version_minor);
    for (const auto& [k, v] : h.headers) {
      log += "\n  ";
      log += k;
      log += ": ";
      log += v;
    }
    log += "\n  ka=" + std::to_string(h.keep_alive) + " chunked=" + std::to_string(h.chunked) +
           " cl=" + (h.has_content_length ? std::to_string(h.content_length) : "-") +
           " upgrade=" + std::to_string(h.upgrade) + " eof=" + std::to_string(h.needs_eof);
    upgrade = h.upgrade;
  }
  void onBody(const char* data, size_t len) override {
    if (!in_body_) log += "\nBODY ";
    in_body_ = true;
    log.append(data, len);
  }
  void onTrailers(HeaderList& trailers) override {
    endBody();
    log += "\nTRAILERS";
    for (const auto& [k, v] : trailers) {
      log += "\n  ";
      log += k;
      log += ": ";
      log += v;
    }
  }
  void onComplete() override {
    endBody();
    log += "\nCOMPLETE";
  }
  void note(std::string_view s) {
    endBody();
    log += "\n";
    log += s;
  }

 private:
  void endBody() { in_body_ = false; }
  bool in_body_ = false;
};

// A small deterministic generator (SplitMix64) for the cut points.
struct Cuts {
  uint64_t state;
  int bits;
  size_t next() {
    if (bits == 0) return 1;
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return 1 + static_cast<size_t>(z % (size_t{8} << (2 * bits)));
  }
};

// Parses `data` as the callers do, in pieces from `cuts` (null: whole).
inline std::string parse(Http1Reader::Mode mode, bool head_response, Http1Reader::Limits limits, const char* data,
                         size_t size, Cuts* cuts) {
  EventLog events;
  Http1Reader reader(mode, &events, limits);
  if (head_response) reader.expectResponseTo("HEAD");
  size_t pos = 0;
  size_t piece_end = cuts ? 0 : size;
  while (pos < size) {
    if (pos >= piece_end) piece_end = std::min(size, pos + cuts->next());
    // A piece of its own, in its own allocation: ASan sees any read past it.
    std::string piece(data + pos, piece_end - pos);
    Http1Reader::Result r = reader.feed(piece.data(), piece.size());
    FUZZ_CHECK(r.consumed <= piece.size(), "consumed %zu of %zu", r.consumed, piece.size());
    if (r.error != Http1Reader::Error::kNone) {
      // Which refusal (400 or 431) may depend on the cuts: llhttp hands a
      // name or value over at the end of each piece, so in pieces the size
      // limit can be reached before a bad byte later in the same field that
      // a whole parse stops at first. Either way nothing is forwarded.
      events.note("ERROR");
      FUZZ_CHECK(!r.why.empty(), "an error without a reason");
      return events.log;
    }
    pos += r.consumed;
    if (r.paused) {
      if (events.upgrade) {
        events.note("UPGRADE");  // the rest is a tunnel's
        return events.log;
      }
      reader.resume();
    } else {
      FUZZ_CHECK(r.consumed == piece.size(), "not paused, yet %zu of %zu consumed", r.consumed, piece.size());
    }
  }
  events.note(reader.finishOnEof() ? "EOF ok" : "EOF truncated");
  events.note(reader.idle() ? "idle" : "in a message");
  return events.log;
}

inline int fuzzHttp1(Http1Reader::Mode mode, const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t control = data[0];
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  bool head_response = mode == Http1Reader::Mode::kResponse && (control & 4);
  Http1Reader::Limits limits;
  if (int l = (control >> 3) & 3) {
    limits.max_header_bytes = size_t{64} << (2 * l);  // 256, 1024, 4096
    limits.max_headers = size_t{2} << l;              // 4, 8, 16
  }
  std::string whole = parse(mode, head_response, limits, bytes, n, nullptr);
  uint64_t seed = 0;
  std::memcpy(&seed, bytes, std::min(n, sizeof seed));
  Cuts cuts{seed, control & 3};
  std::string pieces = parse(mode, head_response, limits, bytes, n, &cuts);
  FUZZ_CHECK(whole == pieces, "whole and cut parses differ\n--- whole:%s\n--- in pieces:%s", whole.c_str(),
             pieces.c_str());
  return 0;
}

}  // namespace mulligan::fuzz
