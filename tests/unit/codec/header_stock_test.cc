// HeaderStock: header storage is reused across heads, never its contents.
#include "sidecar/codec/header_stock.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "sidecar/codec/http1/http1_reader.h"

namespace mulligan::proxy {
namespace {

// Each test runs on a thread of its own: a fresh stock.
template <class F>
void onFreshThread(F f) {
  std::thread t(f);
  t.join();
}

const std::string kLong(40, 'a');  // beyond std::string's inline buffer

TEST(HeaderStockTest, AGivenListsStorageIsTakenAgainEmpty) {
  onFreshThread([] {
    HeaderStock& stock = HeaderStock::local();
    HeaderList l = stock.takeList();
    EXPECT_TRUE(l.empty());
    EXPECT_GE(l.capacity(), HeaderStock::kTypicalHeaders);
    EXPECT_GE(l.byteCapacity(), HeaderStock::kTypicalHeaderBytes);
    l.emplace_back("host", "example");
    l.emplace_back("date", std::string(2000, 'd'));  // grows its bytes
    size_t fields = l.capacity(), bytes = l.byteCapacity();
    stock.give(std::move(l));
    EXPECT_EQ(l.capacity(), 0u);  // given away, not copied
    EXPECT_EQ(stock.keptLists(), 1u);
    HeaderList again = stock.takeList();
    EXPECT_TRUE(again.empty());
    EXPECT_EQ(again.capacity(), fields);
    EXPECT_EQ(again.byteCapacity(), bytes);  // the grown storage came back
    EXPECT_EQ(stock.keptLists(), 0u);
  });
}

TEST(HeaderStockTest, AListHoldingMoreThanTheBoundIsFreedNotKept) {
  onFreshThread([] {
    HeaderStock& stock = HeaderStock::local();
    HeaderList l = stock.takeList();
    l.emplace_back("x-huge", std::string(HeaderStock::kMaxListBytes + 1, 'h'));
    stock.give(std::move(l));
    EXPECT_EQ(stock.keptLists(), 0u);
    EXPECT_EQ(l.capacity(), 0u);
  });
}

TEST(HeaderStockTest, AppendingToANonEmptyStringOnlyAppends) {
  onFreshThread([] {
    HeaderStock& stock = HeaderStock::local();
    stock.giveString(std::string(kLong));
    std::string s = "ab";
    stock.append(s, kLong.data(), kLong.size());
    EXPECT_EQ(s, "ab" + kLong);
    EXPECT_EQ(stock.keptStrings(), 1u);  // not taken: s had bytes already
  });
}

TEST(HeaderStockTest, AKeptBufferTooSmallForTheBytesIsLeftForAnother) {
  onFreshThread([] {
    HeaderStock& stock = HeaderStock::local();
    std::string big;
    big.reserve(500);
    big = "x";
    const void* big_buf = big.data();
    stock.giveString(std::move(big));
    stock.giveString(std::string(kLong));  // 40 bytes of room, on top
    std::string head(300, 'h');
    std::string s;
    stock.append(s, head.data(), head.size());
    EXPECT_EQ(s, head);
    EXPECT_EQ(static_cast<const void*>(s.data()), big_buf);  // the one with room
    EXPECT_EQ(stock.keptStrings(), 1u);                       // the small one is still kept
    std::string v;
    stock.append(v, kLong.data(), 20);
    EXPECT_EQ(v, kLong.substr(0, 20));
    EXPECT_EQ(stock.keptStrings(), 0u);
  });
}

TEST(HeaderStockTest, KeepsWithinItsBounds) {
  onFreshThread([] {
    HeaderStock& stock = HeaderStock::local();
    stock.giveString(std::string(HeaderStock::kMaxStringCapacity * 4, 'x'));  // a one-off huge value
    EXPECT_EQ(stock.keptStrings(), 0u);
    for (size_t i = 0; i < HeaderStock::kMaxStrings + 10; ++i) stock.giveString(std::string(kLong));
    EXPECT_EQ(stock.keptStrings(), HeaderStock::kMaxStrings);
    std::vector<HeaderList> lists;
    for (size_t i = 0; i < HeaderStock::kMaxLists + 10; ++i) lists.push_back(stock.takeList());
    for (auto& l : lists) stock.give(std::move(l));
    EXPECT_EQ(stock.keptLists(), HeaderStock::kMaxLists);
  });
}

struct Heads : Http1Reader::Handler {
  std::vector<MessageHead> heads;
  void onHead(MessageHead& h) override { heads.push_back(h); }
  void onBody(const char*, size_t) override {}
  void onTrailers(HeaderList&) override {}
  void onComplete() override {}
};

// The reader takes its storage from the stock on every message: a second
// head parsed into reused buffers holds its own bytes and nothing of the
// first, whether the bytes come whole or one at a time.
TEST(HeaderStockTest, AReaderReusingBuffersParsesEachHeadExactly) {
  for (size_t step : {size_t{1}, size_t{1000}}) {
    onFreshThread([step] {
      Heads h;
      Http1Reader r(Http1Reader::Mode::kRequest, &h, Http1Reader::Limits{});
      std::string in = "GET /a-long-path-beyond-fifteen HTTP/1.1\r\nhost: " + kLong +
                       "\r\nx-long-header-name-here: " + kLong + kLong +
                       "\r\n\r\n"
                       "GET /b HTTP/1.1\r\nhost: short\r\nx-long-header-name-here: " + std::string(20, 'b') +
                       "\r\n\r\n";
      size_t pos = 0;
      while (pos < in.size()) {
        auto res = r.feed(in.data() + pos, std::min(step, in.size() - pos));
        ASSERT_EQ(res.error, Http1Reader::Error::kNone);
        pos += res.consumed;
        if (res.paused) r.resume();
      }
      ASSERT_EQ(h.heads.size(), 2u);
      EXPECT_EQ(h.heads[0].target, "/a-long-path-beyond-fifteen");
      ASSERT_EQ(h.heads[0].headers.size(), 2u);
      EXPECT_EQ(h.heads[0].headers[0].second, kLong);
      EXPECT_EQ(h.heads[0].headers[1].first, "x-long-header-name-here");
      EXPECT_EQ(h.heads[0].headers[1].second, kLong + kLong);
      EXPECT_EQ(h.heads[1].target, "/b");
      ASSERT_EQ(h.heads[1].headers.size(), 2u);
      EXPECT_EQ(h.heads[1].headers[0].first, "host");
      EXPECT_EQ(h.heads[1].headers[0].second, "short");
      EXPECT_EQ(h.heads[1].headers[1].first, "x-long-header-name-here");
      EXPECT_EQ(h.heads[1].headers[1].second, std::string(20, 'b'));
    });
  }
}

// A head moved out by its owner (as RequestHead takes the request's list)
// leaves the reader nothing; the next message still gets a list with room.
TEST(HeaderStockTest, AHeadMovedOutLeavesTheReaderAFreshList) {
  onFreshThread([] {
    struct Taker : Heads {
      HeaderList taken;
      void onHead(MessageHead& m) override {
        Heads::onHead(m);
        taken = std::move(m.headers);
      }
    } h;
    Http1Reader r(Http1Reader::Mode::kRequest, &h, Http1Reader::Limits{});
    std::string in = "GET / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: b\r\nx: " + kLong + "\r\n\r\n";
    size_t pos = 0;
    while (pos < in.size()) {
      auto res = r.feed(in.data() + pos, in.size() - pos);
      ASSERT_EQ(res.error, Http1Reader::Error::kNone);
      pos += res.consumed;
      if (res.paused) r.resume();
    }
    ASSERT_EQ(h.taken.size(), 2u);
    EXPECT_EQ(h.taken[0].second, "b");
    EXPECT_EQ(h.taken[1].second, kLong);
    HeaderStock::local().give(std::move(h.taken));
  });
}

}  // namespace
}  // namespace mulligan::proxy
