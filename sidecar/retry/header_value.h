// HeaderValue: a header field value that may be absent, without copying it.
// Absent and empty differ: a missing Retry-After means "no pushback", an
// empty one is malformed. The engine's parsers take these so that every
// protocol can hand over what its codec holds (an HTTP/1 header list's
// std::string, an nghttp2 name/value buffer) without allocating.
//
// Ownership: non-owning. The bytes belong to the caller's header storage and
// must outlive the HeaderValue (and anything built from it in one call).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mulligan::retry {

class HeaderValue {
 public:
  constexpr HeaderValue() = default;
  constexpr HeaderValue(std::nullptr_t) {}
  constexpr HeaderValue(std::string_view v) : data_(v.data()), size_(v.size()), present_(true) {}
  constexpr HeaderValue(const char* s)
      : data_(s), size_(s ? std::char_traits<char>::length(s) : 0), present_(s != nullptr) {}
  HeaderValue(const std::string& s) : HeaderValue(std::string_view(s)) {}
  HeaderValue(std::string&&) = delete;  // would dangle
  // The result of a header lookup that returns a pointer: nullptr = absent.
  HeaderValue(const std::string* s) : HeaderValue(s ? HeaderValue(*s) : HeaderValue()) {}
  // ...or an optional view (proxy::findHeader): nullopt = absent.
  constexpr HeaderValue(std::optional<std::string_view> v) : HeaderValue(v ? HeaderValue(*v) : HeaderValue()) {}

  constexpr bool present() const { return present_; }
  constexpr explicit operator bool() const { return present_; }
  // The value ("" when absent).
  constexpr std::string_view value() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  bool present_ = false;
};

// RFC 9110 §5.5: a field value has no leading or trailing whitespace (SP,
// HTAB). Codecs usually strip it; the parsers strip it again to be sure.
constexpr std::string_view trimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace mulligan::retry
