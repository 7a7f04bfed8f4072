#include "sidecar/codec/header_stock.h"

#include <utility>

namespace mulligan::proxy {

thread_local HeaderStock* HeaderStock::t_local = nullptr;

HeaderStock& HeaderStock::makeLocal() {
  // Owned (and destroyed at thread exit) here; t_local is the fast way in.
  static thread_local HeaderStock stock;
  t_local = &stock;
  return stock;
}

HeaderStock::HeaderStock() {
  // The stock's own arrays are allocated once, here, never on a request.
  lists_.reserve(kMaxLists);
  strings_.reserve(kMaxStrings);
}

HeaderStock::~HeaderStock() {
  if (t_local == this) t_local = nullptr;  // thread exit: no way in to a dead stock
}

HeaderList HeaderStock::takeList() {
  if (!lists_.empty()) {
    HeaderList l = std::move(lists_.back());
    lists_.pop_back();
    return l;
  }
  HeaderList l;
  l.reserve(kTypicalHeaders, kTypicalHeaderBytes);
  return l;
}

void HeaderStock::keep(std::string&& s) {
  if (s.capacity() > kMaxStringCapacity || strings_.size() >= kMaxStrings) return;
  s.clear();
  strings_.push_back(std::move(s));
}

void HeaderStock::keepList(HeaderList&& list) {
  if (list.capacity() >= kTypicalHeaders && list.byteCapacity() <= kMaxListBytes && lists_.size() < kMaxLists) {
    list.clear();
    lists_.push_back(std::move(list));
  }
  list = HeaderList();  // what was not kept is freed now, not by the caller later
}

void HeaderStock::refill(std::string& s, size_t len) {
  // Look at the last few only: a short scan, and the stock is mostly buffers
  // of the same few sizes (field values, request heads).
  constexpr size_t kScan = 8;
  for (size_t i = strings_.size(), seen = 0; i > 0 && seen < kScan; --i, ++seen) {
    if (strings_[i - 1].capacity() < len) continue;
    s = std::move(strings_[i - 1]);
    strings_[i - 1] = std::move(strings_.back());
    strings_.pop_back();
    return;
  }
}

}  // namespace mulligan::proxy
