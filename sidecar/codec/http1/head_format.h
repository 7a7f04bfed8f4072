// HeadFormat: writes an HTTP/1 message head into a string, for the codecs'
// writers (Http1Session::writeHead, Http1Attempt::sendHead).
//
// A head is a few dozen short pieces ("name", ": ", "value", "\r\n"), and
// std::string::append checks capacity, updates the length and writes a
// terminator for each one. On the hot path of every proxied request that
// bookkeeping cost more than the copying, so the formatter reserves room
// once per field and copies with memcpy through a raw cursor; the string's
// length is set once, by done().
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace mulligan::proxy {

class HeadFormat {
 public:
  // Appends to `out` (what it holds stays in front).
  explicit HeadFormat(std::string& out) : out_(out), used_(out.size()) {}
  HeadFormat(const HeadFormat&) = delete;
  HeadFormat& operator=(const HeadFormat&) = delete;
  ~HeadFormat() { done(); }

  HeadFormat& add(std::string_view s) {
    room(s.size());
    copy(s);
    return *this;
  }
  // "name: value\r\n"
  HeadFormat& field(std::string_view name, std::string_view value) {
    room(name.size() + value.size() + 4);
    copy(name);
    copy2(": ");
    copy(value);
    copy2("\r\n");
    return *this;
  }
  // "name: <decimal>\r\n"
  HeadFormat& field(std::string_view name, uint64_t value) {
    room(name.size() + kMaxDigits + 4);
    copy(name);
    copy2(": ");
    copyDecimal(value);
    copy2("\r\n");
    return *this;
  }
  // A decimal number (a status code).
  HeadFormat& number(uint64_t value) {
    room(kMaxDigits);
    copyDecimal(value);
    return *this;
  }
  // The string's length becomes what was written (the destructor does it too).
  void done() { out_.resize(used_); }

 private:
  // Makes room for `n` more bytes. The string grows geometrically, and its
  // new bytes are only zeroed once per growth, not per piece.
  void room(size_t n) {
    if (used_ + n <= out_.size()) return;
    size_t want = used_ + n;
    if (want < 2 * out_.size()) want = 2 * out_.size();
    if (want < 256) want = 256;
    out_.resize(want);
  }
  static constexpr size_t kMaxDigits = 20;  // any uint64_t
  // Straight into the room made for it: formatting into a small array and
  // copying that would cost a copy, and under LTO GCC warns about
  // copyBytes' longer moves on such an array (branches it cannot rule out).
  void copyDecimal(uint64_t value) {
    char* at = out_.data() + used_;
    used_ = static_cast<size_t>(std::to_chars(at, at + kMaxDigits, value).ptr - out_.data());
  }
  void copy(std::string_view s) {
    copyBytes(out_.data() + used_, s.data(), s.size());
    used_ += s.size();
  }
  // (GCC cannot tell that a branch is dead for a short array and warns
  // about the longer moves in it; these pragmas do not reach the LTO link,
  // so numbers are formatted in place, copyDecimal, never copied from one.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#if !defined(__clang__)  // (a GCC warning clang does not know: it would warn about the pragma)
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
  // Most pieces of a head are a few bytes to a few dozen (names, short
  // values): copied with fixed-size moves that the compiler inlines — two
  // overlapping ones cover any length between one size and the next —
  // instead of a call into libc's memcpy and its length dispatch per piece.
  static void copyBytes(char* d, const char* s, size_t n) {
    if (n > 32) {
      std::memcpy(d, s, n);
    } else if (n >= 16) {
      move<16>(d, s);
      move<16>(d + n - 16, s + n - 16);
    } else if (n >= 8) {
      move<8>(d, s);
      move<8>(d + n - 8, s + n - 8);
    } else if (n >= 4) {
      move<4>(d, s);
      move<4>(d + n - 4, s + n - 4);
    } else if (n != 0) {
      d[0] = s[0];
      d[n / 2] = s[n / 2];
      d[n - 1] = s[n - 1];
    }
  }
  template <size_t N>
  static void move(char* d, const char* s) {
    char tmp[N];
    std::memcpy(tmp, s, N);
    std::memcpy(d, tmp, N);
  }
#pragma GCC diagnostic pop
  void copy2(const char (&two)[3]) {
    std::memcpy(out_.data() + used_, two, 2);
    used_ += 2;
  }
  std::string& out_;
  size_t used_;
};

}  // namespace mulligan::proxy
