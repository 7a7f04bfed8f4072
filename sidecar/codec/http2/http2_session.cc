#include "sidecar/codec/http2/http2_session.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <utility>

#include "sidecar/codec/header_stock.h"
#include "sidecar/codec/http2/http2_memory.h"

namespace mulligan::proxy {

// --- nghttp2 trampolines (STYLE.md: cast, call one member, translate) ---
struct Http2Trampolines {
  static Http2Session* of(void* ud) { return static_cast<Http2Session*>(ud); }

  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
    Http2Session* s = of(ud);
    if (s->guard_.onFrameHeader(*hd, event::monotonicNowUs())) return s->offend(s->guard_.offence());
    return s->onBeginFrame(*hd);
  }
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Http2Session* s = of(ud);
    if (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) s->guard_.onDataSent();
    return s->onFrameSend(frame);
  }
  static int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int error, void* ud) {
    return of(ud)->onFrameNotSend(frame, error);
  }
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    return of(ud)->onBeginHeaders(frame);
  }
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    return of(ud)->onHeader(frame, {reinterpret_cast<const char*>(name), namelen},
                            {reinterpret_cast<const char*>(value), valuelen});
  }
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    return of(ud)->onFrameRecv(frame);
  }
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
    return of(ud)->onDataChunk(stream_id, data, len);
  }
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
    return of(ud)->onStreamClose(stream_id, error_code);
  }
  static ssize_t readData(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source*, void* ud) {
    return of(ud)->readData(stream_id, buf, len, flags);
  }

  // --- libevent ---
  static void onReadable(evutil_socket_t, short, void* arg) { of(arg)->onReadable(); }
  static void onWrite(bufferevent*, void* arg) { of(arg)->flush(); }
  static void onEvent(bufferevent*, short what, void* arg) { of(arg)->onConnectionEvent(what); }
  static void onFlushEvent(evutil_socket_t, short, void* arg) { of(arg)->flush(); }
};

namespace {

// One table for every session, both roles (nghttp2 copies nothing from it
// per session: sessions point at it).
nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_frame_callback(c, &Http2Trampolines::onBeginFrame);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, &Http2Trampolines::onFrameSend);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(c, &Http2Trampolines::onFrameNotSend);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, &Http2Trampolines::onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, &Http2Trampolines::onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, &Http2Trampolines::onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &Http2Trampolines::onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, &Http2Trampolines::onStreamClose);
    return c;
  }();
  return cbs;
}

nghttp2_option* makeOptions(Http2Session::Role role) {
  nghttp2_option* o;
  nghttp2_option_new(&o);
  // Window credit is returned only as the other side takes the data.
  nghttp2_option_set_no_auto_window_update(o, 1);
  if (role == Http2Session::Role::kClient) {
    nghttp2_option_set_peer_max_concurrent_streams(o, Http2Session::kAssumedPeerMaxStreams);
  }
  applyNghttp2Limits(o);
  return o;
}

// The buffer every session of this thread reads into; nghttp2 keeps what it
// needs of a partial frame, so it is free again once mem_recv returned.
uint8_t* threadReadBuffer(size_t size) {
  static thread_local std::unique_ptr<uint8_t[]> buf(new uint8_t[size]);
  return buf.get();
}
// Frames on their way from nghttp2 to the socket (sendAndWrite): up to
// kOutputHighWater, plus room for the chunk that crosses it.
constexpr size_t kWriteBufferSize = 2 * Http2Session::kOutputHighWater;
uint8_t* threadWriteBuffer() {
  static thread_local std::unique_ptr<uint8_t[]> buf(new uint8_t[kWriteBufferSize]);
  return buf.get();
}
thread_local bool t_writing = false;  // (as t_reading, for the write buffer)

// A read runs only from its own event callback, never nested in another
// session's; should that ever change, the nested read gets a buffer of its
// own rather than overwriting bytes nghttp2 is still reading.
thread_local bool t_reading = false;

nghttp2_option* options(Http2Session::Role role) {
  static nghttp2_option* server = makeOptions(Http2Session::Role::kServer);
  static nghttp2_option* client = makeOptions(Http2Session::Role::kClient);
  return role == Http2Session::Role::kServer ? server : client;
}

}  // namespace

Http2Session::Http2Session(event_base* base, Role role)
    : role_(role),
      guard_(role == Role::kServer),  // a server counts the client's resets (rapid reset)
      flush_ev_(event_new(base, -1, 0, &Http2Trampolines::onFlushEvent, this)),
      read_timer_(base, [this] { onConnectionEvent(BEV_EVENT_READING | BEV_EVENT_TIMEOUT); }) {}

Http2Session::~Http2Session() {
  // No callbacks from here on: nghttp2_session_del calls none.
  if (session_) nghttp2_session_del(session_);
  closeSocket();
  read_timer_.cancel();
}

void Http2Session::closeSocket() {
  stopReading();  // before the socket closes
  if (bev_) bufferevent_free(std::exchange(bev_, nullptr));
}

void Http2Session::startSession(uint32_t max_header_list, uint32_t max_concurrent_streams) {
  if (role_ == Role::kServer) {
    nghttp2_session_server_new3(&session_, callbacks(), this, options(role_), http2Memory());
  } else {
    nghttp2_session_client_new3(&session_, callbacks(), this, options(role_), http2Memory());
  }
  nghttp2_settings_entry settings[4];
  size_t n = 0;
  if (role_ == Role::kServer) settings[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams};
  settings[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list};
  settings[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  settings[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, n);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        role_ == Role::kServer ? kServerConnectionWindow : kClientConnectionWindow);
}

void Http2Session::startIo() {
  // The bufferevent keeps the write side (its output, and its write event
  // while the socket is full: errors come from there) but not the read
  // side: reads are onReadable()'s.
  bufferevent_setcb(bev_, nullptr, &Http2Trampolines::onWrite, &Http2Trampolines::onEvent, this);
  fd_ = bufferevent_getfd(bev_);
  event_assign(&read_ev_, bufferevent_get_base(bev_), fd_, EV_READ | EV_PERSIST, &Http2Trampolines::onReadable, this);
  read_assigned_ = true;
  reading_ = true;
  // Ours goes on before the bufferevent's goes off (sniffing had it on):
  // the socket's epoll interest never drops to nothing, so the hand-over
  // costs no epoll_ctl.
  event_add(&read_ev_, nullptr);
  // Writing is writeOut()'s: EV_WRITE only while the socket is full (a
  // client's connect had it on).
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
  write_armed_ = false;
  buffered_input_ = evbuffer_get_length(bufferevent_get_input(bev_)) > 0;
  if (read_timeout_us_ > 0) read_timer_.setDue(event::monotonicNowUs() + read_timeout_us_);
  if (!outputEmpty()) writeOut();
}

void Http2Session::stopReading() {
  if (reading_) event_del(&read_ev_);
  reading_ = false;
}

void Http2Session::stopIo() {
  stopped_ = true;
  write_armed_ = false;
  stopReading();
  read_timer_.cancel();
  if (bev_) bufferevent_disable(bev_, EV_READ | EV_WRITE);
}

bufferevent* Http2Session::releaseBev() {
  stopIo();
  return std::exchange(bev_, nullptr);
}

void Http2Session::setReadTimeoutUs(int64_t us) {
  read_timeout_us_ = us;
  if (us > 0 && !stopped_) {
    read_timer_.setDue(event::monotonicNowUs() + us);
  } else {
    read_timer_.cancel();
  }
}

void Http2Session::onReadable() {
  event::ClockScope now;  // what these frames start or carry shares one clock read
  std::array<uint8_t, 4096> nested;  // (see t_reading)
  bool outer = !t_reading;
  uint8_t* buf = outer ? threadReadBuffer(kReadBufferSize) : nested.data();
  size_t size = outer ? kReadBufferSize : nested.size();
  t_reading = true;
  for (int i = 0; i < kMaxReadsPerEvent && reading_; ++i) {
    // One recv: no FIONREAD first (a bufferevent's evbuffer_read asks it
    // before every read). A read that did not fill the buffer took all
    // there was; a full one may have left more.
    ssize_t got = ::recv(fd_, buf, size, 0);
    if (got > 0) {
      if (read_timeout_us_ > 0) read_timer_.setDue(event::monotonicNowUs() + read_timeout_us_);
      fresh_ = buf;
      fresh_len_ = static_cast<size_t>(got);
      onInput();
      fresh_ = nullptr;
      fresh_len_ = 0;
      if (static_cast<size_t>(got) < size) break;
      continue;
    }
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    // EOF or a socket error, reported as the bufferevent reported them
    // (its read side stopped first, as here).
    int err = errno;
    stopReading();
    read_timer_.cancel();
    errno = err;  // for the owner's message (EVUTIL_SOCKET_ERROR)
    onConnectionEvent(static_cast<short>(BEV_EVENT_READING | (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR)));
    break;
  }
  if (outer) t_reading = false;
}

void Http2Session::writeOut() {
  if (stopped_ || !bev_) return;
  evbuffer* out = bufferevent_get_output(bev_);
  // One writev of everything this loop iteration produced (libevent's
  // evbuffer_write: up to 128 chunks at once), drained by what it took. A
  // socket bufferevent keeps its output's start frozen (only it drains it):
  // thawed for the write, as its own write callback does.
  if (evbuffer_get_length(out) > 0) {
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(bev_));
    evbuffer_freeze(out, 1);
  }
  armWrite();
}

void Http2Session::armWrite() {
  bool left = evbuffer_get_length(bufferevent_get_output(bev_)) > 0;
  if (left == write_armed_) return;
  write_armed_ = left;
  if (left) {
    bufferevent_enable(bev_, EV_WRITE);
  } else {
    bufferevent_disable(bev_, EV_WRITE);
  }
}

void Http2Session::scheduleFlush() {
  if (stopped_ || !flush_ev_) return;
  if (!event_pending(flush_ev_.get(), EV_TIMEOUT, nullptr)) event_active(flush_ev_.get(), EV_TIMEOUT, 0);
}

int Http2Session::receive() {
  if (buffered_input_ && bev_) {
    // What waited in the bufferevent's input when the session took over
    // (the sniffed preface) comes first, chunk by chunk as it is (no
    // pullup, no copy): nghttp2 keeps partial frames itself.
    evbuffer* in = bufferevent_get_input(bev_);
    while (!stopped_ && evbuffer_get_length(in) > 0) {
      evbuffer_iovec vec;
      if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
      ssize_t n = nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(vec.iov_base), vec.iov_len);
      if (n < 0) return static_cast<int>(n);
      evbuffer_drain(in, static_cast<size_t>(n));
    }
    buffered_input_ = evbuffer_get_length(in) > 0;
  }
  // The current read, straight from the read buffer.
  while (!stopped_ && fresh_len_ > 0) {
    ssize_t n = nghttp2_session_mem_recv(session_, fresh_, fresh_len_);
    if (n < 0) return static_cast<int>(n);
    fresh_ += n;
    fresh_len_ -= static_cast<size_t>(n);
  }
  return 0;
}

void Http2Session::discardInput() {
  if (buffered_input_ && bev_) {
    evbuffer* in = bufferevent_get_input(bev_);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  buffered_input_ = false;
  fresh_len_ = 0;
}

int Http2Session::send(size_t high_water) {
  evbuffer* out = bufferevent_get_output(bev_);
  while (evbuffer_get_length(out) < high_water) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return static_cast<int>(n);
    if (n == 0) break;
    evbuffer_add(out, data, static_cast<size_t>(n));
  }
  return 0;
}

int Http2Session::sendAndWrite() {
  for (;;) {
    bool more = false;  // stopped at the high-water mark: nghttp2 may have more
    if (!stopped_ && bev_ && fd_ >= 0 && !t_writing && outputEmpty()) {
      t_writing = true;
      int rv = sendDirect(&more);
      t_writing = false;
      if (rv != 0) return rv;
    } else {
      if (int rv = send(); rv != 0) return rv;
      more = evbuffer_get_length(bufferevent_get_output(bev_)) >= kOutputHighWater;
      writeOut();
    }
    if (!more || stopped_ || !outputEmpty()) return 0;
  }
}

int Http2Session::sendDirect(bool* more) {
  // Nothing waits for the socket: the frames go to it from a flat
  // per-thread buffer in one send, and only what the socket does not take
  // goes to the bufferevent's output (for EV_WRITE). Through the output,
  // every frame cost an evbuffer_add (a chain, its callbacks) and every
  // burst an evbuffer_write and drain: about 600 instructions a request.
  uint8_t* buf = threadWriteBuffer();
  evbuffer* out = bufferevent_get_output(bev_);
  size_t used = 0;
  while (used < kOutputHighWater) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return static_cast<int>(n);  // the session is broken: nothing more is written
    if (n == 0) break;
    if (used + static_cast<size_t>(n) > kWriteBufferSize) {
      // A chunk larger than the room left (a huge header block): it
      // waits in the output, behind what the buffer holds.
      evbuffer_add(out, data, static_cast<size_t>(n));
      break;
    }
    std::memcpy(buf + used, data, static_cast<size_t>(n));
    used += static_cast<size_t>(n);
  }
  *more = used >= kOutputHighWater;
  if (used > 0) {
    ssize_t wrote = ::send(fd_, buf, used, MSG_NOSIGNAL);
    size_t took = wrote > 0 ? static_cast<size_t>(wrote) : 0;
    if (took < used) {
      // The socket is full (or failed: the bufferevent's write event then
      // reports the error, as for any write): the rest waits in the
      // output, ahead of anything there. The output's start is the
      // bufferevent's (frozen), as in writeOut().
      evbuffer_unfreeze(out, 1);
      evbuffer_prepend(out, buf + took, used - took);
      evbuffer_freeze(out, 1);
    }
  }
  armWrite();
  return 0;
}

bool Http2Session::outputEmpty() const { return evbuffer_get_length(bufferevent_get_output(bev_)) == 0; }

bool Http2Session::finished() const {
  return !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
}

int Http2Session::offend(Http2Offence o) {
  if (!offence_) offence_ = o;
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

nghttp2_data_provider Http2Session::dataProvider() {
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = &Http2Trampolines::readData;
  return prd;
}

void Http2Session::submitTrailers(int32_t stream_id, const HeaderList& trailers) {
  Http2Fields nv;
  for (const auto& [k, v] : trailers) nv.add(k, v);
  const nghttp2_nv* p = nv.data();
  nghttp2_submit_trailer(session_, stream_id, p, nv.size());  // copies
}

uint64_t validatedContentLength(std::string_view value) {
  uint64_t n = 0;
  for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

std::string lower(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

namespace {

// Whether any of the 8 bytes in `w` is an ASCII upper-case letter. Each
// byte's low 7 bits plus 0x3f reach 0x80 from 'A' on, plus 0x25 from 'Z' + 1
// on (no carry into the next byte: at most 0x7f + 0x3f); a byte with its
// own top bit set is not a letter.
inline bool anyUpper(uint64_t w) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full, kHigh = 0x8080808080808080ull;
  uint64_t y = w & kLow7;
  uint64_t from_a = y + 0x3f3f3f3f3f3f3f3full;  // 0x80 + y - 'A'
  uint64_t past_z = y + 0x2525252525252525ull;  // 0x80 + y - ('Z' + 1)
  return (from_a & ~past_z & ~w & kHigh) != 0;
}

inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

}  // namespace

std::string_view lowered(std::string_view name, std::string& scratch) {
  // Eight bytes at a time (names are mostly 4 to 20 bytes, and nearly
  // always lower case already); the last eight overlap what was seen.
  const char* p = name.data();
  size_t n = name.size();
  bool upper = false;
  if (n >= 8) {
    for (size_t at = 0; at + 8 <= n && !upper; at += 8) upper = anyUpper(load8(p + at));
    if (!upper) upper = anyUpper(load8(p + n - 8));
  } else {
    for (size_t i = 0; i < n && !upper; ++i) upper = p[i] >= 'A' && p[i] <= 'Z';
  }
  if (!upper) return name;
  scratch.assign(name);
  for (size_t i = 0; i < scratch.size(); ++i) {
    char& c = scratch[i];
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  return scratch;
}

nghttp2_nv makeNv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

namespace {

const nghttp2_nv* nvArray(const HeaderList& fields, uint8_t flags) {
  static thread_local std::vector<nghttp2_nv> nv;
  nv.clear();
  for (const auto& [name, value] : fields) {
    nghttp2_nv f = makeNv(name, value);
    f.flags = flags;
    nv.push_back(f);
  }
  return nv.data();
}

}  // namespace

const nghttp2_nv* nvOf(const HeaderList& fields) { return nvArray(fields, NGHTTP2_NV_FLAG_NONE); }

const nghttp2_nv* nvOfInPlace(const HeaderList& fields) {
  return nvArray(fields, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE);
}

Http2Fields::Http2Fields() : fields_(HeaderStock::local().takeList()) {}

Http2Fields::~Http2Fields() { HeaderStock::local().give(std::move(fields_)); }

void Http2Fields::add(std::string_view name, std::string_view value) {
  static thread_local std::string scratch;
  fields_.emplace_back(lowered(name, scratch), value);
}

}  // namespace mulligan::proxy
