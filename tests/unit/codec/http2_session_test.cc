// Http2Session (sidecar/codec/http2/http2_session.h), the nghttp2 glue the
// server and client sessions share: a server and a client subclass talk
// over a socketpair on one event loop — callbacks, SETTINGS, windows, the
// send and receive loops, data providers and trailers — with no network.
#include "sidecar/codec/http2/http2_session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mulligan::proxy {
namespace {

// Records what nghttp2 reports; sends `body` (then `trailers`) for any
// stream submitted with dataProvider().
class TestSession : public Http2Session {
 public:
  TestSession(event_base* base, Role role, bufferevent* bev) : Http2Session(base, role) { bev_ = bev; }

  using Http2Session::finished;
  using Http2Session::offenceOf;
  using Http2Session::outputEmpty;
  using Http2Session::receive;
  using Http2Session::send;
  using Http2Session::startIo;
  using Http2Session::startSession;
  using Http2Session::stopIo;
  using Http2Session::sendAndWrite;
  using Http2Session::writeOut;
  using Http2Session::releaseBev;
  using Http2Session::setReadTimeoutUs;
  bufferevent* bev() { return bev_; }

  int onHeader(const nghttp2_frame*, std::string_view name, std::string_view value) override {
    fields.emplace_back(name, value);
    return 0;
  }
  int onFrameRecv(const nghttp2_frame* frame) override {
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) ++ping_acks;
    if (frame->hd.stream_id != 0 && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && on_remote_end) {
      on_remote_end(frame->hd.stream_id);
    }
    return 0;
  }
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) override {
    received.append(reinterpret_cast<const char*>(data), len);
    nghttp2_session_consume(session_, stream_id, len);
    return 0;
  }
  int onStreamClose(int32_t stream_id, uint32_t error_code) override {
    closed.emplace_back(stream_id, error_code);
    return 0;
  }
  ssize_t readData(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags) override {
    size_t n = std::min(len, body.size() - body_sent);
    std::memcpy(buf, body.data() + body_sent, n);
    body_sent += n;
    if (body_sent == body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submitTrailers(stream_id, trailers);
      }
    }
    return static_cast<ssize_t>(n);
  }
  void onInput() override {
    ++inputs;
    if (int rv = receive(); rv != 0) {
      error = rv;
      stopIo();
      return;
    }
    flush();
  }
  void flush() override {
    ++flushes;
    if (ioStopped() || !session_) return;
    sendAndWrite();
  }
  void onConnectionEvent(short what) override {
    events |= what;
    ++connection_events;
  }

  std::vector<std::pair<std::string, std::string>> fields;
  std::string received;
  std::vector<std::pair<int32_t, uint32_t>> closed;
  std::function<void(int32_t)> on_remote_end;
  std::string body;
  size_t body_sent = 0;
  HeaderList trailers;
  int error = 0;
  int flushes = 0;
  int inputs = 0;
  int ping_acks = 0;
  short events = 0;
  int connection_events = 0;
};

class Http2SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    server_ = std::make_unique<TestSession>(base_, Http2Session::Role::kServer,
                                            bufferevent_socket_new(base_, fds[0], BEV_OPT_CLOSE_ON_FREE));
    client_ = std::make_unique<TestSession>(base_, Http2Session::Role::kClient,
                                            bufferevent_socket_new(base_, fds[1], BEV_OPT_CLOSE_ON_FREE));
  }
  void TearDown() override {
    server_.reset();
    client_.reset();
    event_base_free(base_);
  }

  // Runs the loop until `done` holds (a condition, not a time: the guard
  // only keeps a broken test from hanging the suite).
  void runUntil(const std::function<bool()>& done) {
    bool expired = false;
    ::event* guard = evtimer_new(
        base_, [](evutil_socket_t, short, void* arg) { *static_cast<bool*>(arg) = true; }, &expired);
    timeval tv{30, 0};
    evtimer_add(guard, &tv);
    while (!done() && !expired) event_base_loop(base_, EVLOOP_ONCE);
    event_free(guard);
    ASSERT_FALSE(expired) << "the condition never held";
  }

  std::string field(const TestSession& s, std::string_view name) {
    for (const auto& [k, v] : s.fields) {
      if (k == name) return v;
    }
    return "<none>";
  }

  event_base* base_ = nullptr;
  std::unique_ptr<TestSession> server_;
  std::unique_ptr<TestSession> client_;
};

TEST_F(Http2SessionTest, RequestAndResponseWithBodiesAndTrailersCrossTheConnection) {
  server_->startSession(16 * 1024, 7);
  client_->startSession(32 * 1024);
  server_->startIo();
  client_->startIo();

  // The server answers once the request ended (after its trailers).
  server_->body = "world";
  server_->trailers.emplace_back("Grpc-Status", "0");
  server_->on_remote_end = [this](int32_t id) {
    Http2Fields nv;
    nv.add(":status", "200");
    nv.add("Content-Type", "text/plain");
    nghttp2_data_provider prd = Http2Session::dataProvider();
    ASSERT_EQ(nghttp2_submit_response(server_->session(), id, nv.data(), nv.size(), &prd), 0);
  };

  client_->body = "hello";
  client_->trailers.emplace_back("X-Request-Trailer", "t");
  Http2Fields req;
  req.add(":method", "POST");
  req.add(":scheme", "http");
  req.add(":authority", "example");
  req.add(":path", "/upload");
  req.add("X-Mixed-Case", "v");  // arrives lower-cased (RFC 9113 §8.2.1)
  nghttp2_data_provider prd = Http2Session::dataProvider();
  int32_t id = nghttp2_submit_request(client_->session(), nullptr, req.data(), req.size(), &prd, nullptr);
  ASSERT_EQ(id, 1);
  client_->scheduleFlush();

  runUntil([&] { return !client_->closed.empty(); });

  EXPECT_EQ(client_->closed[0], std::make_pair(id, uint32_t{NGHTTP2_NO_ERROR}));
  EXPECT_EQ(field(*server_, ":path"), "/upload");
  EXPECT_EQ(field(*server_, "x-mixed-case"), "v");
  EXPECT_EQ(field(*server_, "x-request-trailer"), "t");
  EXPECT_EQ(server_->received, "hello");
  EXPECT_EQ(field(*client_, ":status"), "200");
  EXPECT_EQ(field(*client_, "content-type"), "text/plain");
  EXPECT_EQ(field(*client_, "grpc-status"), "0");
  EXPECT_EQ(client_->received, "world");
  EXPECT_EQ(server_->error, 0);
  EXPECT_EQ(client_->error, 0);

  // Our SETTINGS, as each peer received them.
  nghttp2_session* c = client_->session();
  nghttp2_session* s = server_->session();
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 7u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), Http2Session::kStreamWindow);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), 16u * 1024);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), Http2Session::kStreamWindow);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), 32u * 1024);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_ENABLE_PUSH), 0u);
  // The connection windows are the roles'.
  EXPECT_EQ(nghttp2_session_get_effective_local_window_size(s), Http2Session::kServerConnectionWindow);
  EXPECT_EQ(nghttp2_session_get_effective_local_window_size(c), Http2Session::kClientConnectionWindow);
}

TEST_F(Http2SessionTest, SendStopsAtTheHighWaterMarkUnlessToldOtherwise) {
  client_->startSession(16 * 1024);
  // Nothing runs the loop: what send() produces stays in the output.
  const uint8_t opaque[8] = {};
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(nghttp2_submit_ping(client_->session(), NGHTTP2_FLAG_NONE, opaque), 0);
  ASSERT_EQ(client_->send(), 0);
  evbuffer* out = bufferevent_get_output(client_->bev());
  size_t first = evbuffer_get_length(out);
  EXPECT_GE(first, Http2Session::kOutputHighWater);
  EXPECT_LT(first, Http2Session::kOutputHighWater + 32 * 1024);  // at most one more chunk of frames
  EXPECT_TRUE(nghttp2_session_want_write(client_->session()));    // the rest waits in nghttp2
  ASSERT_EQ(client_->send(), 0);
  EXPECT_EQ(evbuffer_get_length(out), first);  // still above the mark: nothing more
  ASSERT_EQ(client_->send(SIZE_MAX), 0);
  EXPECT_FALSE(nghttp2_session_want_write(client_->session()));
  EXPECT_GT(evbuffer_get_length(out), 20000u * 17);  // every PING (9 + 8 bytes)
}

TEST_F(Http2SessionTest, EmptyFrameFloodStopsReceiveWithItsOffence) {
  server_->startSession(16 * 1024, 100);
  client_->startSession(16 * 1024);
  server_->startIo();
  // A request stream left open (HEADERS without END_STREAM, no body yet).
  Http2Fields req;
  req.add(":method", "POST");
  req.add(":scheme", "http");
  req.add(":authority", "example");
  req.add(":path", "/");
  int32_t id = nghttp2_submit_headers(client_->session(), NGHTTP2_FLAG_NONE, -1, nullptr, req.data(), req.size(),
                                      nullptr);
  ASSERT_EQ(id, 1);
  ASSERT_EQ(client_->send(SIZE_MAX), 0);
  // Then empty DATA frames on it that end nothing (CVE-2019-9518), as raw bytes.
  evbuffer* out = bufferevent_get_output(client_->bev());
  for (uint32_t i = 0; i <= Http2FloodGuard::kMaxEmptyFrames; ++i) {
    const uint8_t frame[9] = {0, 0, 0, NGHTTP2_DATA, 0, 0, 0, 0, static_cast<uint8_t>(id)};
    evbuffer_add(out, frame, sizeof frame);
  }
  client_->startIo();  // writes it all

  runUntil([&] { return server_->error != 0; });
  EXPECT_EQ(server_->error, NGHTTP2_ERR_CALLBACK_FAILURE);
  EXPECT_EQ(server_->offenceOf(server_->error), Http2Offence::kEmptyFrames);
  // An error nghttp2 found itself is named by nghttp2's code when no
  // callback offended.
  TestSession other(base_, Http2Session::Role::kServer, nullptr);
  EXPECT_EQ(other.offenceOf(NGHTTP2_ERR_FLOODED), offenceOfNghttp2Error(NGHTTP2_ERR_FLOODED));
}

TEST_F(Http2SessionTest, OutputIsWrittenAtOnceAndWaitsForEvWriteOnlyWhileTheSocketIsFull) {
  // A small send buffer: a 4 MiB body fills the socket many times over.
  int small = 4096;
  ASSERT_EQ(setsockopt(bufferevent_getfd(client_->bev()), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  server_->startSession(16 * 1024, 10);
  client_->startSession(16 * 1024);
  server_->startIo();
  client_->startIo();
  server_->on_remote_end = [this](int32_t id) {
    Http2Fields nv;
    nv.add(":status", "200");
    ASSERT_EQ(nghttp2_submit_response(server_->session(), id, nv.data(), nv.size(), nullptr), 0);
    server_->scheduleFlush();
  };
  // Not one byte repeated: bytes out of order (what the socket did not
  // take must go out before anything produced later) would show.
  client_->body.resize(4 << 20);
  for (size_t i = 0; i < client_->body.size(); ++i) client_->body[i] = static_cast<char>(i % 251);
  Http2Fields req;
  req.add(":method", "POST");
  req.add(":scheme", "http");
  req.add(":authority", "example");
  req.add(":path", "/");
  nghttp2_data_provider prd = Http2Session::dataProvider();
  int32_t id = nghttp2_submit_request(client_->session(), nullptr, req.data(), req.size(), &prd, nullptr);
  ASSERT_EQ(id, 1);
  // Written at once, up to what the socket takes; the rest waits for EV_WRITE.
  evbuffer* out = bufferevent_get_output(client_->bev());
  ASSERT_EQ(client_->send(), 0);
  size_t produced = evbuffer_get_length(out);
  EXPECT_FALSE(bufferevent_get_enabled(client_->bev()) & EV_WRITE);
  client_->writeOut();
  EXPECT_LT(evbuffer_get_length(out), produced);
  EXPECT_GT(evbuffer_get_length(out), 0u);
  EXPECT_TRUE(bufferevent_get_enabled(client_->bev()) & EV_WRITE);

  runUntil([&] { return !client_->closed.empty(); });
  EXPECT_EQ(client_->closed[0], std::make_pair(id, uint32_t{NGHTTP2_NO_ERROR}));
  ASSERT_EQ(server_->received.size(), client_->body.size());
  EXPECT_TRUE(server_->received == client_->body);
  EXPECT_EQ(field(*client_, ":status"), "200");
  // All written: no write event left armed on either side (an armed one
  // costs an epoll_ctl to arm and another to disarm, for every write).
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_TRUE(client_->outputEmpty());
  EXPECT_TRUE(server_->outputEmpty());
  EXPECT_FALSE(bufferevent_get_enabled(client_->bev()) & EV_WRITE);
  EXPECT_FALSE(bufferevent_get_enabled(server_->bev()) & EV_WRITE);
}

TEST_F(Http2SessionTest, ScheduledFlushesRunOnceFromTheLoopAndNotAfterStopIo) {
  server_->scheduleFlush();
  server_->scheduleFlush();
  server_->scheduleFlush();
  EXPECT_EQ(server_->flushes, 0);  // never inline
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(server_->flushes, 1);
  server_->stopIo();
  server_->scheduleFlush();
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(server_->flushes, 1);
}

// A GET request from the client session, in its output (not written yet).
int32_t submitGet(TestSession& client) {
  Http2Fields req;
  req.add(":method", "GET");
  req.add(":scheme", "http");
  req.add(":authority", "example");
  req.add(":path", "/sniffed");
  return nghttp2_submit_request(client.session(), nullptr, req.data(), req.size(), nullptr, nullptr);
}

// Bytes waiting unread in a socket's receive buffer.
int unread(bufferevent* bev) {
  int n = -1;
  ioctl(bufferevent_getfd(bev), FIONREAD, &n);
  return n;
}

TEST_F(Http2SessionTest, BytesSniffedIntoTheInputAreFedFirstThenTheSocketIsReadByTheSessionItself) {
  // The downstream Connection sniffs the preface into the bufferevent's
  // input and hands the bufferevent over: the session must feed those bytes
  // to nghttp2 before what it reads from the socket.
  server_->startSession(16 * 1024, 10);
  client_->startSession(16 * 1024);
  ASSERT_EQ(submitGet(*client_), 1);
  ASSERT_EQ(client_->send(SIZE_MAX), 0);
  evbuffer* out = bufferevent_get_output(client_->bev());
  evbuffer* in = bufferevent_get_input(server_->bev());
  // (A socket bufferevent's input end and output start are libevent's.)
  evbuffer_unfreeze(in, 0);
  evbuffer_unfreeze(out, 1);
  // The preface and a frame header cut short: the rest comes by the socket.
  ASSERT_EQ(evbuffer_remove_buffer(out, in, 24 + 5), 24 + 5);
  evbuffer_freeze(out, 1);
  server_->on_remote_end = [this](int32_t id) {
    Http2Fields nv;
    nv.add(":status", "204");
    ASSERT_EQ(nghttp2_submit_response(server_->session(), id, nv.data(), nv.size(), nullptr), 0);
    server_->scheduleFlush();
  };
  server_->startIo();
  client_->startIo();  // writes the rest
  // The bufferevent's read side is off: no FIONREAD, no evbuffer copy per read.
  EXPECT_FALSE(bufferevent_get_enabled(server_->bev()) & EV_READ);
  EXPECT_FALSE(bufferevent_get_enabled(client_->bev()) & EV_READ);

  runUntil([&] { return !client_->closed.empty(); });
  EXPECT_EQ(server_->error, 0);
  EXPECT_EQ(field(*server_, ":path"), "/sniffed");
  EXPECT_EQ(field(*client_, ":status"), "204");
  EXPECT_EQ(evbuffer_get_length(in), 0u);
  EXPECT_EQ(server_->connection_events, 0);
}

TEST_F(Http2SessionTest, EofInTheMiddleOfAFrameIsReportedOnceAsTheBuffereventDid) {
  server_->startSession(16 * 1024, 10);
  server_->startIo();
  // The preface and half a frame header, then the client's FIN.
  evutil_socket_t fd = bufferevent_getfd(client_->bev());
  const char bytes[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00";
  ASSERT_EQ(::send(fd, bytes, sizeof bytes - 1, 0), static_cast<ssize_t>(sizeof bytes - 1));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);

  runUntil([&] { return server_->connection_events > 0; });
  EXPECT_EQ(server_->events, BEV_EVENT_READING | BEV_EVENT_EOF);
  EXPECT_EQ(server_->error, 0);  // the bytes before the FIN were taken without complaint
  EXPECT_GE(server_->inputs, 1);
  // Reading stopped: the loop does not report the EOF again.
  event_base_loop(base_, EVLOOP_NONBLOCK);
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(server_->connection_events, 1);
}

TEST_F(Http2SessionTest, SilenceLongerThanTheReadTimeoutIsReportedAndReadingGoesOn) {
  server_->startSession(16 * 1024, 10);
  client_->startSession(16 * 1024);
  server_->setReadTimeoutUs(20'000);
  server_->startIo();
  client_->startIo();
  runUntil([&] { return server_->connection_events > 0; });
  EXPECT_EQ(server_->events, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
  // The session chose to go on: the connection still works both ways.
  server_->setReadTimeoutUs(0);
  const uint8_t opaque[8] = {'m', 'u', 'l', 'l', 'i', 'g', 'a', 'n'};
  ASSERT_EQ(nghttp2_submit_ping(client_->session(), NGHTTP2_FLAG_NONE, opaque), 0);
  client_->scheduleFlush();
  runUntil([&] { return client_->ping_acks > 0; });
  EXPECT_EQ(server_->error, 0);
  EXPECT_EQ(client_->error, 0);
}

TEST_F(Http2SessionTest, AfterStopIoOrReleaseBevTheSocketIsNoLongerRead) {
  server_->startSession(16 * 1024, 10);
  client_->startSession(16 * 1024);
  server_->startIo();
  server_->stopIo();
  client_->startIo();
  ASSERT_EQ(client_->sendAndWrite(), 0);  // the preface and SETTINGS go out at once
  ASSERT_TRUE(client_->outputEmpty());
  for (int i = 0; i < 3; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(server_->inputs, 0);
  EXPECT_GT(unread(server_->bev()), 0);  // left in the socket

  // Released to a new owner (lingerClose): the session reads nothing more.
  bufferevent* bev = client_->releaseBev();
  ASSERT_NE(bev, nullptr);
  EXPECT_EQ(client_->bev(), nullptr);
  int inputs = client_->inputs;
  int waiting = unread(bev);
  const char more[] = "x";
  ASSERT_EQ(::send(bufferevent_getfd(server_->bev()), more, 1, 0), 1);
  for (int i = 0; i < 3; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(client_->inputs, inputs);
  EXPECT_EQ(client_->connection_events, 0);
  EXPECT_EQ(unread(bev), waiting + 1);
  bufferevent_free(bev);
}

TEST(Http2FieldsTest, NamesAreLowerCasedAndValuesKept) {
  Http2Fields f;
  f.add("Content-Type", "Text/Plain");
  for (int i = 0; i < 40; ++i) f.add("X-N" + std::to_string(i), std::string(i, 'v'));  // the storage grows
  const nghttp2_nv* nv = f.data();
  ASSERT_EQ(f.size(), 41u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(nv[0].name), nv[0].namelen), "content-type");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(nv[0].value), nv[0].valuelen), "Text/Plain");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(nv[40].name), nv[40].namelen), "x-n39");
  EXPECT_EQ(nv[40].valuelen, 39u);
  EXPECT_EQ(lower("ABC-def_1"), "abc-def_1");
}

TEST(Http2FieldsTest, LoweredFindsEveryUpperCaseLetterAtEveryPositionAndNothingElse) {
  // lowered() tests eight bytes at a time: every byte value, at every
  // position of names of every length up to 24 (the word loop, the
  // overlapping last word, the short-name loop), against the plain rule.
  std::string scratch;
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (int c = 0; c < 256; ++c) {
        std::string name(len, 'a');
        name[at] = static_cast<char>(c);
        std::string_view got = lowered(name, scratch);
        EXPECT_EQ(got, lower(name)) << "len " << len << " at " << at << " byte " << c;
        bool upper = c >= 'A' && c <= 'Z';
        // Nothing copied when nothing needed lowering.
        EXPECT_EQ(got.data() == name.data(), !upper) << "len " << len << " at " << at << " byte " << c;
      }
    }
  }
}

}  // namespace
}  // namespace mulligan::proxy
