"""HTTP/1 framing through mulligan-sidecar, decided before any byte goes
upstream (issue 15, finding 5): each request below is refused with
400 Bad Request and Connection: close, and the upstream — a raw socket
server that records every byte and connection it gets — sees nothing of
it. Raw sockets on both sides: the exact bytes matter."""
import select
import socket
import threading
import time
import unittest

from harness import Stack, wait_for


def policy(upstream_port):
    return f"""version = 1
[[service]]
name = "svc"
hosts = ["svc"]
upstream = "127.0.0.1:{upstream_port}"
[defaults.retry]
num_retries = 0
"""


class RecordingUpstream:
    """A one-thread HTTP/1 server on a loopback port that records, per
    connection, every byte it reads, and answers each request head it sees
    with a small 200 (bodies are not parsed: every test request it should
    answer has none). sweep() reads whatever the kernel holds right now."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.srv.setblocking(False)
        self.port = self.srv.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []        # [socket, bytes received, bytes not yet answered, closed by peer]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.conns:
            c[0].close()
        self.srv.close()

    def _poll(self, timeout):
        with self.lock:
            socks = [self.srv] + [c[0] for c in self.conns if not c[3]]
        r, _, _ = select.select(socks, [], [], timeout)
        with self.lock:
            for s in r:
                if s is self.srv:
                    while True:
                        try:
                            c, _ = self.srv.accept()
                        except BlockingIOError:
                            break
                        c.setblocking(False)
                        self.conns.append([c, b"", b"", False])
                    continue
                rec = next(c for c in self.conns if c[0] is s)
                while True:
                    try:
                        b = s.recv(65536)
                    except BlockingIOError:
                        break
                    except ConnectionError:
                        b = b""
                    if not b:
                        rec[3] = True
                        break
                    rec[1] += b
                    rec[2] += b
                while b"\r\n\r\n" in rec[2]:
                    head, rec[2] = rec[2].split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0]
                    if b"/bad" in line:
                        continue  # never answered: its body may follow
                    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    if b"/resp-" in line:
                        answer = BAD_RESPONSES[int(line.split(b"/resp-")[1].split()[0])][1]
                    try:
                        s.sendall(answer)
                    except OSError:
                        pass
        return bool(r)

    def _run(self):
        while not self.stop:
            self._poll(0.05)

    def sweep(self):
        """Everything the kernel had for us when this was called is read."""
        # The thread polls too; a zero-timeout poll here under the lock's
        # protection reads what is left until nothing is readable.
        while self._poll(0):
            pass

    def snapshot(self):
        with self.lock:
            return [(c[1], c[3]) for c in self.conns]


def read_response(sock):
    """(status, headers, body) of one content-length response, then whether
    the connection ended after it (EOF)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise AssertionError("connection closed before a response head: %r" % buf)
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    n = int(headers.get("content-length", ["0"])[0])
    while len(rest) < n:
        b = sock.recv(65536)
        if not b:
            break
        rest += b
    return status, headers, rest[:n], rest[n:]


POST = b"POST /bad HTTP/1.1\r\nHost: svc\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

# (name, bytes): each one whole in one send.
BAD = [
    ("te-unknown-coding", POST + b"Transfer-Encoding: gzip\r\n\r\nhello"),
    ("te-gzip-chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("te-chunked-twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-http10", b"POST /bad HTTP/1.0\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-and-cl", POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te-empty", POST + b"Transfer-Encoding: \r\n\r\n"),
    ("two-hosts", b"GET /bad HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n"),
    ("no-host", b"GET /bad HTTP/1.1\r\n\r\n"),
    ("host-with-path", b"GET /bad HTTP/1.1\r\nHost: svc/x\r\n\r\n"),
    ("cl-twice", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl-list", POST + b"Content-Length: 5, 5\r\n\r\nhello"),
    ("cl-plus", POST + b"Content-Length: +5\r\n\r\nhello"),
    ("cl-overflow", POST + b"Content-Length: 99999999999999999999999\r\n\r\nhello"),
    ("chunk-size-not-hex", CHUNKED + b"5\r\nhello\r\nzz\r\n\r\n"),
    ("chunk-data-no-crlf", CHUNKED + b"5\r\nhelloXX0\r\n\r\n"),
    ("chunk-size-overflow", CHUNKED + b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-space", CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-bare-cr", CHUNKED + b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
    ("body-ends-bare-lf", CHUNKED + b"5\r\nhello\r\n0\r\n\n"),
    ("request-line-bare-lf", b"GET /bad HTTP/1.1\nHost: svc\r\n\r\n"),
    ("head-ends-bare-lf", b"GET /bad HTTP/1.1\r\nHost: svc\r\n\n"),
    ("field-bare-lf", b"GET /bad HTTP/1.1\r\nHost: svc\nX-A: 1\r\n\r\n"),
    ("obs-fold", b"GET /bad HTTP/1.1\r\nHost: svc\r\nX-A: 1\r\n 2\r\n\r\n"),
    ("space-before-colon", b"GET /bad HTTP/1.1\r\nHost: svc\r\nX-A : 1\r\n\r\n"),
    ("nul-in-value", b"GET /bad HTTP/1.1\r\nHost: svc\r\nX-A: a\x00b\r\n\r\n"),
    ("two-spaces-after-method", b"GET  /bad HTTP/1.1\r\nHost: svc\r\n\r\n"),
    ("fragment", b"GET /bad#x HTTP/1.1\r\nHost: svc\r\n\r\n"),
    ("version-1.2", b"GET /bad HTTP/1.2\r\nHost: svc\r\n\r\n"),
    ("space-in-method-line", b"GET /bad  HTTP/1.1\r\nHost: svc\r\n\r\n"),
    ("star-outside-options", b"GET * HTTP/1.1\r\nHost: svc\r\n\r\n"),
    ("absolute-userinfo", b"GET http://u@svc/bad HTTP/1.1\r\nHost: svc\r\n\r\n"),
]


# Upstream responses held to the same rules: each is a failed attempt, 502.
BAD_RESPONSES = [
    ("te-and-cl", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("cl-twice", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok"),
    ("te-gzip-chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("status-line-bare-lf", b"HTTP/1.1 200 OK\ncontent-length: 2\r\n\r\nok"),
    ("head-ends-bare-lf", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\nok"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nx-a: 1\r\n 2\r\ncontent-length: 2\r\n\r\nok"),
    ("te-http10", b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("two-digit-status", b"HTTP/1.1 20 OK\r\ncontent-length: 2\r\n\r\nok"),
]


class Http1FramingTest(Stack):
    def setUp(self):
        super().setUp()
        self.up = RecordingUpstream()
        self.addCleanup(self.up.close)
        self.publish(policy(self.up.port))
        self.start_sidecar()
        self.markers = 0

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.outbound_port), timeout=10)
        self.addCleanup(s.close)
        return s

    def marker(self):
        """A good request on a new connection, answered: whatever the
        sidecar sent upstream before it is in the upstream's record after
        sweep() (one worker, one loop: it was written first)."""
        self.markers += 1
        path = b"/marker-%d" % self.markers
        s = self.connect()
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: svc\r\n\r\n")
        status, _, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"ok"))
        s.close()
        self.up.sweep()
        return path

    def assert_refused(self, s):
        status, headers, body, rest = read_response(s)
        self.assertEqual(status, 400, body)
        self.assertEqual(headers.get("connection"), ["close"])
        self.assertTrue(body.strip(), "a 400 says what was wrong")
        # Then the sidecar closes.
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
        self.assertEqual(rest, b"")
        return body

    def test_bad_requests_are_refused_before_anything_goes_upstream(self):
        # A pooled upstream connection first, so that a request the sidecar
        # would forward goes out at once, in the same loop iteration.
        self.marker()
        failures = []
        for name, raw in BAD:
            before = self.up.snapshot()
            s = self.connect()
            s.sendall(raw)
            try:
                why = self.assert_refused(s)
            except (AssertionError, OSError) as e:
                failures.append(f"{name}: no 400 + close: {e}")
                self.marker()
                continue
            s.close()
            path = self.marker()
            after = self.up.snapshot()
            # Bytes the upstream got during this case: only the marker's head.
            got = b"".join(a[0][len(before[i][0]):] if i < len(before) else a[0] for i, a in enumerate(after))
            new_conns = len(after) - len(before)
            if b"/bad" in got or got.count(b"\r\n\r\n") != 1 or new_conns != 0:
                failures.append(f"{name}: reached the upstream ({new_conns} new connections): {got!r}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_lowercase_and_unknown_token_methods_are_forwarded_as_they_are(self):
        for method in (b"get", b"FROB", b"M-SEARCH"):
            s = self.connect()
            s.sendall(method + b" /m HTTP/1.1\r\nHost: svc\r\n\r\n")
            status, _, body, _ = read_response(s)
            self.assertEqual((status, body), (200, b"ok"), method)
            s.close()
            self.up.sweep()
            got = b"".join(c[0] for c in self.up.snapshot())
            self.assertIn(method + b" /m HTTP/1.1\r\n", got)

    def test_a_lowercase_word_without_an_http_version_is_not_http(self):
        # memcached's "get key" is not an HTTP/1 request: no 400 from the
        # sidecar (opaque, and with no original destination, closed).
        s = self.connect()
        s.sendall(b"get somekey\r\n")
        self.assertEqual(s.recv(65536), b"")

    def test_framing_fields_in_trailers_are_not_forwarded(self):
        self.marker()
        s = self.connect()
        s.sendall(b"POST /trailers HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\nok\r\n0\r\nContent-Length: 5\r\nHost: evil\r\nX-Sum: 1\r\n\r\n")
        status, _, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"ok"))
        wait_for(lambda: (self.up.sweep(), any(b"x-sum" in c[0].lower() for c in self.up.snapshot()))[1],
                 what="the trailers upstream")
        got = b"".join(c[0] for c in self.up.snapshot()).lower()
        tail = got.split(b"post /trailers", 1)[1].split(b"\r\n\r\n", 1)[1]
        self.assertIn(b"x-sum: 1\r\n", tail)
        self.assertNotIn(b"content-length", tail)
        self.assertNotIn(b"evil", tail)

    def test_h2c_upgrade_is_stripped_and_websocket_upgrade_kept(self):
        s = self.connect()
        s.sendall(b"GET /h2c HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        status, _, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"ok"))
        self.up.sweep()
        got = b"".join(c[0] for c in self.up.snapshot()).lower()
        self.assertIn(b"get /h2c http/1.1\r\n", got)
        self.assertNotIn(b"upgrade", got)
        self.assertNotIn(b"http2-settings", got)

    def test_absolute_form_authority_wins_over_host(self):
        # RFC 9112 §3.2.2: a proxy ignores Host and uses the target's
        # authority, and the Host it sends is that authority.
        s = self.connect()
        authority = b"127.0.0.1:%d" % self.up.port
        s.sendall(b"GET http://" + authority + b"/abs HTTP/1.1\r\nHost: evil\r\n\r\n")
        status, _, body, _ = read_response(s)
        self.assertEqual((status, body), (200, b"ok"))
        self.up.sweep()
        got = b"".join(c[0] for c in self.up.snapshot()).lower()
        self.assertIn(b"get /abs http/1.1\r\n", got)
        self.assertIn(b"\r\nhost: " + authority + b"\r\n", got)
        self.assertNotIn(b"evil", got)

    def test_bad_upstream_responses_are_failed_attempts(self):
        failures = []
        for i, (name, _) in enumerate(BAD_RESPONSES):
            s = self.connect()
            s.sendall(b"GET /resp-%d HTTP/1.1\r\nHost: svc\r\n\r\n" % i)
            status, _, body, _ = read_response(s)
            s.close()
            if status != 502 or b"malformed response" not in body:
                failures.append(f"{name}: {status} {body!r}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_bad_chunk_after_the_head_went_out_fails_the_attempt(self):
        # The head and a good chunk go upstream; the bad chunk size comes
        # later: 400, and the upstream connection is closed, not pooled.
        self.marker()
        s = self.connect()
        s.sendall(CHUNKED + b"5\r\nhello\r\n")
        wait_for(lambda: (self.up.sweep(), any(b"hello" in c[0] for c in self.up.snapshot()))[1],
                 what="the first chunk upstream")
        before = self.up.snapshot()
        carrier = next(i for i, c in enumerate(before) if b"hello" in c[0])
        s.sendall(b"zz\r\n\r\n")
        self.assert_refused(s)
        wait_for(lambda: (self.up.sweep(), self.up.snapshot()[carrier][1])[1],
                 what="the upstream connection closed")
        self.assertNotIn(b"zz", self.up.snapshot()[carrier][0])
        self.marker()  # on another connection: the broken one is gone
        after = self.up.snapshot()
        self.assertNotIn(b"/marker-2", after[carrier][0])


if __name__ == "__main__":
    unittest.main()
