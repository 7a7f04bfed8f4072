// HeadFormat writes exactly what std::string::append would, for every piece
// length its inline copies distinguish (0..3, 4..7, 8..15, 16..32, longer),
// at every starting offset, across its growth steps.
#include "sidecar/codec/http1/head_format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace mulligan::proxy {
namespace {

// A piece of `n` distinct bytes (a wrong or shifted copy shows).
std::string piece(size_t n, char first) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(first + static_cast<char>(i % 50)));
  return s;
}

TEST(HeadFormatTest, EveryPieceLengthAtEveryOffset) {
  for (size_t prefix = 0; prefix < 40; ++prefix) {
    for (size_t n = 0; n <= 80; ++n) {
      std::string out = piece(prefix, 'A');
      std::string want = out;
      std::string name = piece(n, 'a');
      std::string value = piece((n * 7) % 45, '0');
      {
        HeadFormat f(out);
        f.add(name).field(name, value).add(value).field("content-length", uint64_t{n * 1000003});
      }
      want += name;
      want += name + ": " + value + "\r\n";
      want += value;
      want += "content-length: " + std::to_string(n * 1000003) + "\r\n";
      ASSERT_EQ(out, want) << "prefix " << prefix << " n " << n;
    }
  }
}

TEST(HeadFormatTest, ManyFieldsGrowTheString) {
  std::string out, want;
  {
    HeadFormat f(out);
    for (size_t i = 0; i < 300; ++i) {
      std::string v = piece(i % 70, 'k');
      f.field("x-field", v);
      want += "x-field: " + v + "\r\n";
    }
  }
  EXPECT_EQ(out, want);
}

// Numbers are formatted straight into the string's room: every width from
// one digit to twenty (the largest uint64_t), at offsets that put the end
// of the room made for them on and around a growth step.
TEST(HeadFormatTest, NumbersOfEveryWidthAtTheRoomsEdge) {
  std::vector<uint64_t> values{0, 9, 10, 200, 404, 999, 1000};
  for (uint64_t v = 10; v <= std::numeric_limits<uint64_t>::max() / 10; v *= 10) {
    values.push_back(v - 1);
    values.push_back(v);
  }
  values.push_back(std::numeric_limits<uint64_t>::max());
  for (size_t prefix = 200; prefix < 300; ++prefix) {
    for (uint64_t v : values) {
      std::string out = piece(prefix, 'A');
      std::string want = out + "HTTP/1.1 " + std::to_string(v) + " x-n: " + std::to_string(v) + "\r\n";
      {
        HeadFormat f(out);
        f.add("HTTP/1.1 ").number(v).add(" ").field("x-n", v);
      }
      ASSERT_EQ(out, want) << "prefix " << prefix << " value " << v;
    }
  }
}

}  // namespace
}  // namespace mulligan::proxy
