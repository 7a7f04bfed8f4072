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

std::optional<std::string_view> findHeader(const HeaderList& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

}  // namespace mulligan::proxy
