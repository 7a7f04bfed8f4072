#include "sidecar/net/socket_read.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace mulligan::net {
namespace {

// What a read(2)/readv(2) that returned `got` means (errno when it is < 0).
ReadResult resultOf(ssize_t got) {
  ReadResult r;
  if (got > 0) {
    r.status = ReadStatus::kData;
    r.bytes = static_cast<size_t>(got);
  } else if (got == 0) {
    r.status = ReadStatus::kEof;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    r.status = ReadStatus::kAgain;
  } else {
    r.status = ReadStatus::kError;
    r.error = errno;
  }
  return r;
}

}  // namespace

ReadResult readSome(evutil_socket_t fd, evbuffer* buf, size_t max) {
  ReadResult r;
  evbuffer_iovec vec[2];
  int n = evbuffer_reserve_space(buf, static_cast<ev_ssize_t>(max), vec, 2);
  if (n <= 0) {
    r.status = ReadStatus::kError;
    r.error = ENOMEM;
    return r;
  }
  // libevent may offer more than was asked for (a whole chain): keep to `max`.
  size_t room = max;
  for (int i = 0; i < n; ++i) {
    if (vec[i].iov_len > room) vec[i].iov_len = room;
    room -= vec[i].iov_len;
  }
  if (n == 2 && vec[1].iov_len == 0) n = 1;
  // evbuffer_iovec is laid out as struct iovec (libevent documents it).
  ssize_t got = ::readv(fd, reinterpret_cast<iovec*>(vec), n);
  if (got <= 0) {
    ReadResult failed = resultOf(got);   // before anything can touch errno
    evbuffer_commit_space(buf, vec, 0);  // give the reservation back
    return failed;
  }
  size_t left = static_cast<size_t>(got);
  int used = 0;
  for (; used < n && left > 0; ++used) {
    if (vec[used].iov_len > left) vec[used].iov_len = left;
    left -= vec[used].iov_len;
  }
  evbuffer_commit_space(buf, vec, used);
  return resultOf(got);
}

ReadResult readInto(evutil_socket_t fd, char* data, size_t len) { return resultOf(::read(fd, data, len)); }

char* threadReadBuffer() {
  static thread_local char buffer[kReadChunk];
  return buffer;
}

void takeInput(bufferevent* bev) { evbuffer_unfreeze(bufferevent_get_input(bev), 0); }

ReadResult readSome(bufferevent* bev, size_t max) {
  takeInput(bev);
  return readSome(bufferevent_getfd(bev), bufferevent_get_input(bev), max);
}

ReadResult readForParse(bufferevent* bev, evutil_socket_t fd, const char** fresh) {
  // The caller appends what its parser leaves of a fresh read to the input.
  takeInput(bev);
  if (evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
    char* buf = threadReadBuffer();
    *fresh = buf;
    return readInto(fd, buf, kReadChunk);
  }
  *fresh = nullptr;
  return readSome(fd, bufferevent_get_input(bev));
}

bool nextToParse(const char* fresh, size_t* fresh_len, evbuffer* in, const char** data, size_t* len,
                 bool* from_fresh) {
  *from_fresh = *fresh_len != 0;
  if (*from_fresh) {
    *data = fresh;
    *len = *fresh_len;
    *fresh_len = 0;
    return true;
  }
  if (evbuffer_get_length(in) == 0) return false;
  evbuffer_iovec vec;
  if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) return false;
  *data = static_cast<const char*>(vec.iov_base);
  *len = vec.iov_len;
  return true;
}

}  // namespace mulligan::net
