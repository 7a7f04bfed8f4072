#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/).

Run by hand when a target's input format changes; the corpora are checked in
and nothing grows them automatically (scripts/fuzz fuzzes a copy). The
table_reader seed comes from mulligan-fuzz-table-seed (see table_seed_main.cc)
and the policy_compiler seeds are examples/policy.toml plus the small
policies below. Needs python3-h2 (Debian) for the HTTP/2 frames.
"""
import os
import shutil
import struct
import sys

import h2.config
import h2.connection
import h2.settings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- HTTP/1 --
# Control byte (http1_reader_fuzz.h): bits 0-1 cuts (0 = byte by byte),
# bit 2 HEAD response, bits 3-4 small header limits.
REQUESTS = {
    "get": "GET /orders/1 HTTP/1.1\r\nHost: orders\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "post-length": "POST /api/orders HTTP/1.1\r\nHost: orders:8080\r\nContent-Type: application/json\r\n"
                   "Content-Length: 13\r\nIdempotency-Key: k1\r\n\r\n{\"item\": 42}\n",
    "post-chunked-trailers": "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
                             "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 99\r\n\r\n",
    "pipelined": "GET /a HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b HTTP/1.1\r\nHost: a\r\n\r\n"
                 "DELETE /c HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "absolute-form": "GET http://example.com:8080/x?y=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
                     "Proxy-Connection: keep-alive\r\n\r\n",
    "connect": "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\x05hello",
    "websocket": "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05hello",
    "h2c-upgrade": "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    "expect-continue": "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "http10": "GET / HTTP/1.0\r\n\r\n",
    "grpc-web-ish": "POST /pkg.Svc/Call HTTP/1.1\r\nHost: a\r\ncontent-type: application/grpc\r\n"
                    "grpc-timeout: 100m\r\nx-timeout-budget: 250\r\nte: trailers\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00",
    # Framing that must be refused (RFC 9112 §6, §7; request smuggling).
    "cl-te": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-gzip-chunked": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te-identity": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    "te-http10": "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cl-twice": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-list": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
    "cl-sign": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
    "cl-huge": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "obs-fold": "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "space-before-colon": "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "bare-lf": "GET / HTTP/1.1\nHost: a\n\n",
    "nul-in-value": "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "chunk-size-bad": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
    "chunk-no-crlf": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    "two-hosts": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": "GET / HTTP/1.1\r\n\r\n",
    "lower-method": "get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "many-headers": "GET / HTTP/1.1\r\nHost: a\r\n" + "".join("X-%d: %d\r\n" % (i, i) for i in range(20)) + "\r\n",
}

RESPONSES = {
    "ok-length": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "chunked-trailers": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n"
                        "4\r\nwiki\r\n5;a=b\r\npedia\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n",
    "no-content": "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "not-modified": "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 3\r\n\r\n",
    "continue-then-ok": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "close-delimited": "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until the end",
    "http10": "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>",
    "switching": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi",
    "unavailable-retry-after": "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
    "too-many-date": "HTTP/1.1 429 Too Many Requests\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                     "Content-Length: 4\r\n\r\nslow",
    "keep-alive-two": "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 500 Internal Server Error\r\n"
                      "Content-Length: 0\r\n\r\n",
    "cl-te": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-status": "HTTP/1.1 2000 OK\r\n\r\n",
    "no-reason": "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": "HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
    "truncated": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "http2-version": "HTTP/2.0 200 OK\r\n\r\n",
}


def http1():
    for i, (name, text) in enumerate(sorted(REQUESTS.items())):
        control = [1, 2, 3, 0][i % 4]
        write("http1_request", name, bytes([control]) + text.encode("latin-1"))
    write("http1_request", "many-headers-small-limits", bytes([1 | (1 << 3)]) + REQUESTS["many-headers"].encode())
    for i, (name, text) in enumerate(sorted(RESPONSES.items())):
        control = [1, 2, 3, 0][i % 4]
        write("http1_response", name, bytes([control]) + text.encode("latin-1"))
    write("http1_response", "head-with-length", bytes([1 | 4]) + RESPONSES["ok-length"].encode()[:-5])


# ---------------------------------------------------------------- HTTP/2 --
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def client():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None,
                                                             validate_outbound_headers=False))
    c.initiate_connection()
    return c


def frames(c):
    out = c.data_to_send()
    assert out.startswith(PREFACE) or not out
    return out[len(PREFACE):] if out.startswith(PREFACE) else out


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def http2():
    req = [(":method", "GET"), (":scheme", "http"), (":authority", "orders"), (":path", "/orders/1")]
    seeds = {}

    c = client()
    c.send_headers(1, req, end_stream=True)
    seeds["get"] = frames(c)

    c = client()
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "orders:8080"),
                       (":path", "/api/orders"), ("content-type", "application/json"), ("content-length", "13")])
    c.send_data(1, b'{"item": 42}\n', end_stream=True)
    seeds["post-body"] = frames(c)

    c = client()
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "greeter"),
                       (":path", "/helloworld.Greeter/SayHello"), ("content-type", "application/grpc"),
                       ("te", "trailers"), ("grpc-timeout", "100m")])
    c.send_data(1, b"\x00\x00\x00\x00\x07\x0a\x05world")
    c.send_headers(1, [("x-trailer", "1")], end_stream=True)
    seeds["grpc-with-trailers"] = frames(c)

    c = client()
    for sid in (1, 3, 5):
        c.send_headers(sid, req, end_stream=(sid != 3))
    c.reset_stream(3)
    c.ping(b"12345678")
    c.increment_flow_control_window(65535)
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1,
                       h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    seeds["streams-reset-ping-settings"] = frames(c)

    c = client()
    c.send_headers(1, req + [("x-big", "v" * 2000)], end_stream=True)
    c.close_connection()
    seeds["big-header-goaway"] = frames(c)

    c = client()
    c.send_headers(1, [(":method", "CONNECT"), (":authority", "example.com:443")])
    seeds["connect"] = frames(c)

    c = client()
    c.send_headers(1, [(":method", "HEAD"), (":scheme", "http"), (":authority", "a"), (":path", "/"),
                       ("host", "b")], end_stream=True)
    c.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "b")], end_stream=True)
    seeds["head-and-host"] = frames(c)

    # Hand-made frames h2 would not send: continuation, priority, empty
    # DATA, a stream id going backwards, a window update of 0.
    c = client()
    base = frames(c)
    from hpack import Encoder
    e = Encoder()
    block = e.encode(req)
    half = len(block) // 2
    raw = base
    raw += frame(0x1, 0x0, 1, block[:half])               # HEADERS without END_HEADERS
    raw += frame(0x9, 0x4, 1, block[half:])               # CONTINUATION, END_HEADERS
    raw += frame(0x2, 0x0, 1, struct.pack(">IB", 0, 15))  # PRIORITY
    raw += frame(0x0, 0x0, 1, b"") * 4                    # empty DATA
    raw += frame(0x0, 0x1, 1, b"")                        # END_STREAM
    raw += frame(0x8, 0x0, 0, struct.pack(">I", 0))       # WINDOW_UPDATE 0 (connection error)
    seeds["continuation-empty-data"] = raw
    e = Encoder()  # a fresh HPACK context, as the server's is for this seed
    raw = base + frame(0x1, 0x5, 5, e.encode(req)) + frame(0x1, 0x5, 3, e.encode(req))
    seeds["stream-id-backwards"] = raw
    raw = base + frame(0x6, 0x0, 0, b"12345678") * 50 + frame(0x4, 0x0, 0, b"") * 50
    seeds["ping-settings-flood"] = raw

    for name, data in seeds.items():
        write("http2_server", name, b"\x80" + data)


# ------------------------------------------------------ small text values --
def values():
    for v in ["1S", "100m", "99999999H", "5u", "1n", "999n", " 3M ", "0S", "123456789m", "+1S", "1.5S", "10",
              "m", "00000001H", "12345678n"]:
        name = v.strip().replace(" ", "_").replace(".", "dot").replace("+", "plus") or "empty"
        write("grpc_timeout", name, v)
    now = struct.pack("<Q", 1_700_000_000)
    for name, v in {
        "seconds": "120",
        "zero": "0",
        "imf-fixdate": "Sun, 06 Nov 1994 08:49:37 GMT",
        "rfc850": "Sunday, 06-Nov-94 08:49:37 GMT",
        "asctime": "Sun Nov  6 08:49:37 1994",
        "future": "Fri, 31 Dec 9999 23:59:59 GMT",
        "leap-day": "Thu, 29 Feb 2024 00:00:00 GMT",
        "not-a-date": "Sun, 30 Feb 2024 00:00:00 GMT",
        "negative": "-1",
        "huge": "99999999999999999999",
        "ows": " \t15\t ",
    }.items():
        write("retry_after", name, now + v.encode())


# -------------------------------------------------------------- policies --
POLICIES = {
    "minimal": "version = 1\n",
    "service-routes": """version = 1
[defaults]
request_timeout = "2s"
[[service]]
name = "orders"
hosts = ["orders", "*.orders.svc"]
port = 8080
upstream = "127.0.0.1:9000"
retry = { num_retries = 3, retry_on = ["5xx", "429", "unavailable"] }
  [[service.route]]
  grpc = "pkg.Orders/Get"
  request_timeout = "1s"
  [[service.route]]
  path_exact = "/health"
  methods = ["GET", "HEAD"]
  retry.num_retries = 0
""",
    "errors": """version = 2
[defaults]
conect_timeout = "1s"
request_timeout = "ten seconds"
[defaults.retry]
num_retries = 99
backoff_base = "2s"
backoff_max = "1s"
[[service]]
hosts = ["bad host"]
  [[service.route]]
  path_prefix = "/"
  [[service.route]]
  path_prefix = "/a"
""",
    "budget-deadline": """version = 1
[defaults.budget]
retry_ratio = 0.5
window = "1m"
[defaults.deadline]
propagate = false
grpc_timeout_offset = "5ms"
[[service]]
name = "a.b-c_d"
hosts = ["10.0.0.1", "[::1]"]
budget = { min_retries_per_second = 0 }
""",
    "hedge-outlier": """version = 1
[defaults.retry]
fresh_connection = false
[defaults.hedge]
delay = "p99.9"
max_extra_load = 0.1
[defaults.outlier]
consecutive_failures = 3
ejection = "1s"
max_ejection = "1m"
max_ejected = 0.25
[[service]]
name = "search"
hosts = ["search"]
hedge = { delay = "20ms", max_attempts = 5 }
outlier.consecutive_failures = 0
  [[service.route]]
  path_prefix = "/q"
  hedge.delay = "p90"
  [[service.route]]
  grpc = "pkg.Search"
  methods = ["POST"]
  retry = { idempotency_header = "", retry_on = ["unavailable"] }
  hedge = { delay = "p95" }
""",
    "hedge-errors": """version = 1
[defaults.hedge]
delay = "p98"
max_attempts = 9
max_extra_load = "5%"
[defaults.outlier]
ejection = "10m"
max_ejected = 2
[[service]]
name = "w"
hosts = ["w"]
  [[service.route]]
  path_prefix = "/"
  methods = ["POST"]
  retry = { idempotency_header = "" }
  hedge.delay = "5ms"
""",
}


def policies():
    shutil.copy(os.path.join(ROOT, "examples", "policy.toml"), os.path.join(CORPUS, "policy_compiler", "example"))
    for name, text in POLICIES.items():
        write("policy_compiler", name, text)


def main():
    os.makedirs(os.path.join(CORPUS, "policy_compiler"), exist_ok=True)
    http1()
    http2()
    values()
    policies()
    print("seeds written under", CORPUS, file=sys.stderr)


if __name__ == "__main__":
    main()
