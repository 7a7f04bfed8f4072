// HeaderList: fields in arrival order, names and values in one buffer.
#include "sidecar/codec/header_list.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace mulligan::proxy {
namespace {

std::vector<std::pair<std::string, std::string>> fieldsOf(const HeaderList& l) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : l) out.emplace_back(std::string(k), std::string(v));
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(HeaderListTest, KeepsFieldsInOrderWithDuplicatesAndEmptyValues) {
  HeaderList l;
  l.emplace_back("Host", "a");
  l.emplace_back("x-empty", "");
  l.emplace_back("set-cookie", "1");
  l.emplace_back("set-cookie", "2");
  EXPECT_EQ(l.size(), 4u);
  EXPECT_EQ(fieldsOf(l), (Fields{{"Host", "a"}, {"x-empty", ""}, {"set-cookie", "1"}, {"set-cookie", "2"}}));
  EXPECT_EQ(l[2].first, "set-cookie");
  EXPECT_EQ(l.back().second, "2");
}

TEST(HeaderListTest, EveryLengthOfNameAndValueIsCopiedExactly) {
  // emplace_back copies short pieces with overlapping word loads (0-3, 4-7,
  // 8-16 bytes) and longer ones with memcpy: every length on both sides,
  // from non-repeating bytes, across the buffer's growth.
  std::string src;
  for (int i = 0; i < 64; ++i) src.push_back(static_cast<char>('!' + i));
  HeaderList l;
  Fields want;
  for (size_t n = 0; n <= 40; ++n) {
    for (size_t v = 0; v <= 40; v += 1) {
      std::string name = src.substr(n % 7, n), value = src.substr(63 - v, v);
      l.emplace_back(name, value);
      want.emplace_back(name, value);
    }
  }
  EXPECT_EQ(fieldsOf(l), want);
}

TEST(HeaderListTest, LowerNamesLowersEveryNameInPlaceAndNoValue) {
  // Upper case anywhere in names of every length around the 8-byte steps.
  HeaderList l;
  Fields want;
  for (size_t n = 1; n <= 20; ++n) {
    for (size_t at = 0; at < n; ++at) {
      std::string name(n, 'a'), value = "Value-" + std::to_string(n);
      name[at] = 'Q';
      l.emplace_back(name, value);
      name[at] = 'q';
      want.emplace_back(name, value);
    }
  }
  l.emplace_back("Content-Type", "Text/HTML");
  want.emplace_back("content-type", "Text/HTML");
  l.emplace_back("x-already-lower", "MiXeD");
  want.emplace_back("x-already-lower", "MiXeD");
  l.emplace_back("@[`{", "z");  // the bytes next to the letters stay
  want.emplace_back("@[`{", "z");
  l.lowerNames();
  EXPECT_EQ(fieldsOf(l), want);
}

TEST(HeaderListTest, NamesAndValuesBuiltFromPiecesAsAParserDeliversThem) {
  HeaderList l;
  l.startField();
  l.appendToName("con");
  l.appendToName("tent-type");
  l.appendToValue("text/");
  l.appendToValue("plain");
  l.startField();
  l.appendToName("x");  // a value that never came: empty
  l.startField();
  l.appendToName("date");
  l.appendToValue("Wed, 02 Dec 2026 03:40:17 GMT");
  EXPECT_EQ(fieldsOf(l), (Fields{{"content-type", "text/plain"}, {"x", ""}, {"date", "Wed, 02 Dec 2026 03:40:17 GMT"}}));
}

TEST(HeaderListTest, FindIsCaseInsensitiveAndReturnsTheFirst) {
  HeaderList l{{"Content-Length", "3"}, {"x-a", "1"}, {"X-A", "2"}};
  ASSERT_TRUE(findHeader(l, "content-length"));
  EXPECT_EQ(*findHeader(l, "content-length"), "3");
  EXPECT_EQ(*findHeader(l, "x-a"), "1");
  EXPECT_FALSE(findHeader(l, "x-b"));
  EXPECT_FALSE(findHeader(l, "content-lengt"));
  EXPECT_FALSE(findHeader(HeaderList(), "x-a"));
}

TEST(HeaderListTest, CopiesAndMovesCarryTheirBytes) {
  std::string long_value(3000, 'v');  // the buffer grows (reallocates) on the way
  HeaderList l;
  for (int i = 0; i < 40; ++i) l.emplace_back("x-" + std::to_string(i), long_value.substr(0, 50 + i));
  HeaderList copy = l;
  HeaderList moved = std::move(l);
  EXPECT_EQ(fieldsOf(copy), fieldsOf(moved));
  ASSERT_EQ(moved.size(), 40u);
  EXPECT_EQ(moved[39].first, "x-39");
  EXPECT_EQ(moved[39].second, long_value.substr(0, 89));
  copy.emplace_back("after", "copy");  // the copy is its own
  EXPECT_EQ(copy.size(), 41u);
  EXPECT_EQ(moved.size(), 40u);
}

TEST(HeaderListTest, ClearEmptiesButKeepsTheStorage) {
  HeaderList l;
  l.reserve(4, 64);
  l.emplace_back("a", std::string(500, 'a'));
  size_t fields = l.capacity(), bytes = l.byteCapacity();
  l.clear();
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.begin(), l.end());
  EXPECT_EQ(l.capacity(), fields);
  EXPECT_EQ(l.byteCapacity(), bytes);
  l.emplace_back("b", "2");
  EXPECT_EQ(fieldsOf(l), (Fields{{"b", "2"}}));  // nothing of the old contents
}

}  // namespace
}  // namespace mulligan::proxy
