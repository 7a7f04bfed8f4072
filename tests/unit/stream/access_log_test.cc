// The access log's line format and filter (access_log.h), and its writer
// (access_log_writer.h) over real pipes and threads: lines arrive whole and
// in order, a destination that does not read costs drops (counted), never a
// blocked worker, the inherited descriptor's flags are left alone, and stop()
// writes what is left.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sidecar/stream/access_log.h"
#include "sidecar/stream/access_log_writer.h"

namespace mulligan::proxy {
namespace {

AccessRecord sampleRecord() {
  AccessRecord r;
  r.start_unix_ms = 1700000000123;
  r.method = "GET";
  r.authority = "orders";
  r.path = "/a\"b\\c\n";
  r.protocol = "HTTP/1.1";
  r.status = 503;
  r.service = "orders";
  r.route = 2;
  r.attempts = 3;
  r.retry_reasons = "503,reset";
  r.retry_refused = "budget";
  r.deadline_us = 1'500'000;
  r.duration_us = 12345;
  r.upstream_us = 678;
  r.request_bytes = 10;
  r.response_bytes = 18446744073709551615ull;
  return r;
}

TEST(AccessLogFormatTest, LineIsTheSameJsonAsBefore) {
  AccessRecord r = sampleRecord();
  auto addr = net::Address::parseNumeric("[::1]:8080");
  ASSERT_TRUE(addr);
  r.upstream = &*addr;
  std::string line;
  formatAccessLine(r, &line);
  // Field order and spelling as the fwrite-per-line version wrote them.
  EXPECT_EQ(line,
            "{\"ts_ms\":1700000000123,\"method\":\"GET\",\"authority\":\"orders\",\"path\":\"/a\\\"b\\\\c\\n\","
            "\"protocol\":\"HTTP/1.1\",\"status\":503,\"service\":\"orders\",\"route\":2,\"attempts\":3,"
            "\"retry_reasons\":\"503,reset\",\"retry_refused\":\"budget\",\"timeout\":\"\",\"sidecar_error\":\"\","
            "\"deadline_ms\":1500,\"upstream\":\"[::1]:8080\",\"duration_us\":12345,\"upstream_us\":678,"
            "\"request_bytes\":10,\"response_bytes\":18446744073709551615}\n");
  // gRPC status only on gRPC calls; no upstream: "".
  r.grpc_status = 14;
  r.upstream = nullptr;
  line.clear();
  formatAccessLine(r, &line);
  EXPECT_NE(line.find("\"status\":503,\"grpc_status\":14,\"service\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"upstream\":\"\","), std::string::npos) << line;
}

// The line must stay JSON whatever the request carried: RFC 8259 §8.1
// wants UTF-8, so bytes that are not (a path or Host header with raw
// Latin-1, a truncated sequence) become U+FFFD; valid UTF-8 and the other
// escapes pass as the one JSON escaper (pfc::appendJsonQuoted) writes them.
TEST(AccessLogFormatTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  AccessRecord r;
  r.method = "GET";
  r.authority = "caf\xe9";            // Latin-1 é: not UTF-8
  r.path = "/\xc3\xa9t\xe9\xff/\x01\x7f";  // é (UTF-8), é (Latin-1), 0xff, two controls
  r.protocol = "HTTP/1.1";
  std::string line;
  formatAccessLine(r, &line);
  EXPECT_NE(line.find("\"authority\":\"caf\xef\xbf\xbd\","), std::string::npos) << line;
  EXPECT_NE(line.find("\"path\":\"/\xc3\xa9t\xef\xbf\xbd\xef\xbf\xbd/\\u0001\\u007f\","), std::string::npos) << line;
  EXPECT_EQ(line.find('\xe9'), std::string::npos) << line;
  EXPECT_EQ(line.find('\xff'), std::string::npos) << line;
}

// A line longer than the formatter's first reservation (a long path, every
// byte of it escaped to six) is whole, and formats the same appended to a
// string that already holds a line (the writer's reused scratch).
TEST(AccessLogFormatTest, LongLinesGrowAndAppendBehindEarlierText) {
  AccessRecord r = sampleRecord();
  std::string path(3000, '\x01');
  r.path = path;
  std::string line;
  formatAccessLine(r, &line);
  std::string escaped;
  for (size_t i = 0; i < path.size(); ++i) escaped += "\\u0001";
  EXPECT_NE(line.find("\"path\":\"" + escaped + "\","), std::string::npos);
  EXPECT_EQ(line.substr(line.size() - 2), "}\n");
  std::string two = "earlier\n";
  formatAccessLine(r, &two);
  EXPECT_EQ(two, "earlier\n" + line);
}

// deadline_ms is rounded up, as every time the sidecar sends or shows is
// (retry::ceilMs): a 500 µs budget is 1, not 0; 1.5002 s is 1501.
TEST(AccessLogFormatTest, DeadlineIsRoundedUpToWholeMilliseconds) {
  auto deadlineOf = [](int64_t us) {
    AccessRecord r;
    r.deadline_us = us;
    std::string line;
    formatAccessLine(r, &line);
    size_t at = line.find("\"deadline_ms\":");
    return at == std::string::npos ? std::string("?") : line.substr(at + 14, line.find(',', at) - at - 14);
  };
  EXPECT_EQ(deadlineOf(500), "1");
  EXPECT_EQ(deadlineOf(1'500'200), "1501");
  EXPECT_EQ(deadlineOf(2'000'000), "2000");
  EXPECT_EQ(deadlineOf(-1), "-1");  // no deadline
}

TEST(AccessLogFilterTest, NotableIsRetriesRefusalsTimeoutsLocalAnswersAndServerFailures) {
  AccessRecord plain;
  plain.status = 200;
  plain.attempts = 1;
  EXPECT_FALSE(isNotable(plain));
  EXPECT_TRUE(accessLogWants(AccessLogFilter::kAll, plain));
  EXPECT_FALSE(accessLogWants(AccessLogFilter::kNotable, plain));
  AccessRecord r = plain;
  r.status = 404;  // the app's business, not the sidecar's
  EXPECT_FALSE(isNotable(r));
  r = plain;
  r.attempts = 2;
  EXPECT_TRUE(isNotable(r));
  r = plain;
  r.retry_refused = "budget";
  EXPECT_TRUE(isNotable(r));
  r = plain;
  r.timeout = "per-try";
  EXPECT_TRUE(isNotable(r));
  r = plain;
  r.sidecar_error = "downstream-closed";
  EXPECT_TRUE(isNotable(r));
  r = plain;
  r.status = 500;
  EXPECT_TRUE(isNotable(r));
  r = plain;
  r.grpc_status = 0;
  EXPECT_FALSE(isNotable(r));
  r.grpc_status = 5;  // NOT_FOUND: an answer
  EXPECT_FALSE(isNotable(r));
  r.grpc_status = 14;  // UNAVAILABLE
  EXPECT_TRUE(isNotable(r));
  AccessLogFilter f;
  EXPECT_TRUE(parseAccessLogFilter("all", &f));
  EXPECT_EQ(f, AccessLogFilter::kAll);
  EXPECT_TRUE(parseAccessLogFilter("notable", &f));
  EXPECT_EQ(f, AccessLogFilter::kNotable);
  EXPECT_FALSE(parseAccessLogFilter("none", &f));
}

// Reads a pipe until EOF on a thread of its own, from when start() is called.
class PipeReader {
 public:
  explicit PipeReader(int fd) : fd_(fd) {}
  ~PipeReader() { join(); }
  void start() {
    thread_ = std::thread([this] {
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) break;
        data_.append(buf, static_cast<size_t>(n));
      }
    });
  }
  std::string join() {
    if (thread_.joinable()) thread_.join();
    return data_;
  }

 private:
  int fd_;
  std::string data_;
  std::thread thread_;
};

std::vector<std::string> lines(const std::string& data) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    EXPECT_NE(nl, std::string::npos) << "a partial last line";
    if (nl == std::string::npos) break;
    out.push_back(data.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

AccessRecord numbered(const std::string& path) {
  AccessRecord r;
  r.method = "GET";
  r.path = path;
  r.status = 200;
  r.attempts = 1;
  return r;
}

TEST(AccessLogWriterTest, TwoWorkersLinesArriveWholeAndInOrderAndStopWritesTheRest) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  PipeReader reader(p[0]);
  reader.start();
  constexpr int kLines = 3000;
  {
    AccessLogWriter::Options o;
    o.filter = AccessLogFilter::kAll;
    o.workers = 2;
    o.ring_bytes = 1 << 22;  // room for all: this test is about order, not drops
    AccessLogWriter log(p[1], /*owns_fd=*/true, o);
    log.start();
    std::vector<std::thread> workers;
    for (int w = 0; w < 2; ++w) {
      workers.emplace_back([&log, w] {
        for (int i = 0; i < kLines; ++i) {
          std::string path = "/w" + std::to_string(w) + "/" + std::to_string(i) + std::string(100, 'x');
          EXPECT_TRUE(log.append(w, numbered(path)));
        }
      });
    }
    for (auto& t : workers) t.join();
    log.stop();  // everything appended is written before it returns
    EXPECT_EQ(log.dropped(), 0u);
  }  // closes the write end: the reader sees EOF
  std::vector<std::string> got = lines(reader.join());
  ::close(p[0]);
  ASSERT_EQ(got.size(), 2u * kLines);
  int next[2] = {0, 0};
  for (const std::string& l : got) {
    ASSERT_EQ(l.front(), '{');
    ASSERT_EQ(l.back(), '}');
    size_t at = l.find("\"path\":\"/w");
    ASSERT_NE(at, std::string::npos) << l;
    int w = l[at + 10] - '0';
    int i = std::stoi(l.substr(at + 12));
    ASSERT_EQ(i, next[w]) << "worker " << w << " out of order";
    ++next[w];
  }
}

TEST(AccessLogWriterTest, DestinationThatDoesNotReadDropsLinesNeverBlocksAndLeavesFlagsAlone) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  const int flags_before = fcntl(p[1], F_GETFL);
  ASSERT_EQ(flags_before & O_NONBLOCK, 0);
  PipeReader reader(p[0]);
  uint64_t appended = 0, refused = 0;
  {
    AccessLogWriter::Options o;
    o.filter = AccessLogFilter::kAll;
    o.ring_bytes = 16 * 1024;
    // Not owned: as stdout is, inherited and shared with the parent.
    AccessLogWriter log(p[1], /*owns_fd=*/false, o);
    log.start();
    // 1 MiB of lines into a 64 KiB pipe nobody reads and a 16 KiB ring:
    // append() returns every time (the test would hang otherwise), and
    // what did not fit is dropped and counted.
    for (int i = 0; i < 4000; ++i) {
      ++appended;
      if (!log.append(0, numbered("/stalled/" + std::to_string(i) + std::string(200, 'y')))) ++refused;
    }
    EXPECT_GT(refused, 0u);
    EXPECT_EQ(log.dropped(), refused);
    // The shared description is still blocking for everyone else.
    EXPECT_EQ(fcntl(p[1], F_GETFL), flags_before);
    // Once someone reads, lines flow again and stop() writes the rest.
    reader.start();
    for (int i = 0; i < 100; ++i) {
      ++appended;
      while (!log.append(0, numbered("/after/" + std::to_string(i)))) {
        ++refused;  // the ring may still be full for a moment: the writer catches up
        ++appended;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    log.stop();
    EXPECT_EQ(log.dropped(), refused);
  }
  ::close(p[1]);
  std::vector<std::string> got = lines(reader.join());
  ::close(p[0]);
  EXPECT_EQ(got.size() + refused, appended);
  size_t after = 0;
  for (const std::string& l : got) after += l.find("\"path\":\"/after/") != std::string::npos;
  EXPECT_EQ(after, 100u);
}

// systemd gives a service's stdout as a stream socket to the journal.
TEST(AccessLogWriterTest, SocketDestinationGetsEveryLineWithItsFlagsUntouched) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int flags_before = fcntl(sv[1], F_GETFL);
  PipeReader reader(sv[0]);
  reader.start();
  {
    AccessLogWriter::Options o;
    o.filter = AccessLogFilter::kAll;
    AccessLogWriter log(sv[1], /*owns_fd=*/false, o);
    log.start();
    for (int i = 0; i < 2000; ++i) {
      while (!log.append(0, numbered("/sock/" + std::to_string(i)))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // not this test's subject
      }
    }
    log.stop();
    EXPECT_EQ(fcntl(sv[1], F_GETFL), flags_before);
  }
  ::shutdown(sv[1], SHUT_WR);
  std::vector<std::string> got = lines(reader.join());
  ::close(sv[0]);
  ::close(sv[1]);
  ASSERT_EQ(got.size(), 2000u);
  EXPECT_NE(got.back().find("\"path\":\"/sock/1999\""), std::string::npos) << got.back();
}

TEST(AccessLogWriterTest, StopGivesUpOnADestinationThatNeverReads) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  AccessLogWriter::Options o;
  o.filter = AccessLogFilter::kAll;
  o.ring_bytes = 1 << 20;
  AccessLogWriter log(p[1], /*owns_fd=*/false, o);
  log.start();
  for (int i = 0; i < 2000; ++i) log.append(0, numbered("/never/" + std::string(300, 'z')));
  log.stop();  // returns (after AccessLogWriter::kStopFlushUs): the point is that it does
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace mulligan::proxy
