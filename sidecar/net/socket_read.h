// readSome: one read(2)-family call from a non-blocking socket straight into
// an evbuffer, for the hot sockets (downstream Http1Session, upstream
// Http1Attempt) that read with their own EV_READ event instead of a
// bufferevent's read side.
//
// Why: libevent's evbuffer_read (what every bufferevent read does) first asks
// the kernel how much is waiting with ioctl(FIONREAD) — one extra syscall per
// read, i.e. two per proxied keep-alive request — and then reads at most
// 4 KiB. readSome reserves space (evbuffer_reserve_space), makes one readv,
// and commits what arrived: one syscall, up to `max` bytes.
//
// The caller reads once per readiness notification (level-triggered epoll
// reports again if more is waiting), so a read that fills less than `max`
// is not followed by a read that would only say EAGAIN.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>

#include <cstddef>

namespace mulligan::net {

enum class ReadStatus {
  kData,   // `bytes` > 0 were appended to the buffer
  kEof,    // the peer closed its write half (read returned 0)
  kAgain,  // nothing to read now (EAGAIN / EWOULDBLOCK / EINTR)
  kError,  // a socket error; `error` holds errno (ECONNRESET, ...)
};

struct ReadResult {
  ReadStatus status = ReadStatus::kAgain;
  size_t bytes = 0;
  int error = 0;
};

// Default read size: large enough that a response head and a typical small
// body arrive in one call, small enough to be fair between connections.
inline constexpr size_t kReadChunk = 16 * 1024;

// Reads at most `max` bytes from `fd` into the end of `buf`. Never blocks
// (the socket must be non-blocking). Thread: the buffer's owner.
ReadResult readSome(evutil_socket_t fd, evbuffer* buf, size_t max = kReadChunk);
// The same from a socket bufferevent's fd into its input buffer, whose read
// side must be disabled. Unfreezes the input's end (takeInput) and leaves it
// so: the caller keeps unparsed bytes there too.
ReadResult readSome(bufferevent* bev, size_t max = kReadChunk);

// Lets the owner of a socket bufferevent that reads the socket itself (a hot
// socket, above) keep bytes in the bufferevent's input: what its parser left
// of a fresh read, or bytes read before the bufferevent was used. libevent
// freezes the end of a socket bufferevent's input so that only its own
// reads add there, and evbuffer_add to a frozen end fails (the bytes would
// be lost). Idempotent; libevent's own reads freeze it again after each read,
// which is harmless once the owner reads through the bufferevent (a tunnel).
void takeInput(bufferevent* bev);

// One read(2) of at most `len` bytes into plain memory, same statuses.
ReadResult readInto(evutil_socket_t fd, char* data, size_t len);

// A per-thread buffer of kReadChunk bytes, for a read that is parsed at once
// when nothing older waits in the connection's evbuffer: only the bytes the
// parser leaves are then copied into the evbuffer, so a keep-alive request
// costs no evbuffer chain allocation on the read side. Its content is valid
// until the next read on the thread: reads run only from their own event
// callbacks, never nested inside another connection's parse.
char* threadReadBuffer();

// The read a hot socket makes on each readiness: when nothing older waits in
// `bev`'s input, into the thread's read buffer (`*fresh` points there, valid
// as threadReadBuffer() says: parse from it, and append what the parser
// leaves to the input, which this has unfrozen: takeInput); otherwise
// appended behind the older bytes (`*fresh` null), so the order holds.
// `fd` is `bev`'s socket, which the caller keeps (bufferevent_getfd takes
// the bufferevent's lock: a cost per read).
ReadResult readForParse(bufferevent* bev, evutil_socket_t fd, const char** fresh);

// The next bytes to parse after readForParse: the fresh bytes first (once:
// `*fresh_len` becomes 0), then the first chain of `in` (parsed in place:
// nothing is copied). False when nothing is left. `*from_fresh` says which,
// so the caller knows whether to drain `in` or keep the fresh rest.
bool nextToParse(const char* fresh, size_t* fresh_len, evbuffer* in, const char** data, size_t* len,
                 bool* from_fresh);

}  // namespace mulligan::net
