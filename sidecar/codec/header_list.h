// HeaderList: the fields of one head (or trailer section) in the order they
// arrived. Names and values are appended into ONE byte buffer and a field is
// four offsets into it, so parsing a field is two small copies into storage
// that clear() keeps — not two std::strings, each with its own buffer to
// find, fill and give back (that cost about a hundred instructions a field,
// a tenth of a proxied request). HeaderStock recycles whole lists.
//
// Fields read as Field{name, value} string_views into the buffer: valid
// until the list is changed (any add, clear) or destroyed. Copies and moves
// carry their bytes, so a moved list's views stay valid in the new owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mulligan::proxy {

// ASCII case-insensitive equality. Inline: called for every field of every
// head, mostly with a literal. Bytes that are equal (the usual case: names
// arrive in lower case or in the case they are compared with) cost one
// comparison; bytes that differ match only as the two cases of one letter.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    unsigned char lx = x | 0x20;
    if (lx != (y | 0x20) || static_cast<unsigned char>(lx - 'a') > 'z' - 'a') return false;
  }
  return true;
}

class HeaderList {
 public:
  // `first` is the name, `second` the value (std::pair's names: this type
  // replaced a vector of string pairs, and reads the same).
  struct Field {
    std::string_view first;
    std::string_view second;
  };

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Field;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Field;
    const_iterator() = default;
    const_iterator(const HeaderList* list, size_t i) : list_(list), i_(i) {}
    Field operator*() const { return (*list_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator was = *this;
      ++i_;
      return was;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const HeaderList* list_ = nullptr;
    size_t i_ = 0;
  };

  HeaderList() = default;
  HeaderList(std::initializer_list<Field> fields);
  HeaderList(const HeaderList& o);
  HeaderList& operator=(const HeaderList& o);
  HeaderList(HeaderList&& o) noexcept
      : bytes_(std::move(o.bytes_)), used_(std::exchange(o.used_, 0)), cap_(std::exchange(o.cap_, 0)),
        spans_(std::move(o.spans_)) {}
  HeaderList& operator=(HeaderList&& o) noexcept {
    bytes_ = std::move(o.bytes_);
    used_ = std::exchange(o.used_, 0);
    cap_ = std::exchange(o.cap_, 0);
    spans_ = std::move(o.spans_);
    return *this;
  }

  size_t size() const { return spans_.size(); }
  bool empty() const { return spans_.empty(); }
  Field operator[](size_t i) const {
    const Span& s = spans_[i];
    const char* b = bytes_.get();
    return {{b + s.name_at, s.name_len}, {b + s.value_at, s.value_len}};
  }
  Field back() const { return (*this)[spans_.size() - 1]; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, spans_.size()}; }

  // One room check, two copies and one span for the whole field (every
  // field of every head, about twenty a proxied HTTP/2 request, goes
  // through here: issue 18).
  void emplace_back(std::string_view name, std::string_view value) {
    size_t n = name.size(), v = value.size();
    if (n + v > cap_ - used_) grow(used_ + n + v);
    char* at = bytes_.get() + used_;
    copyBytes(at, name.data(), n);
    copyBytes(at + n, value.data(), v);
    uint32_t name_at = used_;
    spans_.push_back(Span{name_at, static_cast<uint32_t>(n), name_at + static_cast<uint32_t>(n),
                          static_cast<uint32_t>(v)});
    used_ = name_at + static_cast<uint32_t>(n + v);
  }
  void push_back(Field f) { emplace_back(f.first, f.second); }

  // The parser's way in (llhttp may deliver a name or a value in pieces): a
  // new empty field, then pieces of its name, then pieces of its value. The
  // name's pieces must all come before the value's (they do: a name piece
  // after a value starts a new field).
  void startField() { spans_.push_back(Span{used_, 0, used_, 0}); }
  void appendToName(std::string_view piece) {
    append(piece);
    Span& s = spans_.back();
    s.name_len += static_cast<uint32_t>(piece.size());
    s.value_at = s.name_at + s.name_len;
  }
  void appendToValue(std::string_view piece) {
    append(piece);
    spans_.back().value_len += static_cast<uint32_t>(piece.size());
  }

  // Lower-cases every name in place (RFC 9113 §8.2.1: HTTP/2 field names
  // are lower case), looking at eight bytes at a time: nearly every name
  // already is.
  void lowerNames();

  // Empties the list; its storage stays for the next head.
  void clear() {
    used_ = 0;
    spans_.clear();
  }
  // Room reserved up front: `fields` fields of `bytes` bytes in all.
  void reserve(size_t fields, size_t bytes) {
    spans_.reserve(fields);
    if (bytes > cap_) grow(bytes);
  }
  // Fields it has room for without growing (0 for a moved-from list).
  size_t capacity() const { return spans_.capacity(); }
  // Bytes of names and values it has room for.
  size_t byteCapacity() const { return cap_; }

 private:
  struct Span {
    uint32_t name_at, name_len, value_at, value_len;
  };
  // Inline: the common case (room left) is a compare and a copy. The buffer
  // is a plain array, not a std::string: its append and moves are out-of-line
  // calls that cost more than the copy itself.
  void append(std::string_view piece) {
    if (piece.size() > cap_ - used_) grow(used_ + piece.size());
    copyBytes(bytes_.get() + used_, piece.data(), piece.size());
    used_ += static_cast<uint32_t>(piece.size());
  }
  // memcpy for the short pieces names and values mostly are (up to 16
  // bytes: two overlapping loads and stores, no call into libc, whose
  // size dispatch costs more than such a copy); longer ones go to memcpy.
  static void copyBytes(char* to, const char* from, size_t n) {
    if (n >= 8) {
      if (n > 16) {
        std::memcpy(to, from, n);
        return;
      }
      uint64_t a, b;
      std::memcpy(&a, from, 8);
      std::memcpy(&b, from + n - 8, 8);
      std::memcpy(to, &a, 8);
      std::memcpy(to + n - 8, &b, 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, from, 4);
      std::memcpy(&b, from + n - 4, 4);
      std::memcpy(to, &a, 4);
      std::memcpy(to + n - 4, &b, 4);
    } else {
      for (size_t i = 0; i < n; ++i) to[i] = from[i];
    }
  }
  // Room for at least `bytes` bytes, keeping the first used_.
  void grow(size_t bytes);

  std::unique_ptr<char[]> bytes_;
  uint32_t used_ = 0;  // bytes_[0, used_) hold the names and values
  uint32_t cap_ = 0;   // bytes_ holds this many
  std::vector<Span> spans_;
};

// Case-insensitive lookup of the first field named `name`; nullopt when absent.
std::optional<std::string_view> findHeader(const HeaderList& h, std::string_view name);

}  // namespace mulligan::proxy
