// A blocking HTTP/1.0 GET against the sidecar's admin endpoint, for
// `mulligan-agent status` (the agent has no event loop and needs none: one
// request at a time, each bounded by a timeout).
#pragma once

#include <optional>
#include <string>

namespace mulligan::agent {

struct HttpReply {
  int status = 0;
  std::string body;
};

// GET http://ADDR/PATH where ADDR is "HOST:PORT" or "[V6]:PORT" (HOST may be a
// name). The whole exchange (resolve, connect, send, read to EOF) is bounded
// by timeout_ms. nullopt with *error ("127.0.0.1:15000: connection refused")
// on failure.
std::optional<HttpReply> httpGet(const std::string& addr, const std::string& path, int timeout_ms,
                                 std::string* error);

}  // namespace mulligan::agent
