// Http1Session: the downstream (app-facing) side of an HTTP/1.1 connection.
// It parses requests with an Http1Reader and runs one ProxyStream at a time:
// the reader pauses after each request, so pipelined requests wait, unparsed,
// in the input buffer until the current response is complete — responses go
// out in order. Framing errors answer 400, header limits 431, and close.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <memory>

#include "sidecar/event/event_loop.h"
#include "sidecar/proxy/http1_reader.h"

namespace mulligan::proxy {

class Connection;
class ProxyStream;
class Worker;

class Http1Session : public event::Deletable, private Http1Reader::Handler {
 public:
  static constexpr size_t kHighWater = 1 << 20;  // downstream output back-pressure
  static constexpr size_t kLowWater = 256 << 10;

  // Takes over `bev` (with the sniffed bytes still in its input).
  Http1Session(Connection* conn, bufferevent* bev);
  ~Http1Session() override;

  void start();
  // Graceful stop: close now if between requests, else after this response.
  void drain();

  // --- for the current ProxyStream ---
  Worker& worker();
  Connection& connection() { return *conn_; }
  // Where the stream writes response bytes; they leave with flush().
  evbuffer* output() { return staged_; }
  // Writes what is staged now (one writev, no epoll change) when nothing is
  // queued before it; what the socket does not take is queued in the
  // bufferevent, which finishes it when the socket is writable.
  void flush();
  bool congested() const {
    return evbuffer_get_length(staged_) + evbuffer_get_length(bufferevent_get_output(bev_)) >= kHighWater;
  }
  // The response is fully written to the output buffer.
  void streamFinished(bool keep_alive);
  // The response cannot be completed (upstream broke mid-body): close.
  void streamAborted();
  // 100 Continue for an `Expect: 100-continue` request.
  void sendContinue();
  // After a 101 (or a CONNECT's 2xx): relay raw bytes between the app and
  // `upstream` from now on.
  void upgradeToTunnel(bufferevent* upstream);

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short what, void* arg);
  void processInput();
  void rejectRequest(int status, const char* reason, const std::string& why);
  void closeWhenFlushed();
  void linger();
  void closeNow();

  // Http1Reader::Handler
  void onHead(MessageHead& head) override;
  void onBody(const char* data, size_t len) override;
  void onTrailers(HeaderList& trailers) override;
  void onComplete() override;

  Connection* conn_;
  bufferevent* bev_;
  evbuffer* staged_;
  Http1Reader reader_;
  std::unique_ptr<ProxyStream> stream_;
  bool waiting_for_response_ = false;  // reader paused after a complete request
  bool finished_early_ = false;        // response done before the request ended
  bool close_after_response_ = false;
  bool closing_ = false;               // flushing the last bytes, then close
  bool lingering_ = false;             // our side shut down; discarding input until EOF
  bool closed_ = false;
  bool peer_eof_ = false;
};

}  // namespace mulligan::proxy
