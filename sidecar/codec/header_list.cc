#include "sidecar/codec/header_list.h"

#include <algorithm>
#include <cstdlib>

namespace mulligan::proxy {

HeaderList::HeaderList(std::initializer_list<Field> fields) {
  size_t bytes = 0;
  for (const Field& f : fields) bytes += f.first.size() + f.second.size();
  reserve(fields.size(), bytes);
  for (const Field& f : fields) push_back(f);
}

HeaderList::HeaderList(const HeaderList& o) : spans_(o.spans_) {
  if (o.used_ != 0) {
    grow(o.used_);
    std::memcpy(bytes_.get(), o.bytes_.get(), o.used_);
    used_ = o.used_;
  }
}

HeaderList& HeaderList::operator=(const HeaderList& o) {
  if (this != &o) {
    used_ = 0;
    if (o.used_ > cap_) grow(o.used_);
    if (o.used_ != 0) std::memcpy(bytes_.get(), o.bytes_.get(), o.used_);
    used_ = o.used_;
    spans_ = o.spans_;
  }
  return *this;
}

void HeaderList::grow(size_t bytes) {
  // Offsets are 32-bit: header limits (64 KiB by default) keep a list far
  // below 4 GiB; more is a bug upstream of here.
  size_t cap = std::max<size_t>({bytes, size_t{2} * cap_, 64});
  if (cap > UINT32_MAX) std::abort();
  std::unique_ptr<char[]> b(new char[cap]);
  if (used_ != 0) std::memcpy(b.get(), bytes_.get(), used_);
  bytes_ = std::move(b);
  cap_ = static_cast<uint32_t>(cap);
}

namespace {

// Whether any of the 8 bytes in `w` is an ASCII upper-case letter (as
// lowered() in codec/http2 tests them): each byte's low 7 bits plus 0x3f
// reach 0x80 from 'A' on, plus 0x25 from 'Z' + 1 on; a byte with its own
// top bit set is not a letter.
inline bool anyUpper(uint64_t w) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full, kHigh = 0x8080808080808080ull;
  uint64_t y = w & kLow7;
  uint64_t from_a = y + 0x3f3f3f3f3f3f3f3full;
  uint64_t past_z = y + 0x2525252525252525ull;
  return (from_a & ~past_z & ~w & kHigh) != 0;
}

bool hasUpper(const char* p, size_t n) {
  if (n >= 8) {
    for (size_t at = 0; at + 8 <= n; at += 8) {
      uint64_t w;
      std::memcpy(&w, p + at, 8);
      if (anyUpper(w)) return true;
    }
    uint64_t w;
    std::memcpy(&w, p + n - 8, 8);
    return anyUpper(w);
  }
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 'A' && p[i] <= 'Z') return true;
  }
  return false;
}

}  // namespace

void HeaderList::lowerNames() {
  char* b = bytes_.get();
  for (const Span& s : spans_) {
    char* p = b + s.name_at;
    if (!hasUpper(p, s.name_len)) continue;
    for (uint32_t i = 0; i < s.name_len; ++i) {
      if (p[i] >= 'A' && p[i] <= 'Z') p[i] = static_cast<char>(p[i] + 32);
    }
  }
}

std::optional<std::string_view> findHeader(const HeaderList& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

}  // namespace mulligan::proxy
